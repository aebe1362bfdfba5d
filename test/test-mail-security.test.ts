// The test-mail service as an attacker sees it (issue 12): the real receiver, the worker's job function, a DNS
// server on loopback that publishes whatever the attacker wants, and real SMTP listeners on loopback standing
// in for internal hosts and victims. Lab mode is off where the test is about the non-lab policy.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import pino from 'pino';
import { startMailSink } from './helpers/mail-sink.ts';
import type * as dnsPacket from 'dns-packet';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startHostileDns, respond, soa, type HostileDns } from './helpers/hostile-dns.ts';
import { sendMail } from './test-mail-helpers.ts';
import { loadConfig, type Config } from '../lib/config.ts';
import { createProbeDeps, diagnoseDomain } from '../lib/diagnose.ts';
import { createOutboundGate } from '../lib/net/outbound.ts';
import { startReceiver, type Receiver } from '../receiver/server.ts';
import { deliverResultMail } from '../receiver/result-mail.ts';
import { createRequest } from '../receiver/tokens.ts';
import { processTestMail } from '../workers/test-mail.ts';
import { smtpSession } from '../lib/checks/smtp-session.ts';
import type { ScanObservations } from '../lib/observations.ts';

const OUR = 'rx.mailcensus.test';
const logger = pino({ level: 'silent' });

/** An SMTP server on loopback that counts connections and keeps every delivered message. */
interface Listener {
  port: number;
  connections: number;
  messages: { from: string; to: string[]; data: string }[];
  close(): Promise<void>;
}
async function startListener(): Promise<Listener> {
  const l: Listener = { port: 0, connections: 0, messages: [], close: async () => {} };
  const sink = await startMailSink((m) => l.messages.push({ from: m.mailFrom, to: m.rcptTo, data: m.message.toString() }), {
    disabledCommands: ['AUTH', 'STARTTLS'],
    onConnect(_s, cb) {
      l.connections++;
      cb();
    },
  });
  l.port = sink.port;
  l.close = sink.close;
  return l;
}

// The attacker's zone: every domain's MX resolves to 127.0.0.1, an "internal" address.
type Rr = dnsPacket.Answer;
const TXT = (name: string, s: string): Rr => ({ name, type: 'TXT', ttl: 60, data: [s] } as Rr);
const ZONE: Record<string, Rr[]> = {};
function mxDomain(domain: string, spf: string | null, mxIp = '127.0.0.1') {
  ZONE[`${domain}/MX`] = [{ name: domain, type: 'MX', ttl: 60, data: { preference: 10, exchange: `mx.${domain}` } } as Rr];
  ZONE[`mx.${domain}/A`] = [{ name: `mx.${domain}`, type: 'A', ttl: 60, data: mxIp } as Rr];
  if (spf) ZONE[`${domain}/TXT`] = [TXT(domain, spf)];
}
mxDomain('victim.example', 'v=spf1 ip4:192.0.2.99 -all');
ZONE['_dmarc.victim.example/TXT'] = [TXT('_dmarc.victim.example', 'v=DMARC1; p=reject')];
mxDomain('authd.example', 'v=spf1 ip4:127.0.0.1 -all');
mxDomain('capped.example', 'v=spf1 ip4:127.0.0.1 -all');
mxDomain('flood.example', 'v=spf1 ip4:127.0.0.1 -all');
mxDomain('optout.example', 'v=spf1 ip4:127.0.0.1 -all');
mxDomain('requested.example', 'v=spf1 -all');
mxDomain('replyto.example', null);
// 10 MX names × 300 addresses each (public-looking documentation-free addresses are not needed: the probes
// are refused by the gate anyway; what counts is how many are tried).
ZONE['wide.example/MX'] = Array.from({ length: 10 }, (_, i) => ({ name: 'wide.example', type: 'MX', ttl: 60, data: { preference: i, exchange: `mx${i}.wide.example` } } as Rr));
for (let i = 0; i < 10; i++) ZONE[`mx${i}.wide.example/A`] = Array.from({ length: 300 }, (_, j) => ({ name: `mx${i}.wide.example`, type: 'A', ttl: 60, data: `127.${i + 1}.${j >> 8}.${(j & 255) + 1}` } as Rr));
ZONE['wide.example/TXT'] = [TXT('wide.example', 'v=spf1 ip4:127.0.0.1 -all')];
// RFC 8616: an internationalised sender domain, published under its A-label only.
const IDN_U = '日本語メール.test';
const IDN_A = 'xn--4dkua4c8894azlbtz6h.test';
mxDomain(IDN_A, 'v=spf1 ip4:127.0.0.1 -all');

let dns: HostileDns;
let tdb: TestDatabase;
let listener: Listener;
let rx: Receiver;
const ids: string[] = [];

function env(over: Record<string, string> = {}): Readonly<Config> {
  return loadConfig({
    MAILCENSUS_RESOLVER: `127.0.0.1:${dns.port}`,
    MAILCENSUS_SMTP_PORT: String(listener.port),
    MAILCENSUS_RECEIVER_DOMAIN: OUR,
    MAILCENSUS_DNS_TIMEOUT_MS: '500',
    MAILCENSUS_DNS_RETRIES: '0',
    MAILCENSUS_DNS_QPS: '0',
    MAILCENSUS_DNSBL_ZONES: '',
    MAILCENSUS_SMTP_CONNECT_TIMEOUT_MS: '2000',
    MAILCENSUS_SMTP_BANNER_TIMEOUT_MS: '3000',
    MAILCENSUS_SMTP_COMMAND_TIMEOUT_MS: '3000',
    MAILCENSUS_PER_IP_CONCURRENCY: '4',
    MAILCENSUS_PER_IP_INTERVAL_MS: '0',
    ...over,
  });
}

async function mail(from: string, opts: { to?: string; helo?: string } = {}): Promise<string> {
  const before = ids.length;
  const r = await sendMail(rx.port, {
    helo: opts.helo ?? 'sender.example',
    from,
    to: [opts.to ?? `check@${OUR}`],
    data: `From: <${from}>\r\nTo: <check@${OUR}>\r\nSubject: test\r\nMessage-ID: <${Math.random()}@x>\r\n\r\nhello\r\n`,
  });
  assert.equal(r.code, 250, r.text);
  assert.equal(ids.length, before + 1);
  return ids[ids.length - 1];
}

async function run(id: string, config: Readonly<Config>) {
  return processTestMail({ testMailId: id }, { db: tdb.db, config, logger, deps: createProbeDeps(config) });
}

before(async () => {
  dns = await startHostileDns((q) => {
    const question = q.questions[0];
    const name = question.name.toLowerCase();
    const answers = ZONE[`${name}/${question.type}`];
    if (answers) return respond(q, { answers });
    const exists = Object.keys(ZONE).some((k) => k.startsWith(`${name}/`));
    return respond(q, { rcode: exists ? 0 : 3, authorities: [soa('example')] });
  });
  [tdb, listener] = await Promise.all([createTestDatabase(), startListener()]);
  rx = await startReceiver({ db: tdb.db, domain: OUR, port: 0, sweepIntervalMs: 0, maxConnectionsPerIp: 50, maxMessagesPerWindow: 1000, enqueue: async (id) => void ids.push(id) });
});

after(async () => {
  await rx?.close();
  await listener?.close();
  await dns?.close();
  await tdb?.drop();
});

test('outside lab mode the result mail goes through the address policy: an MX on 127.0.0.1 gets no connection', async () => {
  const config = env({ MAILCENSUS_LAB: '0' });
  const id = await mail('postmaster@authd.example');
  const before = listener.connections;
  const r = await run(id, config);
  assert.ok(r.diagnosisId);
  assert.equal(r.provenance, 'authenticated');
  assert.equal(r.resultMail?.status, 'failed', JSON.stringify(r.resultMail));
  assert.equal(r.resultMail?.reason, 'delivery_failed');
  assert.match(r.resultMail?.detail ?? '', /forbidden_address/);
  assert.equal(listener.connections, before, 'neither the probe nor the result mail connected to the internal host');
  assert.equal(listener.messages.length, 0);
});

test('in lab mode the result mail may go to loopback only, and through the same gate', async () => {
  let made = 0;
  const gate = createOutboundGate({ lab: true, rawConnect: (o) => (made++, net.connect(o)) });
  const r = await deliverResultMail('a@b.example', [{ host: 'mx.b.example', ip: '192.0.2.10' }, { host: 'mx2.b.example', ip: '10.1.2.3' }], { subject: 's', text: 't' }, { from: 'x@y', ehloName: 'y', port: listener.port, gate });
  assert.equal(r.status, 'failed');
  assert.equal(made, 0);
  assert.equal(r.attempts.length, 2);
  assert.ok(r.attempts.every((a) => /not loopback \(lab mode\)/.test(a)), r.attempts.join('\n'));
});

test('a forged MAIL FROM (SPF fail, DMARC reject) gets a diagnosis marked unverified and no result mail', async () => {
  const config = env({ MAILCENSUS_LAB: '1' });
  const id = await mail('victim@victim.example');
  const r = await run(id, config);
  assert.equal(r.provenance, 'unverified');
  assert.equal(r.resultMail?.status, 'skipped');
  assert.equal(r.resultMail?.reason, 'unverified_sender');
  assert.equal(listener.messages.filter((m) => m.to.includes('victim@victim.example')).length, 0);
  const row = await tdb.db.selectFrom('diagnoses').select(['provenance' as never]).where('id', '=', r.diagnosisId!).executeTakeFirstOrThrow();
  assert.equal((row as { provenance: string }).provenance, 'unverified');
  const why = await tdb.db.selectFrom('result_mails' as never).select(['status', 'reason'] as never).where('test_mail_id' as never, '=', id as never).executeTakeFirstOrThrow();
  assert.deepEqual(why, { status: 'skipped', reason: 'unverified_sender' });
});

test('an authenticated sender gets its result mail in lab mode; the per-recipient cap then stops a second one', async () => {
  const config = env({ MAILCENSUS_LAB: '1', MAILCENSUS_RESULT_MAIL_PER_RECIPIENT_DAY: '1' });
  const first = await run(await mail('someone@capped.example'), config);
  assert.equal(first.resultMail?.status, 'sent', JSON.stringify(first.resultMail));
  assert.equal(listener.messages.filter((m) => m.to.includes('someone@capped.example')).length, 1);
  const second = await run(await mail('someone@capped.example'), config);
  assert.equal(second.resultMail?.status, 'skipped');
  assert.equal(second.resultMail?.reason, 'recipient_daily_cap');
  assert.equal(listener.messages.filter((m) => m.to.includes('someone@capped.example')).length, 1);
  // The domain cap and the hourly cap are separate settings.
  const domainCapped = await run(await mail('other@capped.example'), env({ MAILCENSUS_LAB: '1', MAILCENSUS_RESULT_MAIL_PER_DOMAIN_DAY: '1' }));
  assert.equal(domainCapped.resultMail?.reason, 'domain_daily_cap');
  const hourly = await run(await mail('third@capped.example'), env({ MAILCENSUS_LAB: '1', MAILCENSUS_RESULT_MAIL_PER_HOUR: '1' }));
  assert.equal(hourly.resultMail?.reason, 'hourly_cap');
});

test('one domain cannot flood its own history: diagnoses per domain per day are capped', async () => {
  const config = env({ MAILCENSUS_LAB: '1', MAILCENSUS_TEST_MAIL_DIAGNOSES_PER_DOMAIN_DAY: '2', MAILCENSUS_RESULT_MAIL: '0' });
  const results = [];
  for (let i = 0; i < 4; i++) results.push(await run(await mail(`u${i}@flood.example`), config));
  assert.deepEqual(results.map((r) => (r.diagnosisId ? 'diagnosed' : r.notDiagnosed)), ['diagnosed', 'diagnosed', 'domain_daily_cap', 'domain_daily_cap']);
  const n = await tdb.db.selectFrom('diagnoses').select((eb) => eb.fn.countAll<string>().as('n')).where('domain', '=', 'flood.example').executeTakeFirstOrThrow();
  assert.equal(Number(n.n), 2);
});

test('the opt-out list holds for test mails (domain) and for check and survey probes (IP)', async () => {
  const config = env({ MAILCENSUS_LAB: '1', MAILCENSUS_OPT_OUT: 'optout.example,127.0.0.1' });
  const before = listener.connections;
  const queries = dns.queries.length;
  const r = await run(await mail('a@optout.example'), config);
  assert.equal(r.diagnosisId, null);
  assert.equal(r.notDiagnosed, 'opted_out');
  assert.equal(r.resultMail?.status, 'skipped');
  assert.equal(dns.queries.length, queries, 'nothing of an opted-out domain is looked up');
  // `check`'s path: the MX resolves to an opted-out IP, so the probe never connects.
  const d = await diagnoseDomain('authd.example', createProbeDeps(config));
  const smtp = Object.values((d.observations as ScanObservations).ips)[0].smtp;
  assert.deepEqual(smtpSession(smtp), { session: 'forbidden_address', reason: 'opted_out' });
  assert.equal(listener.connections, before);
});

test('a per-request token makes the diagnosis `requested`; its reply-to address gets the result even when SPF fails', async () => {
  const config = env({ MAILCENSUS_LAB: '1' });
  const req = await createRequest(tdb.db, 'requested.example', OUR);
  const r = await run(await mail('x@requested.example', { to: req.address }), config);
  assert.equal(r.provenance, 'requested');
  // SPF -all for 127.0.0.1 and no request reply-to: the forged-looking sender gets nothing.
  assert.equal(r.resultMail?.reason, 'unverified_sender');
  const req2 = await createRequest(tdb.db, 'replyto.example', OUR, { replyTo: 'owner@authd.example' });
  const r2 = await run(await mail('x@replyto.example', { to: req2.address }), config);
  assert.equal(r2.provenance, 'requested');
  assert.equal(r2.resultMail?.status, 'sent', JSON.stringify(r2.resultMail));
  assert.equal(r2.resultMail?.to, 'owner@authd.example');
});

test('fan-out is bounded: 10 MX × 300 addresses are probed at most 16 times, recorded as truncated', async () => {
  const config = env({ MAILCENSUS_LAB: '1', MAILCENSUS_RESULT_MAIL: '0', MAILCENSUS_SMTP_CONNECT_TIMEOUT_MS: '300' });
  let probes = 0;
  let active = 0;
  let peak = 0;
  const deps = createProbeDeps(config);
  const probe = deps.probe;
  deps.probe = async (ip, o) => {
    probes++;
    active++;
    peak = Math.max(peak, active);
    try {
      return await probe(ip, o);
    } finally {
      active--;
    }
  };
  const id = await mail('a@wide.example');
  const r = await processTestMail({ testMailId: id }, { db: tdb.db, config, logger, deps });
  assert.ok(r.diagnosisId);
  assert.ok(probes <= 17, `${probes} probes (16 MX addresses + the sender)`);
  assert.ok(peak <= config.maxConcurrentProbesPerJob, `peak concurrency ${peak}`);
  const row = await tdb.db.selectFrom('diagnoses').select(['observations']).where('id', '=', r.diagnosisId!).executeTakeFirstOrThrow();
  const { evaluateMx } = await import('../lib/checks/mx/mx.ts');
  const mx = evaluateMx((row.observations as { dns: { mx: never } }).dns.mx);
  const hosts = (row.observations as { dns: { mx: { hosts: { exchange: string; a: { outcome: string; data: unknown[] } }[] } } }).dns.mx.hosts;
  assert.equal(hosts.length, 10, JSON.stringify(hosts.map((h) => [h.exchange, h.a.outcome, h.a.data?.length])));
  assert.equal(mx.reason, 'mx_truncated', JSON.stringify(hosts.map((h) => [h.exchange, h.a.outcome, h.a.data?.length])));
  assert.match(mx.detail ?? '', /16 of 3000 addresses/);
});

test('RFC 8616: a U-label MAIL FROM is checked with A-label lookups (SPF pass, not none)', async () => {
  const config = env({ MAILCENSUS_LAB: '1', MAILCENSUS_RESULT_MAIL: '0' });
  const id = await mail(`postmaster@${IDN_U}`, { helo: `mail.${IDN_U}` });
  const r = await run(id, config);
  assert.ok(r.diagnosisId);
  const row = await tdb.db.selectFrom('diagnoses').select(['spf', 'domain']).where('id', '=', r.diagnosisId!).executeTakeFirstOrThrow();
  assert.equal(row.domain, IDN_A);
  assert.equal(row.spf, 'ok');
  assert.equal(r.provenance, 'authenticated');
  assert.ok(dns.queries.some((q) => q.name.toLowerCase() === IDN_A && q.type === 'TXT'));
  assert.ok(!dns.queries.some((q) => /[^\x00-\x7f]/.test(q.name)), 'no U-label ever reached the wire');
  // U-label input anywhere a domain is accepted: `check`'s path and `request`.
  const d = await diagnoseDomain(IDN_U, createProbeDeps(config));
  assert.equal(d.domain, IDN_A);
  assert.equal((await createRequest(tdb.db, IDN_U, OUR)).domain, IDN_A);
  assert.ok(!dns.queries.some((q) => /[^\x00-\x7f]/.test(q.name)));
});

test('the SPF walk stops at the RFC 7208 §4.6.4 limits: a record with 2,000 a: terms costs a dozen lookups, not 4,000', async () => {
  const { collectSpf, evaluateSpfScan } = await import('../lib/checks/spf/spf.ts');
  const { createResolver } = await import('../lib/dns/resolver.ts');
  const terms = Array.from({ length: 2000 }, (_, i) => `a:h${i}.spfbomb.example`).join(' ');
  const record = `v=spf1 ${terms} -all`;
  const strings = record.match(/.{1,255}/g)!;
  ZONE['spfbomb.example/TXT'] = [{ name: 'spfbomb.example', type: 'TXT', ttl: 60, data: strings } as Rr];
  const resolver = createResolver({ server: { host: '127.0.0.1', port: dns.port }, timeoutMs: 2000, retries: 0, qps: 0 });
  const before = dns.queries.length;
  const obs = await collectSpf('spfbomb.example', resolver);
  const asked = dns.queries.length - before;
  assert.ok(asked <= 30, `${asked} queries`);
  const f = evaluateSpfScan(obs);
  assert.equal(f.status, 'ng');
  assert.match(f.reason, /too_many_lookups/);
});

test('at most N DKIM signatures of a mail are verified: 500 signatures cause at most N key lookups', async () => {
  const config = env({ MAILCENSUS_LAB: '1', MAILCENSUS_RESULT_MAIL: '0', MAILCENSUS_MAX_DKIM_SIGNATURES: '3' });
  const sigs = Array.from({ length: 500 }, (_, i) => `DKIM-Signature: v=1; a=rsa-sha256; d=authd.example; s=sel${i}; c=relaxed/relaxed; h=from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA`).join('\r\n');
  const before = dns.queries.filter((q) => q.name.includes('_domainkey')).length;
  const r = await sendMail(rx.port, { helo: 'sender.example', from: 'dk@authd.example', to: [`check@${OUR}`], data: `${sigs}\r\nFrom: <dk@authd.example>\r\nSubject: dkim\r\n\r\nhello\r\n` });
  assert.equal(r.code, 250, r.text);
  const res = await run(ids[ids.length - 1], config);
  assert.ok(res.diagnosisId);
  const lookups = dns.queries.filter((q) => q.name.includes('_domainkey')).length - before;
  assert.ok(lookups <= 3, `${lookups} DKIM key lookups`);
  const row = await tdb.db.selectFrom('diagnoses').select(['observations']).where('id', '=', res.diagnosisId!).executeTakeFirstOrThrow();
  assert.deepEqual((row.observations as { limits: { dkimSignatures: number; dkimVerified: number } }).limits.dkimSignatures, 500);
  assert.deepEqual((row.observations as { limits: { dkimVerified: number } }).limits.dkimVerified, 3);
});

test('check refuses an opted-out domain without a single lookup', async () => {
  const { spawnSync } = await import('node:child_process');
  const before = dns.queries.length;
  const r = spawnSync(process.execPath, ['bin/mailcensus.mjs', 'check', 'optout.example'], {
    env: { ...process.env, MAILCENSUS_LAB: '1', MAILCENSUS_RESOLVER: `127.0.0.1:${dns.port}`, MAILCENSUS_OPT_OUT: 'optout.example' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /opt-out list/);
  assert.equal(dns.queries.length, before);
});
