// Fault injection (issue 13): survey runs always finish. A generated lab world is surveyed by two worker
// PROCESSES against a PRIVATE Postgres and a PRIVATE Redis (started here on random ports, killed and restarted
// freely, removed afterwards — the shared servers are never touched), reached through TCP proxies that can
// stall. Each test injects one fault mid-run — SIGKILL of a worker, Redis restarted with its data lost,
// Postgres restarted in immediate mode (a crash), a 60 s network stall workers↔Postgres, a 60 s stall
// workers↔Redis, SIGTERM of a worker mid-job — and the last all of them, and each must end with every domain
// diagnosed exactly once and every diagnosis equal (verdict, every criterion's status and reason) to the same
// world's fault-free run.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DbHandle } from '../lib/db.ts';
import type { Lab } from '../lab/index.ts';
import { loadConfig } from '../lib/config.ts';
import { createLogger } from '../workers/logger.ts';
import { openServices, type Services } from '../workers/setup.ts';
import { createRun, runProgress } from '../workers/run.ts';
import { CRITERIA } from '../lib/criteria.ts';
import type { PrivatePostgres, PrivateRedis } from './helpers/private-services.ts';
import type { StallProxy } from './helpers/stall-proxy.ts';
import { startFaultRig, type FaultRig } from './helpers/fault-rig.ts';
import { until as waitUntil } from './helpers/until.ts';
import { alive, spawnWorker as spawnWorkerProcess, type WorkerProcess } from './helpers/worker-process.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DOMAINS = Number(process.env.MAILCENSUS_CHAOS_DOMAINS ?? 200);
const STALL_MS = Number(process.env.MAILCENSUS_CHAOS_STALL_MS ?? 60_000);
const SURVEY = 'chaos';

let rig: FaultRig | undefined;
let pg: PrivatePostgres;
let redis: PrivateRedis;
let pgProxy: StallProxy;
let redisProxy: StallProxy;
let lab: Lab;
let tmp: string;
let db: DbHandle;
let dbUrl: string;
let reference: Map<string, string>;

before(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'mc-chaos-'));
  rig = await startFaultRig({
    dir: tmp,
    database: 'chaos',
    survey: SURVEY,
    world: { domains: DOMAINS, sharedMxShare: 0.4, providers: 5, dnsLatencyMs: 5, smtpRttMs: 10, seed: 13 },
    poolMax: 4,
  });
  ({ pg, redis, pgProxy, redisProxy, lab, db, dbUrl } = rig);
});

after(async () => {
  for (const w of workers) if (alive(w)) w.child.kill('SIGKILL');
  await Promise.all(workers.map((w) => w.exited));
  await rig?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** The workers' environment: through the proxies, short timeouts and lock so faults are noticed quickly. */
function workerEnv(): Record<string, string> {
  return {
    ...rig!.proxiedEnv,
    MAILCENSUS_QUEUE_PREFIX: 'mcchaos',
    MAILCENSUS_DNS_TIMEOUT_MS: '1500',
    MAILCENSUS_DNS_RETRIES: '1',
    MAILCENSUS_DNS_QPS: '1000',
    MAILCENSUS_SMTP_CONNECT_TIMEOUT_MS: '3000',
    MAILCENSUS_SMTP_BANNER_TIMEOUT_MS: '6000',
    MAILCENSUS_SMTP_COMMAND_TIMEOUT_MS: '4000',
    MAILCENSUS_PER_IP_INTERVAL_MS: '50',
    MAILCENSUS_TRANSIENT_RETRIES: '1',
    MAILCENSUS_TRANSIENT_RETRY_DELAY_MS: '1000',
    MAILCENSUS_MAX_QUEUED: '80',
    MAILCENSUS_WORKER_CONCURRENCY: '6',
    MAILCENSUS_LOCK_DURATION_MS: '5000',
    MAILCENSUS_SHUTDOWN_TIMEOUT_MS: '15000',
    MAILCENSUS_JOB_TIMEOUT_MS: '20000',
    MAILCENSUS_LOG_LEVEL: 'info',
  };
}

/** The test's own view: straight to the private servers, never through the proxies. */
function directEnv(): Record<string, string> {
  return { ...workerEnv(), DATABASE_URL: dbUrl, REDIS_URL: redis.url };
}

const workers: WorkerProcess[] = [];

function spawnWorker(): WorkerProcess {
  const w = spawnWorkerProcess(workerEnv(), { keepLines: 20_000 });
  workers.push(w);
  return w;
}

/** The services under test are restarted on purpose: a check that throws meanwhile counts as not yet. */
const until = (what: string, cond: () => Promise<boolean>, ms: number) => waitUntil(what, cond, ms, { tolerateErrors: true });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Each diagnosis of a run as one comparable string per domain: verdict and every criterion's status and reason. */
async function diagnosesOf(runId: number): Promise<{ byDomain: Map<string, string>; rows: number }> {
  const rows = await db.db.selectFrom('diagnoses').selectAll().where('run_id', '=', runId).execute();
  const byDomain = new Map<string, string>();
  for (const r of rows) {
    const row = r as unknown as Record<string, string>;
    byDomain.set(r.domain, [r.verdict, ...CRITERIA.map((c) => `${c}=${row[c]}/${row[`${c}_reason`]}`)].join(' '));
  }
  return { byDomain, rows: rows.length };
}

async function withServices<T>(fn: (s: Services) => Promise<T>): Promise<T> {
  const s = await openServices(loadConfig(directEnv()), createLogger({ level: 'silent' }));
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

/**
 * One run of the survey with two workers; `inject(at)` gets a function that waits until a share of the run is
 * diagnosed. Asserts the run finishes with every domain diagnosed exactly once and, once the fault-free
 * reference exists, every diagnosis equal to it. Returns the run id and its seconds.
 */
async function chaosRun(name: string, inject: (ctx: { at: (share: number) => Promise<void>; runId: number }) => Promise<void>, timeoutMs = 240_000): Promise<{ runId: number; seconds: number }> {
  const started = Date.now();
  const pool = [spawnWorker(), spawnWorker()];
  const runId = await withServices(async (s) => (await createRun(s, SURVEY)).runId);
  const total = (await runProgress(db.db, runId)).total;
  assert.equal(total, DOMAINS);
  const at = (share: number) => until(`${Math.round(share * 100)}% of run ${runId}`, async () => (await runProgress(db.db, runId)).done >= share * total, timeoutMs);
  try {
    await inject({ at, runId });
    await until(`run ${runId} (${name}) to finish`, async () => (await runProgress(db.db, runId)).state === 'done', timeoutMs);
  } catch (err) {
    // What the workers said, for the failure report (MAILCENSUS_CHAOS_LOGS=DIR keeps every line).
    const keep = process.env.MAILCENSUS_CHAOS_LOGS;
    if (keep) workers.forEach((w, i) => writeFileSync(path.join(keep, `run${runId}-worker${i}.log`), w.lines.join('\n')));
    const tail = workers.flatMap((w, i) => w.lines.filter((l) => /"level":(40|50)/.test(l)).slice(-5).map((l) => `worker ${i}: ${l.slice(0, 300)}`));
    throw new Error(`${(err as Error).message}\n${tail.join('\n')}`);
  } finally {
    const running = workers.filter(alive);
    for (const w of running) w.child.kill('SIGTERM');
    const exits = await Promise.all(running.map((w) => w.exited));
    void pool;
    for (const e of exits) assert.deepEqual(e, { code: 0, signal: null }, `${name}: a worker did not stop cleanly on SIGTERM`);
  }
  const { byDomain, rows } = await diagnosesOf(runId);
  assert.equal(rows, DOMAINS, `${name}: one diagnosis per domain (${rows} rows for ${DOMAINS} domains)`);
  assert.equal(byDomain.size, DOMAINS, `${name}: every domain diagnosed`);
  if (reference) {
    const differ = [...reference].filter(([d, v]) => byDomain.get(d) !== v).map(([d, v]) => `${d}: fault-free ${v} | ${name} ${byDomain.get(d)}`);
    assert.deepEqual(differ, [], `${name}: diagnoses equal to the fault-free run`);
  }
  return { runId, seconds: (Date.now() - started) / 1000 };
}

const logged = (text: string) => workers.some((w) => w.lines.some((l) => l.includes(text)));

test('fault-free reference run', async () => {
  const r = await chaosRun('fault-free', async () => {});
  reference = (await diagnosesOf(r.runId)).byDomain;
  const verdicts = new Set([...reference.values()].map((v) => v.split(' ')[0]));
  assert.ok(verdicts.size >= 3, `the world gives varied verdicts (${[...verdicts].join(', ')})`);
});

test('a worker killed with SIGKILL mid-run (another one started)', async () => {
  await chaosRun('SIGKILL', async ({ at }) => {
    await at(0.2);
    const victim = workers.filter(alive)[0];
    victim.child.kill('SIGKILL');
    assert.equal((await victim.exited).signal, 'SIGKILL');
    spawnWorker();
  });
});

test('a worker stopped with SIGTERM mid-job exits 0 and loses nothing', async () => {
  await chaosRun('SIGTERM', async ({ at }) => {
    await at(0.25);
    const victim = workers.filter(alive)[0];
    victim.child.kill('SIGTERM');
    assert.deepEqual(await victim.exited, { code: 0, signal: null });
    assert.ok(victim.lines.some((l) => l.includes('"worker stopped"')), 'the worker said it stopped');
    spawnWorker();
  });
});

test('Redis restarted with its data lost (queues, locks, leases gone)', async () => {
  await chaosRun('Redis restart', async ({ at }) => {
    await at(0.3);
    await redis.restartEmpty(3000);
  });
  assert.ok(logged('LOST Redis') && logged('Redis is back'), 'the workers said they lost Redis and got it back');
});

test('Postgres restarted in immediate mode (a crash) mid-run', async () => {
  const firstWorker = workers.length;
  const { runId } = await chaosRun('Postgres restart', async ({ at }) => {
    await at(0.3);
    await pg.restartImmediate(2000);
  });
  assert.ok(logged('LOST Postgres') && logged('Postgres is back'), 'the workers said they lost Postgres and got it back');
  const status = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, [path.join(ROOT, 'bin/mailcensus.mjs'), 'status', '--run', String(runId), '--json'], { cwd: ROOT, env: { ...process.env, ...directEnv() }, timeout: 60_000 }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    ),
  );
  const health = JSON.parse(status).health;
  // Whether a job was inside a Postgres call during the 2 s outage is timing; what status must do is count
  // every retry this run's workers logged ("job failed, will retry"), none left out.
  const retriesLogged = workers.slice(firstWorker).flatMap((w) => w.lines).filter((l) => l.includes('"job failed, will retry"')).length;
  assert.ok(health.retries + health.abandoned >= retriesLogged, `status counts the ${retriesLogged} retries the workers logged (${JSON.stringify(health)})`);
  assert.equal(typeof health.secondsSinceLastDiagnosis, 'number');
});

test(`a ${STALL_MS / 1000} s network stall between the workers and Postgres`, { timeout: 480_000 }, async () => {
  await chaosRun('Postgres stall', async ({ at }) => {
    await at(0.3);
    await pgProxy.stallFor(STALL_MS);
  });
  assert.ok(logged('LOST Postgres'), 'the workers said they lost Postgres');
});

test(`a ${STALL_MS / 1000} s network stall between the workers and Redis`, { timeout: 480_000 }, async () => {
  await chaosRun('Redis stall', async ({ at }) => {
    await at(0.3);
    await redisProxy.stallFor(STALL_MS);
  });
  assert.ok(logged('LOST Redis'), 'the workers said they lost Redis');
});

// Its own deadline: two 60 s stalls plus the run exceed the suite's default of 5 minutes on a busy machine.
test('all of them in one run', { timeout: 720_000 }, async () => {
  await chaosRun(
    'all faults',
    async ({ at }) => {
      await at(0.1);
      const victim = workers.filter(alive)[0];
      victim.child.kill('SIGKILL');
      spawnWorker();
      await at(0.2);
      await redis.restartEmpty(3000);
      await at(0.35);
      await pg.restartImmediate(2000);
      await at(0.5);
      await pgProxy.stallFor(STALL_MS);
      await at(0.6);
      await redisProxy.stallFor(STALL_MS);
      await at(0.75);
      const term = workers.filter(alive)[0];
      term.child.kill('SIGTERM');
      assert.deepEqual(await term.exited, { code: 0, signal: null });
      spawnWorker();
    },
    290_000,
  );
});

