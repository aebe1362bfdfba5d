// The lab DNS server, proven with independent clients: Node's own resolver (c-ares) and dig. Each test names
// the resolver behaviour it proves; the world is lab/worlds/test-dns.json.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import dgram from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';
import { loadWorld } from '../lab/world.ts';
import { startDnsServer, type DnsServer } from '../lab/dns-server.ts';
import { labDkimKey } from '../lab/dkim-keys.ts';
import { InputError } from '../lib/errors.ts';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const world = loadWorld(path.join(root, 'lab/worlds/test-dns.json'));
let server: DnsServer;

before(async () => {
  server = await startDnsServer(world, { port: 0 });
});
after(async () => {
  await server.stop();
});

function resolver(timeout = 2000): Resolver {
  const r = new Resolver({ timeout, tries: 1 });
  r.setServers([`127.0.0.1:${server.port}`]);
  return r;
}

interface Dig {
  status: string;
  flags: string[];
  answers: string[];
  authority: string[];
  ede: string | null;
  opt: boolean;
  raw: string;
}

/** Runs dig against the lab server and parses the parts the tests look at. */
async function dig(...args: string[]): Promise<Dig> {
  const { stdout } = await run('dig', [`@127.0.0.1`, '-p', String(server.port), '+time=2', '+tries=1', ...args], { timeout: 15000 });
  const section = (name: string) => {
    const m = new RegExp(`;; ${name} SECTION:\\n([\\s\\S]*?)(?:\\n\\n|$)`).exec(stdout);
    return m ? m[1].split('\n').filter((l) => l && !l.startsWith(';')).map((l) => l.replace(/\s+/g, ' ').trim()) : [];
  };
  return {
    status: /status: (\w+)/.exec(stdout)?.[1] ?? 'NONE',
    flags: (/;; flags: ([^;]*);/.exec(stdout)?.[1] ?? '').trim().split(/\s+/).filter(Boolean),
    answers: section('ANSWER'),
    authority: section('AUTHORITY'),
    ede: /; EDE: (.*)/.exec(stdout)?.[1] ?? null,
    opt: stdout.includes('OPT PSEUDOSECTION'),
    raw: stdout,
  };
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

/** dns-packet decodes rcode/opcode but its types omit them. */
function decodeReply(b: Buffer): { id: number; rcode: string; opcode: string } {
  return dnsPacket.decode(b) as unknown as { id: number; rcode: string; opcode: string };
}

/** Sends raw bytes over UDP and returns the raw reply (or null after timeoutMs). */
function rawUdp(msg: Buffer, timeoutMs = 2000): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      resolve(null);
    }, timeoutMs);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(m);
    });
    s.send(msg, server.port, '127.0.0.1');
  });
}

test('A records: shared hosts, inline MX hosts with default names, hosts named outside any lab domain', async () => {
  const r = resolver();
  assert.deepEqual(await r.resolve4('mx.bigmail.test'), ['127.100.0.1']);
  assert.deepEqual(await r.resolve4('mx2.alpha.test'), ['127.100.1.1']);
  assert.deepEqual(await r.resolve4('listed.hosts.lab.test'), ['127.100.0.2']);
  assert.deepEqual(await r.resolve4('MX.BigMail.Test'), ['127.100.0.1'], 'names are case-insensitive');
});

test('MX records in preference order, and the domain apex has no A record', async () => {
  const r = resolver();
  assert.deepEqual(await r.resolveMx('alpha.test'), [
    { exchange: 'mx.bigmail.test', priority: 10 },
    { exchange: 'mx2.alpha.test', priority: 20 },
  ]);
  assert.equal(await code(r.resolve4('alpha.test')), 'ENODATA');
});

test('a null MX is one MX record "0 ." (RFC 7505)', async () => {
  assert.deepEqual(await resolver().resolveMx('nullmx.test'), [{ exchange: '', priority: 0 }]);
  const d = await dig('nullmx.test', 'MX');
  assert.deepEqual(d.answers, ['nullmx.test. 300 IN MX 0 .']);
});

test('TXT records: SPF and extra TXT at the apex, _dmarc, _mta-sts and _smtp._tls', async () => {
  const r = resolver();
  const apex = (await r.resolveTxt('alpha.test')).map((c) => c.join('')).sort();
  assert.deepEqual(apex, ['google-site-verification=lab', 'v=spf1 ip4:127.100.0.1 -all']);
  assert.deepEqual(await r.resolveTxt('_dmarc.alpha.test'), [['v=DMARC1; p=reject']]);
  assert.deepEqual(await r.resolveTxt('_mta-sts.alpha.test'), [['v=STSv1; id=20210630']]);
  assert.deepEqual(await r.resolveTxt('_smtp._tls.alpha.test'), [['v=TLSRPTv1; rua=mailto:tls@alpha.test']]);
});

test('a DKIM key record is split into strings of at most 255 bytes and carries the lab key', async () => {
  const r = resolver();
  for (const sel of ['s1', 's2']) {
    const [chunks] = await r.resolveTxt(`${sel}._domainkey.alpha.test`);
    assert.ok(chunks.length >= 2 && chunks.every((c) => c.length <= 255), `chunks ${chunks.map((c) => c.length)}`);
    const record = chunks.join('');
    assert.match(record, /^v=DKIM1; k=rsa; p=/);
    const p = /p=([A-Za-z0-9+/=]+)/.exec(record)![1];
    assert.equal(p, labDkimKey().publicKeyBase64);
    const key = createPublicKey({ key: Buffer.from(p, 'base64'), format: 'der', type: 'spki' });
    assert.equal(key.asymmetricKeyDetails?.modulusLength, 2048);
  }
  assert.equal(await code(r.resolveTxt('s3._domainkey.alpha.test')), 'ENOTFOUND');
});

test('_domainkey is an empty non-terminal (NOERROR, no data) when keys exist below it, NXDOMAIN when dkim is null', async () => {
  const ent = await dig('_domainkey.alpha.test', 'TXT');
  assert.equal(ent.status, 'NOERROR');
  assert.deepEqual(ent.answers, []);
  assert.match(ent.authority[0], /^alpha\.test\. 300 IN SOA /);
  const none = await dig('_domainkey.nomx.test', 'TXT');
  assert.equal(none.status, 'NXDOMAIN');
  assert.equal(await code(resolver().resolveTxt('_domainkey.alpha.test')), 'ENODATA');
  assert.equal(await code(resolver().resolveTxt('_domainkey.nomx.test')), 'ENOTFOUND');
});

test('NXDOMAIN and NODATA are distinct and both carry the zone SOA in the authority section (RFC 2308)', async () => {
  const nodata = await dig('nomx.test', 'MX');
  assert.equal(nodata.status, 'NOERROR');
  assert.deepEqual(nodata.answers, []);
  assert.match(nodata.authority[0], /^nomx\.test\. 300 IN SOA ns1\.lab\.test\. hostmaster\.lab\.test\. \d+ 3600 600 604800 300$/);
  const nx = await dig('nothing.alpha.test', 'A');
  assert.equal(nx.status, 'NXDOMAIN');
  assert.match(nx.authority[0], /^alpha\.test\. 300 IN SOA /);
  // A host name exists: other types there are NODATA, not NXDOMAIN.
  assert.equal(await code(resolver().resolve6('mx.bigmail.test')), 'ENODATA');
  assert.equal(await code(resolver().resolveMx('nomx.test')), 'ENODATA');
  assert.equal(await code(resolver().resolve4('nothing.alpha.test')), 'ENOTFOUND');
});

test('names outside the lab are NXDOMAIN', async () => {
  const d = await dig('example.com', 'A');
  assert.equal(d.status, 'NXDOMAIN');
  assert.equal(await code(resolver().resolve4('www.example.org')), 'ENOTFOUND');
});

test('SOA answers at each domain apex and at the DNSBL zone apex', async () => {
  const soa = await resolver().resolveSoa('alpha.test');
  assert.equal(soa.nsname, 'ns1.lab.test');
  assert.equal(soa.minttl, 300);
  assert.equal((await resolver().resolveSoa('bl.lab.test')).hostmaster, 'hostmaster.lab.test');
  assert.equal((await resolver().resolveSoa('dnsbl2.lab.test')).nsname, 'ns1.lab.test');
});

test('PTR: the host name by default; none when ptr is null; a mismatching PTR name resolves to another address', async () => {
  const r = resolver();
  assert.deepEqual(await r.reverse('127.100.0.1'), ['mx.bigmail.test']);
  assert.equal(await code(r.reverse('127.100.0.4')), 'ENOTFOUND');
  const [mismatch] = await r.reverse('127.100.0.5');
  assert.notEqual(mismatch, 'mismatch.hosts.lab.test');
  const back = await r.resolve4(mismatch);
  assert.ok(!back.includes('127.100.0.5'), `FCrDNS must fail: ${mismatch} -> ${back}`);
  // The host's forward name still reaches the host.
  assert.deepEqual(await r.resolve4('mismatch.hosts.lab.test'), ['127.100.0.5']);
  // An explicit ptr name resolves back to the host (FCrDNS passes).
  assert.deepEqual(await r.reverse('127.100.0.6'), ['reverse.bigmail.test']);
  assert.deepEqual(await r.resolve4('reverse.bigmail.test'), ['127.100.0.6']);
  const d = await dig('-x', '127.100.1.1');
  assert.deepEqual(d.answers, ['1.1.100.127.in-addr.arpa. 300 IN PTR mx2.alpha.test.']);
});

test('DNSBL (RFC 5782): a listed host gets 127.0.0.2 and a TXT reason in every lab DNSBL zone', async () => {
  const r = resolver();
  for (const zone of ['bl.lab.test', 'dnsbl2.lab.test']) {
    assert.deepEqual(await r.resolve4(`2.0.100.127.${zone}`), ['127.0.0.2']);
    const [txt] = await r.resolveTxt(`2.0.100.127.${zone}`);
    assert.match(txt.join(''), /127\.100\.0\.2 is listed/);
  }
  // An unlisted host is NXDOMAIN.
  assert.equal(await code(r.resolve4('1.0.100.127.bl.lab.test')), 'ENOTFOUND');
});

test('DNSBL test entries (RFC 5782 §5): 127.0.0.2 is always listed, 127.0.0.1 never', async () => {
  const listed = await dig('2.0.0.127.bl.lab.test', 'A');
  assert.deepEqual(listed.answers, ['2.0.0.127.bl.lab.test. 300 IN A 127.0.0.2']);
  const never = await dig('1.0.0.127.bl.lab.test', 'A');
  assert.equal(never.status, 'NXDOMAIN');
  assert.match(never.authority[0], /^bl\.lab\.test\. 300 IN SOA /);
});

test('a host with dnsbl "error" gets the refused-query answer 127.255.255.254', async () => {
  assert.deepEqual(await resolver().resolve4('3.0.100.127.bl.lab.test'), ['127.255.255.254']);
});

test('DNSSEC secure: AD is set when the query sets DO (or AD), clear otherwise (RFC 6840 §5.7-5.8)', async () => {
  const withDo = await dig('alpha.test', 'MX', '+dnssec', '+noadflag');
  assert.ok(withDo.flags.includes('ad'), `flags ${withDo.flags}`);
  const withAd = await dig('alpha.test', 'MX', '+adflag');
  assert.ok(withAd.flags.includes('ad'));
  const plain = await dig('alpha.test', 'MX', '+noadflag');
  assert.ok(!plain.flags.includes('ad'));
  // Negative answers in a secure zone are authenticated too.
  assert.ok((await dig('nothing.alpha.test', 'A', '+dnssec')).flags.includes('ad'));
});

test('DNSSEC insecure: AD stays clear even with DO', async () => {
  const d = await dig('nullmx.test', 'MX', '+dnssec');
  assert.equal(d.status, 'NOERROR');
  assert.ok(!d.flags.includes('ad'));
});

test('DNSSEC bogus: SERVFAIL with Extended DNS Error 6; with CD the answer comes, AD clear', async () => {
  const d = await dig('bogus.test', 'MX', '+dnssec');
  assert.equal(d.status, 'SERVFAIL');
  assert.match(d.ede ?? '', /^6 \(DNSSEC Bogus\)/);
  assert.equal(await code(resolver().resolveMx('bogus.test')), 'ESERVFAIL');
  const cd = await dig('bogus.test', 'MX', '+dnssec', '+cd');
  assert.equal(cd.status, 'NOERROR');
  assert.deepEqual(cd.answers, ['bogus.test. 300 IN MX 10 mx.bigmail.test.']);
  assert.ok(cd.flags.includes('cd') && !cd.flags.includes('ad'));
});

test('dnsFault servfail and refused apply to every name under the domain', async () => {
  for (const name of ['servfail.test', '_dmarc.servfail.test', 'anything.below.servfail.test']) {
    assert.equal((await dig(name, 'TXT')).status, 'SERVFAIL', name);
  }
  assert.equal((await dig('refused.test', 'MX')).status, 'REFUSED');
  assert.equal((await dig('x.refused.test', 'A')).status, 'REFUSED');
  assert.equal(await code(resolver().resolveMx('servfail.test')), 'ESERVFAIL');
  assert.equal(await code(resolver().resolveMx('refused.test')), 'EREFUSED');
});

test('dnsFault timeout: no reply at all, over UDP and TCP', async () => {
  const { stdout } = await run('dig', ['@127.0.0.1', '-p', String(server.port), '+time=1', '+tries=1', 'timeout.test', 'MX'], { timeout: 15000 }).catch((e) => e);
  assert.match(stdout, /timed out|no servers could be reached/);
  assert.doesNotMatch(stdout, /status:/);
  assert.equal(await code(resolver(300).resolveMx('timeout.test')), 'ETIMEOUT');
  const tcp = await run('dig', ['@127.0.0.1', '-p', String(server.port), '+time=1', '+tries=1', '+tcp', 'timeout.test', 'MX'], { timeout: 15000 }).catch((e) => e);
  assert.doesNotMatch(tcp.stdout, /status:/);
});

test('EDNS0: an OPT record is echoed only when the query had one (RFC 6891 §7)', async () => {
  assert.ok((await dig('alpha.test', 'MX')).opt);
  assert.ok(!(await dig('alpha.test', 'MX', '+noedns')).opt);
});

test('UDP answers over 512 bytes without EDNS are truncated (TC); TCP and an EDNS buffer give the full answer', async () => {
  const udp = await dig('bigtxt.test', 'TXT', '+noedns', '+ignore');
  assert.ok(udp.flags.includes('tc'), `flags ${udp.flags}`);
  assert.deepEqual(udp.answers, []);
  const tcp = await dig('bigtxt.test', 'TXT', '+noedns', '+tcp');
  assert.ok(!tcp.flags.includes('tc'));
  assert.equal(tcp.answers.length, 8);
  // dig retries over TCP by itself on TC.
  assert.equal((await dig('bigtxt.test', 'TXT', '+noedns')).answers.length, 8);
  // The advertised EDNS size is honoured both ways.
  assert.ok((await dig('bigtxt.test', 'TXT', '+bufsize=512', '+ignore')).flags.includes('tc'));
  const big = await dig('bigtxt.test', 'TXT', '+bufsize=4096', '+ignore');
  assert.ok(!big.flags.includes('tc'));
  assert.equal(big.answers.length, 8);
  // Node's resolver (c-ares) also falls back to TCP and gets all eight.
  assert.equal((await resolver().resolveTxt('bigtxt.test')).length, 8);
});

test('an IDN domain is served under its A-label', async () => {
  assert.deepEqual(await resolver().resolveMx('xn--bcher-kva.test'), [{ exchange: 'mx.bigmail.test', priority: 10 }]);
});

test('garbage gets FORMERR with the query id; a non-QUERY opcode gets NOTIMP', async () => {
  const garbage = Buffer.from([0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0x3f, 0x41, 0x41]);
  const reply = await rawUdp(garbage);
  assert.ok(reply, 'a reply');
  const h = decodeReply(reply);
  assert.equal(h.id, 0x1234);
  assert.equal(h.rcode, 'FORMERR');
  const notify = dnsPacket.encode({ type: 'query', id: 77, flags: 4 << 11, questions: [{ type: 'SOA', name: 'alpha.test' }] });
  const r2 = decodeReply((await rawUdp(notify))!);
  assert.equal(r2.id, 77);
  assert.equal(r2.rcode, 'NOTIMP');
  assert.equal(r2.opcode, 'NOTIFY');
});

test('TCP serves several queries pipelined on one connection (RFC 7766)', async () => {
  const q = (id: number, name: string) => {
    const m = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'MX', name }] });
    const f = Buffer.alloc(2 + m.length);
    f.writeUInt16BE(m.length);
    m.copy(f, 2);
    return f;
  };
  const replies = await new Promise<Array<{ id: number; rcode: string }>>((resolve, reject) => {
    const sock = net.connect(server.port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const got: Array<{ id: number; rcode: string }> = [];
    sock.on('error', reject);
    sock.on('data', (c) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const p = decodeReply(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
        got.push({ id: p.id, rcode: p.rcode });
        if (got.length === 2) {
          sock.destroy();
          resolve(got);
        }
      }
    });
    sock.write(Buffer.concat([q(1, 'alpha.test'), q(2, 'nothing.test')]));
  });
  assert.deepEqual(replies.sort((a, b) => a.id - b.id), [{ id: 1, rcode: 'NOERROR' }, { id: 2, rcode: 'NXDOMAIN' }]);
});

test('the query counter counts every query', async () => {
  const before = server.queries;
  await resolver().resolveMx('alpha.test');
  assert.ok(server.queries >= before + 1);
});

test('the world latency delays every answer', async () => {
  const slow = await startDnsServer(loadWorld({ version: 1, name: 'slow', latency: { dnsMs: 300 }, domains: [{ name: 'a.test', spf: 'v=spf1 -all' }] }), { port: 0 });
  try {
    const r = new Resolver({ timeout: 5000, tries: 1 });
    r.setServers([`127.0.0.1:${slow.port}`]);
    const t0 = Date.now();
    assert.deepEqual(await r.resolveTxt('a.test'), [['v=spf1 -all']]);
    assert.ok(Date.now() - t0 >= 290, `answered after ${Date.now() - t0} ms`);
  } finally {
    await slow.stop();
  }
});

test('a port already in use is a one-line InputError naming it; stop() frees the port', async () => {
  await assert.rejects(startDnsServer(world, { port: server.port }), (e: Error) => e instanceof InputError && e.message.includes(`port ${server.port}`));
  const s = await startDnsServer(world, { port: 0 });
  const p = s.port;
  await s.stop();
  const again = await startDnsServer(world, { port: p });
  await again.stop();
});

test('a 50,000-domain world is indexed once and answers any of its names', async () => {
  const w = loadWorld({
    version: 1,
    name: 'big',
    hosts: { p: {} },
    populations: [
      { count: 25000, name: 'shared-{i}.test', template: { mx: ['p'], spf: 'v=spf1 mx -all', dkim: { selectors: ['s1'] } } },
      { count: 25000, name: 'own-{i}.test', template: { mx: [{}], dmarc: 'v=DMARC1; p=none' } },
    ],
  });
  const big = await startDnsServer(w, { port: 0 });
  try {
    const r = new Resolver({ timeout: 3000, tries: 1 });
    r.setServers([`127.0.0.1:${big.port}`]);
    assert.deepEqual(await r.resolveMx('shared-24999.test'), [{ exchange: 'p.hosts.lab.test', priority: 10 }]);
    assert.deepEqual(await r.resolveTxt('_dmarc.own-25000.test'), [['v=DMARC1; p=none']]);
    const [mx] = await r.resolveMx('own-12345.test');
    assert.deepEqual(await r.resolve4(mx.exchange), [w.hosts.get('own-12345.test#mx1')!.ip]);
  } finally {
    await big.stop();
  }
});
