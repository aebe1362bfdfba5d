// Issue 18: probe jobs (SMTP sessions, which mostly wait) run MAILCENSUS_PROBE_CONCURRENCY at once per worker,
// apart from the domain jobs' MAILCENSUS_WORKER_CONCURRENCY. Real Redis and Postgres, the declared fake of the
// probes (test/workers-fake-diagnose.ts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { deleteKeysUnder } from '../workers/queues.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { loadConfig } from '../lib/config.ts';
import { createRun } from '../workers/run.ts';
import { fakeDiagnose, startFakeWorker } from './workers-fake-diagnose.ts';
import { inProcessWorkerConfig, insertSurvey, openInProcessServices, waitForRunDone } from './helpers/survey-run.ts';

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
  const config = inProcessWorkerConfig(tdb.url, {
    MAILCENSUS_WORKER_CONCURRENCY: '1',
    MAILCENSUS_PROBE_CONCURRENCY: '6',
    MAILCENSUS_PER_IP_INTERVAL_MS: '0',
  });
  const s = await openInProcessServices(config);
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
  const w = startFakeWorker(s, diag, { maintenanceMs: 300 });
  try {
    const name = `p-${randomBytes(3).toString('hex')}`;
    await insertSurvey(tdb.db, name, Array.from({ length: 12 }, (_, i) => `own${i}.test`));
    const run = await createRun(s, name);
    await waitForRunDone(tdb.db, run.runId, 60_000, 'the run to finish', { pollMs: 200 });
    assert.equal(diag.sessions.size, 12);
    assert.equal(peak, 6, `sessions in flight at once: ${peak}`);
  } finally {
    await w.close(5000);
    await deleteKeysUnder(s.redis, config.queuePrefix);
    await s.close();
  }
});
