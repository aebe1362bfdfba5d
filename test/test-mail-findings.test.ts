// The findings beyond MSchecker in the test-mail flow: the senders of lab/worlds/test-v2.json (RSA-1024,
// Ed25519, testing and revoked DKIM selectors, an RSA-2048 MX) mail our receiver, the worker's job function
// diagnoses each stored mail, and every finding that applies to test mails is stored with its value and reason,
// re-judged from the stored observations to the same result, and counted by a report with its denominator.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { labClock, labWithDatabaseForFile } from './helpers/lab.ts';
import { sendTestMails } from '../lab/sender.ts';
import { loadConfig } from '../lib/config.ts';
import { createProbeDeps } from '../lib/diagnose.ts';
import { rejudge } from '../lib/checks/judge.ts';
import { FINDING_CHECKS } from '../lib/checks/registry.ts';
import { OUR_DOMAIN } from './helpers/lab-receiver.ts';
import { processTestMail } from '../workers/test-mail.ts';
import { buildReport } from '../reports/aggregate.ts';
import { yearPeriod } from '../reports/period.ts';
import { FAST_LAB_CHECKER_ENV } from './helpers/lab-env.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SENDERS = ['dkim-rsa1024.test', 'dkim-ed25519.test', 'dkim-testing.test', 'dkim-revoked.test'];

type Stored = { domain: string; observed_at: Date; observations: unknown; findings: Record<string, { status: string; reason: string; value: unknown }> };
let rows: Stored[] = [];

const ids: string[] = [];
const setup = labWithDatabaseForFile(path.join(ROOT, 'lab/worlds/test-v2.json'), 'mc-tm-findings-', {
  receiver: (lab) => ({
    clock: labClock(lab),
    enqueue: async (id) => {
      ids.push(id);
    },
  }),
  setUp: diagnoseEveryMail,
});

/** Every sender of the world mails our receiver, and the job function diagnoses each stored mail. */
async function diagnoseEveryMail(): Promise<void> {
  const config = loadConfig({ ...setup.lab.env, MAILCENSUS_RECEIVER_DOMAIN: OUR_DOMAIN, MAILCENSUS_RESULT_MAIL: '0', ...FAST_LAB_CHECKER_ENV });
  const sent = await sendTestMails(setup.lab.world, { to: { host: '127.0.0.1', port: setup.rx.port }, rcpt: `check@${OUR_DOMAIN}`, concurrency: 4, timeoutMs: 20_000 });
  assert.deepEqual(sent.filter((s) => !s.ok), [], 'every sender delivered');
  const ctx = { db: setup.tdb.db, config, logger: pino({ level: 'silent' }), deps: createProbeDeps(config) };
  for (const id of ids) assert.ok((await processTestMail({ testMailId: id }, ctx)).inserted);
  rows = (await setup.tdb.db.selectFrom('diagnoses').select(['domain', 'observed_at', 'observations', 'findings']).where('source', '=', 'test-mail').execute()) as Stored[];
}

const of = (domain: string) => {
  const d = rows.find((r) => r.domain === domain);
  assert.ok(d, `no diagnosis of ${domain}`);
  return d.findings;
};

test('every finding for test mails is stored, with a declared value and reason', () => {
  assert.deepEqual(rows.map((r) => r.domain).sort(), [...SENDERS].sort());
  const forTestMail = FINDING_CHECKS.filter((c) => c.sources.includes('test-mail'));
  assert.ok(forTestMail.length >= 10);
  assert.ok(!forTestMail.some((c) => c.id === 'non_mail'), 'non_mail is a scan finding');
  for (const r of rows) {
    assert.deepEqual(Object.keys(r.findings).sort(), forTestMail.map((c) => c.id).sort(), r.domain);
    for (const c of forTestMail) {
      const f = r.findings[c.id];
      assert.ok(f.reason in c.reasons, `${r.domain} ${c.id}: reason ${f.reason}`);
      // An open set of values (tls_versions: the protocol names) declares none.
      if (c.values.length > 0) for (const v of [f.value].flat()) assert.ok(c.values.includes(String(v)) || /^ru[af]:/.test(String(v)), `${r.domain} ${c.id}: value ${v}`);
    }
  }
});

test('DKIM key strength from the keys the DNS gave mailauth (RFC 8301 §3.2), and the MX certificate key', () => {
  const key = (d: string) => [of(d).dkim_key.value, of(d).dkim_key.reason];
  assert.deepEqual(key('dkim-rsa1024.test'), ['weak', 'weak_rsa_key']);
  assert.deepEqual(key('dkim-ed25519.test'), ['strong', 'strong_key']);
  assert.deepEqual(key('dkim-testing.test'), ['strong', 'strong_key']);
  // A revoked selector publishes an empty p=: there is no key to measure.
  assert.deepEqual(key('dkim-revoked.test'), ['not_found', 'no_key_found']);
  // Every sender's domain receives on the lab's RSA-2048 host, probed during the test-mail diagnosis.
  for (const d of SENDERS) assert.deepEqual([of(d).tls_key.value, of(d).tls_key.reason], ['rsa_2048_plus', 'strong_key'], d);
  // No DNSSEC in these zones: no TLSA record can count (RFC 7672 §2.2).
  for (const d of SENDERS) assert.notEqual(of(d).dane.value, 'valid', d);
});

test('re-judged from the stored observations, every finding is the same', () => {
  for (const r of rows) {
    const again = rejudge({ source: 'test-mail', domain: r.domain, observations: r.observations, observed_at: new Date(r.observed_at) });
    for (const [id, f] of Object.entries(r.findings)) {
      const g = again.findings[id]!;
      assert.deepEqual([g.status, g.reason, g.value], [f.status, f.reason, f.value], `${r.domain} ${id}`);
    }
  }
});

test('a report of the test mails counts the findings with their denominator', async () => {
  const year = new Date(rows[0].observed_at).getUTCFullYear();
  const r = await buildReport(setup.tdb.db, { period: yearPeriod(year), source: 'test-mail', survey: null, timezone: 'UTC' });
  assert.equal(r.domains, 4);
  const k = r.findings.dkim_key;
  assert.deepEqual([k.weak.n, k.strong.n, k.not_found.n, k.strong.total], [1, 2, 1, 4]);
  assert.equal(r.findings.tls_key.rsa_2048_plus.n, 4);
  assert.equal(r.findings.non_mail, undefined, 'a scan-only finding is not reported for test mails');
});
