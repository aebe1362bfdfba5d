// The worked example of docs/criteria.md "How to add a check": DKIM key strength (RFC 8301 §3.2), a finding
// that lives in lib/checks/dkim-key/ and one registry line. Measured end to end through `check`
// against the lab's per-selector keys (lab/worlds/test-v2.json), and counted by a report like any finding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { checkLabForFile } from './helpers/lab.ts';
import { cliJson, runCli } from './helpers/cli.ts';
import type { IpObservation } from '../lib/observations.ts';
import type { DnsObservations } from '../lib/probes/dns.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const lab = checkLabForFile(`${ROOT}lab/worlds/test-v2.json`, 'mc-keys-');

/** `check` against the lab, asking every selector the world publishes. */
const checkEnv = () => lab.checkEnv({ MAILCENSUS_DKIM_SELECTORS: 'default,s,rsa1024,rsa2048,ed,testing,revoked' });

function check(domain: string, lang = 'en'): Promise<{ code: number; stdout: string }> {
  return runCli(['check', domain, '--lang', lang], checkEnv());
}

async function strength(domain: string): Promise<{ value: unknown; reason: string; detail?: string }> {
  return (await cliJson<{ findings: { dkim_key: { value: unknown; reason: string; detail?: string } } }>(['check', domain, '--json'], checkEnv())).findings.dkim_key;
}

test('an RSA-1024 key is weak (RFC 8301 §3.2 SHOULD 2048), Ed25519 strong, and a domain counts under its weakest key', async () => {
  assert.deepEqual(await strength('dkim-rsa1024.test').then((f) => [f.value, f.reason]), ['weak', 'weak_rsa_key']);
  assert.deepEqual(await strength('dkim-ed25519.test').then((f) => [f.value, f.reason]), ['strong', 'strong_key']);
  const mixed = await strength('dkim.test');
  assert.deepEqual([mixed.value, mixed.reason], ['weak', 'weak_rsa_key']);
  assert.match(mixed.detail ?? '', /rsa1024: rsa 1024 bits/);
  assert.match(mixed.detail ?? '', /ed: ed25519/);
  // A revoked key (empty p=) is no key to measure.
  assert.deepEqual(await strength('dkim-revoked.test').then((f) => [f.value, f.reason]), ['not_found', 'no_key_found']);
});

test('check shows the finding with its label in both languages', async () => {
  const en = await check('dkim-rsa1024.test', 'en');
  assert.equal(en.code, 0);
  assert.match(en.stdout, /^DKIM key strength\s+NG\s+weak_rsa_key\s+s: rsa 1024 bits/m);
  const ja = await check('dkim-rsa1024.test', 'ja');
  assert.match(ja.stdout, /^DKIM鍵の強度\s+NG\s+weak_rsa_key/m);
});

test('a report counts it with its denominator, from the stored diagnoses, with no code of its own', async () => {
  const { createTestDatabase } = await import('./helpers/db.ts');
  const { judgeScan } = await import('../lib/checks/judge.ts');
  const { scanRun, scanReport2026, scanDomainRows2026 } = await import('./report-fixtures.ts');
  const t = await createTestDatabase();
  try {
    const env = checkEnv();
    const run = await scanRun(t.db, 'keys', 3);
    for (const domain of ['dkim-rsa1024.test', 'dkim-ed25519.test', 'dkim.test']) {
      const { observations: obs } = await cliJson<{ observations: { dns: DnsObservations; ips: Record<string, IpObservation> } }>(['check', domain, '--json'], env);
      await run.store(judgeScan(domain, obs.dns, obs.ips, new Date('2026-06-01T00:00:00Z')));
    }
    const r = await scanReport2026(t.db);
    const f = r.findings.dkim_key;
    assert.deepEqual([f.weak.n, f.strong.n, f.weak.total], [2, 1, 3]);
    const rows = await scanDomainRows2026(t.db, 'keys_snapshot');
    assert.deepEqual(rows.map((x) => [x.domain, x.dkim_key]).sort(), [['dkim-ed25519.test', 'strong'], ['dkim-rsa1024.test', 'weak'], ['dkim.test', 'weak']]);
  } finally {
    await t.drop();
  }
});
