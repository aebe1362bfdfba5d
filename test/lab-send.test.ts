// The lab senders, received by an independent SMTP server (the `smtp-server` package) and verified by mailauth
// against the lab's own DNS server: every domain of lab/worlds/test-smtp.json with a sender delivers one mail
// from its sender host's IP, over TLS or not as declared, DKIM-signed as declared.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as dnsPromises } from 'node:dns';
import { domainToASCII, fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { startMailSink, type MailSink, type SunkMail } from './helpers/mail-sink.ts';
import { authenticate } from 'mailauth';
import { loadWorld } from '../lab/world.ts';
import { createLabCa } from '../lab/ca.ts';
import { startDnsServer, type DnsServer } from '../lab/dns-server.ts';
import { sendTestMails, type SendResult } from '../lab/sender.ts';
import type { LabHost, LabWorld } from '../lab/model.ts';

const WORLD = fileURLToPath(new URL('../lab/worlds/test-smtp.json', import.meta.url));
const RECEIVER = 'receiver.mailcensus.test';

function aLabelAddress(address: string): string {
  const at = address.lastIndexOf('@');
  return `${address.slice(0, at)}@${domainToASCII(address.slice(at + 1))}`;
}

/** A mail the sink received, its envelope sender in A-label form. */
type Received = SunkMail;

describe('lab senders', () => {
  let world: LabWorld;
  let dns: DnsServer;
  let sink: MailSink;
  let port: number;
  const received: Received[] = [];
  let results: SendResult[];
  let resolver: dnsPromises.Resolver;

  const senderHost = (domain: string): LabHost => {
    const d = world.domains.find((x) => x.name === domain)!;
    return world.hosts.get(d.sender!.hostId)!;
  };
  const mailOf = (domain: string): Received => {
    const r = received.find((m) => m.mailFrom.endsWith(`@${domain}`));
    assert.ok(r, `no mail from ${domain}`);
    return r;
  };
  const verify = async (domain: string) => {
    const m = mailOf(domain);
    return authenticate(m.message, {
      ip: m.remoteAddress,
      helo: m.clientHostname,
      sender: m.mailFrom,
      mta: RECEIVER,
      resolver: (name: string, rrtype: string) => resolver.resolve(name, rrtype) as Promise<string[][] | string[]>,
      disableArc: true,
      disableBimi: true,
    } as Parameters<typeof authenticate>[1]);
  };

  before(async () => {
    world = loadWorld(WORLD);
    dns = await startDnsServer(world, { port: 0 });
    resolver = new dnsPromises.Resolver({ timeout: 2000, tries: 2 });
    resolver.setServers([`127.0.0.1:${dns.port}`]);
    // A throwaway certificate for the receiver: the senders do not verify it (opportunistic TLS).
    const ca = await createLabCa();
    const probe = world.hosts.get('normal')!;
    const { certPem, keyPem } = ca.certFor({ ...probe, name: RECEIVER });
    sink = await startMailSink(
      // smtp-server shows IDN domains as U-labels; compare in A-label form, as on the wire.
      (m) => received.push({ ...m, mailFrom: aLabelAddress(m.mailFrom) }),
      { name: RECEIVER, key: keyPem, cert: certPem },
    );
    port = sink.port;
    results = await sendTestMails(world, { to: { host: '127.0.0.1', port }, concurrency: 4, timeoutMs: 10000 });
  });

  after(async () => {
    await sink.close();
    await dns.stop();
  });

  test('every domain with a sender sends exactly one mail, and only those', () => {
    const withSender = world.domains.filter((d) => d.sender !== null).map((d) => d.name).sort();
    assert.deepEqual(results.map((r) => r.domain).sort(), withSender);
    for (const r of results) assert.equal(r.ok, true, `${r.domain}: ${r.error}`);
    assert.equal(received.length, withSender.length);
    assert.ok(!received.some((m) => m.mailFrom.endsWith('@quiet.send.test')));
  });

  test("each mail arrives from its sender host's IP, with EHLO naming that host", () => {
    for (const r of results) {
      const host = senderHost(r.domain);
      assert.equal(r.clientIp, host.ip);
      const m = mailOf(r.domain);
      assert.equal(m.remoteAddress, host.ip, r.domain);
      assert.equal(m.clientHostname, host.name, r.domain);
      assert.deepEqual(m.rcptTo, ['check@127.0.0.1']);
    }
    // The "mx" sender is the domain's first MX host.
    const mxSender = world.domains.find((d) => d.name === 'mxsender.send.test')!;
    assert.equal(senderHost('mxsender.send.test').id, (mxSender.mx as string[])[0]);
  });

  test('a sender uses STARTTLS when the receiver offers it, unless it is declared without TLS', () => {
    for (const r of results) {
      const d = world.domains.find((x) => x.name === r.domain)!;
      assert.equal(mailOf(r.domain).secure, d.sender!.starttls, r.domain);
      assert.equal(r.tls, d.sender!.starttls, r.domain);
    }
    assert.equal(mailOf('plain.send.test').secure, false);
  });

  test('MAIL FROM and the From: header carry the declared address', () => {
    const m = mailOf('mxsender.send.test');
    assert.equal(m.mailFrom, 'bounce@mxsender.send.test');
    assert.match(m.message.toString(), /^From: bounce@mxsender\.send\.test\r$/m);
    assert.match(m.message.toString(), /^Message-ID: <[^>]+@mxsender\.send\.test>\r$/im);
    assert.match(m.message.toString(), /^Date: /m);
  });

  test('a signature under a published selector verifies with mailauth against the lab DNS', async () => {
    for (const domain of ['tls-dkim.send.test', 'plain.send.test', 'mxsender.send.test', 'xn--bcher-kva.send.test']) {
      const res = await verify(domain);
      const sigs = res.dkim.results;
      assert.equal(sigs.length, 1, domain);
      assert.equal(sigs[0]!.status.result, 'pass', `${domain}: ${JSON.stringify(sigs[0]!.status)}`);
      assert.equal(sigs[0]!.signingDomain, domain);
    }
  });

  test('a signature under an unpublished selector does not verify; an unsigned mail has no signature', async () => {
    const unpublished = await verify('unpublished.send.test');
    assert.equal(unpublished.dkim.results.length, 1);
    assert.equal(unpublished.dkim.results[0]!.selector, 's2');
    assert.notEqual(unpublished.dkim.results[0]!.status.result, 'pass');
    const unsigned = await verify('nodkim.send.test');
    assert.ok(unsigned.dkim.results.every((r) => r.status.result === 'none'));
    assert.ok(!mailOf('nodkim.send.test').message.toString().includes('DKIM-Signature'));
  });

  test("SPF judged by mailauth for the sender's IP follows the world: pass, fail, none", async () => {
    const spf = async (domain: string) => {
      const r = (await verify(domain)).spf;
      assert.ok(r, `no SPF result for ${domain}`);
      return r.status.result;
    };
    assert.equal(await spf('tls-dkim.send.test'), 'pass');
    assert.equal(await spf('mxsender.send.test'), 'pass');
    assert.equal(await spf('spffail.send.test'), 'fail');
    assert.equal(await spf('spfnone.send.test'), 'none');
  });

  test('a receiver that refuses is a failed result, not an exception', async () => {
    const refusing = new SMTPServer({
      authOptional: true,
      disableReverseLookup: true,
      logger: false,
      onRcptTo(_address, _session, callback) {
        const err = new Error('No such user') as Error & { responseCode: number };
        err.responseCode = 550;
        callback(err);
      },
    });
    await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', () => resolve()));
    try {
      const p = (refusing.server.address() as AddressInfo).port;
      const small: LabWorld = { ...world, domains: world.domains.filter((d) => d.name === 'nodkim.send.test') };
      const [r] = await sendTestMails(small, { to: { host: '127.0.0.1', port: p }, rcpt: 'nobody@receiver.test', timeoutMs: 5000 });
      assert.equal(r!.ok, false);
      assert.match(r!.error ?? '', /550/);
    } finally {
      await new Promise<void>((resolve) => refusing.close(() => resolve()));
    }
  });
});
