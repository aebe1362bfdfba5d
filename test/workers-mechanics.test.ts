// Queue mechanics of survey runs with real Redis and Postgres and a declared fake of the probes
// (test/workers-fake-diagnose.ts): dedup of shared MX probes, backpressure, transient retries, retries after
// infrastructure errors, cancel/resume, scheduled runs and re-judging.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { deleteKeysUnder } from '../workers/queues.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import type { Config } from '../lib/config.ts';
import type { Services } from '../workers/setup.ts';
import { runStatsKey, type RunningWorker, type StartOptions } from '../workers/worker.ts';
import { createRun, runProgress, cancelRun, resumeRun, topUp } from '../workers/run.ts';
import { addSchedule, listSchedules, removeSchedule } from '../workers/schedule.ts';
import { fakeDiagnose, startFakeWorker, type FakeDiagnose } from './workers-fake-diagnose.ts';
import { inProcessWorkerConfig, insertSurvey, openInProcessServices } from './helpers/survey-run.ts';

let tdb: TestDatabase;
const cleanups: (() => Promise<void>)[] = [];

before(async () => {
  tdb = await createTestDatabase();
});
// Each test stops its workers: a worker's maintenance loop feeds every running run of the database.
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});
after(async () => {
  await tdb.drop();
});

async function setup(extra: Record<string, string> = {}): Promise<{ s: Services; config: Readonly<Config> }> {
  const config = inProcessWorkerConfig(tdb.url, {
    MAILCENSUS_MAX_QUEUED: '10',
    MAILCENSUS_WORKER_CONCURRENCY: '5',
    MAILCENSUS_PER_IP_INTERVAL_MS: '50',
    MAILCENSUS_TRANSIENT_RETRY_DELAY_MS: '200',
    ...extra,
  });
  const s = await openInProcessServices(config);
  cleanups.push(async () => {
    await deleteKeysUnder(s.redis, config.queuePrefix);
    await s.close();
  });
  return { s, config };
}

function start(s: Services, diag: FakeDiagnose, maintenanceMs = 300, options: StartOptions = {}): RunningWorker {
  const w = startFakeWorker(s, diag, { maintenanceMs, ...options });
  cleanups.push(async () => {
    await w.close(5000);
  });
  return w;
}

let surveyN = 0;
async function survey(domains: string[]): Promise<string> {
  const name = `s${++surveyN}-${randomBytes(3).toString('hex')}`;
  await insertSurvey(tdb.db, name, domains);
  return name;
}

async function waitForState(runId: number, state: string, ms = 60_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const p = await runProgress(tdb.db, runId);
    if (p.state === state) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  const p = await runProgress(tdb.db, runId);
  assert.fail(`run ${runId} did not reach ${state} within ${ms} ms: ${p.state}, ${p.done}/${p.total}`);
}

async function diagnosisCounts(runId: number): Promise<Map<string, number>> {
  const rows = await tdb.db.selectFrom('diagnoses').select(['domain', (eb) => eb.fn.countAll<string>().as('n')]).where('run_id', '=', runId).groupBy('domain').execute();
  return new Map(rows.map((r) => [r.domain, Number(r.n)]));
}

test('a run diagnoses every domain once, probes each shared MX IP once and keeps at most maxQueued jobs in Redis', async () => {
  const { s } = await setup();
  const domains = [
    ...Array.from({ length: 30 }, (_, i) => `d${i}.shared-${(i % 3) + 1}.test`),
    ...Array.from({ length: 30 }, (_, i) => `own${i}.test`),
  ];
  const name = await survey(domains);
  const diag = fakeDiagnose();
  const run = await createRun(s, name);
  assert.equal(run.total, 60);
  const pending = await s.queues.domains.getJobCounts('waiting', 'delayed', 'active', 'prioritized');
  assert.ok(Object.values(pending).reduce((a, b) => a + b, 0) <= 10, 'the first fill respects maxQueued');
  let maxSeen = 0;
  const sampler = setInterval(async () => {
    const c = await s.queues.domains.getJobCounts('waiting', 'delayed', 'active', 'prioritized').catch(() => null);
    if (c) maxSeen = Math.max(maxSeen, Object.values(c).reduce((a, b) => a + b, 0));
  }, 50);
  start(s, diag);
  await waitForState(run.runId, 'done');
  clearInterval(sampler);
  const counts = await diagnosisCounts(run.runId);
  assert.equal(counts.size, 60);
  assert.ok([...counts.values()].every((n) => n === 1));
  for (const i of [1, 2, 3]) assert.equal(diag.sessions.get(`127.200.0.${i}`), 1, `shared IP ${i} probed once`);
  assert.ok([...diag.maxConcurrent.values()].every((n) => n === 1), 'never two sessions to one IP at once');
  assert.ok(maxSeen <= 10 + 5, `at most maxQueued (+ one top-up race) domain jobs in Redis, saw ${maxSeen}`);
  const probed = await tdb.db.selectFrom('probed_ips').select('ip').where('run_id', '=', run.runId).execute();
  assert.equal(probed.length, 33);
});

test('a run surveys the list as it was when the run was created: domains ingested later wait for the next run', async () => {
  const { s } = await setup();
  const name = await survey(['early1.test', 'early2.test', 'early3.test']);
  const run = await createRun(s, name);
  assert.equal(run.total, 3);
  // Ingested after the run was created (the survey grows while the run is queued).
  const { id } = await tdb.db.selectFrom('surveys').select('id').where('name', '=', name).executeTakeFirstOrThrow();
  await tdb.db.insertInto('survey_domains').values([{ survey_id: id, domain: 'late.test' }]).execute();
  start(s, fakeDiagnose());
  await waitForState(run.runId, 'done');
  const counts = await diagnosisCounts(run.runId);
  assert.deepEqual([...counts.keys()].sort(), ['early1.test', 'early2.test', 'early3.test']);
  const next = await createRun(s, name);
  assert.equal(next.total, 4);
  await waitForState(next.runId, 'done');
  assert.equal((await diagnosisCounts(next.runId)).get('late.test'), 1);
});

test('a transient unknown is retried with a re-probe of only the IP that answered 4xx, then final', async () => {
  const { s } = await setup();
  const name = await survey(['flaky.test', 'a.shared-4.test', 'b.shared-4.test']);
  const diag = fakeDiagnose();
  start(s, diag);
  const run = await createRun(s, name);
  await waitForState(run.runId, 'done');
  const d = await tdb.db.selectFrom('diagnoses').selectAll().where('run_id', '=', run.runId).where('domain', '=', 'flaky.test').executeTakeFirstOrThrow();
  assert.equal(d.tls_receive, 'ok', 'the retry measured it');
  assert.equal(diag.domainsCollected.get('flaky.test'), 2, 'DNS collected again on the retry');
  const flakyIp = [...diag.sessions.keys()].find((ip) => ip.startsWith('127.201.'))!;
  assert.equal(diag.sessions.get(flakyIp), 2);
  assert.equal(diag.sessions.get('127.200.0.4'), 1);
  const row = await tdb.db.selectFrom('probed_ips').select('attempt').where('run_id', '=', run.runId).where('ip', '=', flakyIp).executeTakeFirstOrThrow();
  assert.equal(row.attempt, 1);
});

test('transient unknowns become final after MAILCENSUS_TRANSIENT_RETRIES retries', async () => {
  const { s } = await setup({ MAILCENSUS_TRANSIENT_RETRIES: '0' });
  const name = await survey(['flaky-once.test']);
  const diag = fakeDiagnose();
  start(s, diag);
  const run = await createRun(s, name);
  await waitForState(run.runId, 'done');
  const d = await tdb.db.selectFrom('diagnoses').selectAll().where('run_id', '=', run.runId).executeTakeFirstOrThrow();
  assert.equal(d.tls_receive, 'unknown');
  assert.equal(d.tls_receive_reason, 'tempfail_4xx');
  assert.equal(d.verdict, 'incomplete');
});

test('an infrastructure error fails the job, which is retried and writes exactly one diagnosis', async () => {
  const { s } = await setup();
  const name = await survey(['x1.test', 'x2.test', 'x3.test']);
  const diag = fakeDiagnose();
  diag.failOnceOn.add('x2.test');
  start(s, diag);
  const run = await createRun(s, name);
  await waitForState(run.runId, 'done');
  const counts = await diagnosisCounts(run.runId);
  assert.deepEqual([...counts.entries()].sort(), [['x1.test', 1], ['x2.test', 1], ['x3.test', 1]]);
  assert.equal(diag.domainsCollected.get('x2.test'), 2);
});

test('diagnoses waiting for their batch are written when the worker stops, and their jobs are not done again', async () => {
  const { s } = await setup();
  const domains = ['b1.test', 'b2.test', 'b3.test', 'b4.test', 'b5.test'];
  const name = await survey(domains);
  const diag = fakeDiagnose();
  // A batch timer far beyond the test: only the stop can write them.
  const w = start(s, diag, 300, { writeBatchMs: 600_000, writeBatchSize: 1000 });
  const run = await createRun(s, name);
  // Every domain judged and its job held active by the batch it waits for (none waiting for probes any more).
  const until = Date.now() + 30_000;
  for (let settled = 0; settled < 3; ) {
    const c = await s.queues.domains.getJobCounts('active', 'waiting', 'delayed');
    const probed = await tdb.db.selectFrom('probed_ips').select((eb) => eb.fn.countAll<string>().as('n')).where('run_id', '=', run.runId).executeTakeFirstOrThrow();
    const ready = c.active === domains.length && c.waiting + c.delayed === 0 && Number(probed.n) === domains.length;
    settled = ready ? settled + 1 : 0;
    assert.ok(Date.now() < until, `jobs not all waiting for the batch: ${JSON.stringify(c)}, ${probed.n} IPs probed`);
    await new Promise((r) => setTimeout(r, 300));
  }
  assert.equal((await diagnosisCounts(run.runId)).size, 0, 'nothing written before the batch goes');
  const { graceful } = await w.close(10_000);
  assert.equal(graceful, true);
  const counts = await diagnosisCounts(run.runId);
  assert.deepEqual([...counts.keys()].sort(), domains);
  assert.ok([...counts.values()].every((n) => n === 1));
  // Their jobs completed with the write: a second worker finishes the run without diagnosing them again.
  start(s, diag);
  await waitForState(run.runId, 'done');
  assert.deepEqual([...diag.domainsCollected.values()], domains.map(() => 1));
});

test('a batch of diagnoses that Postgres refuses fails every job in it: all are retried and written once', async () => {
  const { s } = await setup();
  const domains = ['w1.test', 'w2.test', 'w3.test', 'w4.test'];
  const name = await survey(domains);
  const diag = fakeDiagnose();
  diag.unwritableOnce.add('w2.test');
  start(s, diag, 300, { writeBatchMs: 1000, writeBatchSize: 1000 });
  const run = await createRun(s, name);
  await waitForState(run.runId, 'done');
  const counts = await diagnosisCounts(run.runId);
  assert.deepEqual([...counts.entries()].sort(), domains.map((d) => [d, 1]));
  // w2 spoiled its whole batch: the jobs judged with it were not taken as written, but failed and ran again.
  const retries = Number(await s.redis.hget(runStatsKey(s.config.queuePrefix, run.runId), 'retries'));
  assert.ok(retries >= 2, `${retries} job(s) retried`);
});

test('opted-out domains are skipped and counted, opted-out IPs are never connected to', async () => {
  const { s, config } = await setup({ MAILCENSUS_OPT_OUT: 'optout.test, 127.200.0.5' });
  const name = await survey(['optout.test', 'mail.optout.test', 'keep.test', 'k.shared-5.test']);
  const diag = fakeDiagnose();
  start(s, diag);
  const run = await createRun(s, name);
  assert.equal(run.total, 2);
  assert.equal(run.optedOut, 2);
  await waitForState(run.runId, 'done');
  assert.deepEqual([...(await diagnosisCounts(run.runId)).keys()].sort(), ['k.shared-5.test', 'keep.test']);
  assert.equal(diag.sessions.get('127.200.0.5'), undefined);
  assert.equal(diag.domainsCollected.has('optout.test'), false);
  const stored = (await runProgress(tdb.db, run.runId)).config as { optOut: string[]; ehloName: string };
  assert.deepEqual(stored.optOut, config.optOut);
  assert.equal(stored.ehloName, config.ehloName);
});

test('a cancelled run drops its queued jobs and a resumed one finishes with one diagnosis per domain', async () => {
  const { s } = await setup();
  const domains = Array.from({ length: 25 }, (_, i) => `c${i}.test`);
  const name = await survey(domains);
  const run = await createRun(s, name); // no worker yet: jobs wait
  const c = await cancelRun(s, run.runId);
  assert.equal(c.cancelled, true);
  assert.ok(c.removedJobs >= 5);
  assert.equal(await topUp(s, run.runId), 0, 'the feeder does not feed a cancelled run');
  const diag = fakeDiagnose();
  start(s, diag);
  await new Promise((r) => setTimeout(r, 700));
  assert.equal((await runProgress(tdb.db, run.runId)).done, 0);
  const r = await resumeRun(s, run.runId);
  assert.equal(r.resumed, true);
  await waitForState(run.runId, 'done');
  const counts = await diagnosisCounts(run.runId);
  assert.equal(counts.size, 25);
  assert.ok([...counts.values()].every((n) => n === 1));
});

test('a scheduled-run job creates one run however often it is processed, and schedules can be listed and removed', async () => {
  const { s } = await setup();
  const name = await survey(['sched.test']);
  const info = await addSchedule(s.queues, name, '0 3 1 4 *', 'Asia/Tokyo');
  assert.equal(info.cron, '0 3 1 4 *');
  assert.ok(info.next && info.next.getTime() > Date.now());
  assert.deepEqual((await listSchedules(s.queues)).map((x) => x.survey), [name]);
  assert.equal(await removeSchedule(s.queues, name), true);
  assert.deepEqual(await listSchedules(s.queues), []);

  const diag = fakeDiagnose();
  start(s, diag);
  const job = await s.queues.control.add('scheduled-run', { survey: name }, { jobId: 'firing-1' });
  const until = Date.now() + 30_000;
  while (!(await job.isCompleted()) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  await job.retry('completed').catch(() => {}); // processing the same firing again must not create a second run
  await new Promise((r) => setTimeout(r, 800));
  const runs = await tdb.db.selectFrom('runs').innerJoin('surveys', 'surveys.id', 'runs.survey_id').select('runs.id').where('surveys.name', '=', name).execute();
  assert.equal(runs.length, 1);
  await waitForState(runs[0].id, 'done');
});
