// The mta_sts finding end to end (RFC 8461, issue 15; ../shared/CRITERIA.md `mta_sts`): the production
// gatherer (TXT, then the policy through the outbound gate only after a valid record) run by the DNS probe,
// the check judging what it stored, against the lab's policy hosts (lab/worlds/test-v2.json, plus a world of
// this file for the modes and MX coverage) and against nginx (test/helpers/real-servers.ts) — the same
// judgement from both — then re-judged from stored JSON, shown by `check`, counted by a report.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLab, type Lab } from '../lab/index.ts';
import { loadConfig } from '../lib/config.ts';
import { createProbeDeps, collectDomain } from '../lib/diagnose.ts';
import { judgeScan, rejudge } from '../lib/checks/judge.ts';
import { collectDnsObservations, type DnsObservations } from '../lib/probes/dns.ts';
import { createResolver } from '../lib/dns/resolver.ts';
import { createOutboundGate } from '../lib/net/outbound.ts';
import { checkById } from '../lib/checks/registry.ts';
import type { FindingCheck } from '../lib/checks/contract.ts';
import type { MtaStsGathered } from '../lib/checks/mta-sts/policy.ts';
import { FAST_LAB_CHECKER_ENV } from './helpers/lab-env.ts';
import { runCli } from './helpers/cli.ts';
import { createPki, skipUnless, startDns, startNginx, tempDir, type NginxVhost, type RunningDns, type RunningNginx } from './helpers/real-servers.ts';
import { GOOD_POLICY, STS_CASES, STS_ZONE, type StsCase } from './helpers/real-worlds.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const AT = new Date('2026-06-01T00:00:00Z');
const SHORT = { deadlineMs: 8_000, connectTimeoutMs: 4_000 };

type Judged = { value: unknown; reason: string; status: string; detail?: string };
const mtaSts = (dns: DnsObservations): Judged => {
  const f = judgeScan(dns.valid ? dns.domain : dns.input, dns, {}, AT).findings.mta_sts;
  return { value: f.value, reason: f.reason, status: f.status, ...(f.detail ? { detail: f.detail } : {}) };
};
const pair = (j: Judged) => `${String(j.value)}/${j.reason}`;

/** Judge, then judge a JSON copy of the stored observations again (rejudge): the same result. */
function judgedTwice(domain: string, dns: DnsObservations): Judged {
  const first = mtaSts(dns);
  const stored = JSON.parse(JSON.stringify({ version: 1, kind: 'scan', dns, ips: {} }));
  const again = rejudge({ source: 'scan', domain, observations: stored, observed_at: AT }).findings.mta_sts;
  assert.deepEqual({ value: again.value, reason: again.reason, status: again.status, ...(again.detail ? { detail: again.detail } : {}) }, first, `re-judging ${domain}`);
  return first;
}

/**
 * Collects the domain's DNS with the production deps (short HTTPS deadlines) against the lab in `env`, judges
 * it twice, and keeps the result and the observations for the nginx comparison and the report test.
 */
async function judgedInLab(domain: string, env: Record<string, string>): Promise<Judged> {
  const deps = { ...createProbeDeps(loadConfig(env)), https: SHORT };
  const dns = await collectDomain(domain, deps);
  const j = judgedTwice(domain, dns);
  labSeen.set(domain, pair(j));
  labObservations.set(domain, dns);
  return j;
}

// The behaviours both the lab and nginx serve, and what they must come to: lab domain, nginx label, value/reason.
const COMMON: Array<[string, string, string]> = [
  ['sts-ok.test', 'good', 'enforce/policy_enforce'],
  ['sts-refuse.test', 'refused', 'unknown/https_unreachable'],
  ['sts-timeout.test', 'silent', 'unknown/https_timeout'],
  ['sts-404.test', 'notfound', 'policy_missing/policy_not_found'],
  ['sts-self-signed.test', 'selfsigned', 'policy_cert_invalid/policy_cert_untrusted'],
  ['sts-expired.test', 'expired', 'policy_cert_invalid/policy_cert_expired'],
  ['sts-wrong-name.test', 'wrongname', 'policy_cert_invalid/policy_cert_wrong_name'],
  ['sts-custom.test', 'wrongtype', 'policy_missing/policy_wrong_content_type'],
];
const labSeen = new Map<string, string>();
/** The DNS observations the lab tests collected, by domain: stored in a database by the report test. */
const labObservations = new Map<string, DnsObservations>();
const nginxSeen = new Map<string, string>();

// That every reason and value is labelled (ja/en, reasons with a transient flag) is the registry's test (criteria-doc.test.ts).
test('the finding declares every value of CRITERIA.md; connection failures, timeouts and 5xx are transient', () => {
  const c = checkById('mta_sts') as FindingCheck;
  assert.equal(c.kind, 'finding');
  assert.equal(c.column, 'mta_sts', 'the legacy column holds the value');
  for (const v of ['absent', 'invalid', 'policy_missing', 'policy_cert_invalid', 'none', 'testing', 'enforce', 'testing_mx_not_covered', 'enforce_mx_not_covered', 'unknown', 'present']) {
    assert.ok(c.values.includes(v), v);
  }
  for (const code of ['https_unreachable', 'https_timeout', 'policy_server_error', 'policy_host_dns_failure', 'timeout', 'servfail']) assert.equal(c.reasons[code as keyof typeof c.reasons].transient, true, code);
  for (const code of ['policy_cert_untrusted', 'policy_not_found', 'policy_enforce', 'mx_not_covered', 'no_mta_sts_record']) assert.equal(c.reasons[code as keyof typeof c.reasons].transient, false, code);
});

describe('against the lab policy hosts (lab/worlds/test-v2.json)', () => {
  let lab: Lab;
  let tmp: string;
  const env = () => ({ ...lab.env, ...FAST_LAB_CHECKER_ENV });
  before(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'mc-mtasts-'));
    lab = await startLab(`${ROOT}lab/worlds/test-v2.json`, { dnsPort: 0, smtpPort: 0, httpsPort: 0, stateDir: tmp });
  });
  after(async () => {
    await lab?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  for (const [domain, , expect] of COMMON) {
    test(`${domain} → ${expect} (the scan's DNS probe with the production deps; re-judged from JSON)`, async () => {
      const j = await judgedInLab(domain, env());
      assert.equal(pair(j), expect, j.detail);
      if (domain === 'sts-ok.test') {
        assert.equal(j.status, 'ok');
        assert.match(j.detail ?? '', /^id=20240101; mode enforce/);
      }
    });
  }

  test('through the CLI: `check --json` gives the same value, and the table shows it in both languages', async () => {
    const run = async (args: string[]) => {
      const r = await runCli(['check', ...args], { ...process.env, ...env() });
      if (r.code !== 0) throw new Error(`check ${args.join(' ')} exited ${r.code}\n${r.stderr}`);
      return r.stdout;
    };
    for (const domain of ['sts-ok.test', 'sts-custom.test']) {
      const out = JSON.parse(await run([domain, '--json']));
      const f = out.findings.mta_sts;
      assert.equal(`${f.value}/${f.reason}`, COMMON.find((c) => c[0] === domain)![2]);
      // What `check --json` stored is judged again to the same finding.
      assert.deepEqual(rejudge({ source: 'scan', domain, observations: out.observations, observed_at: AT }).findings.mta_sts, f);
      const stored = out.observations.dns.mtaSts as MtaStsGathered;
      assert.ok(stored.policy && stored.policy !== 'not_measured');
      assert.ok(JSON.stringify(stored).length < 20_000);
    }
    assert.match(await run(['sts-ok.test', '--lang', 'en']), /^MTA-STS\s+OK\s+policy_enforce\s+id=20240101; mode enforce/m);
    assert.match(await run(['sts-404.test', '--lang', 'ja']), /^MTA-STS\s+NG\s+policy_not_found/m);
  });

  test('a domain without the TXT record makes no HTTPS connection; without an outbound gate nothing is fetched (not_measured)', async () => {
    const deps = { ...createProbeDeps(loadConfig(env())), https: SHORT };
    const before = lab.https.log().length;
    const dns = await collectDomain('dkim.test', deps);
    assert.equal(pair(mtaSts(dns)), 'absent/no_mta_sts_record');
    assert.equal((dns.valid && (dns.mtaSts as MtaStsGathered).policy), null);
    // No gate: the TXT is read, the policy host is not even resolved, nothing connects.
    const noGate = await collectDnsObservations('sts-ok.test', { resolver: deps.resolver, config: deps.config });
    assert.equal(pair(judgedTwice('sts-ok.test', noGate)), 'unknown/not_measured');
    assert.equal(lab.https.log().length, before, JSON.stringify(lab.https.log().slice(before)));
  });
});

// A world of this file: the modes, MX coverage, an invalid policy, and a policy host whose domain has no TXT.
const MODES_WORLD = {
  version: 2,
  name: 'mta-sts-modes',
  hosts: {
    a: { ip: '127.100.63.1', name: 'a.mx.modes.test' },
    b: { ip: '127.100.63.2', name: 'backup.elsewhere.test' },
  },
  domains: [
    { name: 'testing.modes.test', mx: ['a'], mtaSts: 'v=STSv1; id=t1', mtaStsPolicy: { body: 'version: STSv1\nmode: testing\nmx: *.mx.modes.test\nmax_age: 86400\n' } },
    { name: 'none.modes.test', mx: ['a', 'b'], mtaSts: 'v=STSv1; id=n1', mtaStsPolicy: { body: 'version: STSv1\nmode: none\nmax_age: 86400\n' } },
    { name: 'uncovered.modes.test', mx: ['a', 'b'], mtaSts: 'v=STSv1; id=u1', mtaStsPolicy: { body: 'version: STSv1\nmode: enforce\nmx: *.mx.modes.test\nmax_age: 86400\n' } },
    { name: 'uncovered-testing.modes.test', mx: ['a', 'b'], mtaSts: 'v=STSv1; id=u2', mtaStsPolicy: { body: 'version: STSv1\nmode: testing\nmx: a.mx.modes.test\nmax_age: 86400\n' } },
    { name: 'badpolicy.modes.test', mx: ['a'], mtaSts: 'v=STSv1; id=b1', mtaStsPolicy: { body: 'version: STSv1\nmode: strict\nmx: a.mx.modes.test\nmax_age: 86400\n' } },
    { name: 'badtxt.modes.test', mx: ['a'], mtaSts: 'v=STSv1; id=not-alnum!', mtaStsPolicy: {} },
    { name: 'notxt.modes.test', mx: ['a'], mtaStsPolicy: {} },
    { name: 'nohost.modes.test', mx: ['a'], mtaSts: 'v=STSv1; id=h1' },
  ],
};

describe('modes and MX coverage (a lab world of this file)', () => {
  let lab: Lab;
  let tmp: string;
  before(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'mc-mtasts-modes-'));
    const file = path.join(tmp, 'world.json');
    writeFileSync(file, JSON.stringify(MODES_WORLD));
    lab = await startLab(file, { dnsPort: 0, smtpPort: 0, httpsPort: 0, stateDir: tmp });
  });
  after(async () => {
    await lab?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  const expected: Record<string, string> = {
    'testing.modes.test': 'testing/policy_testing',
    'none.modes.test': 'none/policy_none',
    'uncovered.modes.test': 'enforce_mx_not_covered/mx_not_covered',
    'uncovered-testing.modes.test': 'testing_mx_not_covered/mx_not_covered',
    'badpolicy.modes.test': 'invalid/invalid_mode',
    'badtxt.modes.test': 'invalid/invalid_mta_sts_record',
    'notxt.modes.test': 'absent/no_mta_sts_record',
    'nohost.modes.test': 'policy_missing/policy_host_not_found',
  };
  for (const [domain, expect] of Object.entries(expected)) {
    test(`${domain} → ${expect}`, async () => {
      const j = await judgedInLab(domain, { ...lab.env, ...FAST_LAB_CHECKER_ENV });
      assert.equal(pair(j), expect, j.detail);
      if (domain === 'uncovered.modes.test') {
        assert.equal(j.status, 'ng');
        assert.match(j.detail ?? '', /^id=u1; 1 of 2 MX hosts not covered: mode enforce: backup\.elsewhere\.test match none of \*\.mx\.modes\.test/);
      }
    });
  }

  test('only the domains with a valid TXT record reach their policy host', async () => {
    const deps = { ...createProbeDeps(loadConfig({ ...lab.env, ...FAST_LAB_CHECKER_ENV })), https: SHORT };
    const ipOf = (name: string) => lab.world.domains.find((d) => d.name === name)!.mtaStsPolicy!.ip;
    for (const d of ['notxt.modes.test', 'badtxt.modes.test', 'testing.modes.test']) await collectDomain(d, deps);
    assert.deepEqual(lab.https.log(ipOf('notxt.modes.test')), []);
    assert.deepEqual(lab.https.log(ipOf('badtxt.modes.test')), []);
    assert.ok(lab.https.log(ipOf('testing.modes.test')).some((e) => e.event === 'request' && e.path === '/.well-known/mta-sts.txt'));
  });
});

// nginx on 127.63.1.0/24 (this helper's range): the cases of real-worlds.ts, with MX records that the
// policies cover, plus one domain with an MX the policy does not cover.
const NGINX_PREFIX = '127.63.1';
const NGINX_HTTPS_PORT = 20443;
const NGINX_DNS_PORT = 20053;
const NGINX_CASES: StsCase[] = [...STS_CASES, { label: 'uncovered', txt: 'v=STSv1; id=9', host: 'nginx', cert: 'good', policy: { status: 200, body: GOOD_POLICY, contentType: 'text/plain' } }];
const MX_OF: Record<string, string[]> = { testing: ['mx.testing.sts.test'], uncovered: ['a.mx.sts.test', 'b.mx.sts.test', 'backup.example.net'] };
const nginxSkip = skipUnless(['nginx', 'nsd', 'unbound', 'openssl']);
if (nginxSkip) console.log(`# skipping the nginx MTA-STS tests: ${nginxSkip}`);

describe('against nginx (real HTTPS server), names from NSD behind unbound', { skip: nginxSkip }, () => {
  let nginx: RunningNginx | undefined;
  let dns: RunningDns | undefined;
  let pkiDir: string;
  let caFile: string;
  let silent: net.Server | undefined;
  const held = new Set<net.Socket>();
  const ips = { nginx: `${NGINX_PREFIX}.1`, refused: `${NGINX_PREFIX}.9`, silent: `${NGINX_PREFIX}.8` };

  before(async () => {
    pkiDir = tempDir('mc-mtasts-pki');
    const pki = createPki(pkiDir);
    caFile = pki.rootPath;
    const vhosts: NginxVhost[] = NGINX_CASES.filter((c) => c.host === 'nginx').map((c) => {
      const name = `mta-sts.${c.label}.${STS_ZONE}`;
      return { serverName: name, leaf: pki.issue({ id: `sts-${c.label}`, name, kind: c.cert ?? 'good', wrongName: `mta-sts.other.${STS_ZONE}` }), policy: c.policy as NginxVhost['policy'] };
    });
    const records: string[] = [];
    for (const c of NGINX_CASES) {
      if (c.txt) records.push(`_mta-sts.${c.label} IN TXT "${c.txt}"`);
      for (const [i, mx] of (MX_OF[c.label] ?? [`mx1.${c.label}.${STS_ZONE}`]).entries()) records.push(`${c.label} IN MX ${10 + i} ${mx}.`);
      if (c.host) records.push(`mta-sts.${c.label} IN A ${ips[c.host]}`);
    }
    nginx = await startNginx({ ip: ips.nginx, port: NGINX_HTTPS_PORT, vhosts });
    dns = await startDns({ nsd: { ip: `${NGINX_PREFIX}.54`, port: NGINX_DNS_PORT }, unbound: { ip: `${NGINX_PREFIX}.53`, port: NGINX_DNS_PORT }, zones: [{ name: STS_ZONE, dnssec: 'unsigned', records }] });
    // Accepts TCP and never says anything (not even the TLS ServerHello).
    silent = net.createServer((s) => { held.add(s); s.on('error', () => {}); s.resume(); });
    await new Promise<void>((r) => silent!.listen(NGINX_HTTPS_PORT, ips.silent, () => r()));
  });
  after(async () => {
    for (const s of held) s.destroy();
    await new Promise<void>((r) => (silent ? silent.close(() => r()) : r()));
    await Promise.all([nginx?.stop(), dns?.stop()]);
    if (pkiDir) rmSync(pkiDir, { recursive: true, force: true });
  });

  /** The scan's DNS probe with the gatherer deps a worker passes (gate, lab HTTPS port, extra CA file). */
  async function collect(label: string, withGate = true): Promise<DnsObservations> {
    const resolver = createResolver({ server: { host: dns!.unbound.ip, port: dns!.unbound.port }, timeoutMs: 1500, retries: 1, qps: 0 });
    const config = { dkimSelectors: ['default'], dnsblZones: [], lab: true, httpsPort: NGINX_HTTPS_PORT, extraCaFile: caFile };
    return collectDnsObservations(`${label}.${STS_ZONE}`, { resolver, config, https: SHORT, ...(withGate ? { outbound: createOutboundGate({ lab: true }) } : {}) });
  }

  const expected: Record<string, string> = {
    good: 'enforce/policy_enforce',
    testing: 'testing/policy_testing',
    none: 'none/policy_none',
    uncovered: 'enforce_mx_not_covered/mx_not_covered',
    selfsigned: 'policy_cert_invalid/policy_cert_untrusted',
    expired: 'policy_cert_invalid/policy_cert_expired',
    wrongname: 'policy_cert_invalid/policy_cert_wrong_name',
    notfound: 'policy_missing/policy_not_found',
    redirect: 'policy_missing/policy_redirect',
    oversize: 'invalid/policy_too_large',
    wrongtype: 'policy_missing/policy_wrong_content_type',
    badmaxage: 'invalid/invalid_max_age',
    refused: 'unknown/https_unreachable',
    silent: 'unknown/https_timeout',
    nohost: 'policy_missing/policy_host_not_found',
    notxt: 'absent/no_mta_sts_record',
  };
  for (const [label, expect] of Object.entries(expected)) {
    test(`${label}.sts.test → ${expect}`, async () => {
      const obs = await collect(label);
      const j = judgedTwice(`${label}.${STS_ZONE}`, obs);
      nginxSeen.set(label, pair(j));
      assert.equal(pair(j), expect, j.detail);
      if (label === 'uncovered') assert.match(j.detail ?? '', /1 of 3 MX hosts not covered: .*backup\.example\.net/);
      if (label === 'good') {
        // The trusted chain nginx sent (leaf + intermediate) is in the stored observation.
        const p = (obs.valid && (obs.mtaSts as MtaStsGathered).policy) as Exclude<MtaStsGathered['policy'], 'not_measured' | null | undefined>;
        assert.equal(p.fetches[0].tls?.cert?.chain.length, 2);
        assert.equal(p.fetches[0].tls?.cert?.trusted, true);
      }
    });
  }

  test('no TXT record, or no outbound gate: nginx sees no request', async () => {
    const log = () => nginx!.accessLog().length;
    const n0 = log();
    assert.equal(pair(mtaSts(await collect('notxt'))), 'absent/no_mta_sts_record');
    assert.equal(pair(mtaSts(await collect('good', false))), 'unknown/not_measured');
    assert.equal(log(), n0);
    await collect('good');
    assert.equal((await nginx!.accessLogAfter(n0, 1)).length, 1, 'the positive control: one GET for a valid record');
  });
});

test('the same judgement from the lab and from nginx for every behaviour both serve', (t) => {
  if (nginxSeen.size === 0 || labSeen.size === 0) return t.skip('needs both the lab and the nginx results');
  for (const [labDomain, label] of COMMON) assert.equal(labSeen.get(labDomain), nginxSeen.get(label), `${labDomain} vs ${label}.sts.test`);
  assert.equal(labSeen.get('uncovered.modes.test'), nginxSeen.get('uncovered'));
  assert.equal(labSeen.get('testing.modes.test'), nginxSeen.get('testing'));
  assert.equal(labSeen.get('none.modes.test'), nginxSeen.get('none'));
  assert.equal(labSeen.get('nohost.modes.test'), nginxSeen.get('nohost'));
  assert.equal(labSeen.get('notxt.modes.test'), nginxSeen.get('notxt'));
});

test('a report counts every value with its denominator (JSON, HTML, CSV), the legacy column holds it, and a diagnosis stored before the policy was fetched counts as present', async (t) => {
  if (labObservations.size < 10) return t.skip('needs the lab results');
  const { createTestDatabase } = await import('./helpers/db.ts');
  const { scanRun, scanReport2026, scanDomainRows2026 } = await import('./report-fixtures.ts');
  const { renderHtml } = await import('../reports/html.ts');
  const { aggregateCsvs } = await import('../reports/csv.ts');
  const { sql } = await import('kysely');
  const db = await createTestDatabase();
  try {
    const run = await scanRun(db.db, 'sts', 0);
    for (const [domain, dns] of labObservations) await run.store(judgeScan(domain, dns, {}, AT));
    // Observations of before issue 15: the TXT lookup only, no `policy`.
    const old = JSON.parse(JSON.stringify(labObservations.get('sts-ok.test'))) as DnsObservations & { mtaSts: MtaStsGathered };
    delete old.mtaSts.policy;
    const legacy = judgeScan('legacy.test', { ...old, domain: 'legacy.test', input: 'legacy.test' }, {}, AT);
    assert.deepEqual([legacy.findings.mta_sts.value, legacy.findings.mta_sts.reason], ['present', 'policy_not_recorded']);
    await run.store(legacy);
    const total = labObservations.size + 1;

    const r = await scanReport2026(db.db);
    const f = r.findings.mta_sts;
    const n = (v: string) => f[v]?.n ?? 0;
    assert.deepEqual(
      { enforce: n('enforce'), enforce_mx_not_covered: n('enforce_mx_not_covered'), testing: n('testing'), testing_mx_not_covered: n('testing_mx_not_covered'), none: n('none'), policy_missing: n('policy_missing'), policy_cert_invalid: n('policy_cert_invalid'), invalid: n('invalid'), absent: n('absent'), unknown: n('unknown'), present: n('present'), not_recorded: n('not_recorded') },
      { enforce: 1, enforce_mx_not_covered: 1, testing: 1, testing_mx_not_covered: 1, none: 1, policy_missing: 3, policy_cert_invalid: 3, invalid: 2, absent: 1, unknown: 2, present: 1, not_recorded: 0 },
    );
    for (const v of Object.keys(f)) assert.equal(f[v].total, total, v);
    // The legacy column holds the same value as findings.mta_sts (the SQL for analysts reads it).
    const cols = (await sql<{ n: number }>`SELECT count(*)::int AS n FROM diagnoses WHERE mta_sts IS DISTINCT FROM findings->'mta_sts'->>'value'`.execute(db.db)).rows;
    assert.equal(cols[0].n, 0);
    const html = renderHtml(r, null, 'en');
    assert.match(html, /enforce, an MX not covered/);
    assert.match(html, /invalid certificate on the policy host/);
    const csv = aggregateCsvs(r, 'ja')['findings.csv'];
    assert.match(csv, /mta_sts,MTA-STS,enforce_mx_not_covered,enforce（対象外のMXあり）,1,/);
    const rows = await scanDomainRows2026(db.db, 'sts_snapshot');
    assert.equal(rows.find((x) => x.domain === 'uncovered.modes.test')?.mta_sts, 'enforce_mx_not_covered');
    assert.equal(rows.find((x) => x.domain === 'legacy.test')?.mta_sts, 'present');
  } finally {
    await db.drop();
  }
});
