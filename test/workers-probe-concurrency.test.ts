// Issue 18: probe jobs (SMTP sessions, which mostly wait) run MAILCENSUS_PROBE_CONCURRENCY at once per worker,
// apart from the domain jobs' MAILCENSUS_WORKER_CONCURRENCY. Real Redis and Postgres, the declared fake of the
// probes (test/workers-fake-diagnose.ts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { deleteKeysUnder } from '../workers/queues.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { loadConfig } from '../lib/config.ts';
import { createLogger } from '../workers/logger.ts';
import { openServices } from '../workers/setup.ts';
import { startWorker } from '../workers/worker.ts';
import { createRun, runProgress } from '../workers/run.ts';
import { fakeDiagnose } from './workers-fake-diagnose.ts';

let tdb: TestDatabase;
before(async () => {
  tdb = await createTestDatabase();
});
after(async () => {
  await tdb.drop();
});

test('MAILCENSUS_PROBE_CONCURRENCY defaults to 2000 and is read apart from MAILCENSUS_WORKER_CONCURRENCY', () => {
  const dflt = loadConfig({});
  assert.equal(dflt.probeConcurrency, 2000);
  assert.equal(dflt.workerConcurrency, 20);
  const set = loadConfig({ MAILCENSUS_PROBE_CONCURRENCY: '7', MAILCENSUS_WORKER_CONCURRENCY: '3' });
  assert.deepEqual([set.probeConcurrency, set.workerConcurrency], [7, 3]);
  assert.throws(() => loadConfig({ MAILCENSUS_PROBE_CONCURRENCY: '0' }), /MAILCENSUS_PROBE_CONCURRENCY/);
});

test('one domain job at a time still keeps six slow sessions in flight: probes have their own concurrency', async () => {
  const config = loadConfig({
    DATABASE_URL: tdb.url,
    REDIS_URL: process.env.REDIS_URL || 'redis://127.0.0.1:6379',
    MAILCENSUS_QUEUE_PREFIX: `mctest-${randomBytes(4).toString('hex')}`,
    MAILCENSUS_WORKER_CONCURRENCY: '1',
    MAILCENSUS_PROBE_CONCURRENCY: '6',
    MAILCENSUS_PER_IP_INTERVAL_MS: '0',
    MAILCENSUS_DNS_QPS: '0',
    MAILCENSUS_LOCK_DURATION_MS: '5000',
  });
  const logger = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const s = await openServices(config, logger, { worker: true });
  const diag = fakeDiagnose();
  // A slow server: each session waits 3 s (the domain jobs themselves take milliseconds).
  diag.sessionMs = 3000;
  let active = 0;
  let peak = 0;
  const observe = diag.observeIp.bind(diag);
  diag.observeIp = async (ip, hosts, deps) => {
    active++;
    peak = Math.max(peak, active);
    try {
      return await observe(ip, hosts, deps);
    } finally {
      active--;
    }
  };
  const w = startWorker({ db: s.db, config: s.config, redis: s.redis, logger, deps: {} as never, queues: s.queues, diag }, { maintenanceMs: 300 });
  try {
    const name = `p-${randomBytes(3).toString('hex')}`;
    const { id } = await tdb.db.insertInto('surveys').values({ name }).returning('id').executeTakeFirstOrThrow();
    await tdb.db.insertInto('survey_domains').values(Array.from({ length: 12 }, (_, i) => ({ survey_id: id, domain: `own${i}.test` }))).execute();
    const run = await createRun(s, name);
    const until = Date.now() + 60_000;
    while ((await runProgress(tdb.db, run.runId)).state !== 'done') {
      assert.ok(Date.now() < until, 'the run finishes within 60 s');
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(diag.sessions.size, 12);
    assert.equal(peak, 6, `sessions in flight at once: ${peak}`);
  } finally {
    await w.close(5000);
    await deleteKeysUnder(s.redis, config.queuePrefix);
    await s.close();
  }
});
