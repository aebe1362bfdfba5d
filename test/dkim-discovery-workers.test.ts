// DKIM discovery through a real survey run: a list with a `selectors` column is ingested, a lab sender's test
// mail (signed with a selector no common list has) is received and diagnosed by processTestMail, and a worker
// PROCESS (`node bin/mailcensus.mjs worker`, real Postgres and Redis, the lab's DNS and SMTP) then finds every
// key under the selectors the survey knows: the listed ones, and the one the test mail was signed with.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { labWithDatabaseForFile } from './helpers/lab.ts';
import { sendTestMails } from '../lab/sender.ts';
import { loadConfig } from '../lib/config.ts';
import { createProbeDeps } from '../lib/diagnose.ts';
import { createLogger } from '../workers/logger.ts';
import { openServices } from '../workers/setup.ts';
import { createRun } from '../workers/run.ts';
import { OUR_DOMAIN } from './helpers/lab-receiver.ts';
import { processTestMail } from '../workers/test-mail.ts';
import { ingestFile } from '../ingest/ingest.ts';
import { FAST_LAB_CHECKER_ENV } from './helpers/lab-env.ts';
import { killIfAlive, spawnWorker, type WorkerProcess } from './helpers/worker-process.ts';
import { TEST_REDIS_URL, deleteQueueKeys, newQueuePrefix, waitForRunDone } from './helpers/survey-run.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const enqueued: string[] = [];
let worker: WorkerProcess | null = null;

const setup = labWithDatabaseForFile(path.join(ROOT, 'lab/worlds/test-dkim-discovery.json'), 'mc-dkimrun-', {
  receiver: () => ({ host: '127.65.0.1', maxConnectionsPerIp: 10, enqueue: async (id) => void enqueued.push(id) }),
  stopFirst: () => killIfAlive(worker),
});

function env(redisUrl: string, prefix: string): Record<string, string> {
  return setup.workerEnv(redisUrl, prefix, {
    ...FAST_LAB_CHECKER_ENV,
    MAILCENSUS_RECEIVER_DOMAIN: OUR_DOMAIN,
    MAILCENSUS_DNS_QPS: '500',
    MAILCENSUS_TRANSIENT_RETRIES: '0',
    MAILCENSUS_WORKER_CONCURRENCY: '4',
    MAILCENSUS_LOCK_DURATION_MS: '4000',
    MAILCENSUS_SHUTDOWN_TIMEOUT_MS: '10000',
  });
}


test('a survey run finds keys under the listed selectors and under the selector of a received test mail', async () => {
  const redisUrl = TEST_REDIS_URL;
  const prefix = newQueuePrefix('mctest-dkim');
  // The shipped common selectors (no MAILCENSUS_DKIM_SELECTORS): corp2024 and m2026 are not among them.
  const config = loadConfig(env(redisUrl, prefix));
  assert.ok(!config.dkimSelectors.includes('corp2024') && !config.dkimSelectors.includes('m2026'));

  // 1. dk-mailsel.test's lab sender signs with m2026; the test-mail job remembers the selector.
  const sent = await sendTestMails(setup.lab.world, { to: { host: '127.65.0.1', port: setup.rx.port }, rcpt: `check@${OUR_DOMAIN}` });
  assert.deepEqual(sent.map((s) => [s.domain, s.ok]), [['dk-mailsel.test', true]]);
  const ctx = { db: setup.tdb.db, config, logger: pino({ level: 'silent' }), deps: createProbeDeps(config) };
  const r = await processTestMail({ testMailId: enqueued[0] }, ctx, { resultMail: false });
  assert.ok(r.inserted);
  const seen = await setup.tdb.db.selectFrom('dkim_selectors_seen').select(['domain', 'selector']).execute();
  assert.deepEqual(seen, [{ domain: 'dk-mailsel.test', selector: 'm2026' }]);

  // 2. The list names corp2024 for two domains.
  const csv = path.join(setup.lab.dir, 'list.csv');
  writeFileSync(csv, 'domain,selectors\ndk-custom.test,corp2024\ndk-wild-custom.test,corp2024 s1\ndk-mailsel.test,\ndk-wild.test,\ndk-plain.test,\ndk-none.test,\n');
  const ing = await ingestFile(setup.tdb.sql, { file: csv, survey: 'dkim-disc' });
  assert.equal(ing.accepted, 6);

  // 3. A worker process runs the survey.
  worker = spawnWorker({ ...env(redisUrl, prefix), MAILCENSUS_DKIM_SELECTORS: '' });
  const s = await openServices(config, createLogger({ level: 'silent' }));
  try {
    const run = await createRun(s, 'dkim-disc');
    assert.equal(run.total, 6);
    await waitForRunDone(setup.tdb.db, run.runId, 120_000);
    const rows = await setup.tdb.db.selectFrom('diagnoses').select(['domain', 'dkim', 'dkim_reason', 'observations']).where('run_id', '=', run.runId).orderBy('domain').execute();
    const got = Object.fromEntries(rows.map((x) => [x.domain, `${x.dkim} ${x.dkim_reason}`]));
    assert.deepEqual(got, {
      'dk-custom.test': 'ok key_found',
      'dk-mailsel.test': 'ok key_found',
      'dk-none.test': 'ng no_dkim_key',
      'dk-plain.test': 'ok key_found',
      'dk-wild-custom.test': 'ok key_found',
      'dk-wild.test': 'ng domainkey_wildcard',
    });
    const dkimOf = (d: string) => (rows.find((x) => x.domain === d)!.observations as { dns: { dkim: { given?: string[]; selectors: { selector: string }[] } } }).dns.dkim;
    assert.deepEqual(dkimOf('dk-mailsel.test').given, ['m2026'], 'the remembered selector reached the job');
    assert.deepEqual(dkimOf('dk-wild-custom.test').given, ['corp2024', 's1']);
    assert.deepEqual(dkimOf('dk-custom.test').selectors.map((x) => x.selector), ['corp2024'], 'a key under a listed selector ends the search');
    assert.equal(dkimOf('dk-plain.test').given, undefined);
  } finally {
    await s.close();
    worker.child.kill('SIGTERM');
  }
  assert.deepEqual(await worker.exited, { code: 0, signal: null });
  await deleteQueueKeys(redisUrl, prefix);
});
