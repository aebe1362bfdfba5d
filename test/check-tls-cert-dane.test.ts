// Certificate details (tls_cert, tls_key) and DANE for SMTP (dane), issue 15: measured end to end through
// `check --json` against the lab world's per-host keys, expiry, chains, TLSA records and DNSSEC states
// (lab/worlds/test-v2.json), re-judged from the stored observations (older ones without the chain or the
// TLSA lookups included), and counted by a report with their denominators.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { checkLabForFile } from './helpers/lab.ts';
import { runCli } from './helpers/cli.ts';
import { judgeScan, rejudge } from '../lib/checks/judge.ts';
import { CHECKS, checkById } from '../lib/checks/registry.ts';
import type { IpObservation } from '../lib/observations.ts';
import type { DnsObservations } from '../lib/probes/dns.ts';
import type { DaneGathered, DaneNotApplicable } from '../lib/checks/dane/index.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const lab = checkLabForFile(`${ROOT}lab/worlds/test-v2.json`, 'mc-certs-');

interface Out {
  observedAt: string;
  findings: Record<string, { status: string; reason: string; value: unknown; detail?: string }>;
  observations: { dns: DnsObservations; ips: Record<string, IpObservation> };
  dnsStats: Record<string, unknown>;
}
const cache = new Map<string, Promise<Out>>();
function checkJson(domain: string): Promise<Out> {
  let p = cache.get(domain);
  if (!p) {
    const env = lab.checkEnv();
    // A domain with an NG exits non-zero: its JSON counts; only a command that printed nothing fails.
    p = runCli(['check', domain, '--json'], env, { timeoutMs: 90_000, maxBuffer: 64 << 20 }).then((r) => {
      if (r.code !== 0 && !r.stdout) throw new Error(`check ${domain} exited ${r.code}\n${r.stderr}`);
      return JSON.parse(r.stdout) as Out;
    });
    cache.set(domain, p);
  }
  return p;
}
function check(domain: string, lang: string): Promise<string> {
  const env = lab.checkEnv();
  return runCli(['check', domain, '--lang', lang], env, { timeoutMs: 90_000 }).then((r) => r.stdout);
}

test('tls_cert: every problem of certs.test counted once, each on the host that shows it', async () => {
  const f = (await checkJson('certs.test')).findings.tls_cert;
  assert.equal(f.status, 'ng');
  assert.equal(f.reason, 'cert_problems');
  assert.deepEqual(f.value, ['weak_key', 'expired', 'expires_soon', 'incomplete_chain', 'any']);
  const hosts = Object.fromEntries((f.detail ?? '').split('; ').map((h) => [h.split(' ')[0], h]));
  assert.match(hosts['mx.rsa1024.test'], /rsa 1024, \d+ days left: weak_key$/);
  assert.match(hosts['mx.rsa4096.test'], /rsa 4096, \d+ days left$/);
  assert.match(hosts['mx.ecdsa.test'], /ec 256 prime256v1, \d+ days left$/);
  assert.match(hosts['mx.leaf-only.test'], /: incomplete_chain$/, 'the leaf alone, its intermediate not sent: not also `untrusted`');
  assert.match(hosts['mx.complete.test'], /rsa 2048, \d+ days left$/, 'leaf, intermediate and the root Node appends: complete');
  assert.match(hosts['mx.expires-soon.test'], /(9|10) days left: expires_soon$/);
  assert.match(hosts['mx.expired-default.test'], /expired 3\d days ago: expired$/);
  assert.match(hosts['mx.expired-days.test'], /expired [56] days ago: expired$/);
  assert.deepEqual([(await checkJson('certs.test')).findings.tls_key.value, (await checkJson('certs.test')).findings.tls_key.reason], ['rsa_weak', 'weak_rsa_key']);
});

test('tls_cert: self-signed and ok; tls_key by type', async () => {
  const self = await checkJson('dane-ecdsa.test');
  assert.deepEqual(self.findings.tls_cert.value, ['self_signed', 'any']);
  assert.deepEqual([self.findings.tls_key.value, self.findings.tls_key.status], ['ec', 'ok']);
  const good = await checkJson('dane.test');
  assert.deepEqual([good.findings.tls_cert.value, good.findings.tls_cert.status, good.findings.tls_cert.reason], [['ok'], 'ok', 'cert_ok']);
  assert.deepEqual(good.findings.tls_key.value, 'rsa_2048_plus');
});

test('tls_cert: expires_soon is judged against the observation time, never the wall clock', async () => {
  const o = await checkJson('certs.test');
  const at = new Date(o.observedAt);
  const later = judgeScan('certs.test', o.observations.dns, o.observations.ips, new Date(at.getTime() + 400 * 86_400_000));
  // 400 days on, every certificate of the lab (365 days by default) has expired.
  assert.deepEqual(later.findings.tls_cert.value, ['weak_key', 'expired', 'incomplete_chain', 'any']);
  const earlier = judgeScan('certs.test', o.observations.dns, o.observations.ips, new Date(at.getTime() - 60 * 86_400_000));
  assert.ok(!(earlier.findings.tls_cert.value as string[]).includes('expired'), 'two months earlier nothing had expired yet');
  assert.ok((earlier.findings.tls_cert.value as string[]).includes('expires_soon') === false);
});

test('dane: valid, mismatch, bogus, DANE-TA without its intermediate (no TLSA: test/real-dane-tls-cert.test.ts and the hosts of certs.test)', async () => {
  const cases: [string, string, string][] = [
    ['dane.test', 'valid', 'tlsa_match'],
    ['dane-inline.test', 'valid', 'tlsa_match'],
    ['dane-ecdsa.test', 'valid', 'tlsa_match'],
    ['dane-mismatch.test', 'mismatch', 'tlsa_mismatch'],
    ['dane-bogus.test', 'bogus', 'tlsa_bogus'],
    ['dane-leaf-only.test', 'mismatch', 'tlsa_mismatch'],
  ];
  for (const [domain, value, reason] of cases) {
    const f = (await checkJson(domain)).findings.dane;
    assert.deepEqual([f.value, f.reason], [value, reason], `${domain}: ${f.detail}`);
  }
  // dane-bogus.test: the host's address fails validation (not proven insecure), so its TLSA is asked, and
  // with CD after the SERVFAIL: that is what shows the zone bogus.
  const bogus = (await checkJson('dane-bogus.test')).observations.dns;
  assert.deepEqual(bogus.valid ? (bogus.dane as DaneGathered).hosts.map((h) => [h.name, h.cdLookup?.outcome]) : null, [['_25._tcp.mx.dane-bogus.test', 'answer']]);
});

test('dane: RFC 7672 §2.2: no TLSA lookup for a host behind an insecure MX RRset or with insecure addresses, though the host publishes TLSA', async () => {
  const cases: [string, string, DaneNotApplicable, string][] = [
    // An unsigned domain whose host publishes TLSA (unsigned too): before, looked up and judged `insecure`.
    ['dane-insecure.test', 'mx.dane-insecure.test', 'mx_insecure', 'MX RRset not DNSSEC-secure'],
    // mx.rsa2048.test carries an extra TLSA record of the lab's, unsigned: wild.test is unsigned, secure-wild.test
    // signed, but its MX host's address is not.
    ['wild.test', 'mx.rsa2048.test', 'mx_insecure', 'MX RRset not DNSSEC-secure'],
    ['secure-wild.test', 'mx.rsa2048.test', 'address_insecure', 'address records not DNSSEC-secure'],
  ];
  for (const [domain, host, why, text] of cases) {
    const o = await checkJson(domain);
    const f = o.findings.dane;
    assert.deepEqual([f.value, f.status, f.reason], ['none', 'na', why], `${domain}: ${f.detail}`);
    assert.match(f.detail ?? '', new RegExp(`${host.replace(/\./g, '\\.')}: ${text}, DANE does not apply \\(RFC 7672 §2\\.2\\), TLSA not looked up`));
    const dane = o.observations.dns.valid ? (o.observations.dns.dane as DaneGathered) : null;
    assert.deepEqual(dane, { hosts: [], notApplicable: [{ mxHost: host, reason: why }] }, domain);
  }
  // A host DANE applies to is still asked.
  const secure = (await checkJson('dane.test')).observations.dns;
  assert.deepEqual(secure.valid ? (secure.dane as DaneGathered).hosts.map((h) => h.name) : null, ['_25._tcp.mx.dane.test']);
});

test('dane: a domain with many MX hosts behind an unsigned MX RRset asks no TLSA at all', async () => {
  const o = await checkJson('certs.test');
  const dane = o.observations.dns.valid ? (o.observations.dns.dane as DaneGathered) : null;
  assert.equal(dane?.hosts.length, 0);
  assert.equal(dane?.notApplicable?.length, 9);
  assert.ok(dane?.notApplicable?.every((n) => n.reason === 'mx_insecure'));
  assert.deepEqual([o.findings.dane.value, o.findings.dane.status, o.findings.dane.reason], ['none', 'na', 'mx_insecure']);
  assert.match(o.findings.dane.detail ?? '', /mx\.rsa1024\.test \(127\.100\.3\.1\): none, mx\.rsa1024\.test: MX RRset not DNSSEC-secure/);
  // Partial: take dane.test's valid row next to dane-mismatch.test's host.
  const a = await checkJson('dane.test');
  const b = await checkJson('dane-mismatch.test');
  const merged = merge(a.observations, b.observations);
  const d = judgeScan('dane.test', merged.dns, merged.ips, new Date(a.observedAt));
  assert.deepEqual([d.findings.dane.value, d.findings.dane.reason, d.findings.dane.status], ['partial', 'dane_partial', 'ng']);
});

test('dane: observations stored before the lookups were restricted (insecure hosts asked too) judge as they did', async () => {
  // certs.test as measured then: every host's TLSA asked, mx.rsa2048.test's unsigned record `insecure`.
  const o = await checkJson('certs.test');
  const old = structuredClone(o.observations);
  const dns = old.dns as Extract<DnsObservations, { valid: true }>;
  const lookup = (name: string, outcome: string, data: string[] = []) => ({ name, type: 'TLSA', outcome, rcode: outcome === 'nxdomain' ? 'NXDOMAIN' : 'NOERROR', ad: false, cd: false, ede: [], cnameChain: [], data });
  dns.dane = {
    hosts: (dns.dane as DaneGathered).notApplicable!.map(({ mxHost }) => {
      const name = `_25._tcp.${mxHost}`;
      const rsa2048 = mxHost === 'mx.rsa2048.test';
      const data = ['3 1 1 0000000000000000000000000000000000000000000000000000000000000000'];
      return { mxHost, name, lookup: rsa2048 ? lookup(name, 'answer', data) : lookup(name, 'nxdomain'), cdLookup: null, records: rsa2048 ? [{ usage: 3, selector: 1, matchingType: 1, data: '0'.repeat(64) }] : [], malformed: 0 };
    }),
  };
  const j = judgeScan('certs.test', old.dns, old.ips, new Date(o.observedAt));
  assert.deepEqual([j.findings.dane.value, j.findings.dane.reason, j.findings.dane.status], ['insecure', 'tlsa_insecure', 'ng']);
});

function merge(a: Out['observations'], b: Out['observations']): Out['observations'] {
  const dns = structuredClone(a.dns) as Extract<DnsObservations, { valid: true }>;
  const other = b.dns as Extract<DnsObservations, { valid: true }>;
  dns.mx.hosts.push(...other.mx.hosts);
  const mxa = dns.mx.mx as { data: unknown[] };
  mxa.data.push(...(other.mx.mx as { data: unknown[] }).data);
  (dns.dane as { hosts: unknown[] }).hosts.push(...(other.dane as { hosts: unknown[] }).hosts);
  return { dns, ips: { ...a.ips, ...b.ips } };
}

test('re-judged from stored observations: the same values; before the chain and the TLSA lookups were recorded: unknown, not negative', async () => {
  for (const domain of ['certs.test', 'dane.test', 'dane-leaf-only.test', 'dane-bogus.test']) {
    const o = await checkJson(domain);
    const stored = { source: 'scan' as const, domain, observations: { version: 1, kind: 'scan', ...o.observations }, observed_at: new Date(o.observedAt) };
    const again = rejudge(JSON.parse(JSON.stringify(stored)));
    for (const id of ['tls_cert', 'tls_key', 'dane']) assert.deepEqual(again.findings[id], o.findings[id], `${domain} ${id}`);
    // As stored before issue 15: no chain in the sessions, no dns.dane.
    const old = structuredClone(stored);
    for (const ip of Object.values(old.observations.ips)) delete (ip.smtp.tls as { chain?: unknown }).chain;
    delete (old.observations.dns as Record<string, unknown>).dane;
    const j = rejudge(old);
    assert.deepEqual([j.findings.dane.value, j.findings.dane.reason], ['unknown', 'not_recorded']);
    if (domain === 'dane-bogus.test') {
      // Its MX host's address is bogus too: no session, so nothing to record either way.
      assert.deepEqual([j.findings.tls_key.value, j.findings.tls_cert.value], ['no_tls', ['no_tls']]);
      continue;
    }
    assert.equal(j.findings.tls_key.value, 'unknown');
    assert.ok((j.findings.tls_cert.value as string[]).includes('chain_not_recorded'), domain);
    assert.ok(!(j.findings.tls_cert.value as string[]).includes('weak_key'));
    assert.ok(!(j.findings.tls_cert.value as string[]).includes('ok'));
  }
  // Only the TLSA lookups missing: DANE says not_recorded; only the chain missing: a secure TLSA cannot be matched.
  const o = await checkJson('dane.test');
  const noChain = structuredClone(o.observations);
  for (const ip of Object.values(noChain.ips)) delete (ip.smtp.tls as { chain?: unknown }).chain;
  const j = judgeScan('dane.test', noChain.dns, noChain.ips, new Date(o.observedAt));
  assert.deepEqual([j.findings.dane.value, j.findings.dane.reason], ['unknown', 'chain_not_recorded']);
  assert.deepEqual([j.findings.tls_cert.value, j.findings.tls_cert.status], [['chain_not_recorded'], 'unknown']);
});

// That every reason and value of these findings is labelled is the registry's test (criteria-doc.test.ts).
test('the new findings are registered; a failed TLSA lookup is transient, and the DANE gatherer runs after the MX gatherer', () => {
  for (const id of ['tls_cert', 'tls_key', 'dane']) assert.equal(checkById(id)?.kind, 'finding', id);
  assert.equal(checkById('dane')?.reasons.dns_failure.transient, true);
  assert.ok(CHECKS.findIndex((c) => c.id === 'mx') < CHECKS.findIndex((c) => c.id === 'dane'), 'the DANE gatherer reads the MX gatherer');
});

test('check shows the findings with their labels in both languages', async () => {
  const en = await check('certs.test', 'en');
  assert.match(en, /^MX certificates\s+NG\s+cert_problems/m);
  assert.match(en, /^MX certificate key\s+NG\s+weak_rsa_key/m);
  const ja = await check('dane.test', 'ja');
  assert.match(ja, /^DANE（SMTP）\s+OK\s+tlsa_match/m);
});

test('a report counts them with their denominators, from the stored diagnoses', async () => {
  const { createTestDatabase } = await import('./helpers/db.ts');
  const { scanRun, scanReport2026, scanDomainRows2026 } = await import('./report-fixtures.ts');
  const t = await createTestDatabase();
  try {
    const domains = ['certs.test', 'dane.test', 'dane-ecdsa.test', 'dane-bogus.test', 'wild.test'];
    const run = await scanRun(t.db, 'certs', domains.length);
    for (const domain of domains) {
      const o = await checkJson(domain);
      await run.store(judgeScan(domain, o.observations.dns, o.observations.ips, new Date('2026-06-01T00:00:00Z')));
    }
    const r = await scanReport2026(t.db);
    const cert = r.findings.tls_cert;
    // On 2026-06-01 (before the lab issued them) no certificate has expired or expires soon.
    // dane-bogus.test: its MX host's address does not validate, so no session (no_tls).
    assert.deepEqual([cert.weak_key.n, cert.incomplete_chain.n, cert.self_signed.n, cert.any.n, cert.ok.n, cert.no_tls.n, cert.expired.n, cert.any.total], [1, 1, 1, 2, 2, 1, 0, 5]);
    const key = r.findings.tls_key;
    assert.deepEqual([key.rsa_weak.n, key.rsa_2048_plus.n, key.ec.n, key.no_tls.n, key.rsa_weak.total], [1, 2, 1, 1, 5]);
    const dane = r.findings.dane;
    // certs.test and wild.test: unsigned MX RRsets, no TLSA asked (RFC 7672 §2.2): none, not insecure.
    assert.deepEqual([dane.valid.n, dane.bogus.n, dane.insecure.n, dane.none.n, dane.valid.total], [2, 1, 0, 2, 5]);
    const rows = await scanDomainRows2026(t.db, 'certs_snapshot');
    const by = Object.fromEntries(rows.map((x) => [x.domain, [x.tls_cert, x.tls_key, x.dane]]));
    assert.deepEqual(by['dane.test'], ['ok', 'rsa_2048_plus', 'valid']);
    assert.deepEqual(by['certs.test'], ['weak_key incomplete_chain any', 'rsa_weak', 'none']);
  } finally {
    await t.drop();
  }
});
