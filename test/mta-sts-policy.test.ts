// MTA-STS over HTTPS (RFC 8461, issue 15): the policy fetched through the outbound gate, parsed (§3.2) and
// matched against the MX names (§4.1) — against nginx serving every case of the real-server scenario
// (test/helpers/real-worlds.ts), names resolved by NSD behind a validating unbound; then against the lab's
// HTTPS policy hosts (lab/worlds/test-v2.json), which must agree.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createResolver, type Resolver } from '../lib/dns/resolver.ts';
import { createOutboundGate } from '../lib/net/outbound.ts';
import { httpsFetch, httpsPort, HTTPS_FETCH_REASONS } from '../lib/net/https-fetch.ts';
import { collectMtaSts } from '../lib/checks/mta-sts/mta-sts.ts';
import { evaluateMtaStsPolicy, MTA_STS_POLICY_REASONS, mxMatchesPolicy, parseMtaStsPolicy, retrieveMtaStsPolicy, type MtaStsValue, type MtaStsPolicyReason } from '../lib/checks/mta-sts/policy.ts';
import { loadConfig } from '../lib/config.ts';
import { opensslDigest, skipUnless } from './helpers/real-servers.ts';
import { GOOD_POLICY, HTTPS_PORT, STS_ZONE, startStsWorld, type StsWorld } from './helpers/real-worlds.ts';
import { startLab, type Lab } from '../lab/index.ts';

const skip = skipUnless(['nginx', 'nsd', 'unbound', 'openssl']);
if (skip) console.log(`# skipping the nginx MTA-STS tests: ${skip}`);

describe('parseMtaStsPolicy (RFC 8461 §3.2)', () => {
  const table: Array<[string, string, ReturnType<typeof parseMtaStsPolicy>['ok'], string]> = [
    ['CRLF policy', GOOD_POLICY, true, 'enforce'],
    ['LF only, testing', 'version: STSv1\nmode: testing\nmx: mx.example.com\nmax_age: 86400\n', true, 'testing'],
    ['mode none needs no mx', 'version: STSv1\nmode: none\nmax_age: 0\n', true, 'none'],
    ['unknown fields are ignored', 'version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 1\nfoo: bar\n', true, 'enforce'],
    ['wrong version', 'version: STSv2\nmode: enforce\nmx: mx.example.com\nmax_age: 1\n', false, 'invalid_version'],
    ['no version', 'mode: enforce\nmx: mx.example.com\nmax_age: 1\n', false, 'invalid_version'],
    ['unknown mode', 'version: STSv1\nmode: strict\nmx: mx.example.com\nmax_age: 1\n', false, 'invalid_mode'],
    ['no mode (mailauth would default to none)', 'version: STSv1\nmx: mx.example.com\nmax_age: 1\n', false, 'invalid_mode'],
    ['max_age above one year', 'version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 31557601\n', false, 'invalid_max_age'],
    ['max_age 1e5 (Number() takes it, the ABNF does not)', 'version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 1e5\n', false, 'invalid_max_age'],
    ['no max_age', 'version: STSv1\nmode: enforce\nmx: mx.example.com\n', false, 'invalid_max_age'],
    ['enforce without mx', 'version: STSv1\nmode: enforce\nmax_age: 86400\n', false, 'missing_mx'],
    ['wildcard not leftmost', 'version: STSv1\nmode: enforce\nmx: mx.*.example.com\nmax_age: 86400\n', false, 'invalid_mx_pattern'],
    ['mx with a space', 'version: STSv1\nmode: enforce\nmx: mx example.com\nmax_age: 86400\n', false, 'invalid_mx_pattern'],
    ['HTML error page', '<html><body>Not here</body></html>', false, 'invalid_version'],
  ];
  for (const [name, body, ok, expect] of table) {
    test(`${name} → ${expect}`, () => {
      const r = parseMtaStsPolicy(body);
      assert.equal(r.ok, ok, JSON.stringify(r));
      if (r.ok) assert.equal(r.policy.mode, expect);
      else assert.equal(r.error, expect);
    });
  }
  test('mx patterns are lower-cased, deduplicated and IDNs become A-labels', () => {
    const r = parseMtaStsPolicy('version: STSv1\nmode: enforce\nmx: MX.Example.com\nmx: mx.example.com\nmx: *.bücher.example\nmax_age: 600\n');
    assert.ok(r.ok);
    assert.deepEqual(r.policy.mx, ['mx.example.com', '*.xn--bcher-kva.example']);
    assert.equal(r.policy.maxAge, 600);
  });
});

describe('mxMatchesPolicy (RFC 8461 §4.1)', () => {
  const patterns = ['mx1.example.com', '*.mail.example.com'];
  const table: Array<[string, string | null]> = [
    ['mx1.example.com', 'mx1.example.com'],
    ['MX1.EXAMPLE.COM.', 'mx1.example.com'],
    ['a.mail.example.com', '*.mail.example.com'],
    ['mail.example.com', null], // the wildcard needs a label
    ['a.b.mail.example.com', null], // and matches exactly one
    ['mx2.example.com', null],
    ['xmail.example.com', null],
  ];
  for (const [mx, expect] of table) test(`${mx} → ${expect}`, () => assert.equal(mxMatchesPolicy(mx, patterns), expect));
});

test('the fetch reasons and the policy reasons are closed sets, every fetch reason mapped', () => {
  assert.equal(new Set(HTTPS_FETCH_REASONS).size, HTTPS_FETCH_REASONS.length);
  for (const r of Object.values(MTA_STS_POLICY_REASONS)) assert.equal(typeof r.transient, 'boolean');
});

test('HTTPS port: the lab port in lab mode, 443 otherwise', () => {
  assert.equal(httpsPort(loadConfig({ MAILCENSUS_LAB: '1', MAILCENSUS_HTTPS_PORT: '8443', MAILCENSUS_RESOLVER: '127.0.0.1:5300' })), 8443);
  assert.equal(httpsPort(loadConfig({ MAILCENSUS_HTTPS_PORT: '8443' })), 443);
  assert.equal(loadConfig({}).httpsPort, 443);
});

interface Expect {
  value: MtaStsValue;
  reason: MtaStsPolicyReason;
}

describe('MTA-STS against nginx (real HTTPS server)', { skip }, () => {
  let w: StsWorld;
  let resolver: Resolver;
  let silent: net.Server;
  const held = new Set<net.Socket>();
  const gate = createOutboundGate({ lab: true });
  const deps = () => ({ resolver, gate, port: HTTPS_PORT, extraCaPems: [w.pki.rootPem], deadlineMs: 2_000, connectTimeoutMs: 1_000 });
  const accessLog = () => w.nginx.accessLog();

  before(async () => {
    w = await startStsWorld(1);
    resolver = createResolver({ server: w.resolver, timeoutMs: 1500, retries: 1, qps: 0 });
    // A host that accepts TCP and never says anything (not even the TLS ServerHello).
    silent = net.createServer((s) => { held.add(s); s.on('error', () => {}); s.resume(); });
    await new Promise<void>((r) => silent.listen(HTTPS_PORT, w.ips.silent, () => r()));
  });
  after(async () => {
    for (const s of held) s.destroy();
    await new Promise<void>((r) => (silent ? silent.close(() => r()) : r()));
    await w?.stop();
  });

  async function judge(label: string, mx = [`mx1.${label}.${STS_ZONE}`]) {
    const domain = `${label}.${STS_ZONE}`;
    const txt = await collectMtaSts(domain, resolver);
    const policy = await retrieveMtaStsPolicy(domain, deps());
    return { txt, policy, e: evaluateMtaStsPolicy(txt, policy, mx) };
  }

  const cases: Array<[string, Expect, string[]?]> = [
    ['good', { value: 'enforce', reason: 'policy_enforce' }, ['mx1.good.sts.test', 'a.mx.sts.test']],
    ['testing', { value: 'testing', reason: 'policy_testing' }, ['mx.testing.sts.test']],
    ['none', { value: 'none', reason: 'policy_none' }],
    ['selfsigned', { value: 'policy_cert_invalid', reason: 'policy_cert_untrusted' }],
    ['expired', { value: 'policy_cert_invalid', reason: 'policy_cert_expired' }],
    ['wrongname', { value: 'policy_cert_invalid', reason: 'policy_cert_wrong_name' }],
    ['notfound', { value: 'policy_missing', reason: 'policy_not_found' }],
    ['redirect', { value: 'policy_missing', reason: 'policy_redirect' }],
    ['oversize', { value: 'invalid', reason: 'policy_too_large' }],
    ['wrongtype', { value: 'policy_missing', reason: 'policy_wrong_content_type' }],
    ['badmaxage', { value: 'invalid', reason: 'invalid_max_age' }],
    ['refused', { value: 'unknown', reason: 'https_unreachable' }],
    ['silent', { value: 'unknown', reason: 'https_timeout' }],
    ['nohost', { value: 'policy_missing', reason: 'policy_host_not_found' }],
    ['notxt', { value: 'absent', reason: 'no_mta_sts_record' }],
  ];
  for (const [label, expect, mx] of cases) {
    test(`${label}.sts.test → ${expect.value} (${expect.reason})`, async () => {
      const { e, policy } = await judge(label, mx);
      assert.deepEqual({ value: e.value, reason: e.reason }, expect, `${e.detail}\n${JSON.stringify(policy.fetches, null, 1).slice(0, 2000)}`);
    });
  }

  test('an MX outside the policy patterns: enforce with mx_not_covered', async () => {
    const { e } = await judge('good', ['mx1.good.sts.test', 'a.b.mx.sts.test', 'backup.example.net']);
    assert.equal(e.value, 'enforce');
    assert.equal(e.reason, 'mx_not_covered');
    assert.equal(e.status, 'ng');
    assert.deepEqual(e.mxNotCovered, ['a.b.mx.sts.test', 'backup.example.net']);
  });

  test('the good host: trusted chain of leaf + intermediate, digests as openssl computes them, the id of the TXT', async () => {
    const { e, policy } = await judge('good');
    const f = policy.fetches[0];
    assert.equal(f.ok, true);
    assert.equal(f.ip, w.ips.nginx);
    assert.equal(policy.a.outcome, 'answer');
    assert.equal(f.http?.status, 200);
    assert.equal(f.http?.contentType, 'text/plain');
    assert.equal(f.body, GOOD_POLICY);
    const cert = f.tls?.cert;
    assert.ok(cert);
    assert.equal(cert.trusted, true);
    assert.equal(cert.nameMatch, true);
    assert.equal(cert.chain.length, 2, 'the root comes from our trust store, not from nginx: not listed');
    assert.equal(cert.chain[0].certSha256, opensslDigest(path.join(w.pki.dir, 'sts-good.pem'), 'cert', 'sha256'));
    assert.equal(cert.chain[0].spkiSha256, opensslDigest(path.join(w.pki.dir, 'sts-good.pem'), 'spki', 'sha256'));
    assert.equal(cert.chain[1].certSha256, opensslDigest(w.pki.intermediatePath, 'cert', 'sha256'));
    assert.match(cert.chain[1].subject, /Test Intermediate CA/);
    assert.equal(e.id, '20260101');
    assert.deepEqual(e.policy?.mx, ['mx1.good.sts.test', '*.mx.sts.test']);
  });

  test('certificate facts of the bad hosts are recorded, and no request is sent to them', async () => {
    const before = accessLog().length;
    const self = (await judge('selfsigned')).policy.fetches[0];
    assert.equal(self.reason, 'untrusted_certificate');
    assert.equal(self.tls?.cert?.trustError, 'DEPTH_ZERO_SELF_SIGNED_CERT');
    assert.equal(self.tls?.cert?.selfSigned, true);
    const exp = (await judge('expired')).policy.fetches[0];
    assert.equal(exp.reason, 'certificate_expired');
    assert.equal(exp.tls?.cert?.expired, true);
    const wrong = (await judge('wrongname')).policy.fetches[0];
    assert.equal(wrong.reason, 'certificate_name_mismatch');
    assert.equal(wrong.tls?.cert?.trusted, true);
    assert.equal(wrong.tls?.cert?.nameMatch, false);
    assert.match(wrong.tls?.cert?.subjectAltName ?? '', /mta-sts\.other\.sts\.test/);
    assert.equal(accessLog().length, before, 'a GET went to a host whose certificate is invalid');
  });

  test('a 301 is recorded with its Location and not followed', async () => {
    const before = accessLog().length;
    const f = (await judge('redirect')).policy.fetches[0];
    assert.equal(f.http?.status, 301);
    assert.equal(f.http?.location, 'https://mta-sts.good.sts.test/.well-known/mta-sts.txt');
    assert.equal(f.body, null);
    const lines = await w.nginx.accessLogAfter(before, 1);
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0], /"GET \/\.well-known\/mta-sts\.txt HTTP\/1\.1" 301/);
  });

  test('an oversize body is cut at 64 KiB', async () => {
    const f = (await judge('oversize')).policy.fetches[0];
    assert.equal(f.reason, 'too_large');
    assert.equal(f.body, null);
    assert.ok((f.http?.bodyBytes ?? Infinity) <= 65_536 + 70_000, String(f.http?.bodyBytes));
  });

  test('the silent host is given up at the deadline', async () => {
    const t0 = Date.now();
    const f = (await judge('silent')).policy.fetches[0];
    assert.equal(f.reason, 'timeout');
    assert.ok(Date.now() - t0 < 5_000, `${Date.now() - t0} ms`);
  });

  test('outside lab mode the gate refuses the loopback policy host before connecting', async () => {
    const before = accessLog().length;
    const real = createOutboundGate({ lab: false });
    const policy = await retrieveMtaStsPolicy(`good.${STS_ZONE}`, { ...deps(), gate: real });
    assert.equal(policy.fetches[0].reason, 'forbidden_address');
    assert.match(policy.fetches[0].detail ?? '', /127\.0\.0\.0\/8/);
    // Private and documentation space too; in lab mode, anything but loopback.
    for (const ip of ['10.1.2.3', '192.168.1.1', '169.254.169.254']) {
      const f = await httpsFetch({ host: 'mta-sts.example.com', ip, port: 443, path: '/.well-known/mta-sts.txt' }, { gate: real });
      assert.equal(f.reason, 'forbidden_address', ip);
    }
    const lab = await httpsFetch({ host: 'mta-sts.example.com', ip: '8.8.8.8', port: 443, path: '/.well-known/mta-sts.txt' }, { gate });
    assert.equal(lab.reason, 'forbidden_address');
    assert.equal(accessLog().length, before);
  });

  test('opt-out by domain or by IP, and every fetch runs in its IP politeness slot', async () => {
    const slots: string[] = [];
    const byDomain = createOutboundGate({ lab: true, optOut: [`good.${STS_ZONE}`] });
    assert.equal((await retrieveMtaStsPolicy(`good.${STS_ZONE}`, { ...deps(), gate: byDomain })).fetches[0].reason, 'opted_out');
    const byIp = createOutboundGate({ lab: true, optOut: [w.ips.nginx] });
    assert.equal((await retrieveMtaStsPolicy(`good.${STS_ZONE}`, { ...deps(), gate: byIp })).fetches[0].reason, 'opted_out');
    const polite = createOutboundGate({ lab: true, politeness: { run: (ip, fn) => { slots.push(ip); return fn(); } } });
    const ok = await retrieveMtaStsPolicy(`good.${STS_ZONE}`, { ...deps(), gate: polite });
    assert.equal(ok.fetches[0].ok, true);
    assert.deepEqual(slots, [w.ips.nginx]);
  });

  test('the observation is plain JSON and bounded', async () => {
    const { policy } = await judge('oversize');
    const json = JSON.stringify(policy);
    assert.deepEqual(JSON.parse(json), policy);
    assert.ok(json.length < 20_000, String(json.length));
  });
});

describe('MTA-STS against the lab policy hosts (lab/worlds/test-v2.json)', () => {
  let lab: Lab;
  let tmp: string;
  let resolver: Resolver;
  before(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'mta-sts-lab-'));
    lab = await startLab(fileURLToPath(new URL('../lab/worlds/test-v2.json', import.meta.url)), { dnsPort: 0, smtpPort: 0, httpsPort: 0, stateDir: tmp });
    resolver = createResolver({ server: { host: lab.dns.host, port: lab.dns.port }, timeoutMs: 1500, retries: 1, qps: 0 });
  });
  after(async () => {
    await lab?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  // What the lab's `https` behaviours must come to (LAB-WORLD.md mtaStsPolicy).
  const expected: Record<string, Expect> = {
    'sts-ok.test': { value: 'enforce', reason: 'policy_enforce' },
    'sts-refuse.test': { value: 'unknown', reason: 'https_unreachable' },
    'sts-timeout.test': { value: 'unknown', reason: 'https_timeout' },
    'sts-404.test': { value: 'policy_missing', reason: 'policy_not_found' },
    'sts-self-signed.test': { value: 'policy_cert_invalid', reason: 'policy_cert_untrusted' },
    'sts-expired.test': { value: 'policy_cert_invalid', reason: 'policy_cert_expired' },
    'sts-wrong-name.test': { value: 'policy_cert_invalid', reason: 'policy_cert_wrong_name' },
    'sts-custom.test': { value: 'policy_missing', reason: 'policy_wrong_content_type' },
  };
  for (const [domain, expect] of Object.entries(expected)) {
    test(`${domain} → ${expect.value} (${expect.reason})`, async () => {
      const cfg = loadConfig({ ...lab.env });
      const mx = await resolver.query(domain, 'MX');
      const mxHosts = mx.answers.map((a) => (a.data as { exchange: string }).exchange);
      const txt = await collectMtaSts(domain, resolver);
      const policy = await retrieveMtaStsPolicy(domain, { resolver, gate: createOutboundGate({ lab: cfg.lab }), port: httpsPort(cfg), extraCaPems: [lab.caPem], deadlineMs: 2_000, connectTimeoutMs: 1_000 });
      const e = evaluateMtaStsPolicy(txt, policy, mxHosts);
      assert.deepEqual({ value: e.value, reason: e.reason }, expect, `${e.detail}\n${JSON.stringify(policy.fetches).slice(0, 1500)}`);
      if (domain === 'sts-ok.test') assert.deepEqual(e.mxNotCovered, []);
    });
  }
});
