// Survey runs end to end: real Postgres, real Redis, the lab's DNS and SMTP servers, and worker PROCESSES
// (`node bin/mailcensus.mjs worker`). Proves: a 200-domain survey ends with exactly one diagnosis per domain;
// two workers share a run; each shared MX IP is connected once per run and no IP ever sees two sessions at
// once (counted from the lab hosts' connection logs); SIGTERM exits 0; a worker killed with SIGKILL and a
// Redis restart mid-run lose nothing and duplicate nothing.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { labWithDatabaseForFile } from './helpers/lab.ts';
import { loadConfig } from '../lib/config.ts';
import { createLogger } from '../workers/logger.ts';
import { openServices, type Services } from '../workers/setup.ts';
import { createRun, runProgress } from '../workers/run.ts';
import { until } from './helpers/until.ts';
import { TEST_REDIS_URL, deleteQueueKeys, insertSurvey, newQueuePrefix, waitForRunDone } from './helpers/survey-run.ts';
import { freePort, portOpen } from './helpers/private-services.ts';
import { FAST_LAB_WORKER_ENV } from './helpers/lab-env.ts';
import { killIfAlive, spawnWorker as spawnWorkerProcess, type WorkerProcess } from './helpers/worker-process.ts';

const SHARED = { p1: '127.150.0.1', p2: '127.150.0.2', p3: '127.150.0.3' };

function world(): object {
  const shared = (id: string, n: number) => ({
    count: n,
    name: `${id}-{i}.test`,
    template: { mx: [id], spf: `v=spf1 ip4:${SHARED[id as keyof typeof SHARED]} -all`, dkim: { selectors: ['s1'] } },
  });
  return {
    version: 1,
    name: 'workers-200',
    observedAt: '2021-06-30T00:00:00Z',
    hosts: Object.fromEntries(Object.entries(SHARED).map(([id, ip]) => [id, { ip, name: `mx.${id}.test` }])),
    domains: [],
    populations: [
      shared('p1', 60),
      shared('p2', 50),
      shared('p3', 40),
      { count: 40, name: 'own-{i}.test', template: { mx: [{}], spf: 'v=spf1 mx -all' } },
      { count: 5, name: 'refuse-{i}.test', template: { mx: [{ smtp: { behavior: 'refuse' } }] } },
      { count: 5, name: 'tempfail-{i}.test', template: { mx: [{ smtp: { behavior: 'tempfail' } }] } },
    ],
  };
}

const setup = labWithDatabaseForFile(world(), 'mc-workers-');

function env(redisUrl: string, prefix: string): Record<string, string> {
  return setup.workerEnv(redisUrl, prefix, {
    ...FAST_LAB_WORKER_ENV,
    MAILCENSUS_DNS_QPS: '500',
    MAILCENSUS_PER_IP_INTERVAL_MS: '100',
    MAILCENSUS_TRANSIENT_RETRIES: '1',
    MAILCENSUS_TRANSIENT_RETRY_DELAY_MS: '300',
    MAILCENSUS_MAX_QUEUED: '60',
    MAILCENSUS_LOCK_DURATION_MS: '4000',
    MAILCENSUS_LOG_LEVEL: 'debug',
  });
}

const children: WorkerProcess[] = [];
function spawnWorker(e: Record<string, string>): WorkerProcess {
  const w = spawnWorkerProcess(e);
  children.push(w);
  return w;
}
after(async () => {
  for (const c of children) killIfAlive(c);
});

const diagnosedBy = (w: WorkerProcess) => w.lines.filter((l) => l.includes('"domain diagnosed"')).length;


async function open(redisUrl: string, prefix: string): Promise<Services> {
  const config = loadConfig(env(redisUrl, prefix));
  return openServices(config, createLogger({ level: 'silent' }));
}

async function survey(name: string): Promise<void> {
  await insertSurvey(setup.tdb.db, name, setup.lab.world.domains.map((d) => d.name));
}

async function assertOnePerDomain(runId: number): Promise<void> {
  const rows = await setup.tdb.db.selectFrom('diagnoses').select(['domain', (eb) => eb.fn.countAll<string>().as('n')]).where('run_id', '=', runId).groupBy('domain').execute();
  assert.equal(rows.length, 200, 'every domain diagnosed');
  assert.ok(rows.every((r) => Number(r.n) === 1), 'no domain diagnosed twice');
}

/** Max simultaneous sessions per host IP, from the lab's connect/close log (in arrival order). */
function maxConcurrentPerIp(since: number): Map<string, number> {
  const open = new Map<string, number>();
  const max = new Map<string, number>();
  for (const e of setup.lab.smtp.log()) {
    if (Date.parse(e.at) < since) continue;
    if (e.event === 'connect') {
      const n = (open.get(e.ip) ?? 0) + 1;
      open.set(e.ip, n);
      max.set(e.ip, Math.max(max.get(e.ip) ?? 0, n));
    } else if (e.event === 'close') open.set(e.ip, Math.max(0, (open.get(e.ip) ?? 0) - 1));
  }
  return max;
}

test('two worker processes share a 200-domain lab run: one diagnosis per domain, shared MX IPs connected once, one session per IP at a time, SIGTERM exits 0', async () => {
  const prefix = newQueuePrefix();
  const redisUrl = TEST_REDIS_URL;
  await survey('lab-200');
  const before = Object.fromEntries(Object.values(SHARED).map((ip) => [ip, setup.lab.smtp.connections(ip)]));
  const since = Date.now();
  const w1 = spawnWorker(env(redisUrl, prefix));
  const w2 = spawnWorker(env(redisUrl, prefix));
  const s = await open(redisUrl, prefix);
  try {
    const run = await createRun(s, 'lab-200');
    assert.equal(run.total, 200);
    await waitForRunDone(setup.tdb.db, run.runId, 240_000);
    await assertOnePerDomain(run.runId);
    for (const ip of Object.values(SHARED)) assert.equal(setup.lab.smtp.connections(ip) - before[ip], 1, `shared MX ${ip} connected once`);
    for (const [ip, n] of maxConcurrentPerIp(since)) assert.equal(n, 1, `${ip} saw ${n} sessions at once`);
    assert.ok(diagnosedBy(w1) > 0 && diagnosedBy(w2) > 0, `both workers diagnosed domains (${diagnosedBy(w1)}, ${diagnosedBy(w2)})`);
    const p = await runProgress(setup.tdb.db, run.runId);
    assert.ok((p.verdicts.incomplete ?? 0) >= 10, 'refusing and tempfailing MX hosts end as incomplete, not NG');
    assert.equal((p.config as { ehloName: string }).ehloName, loadConfig(env(redisUrl, prefix)).ehloName);
  } finally {
    await s.close();
    w1.child.kill('SIGTERM');
    w2.child.kill('SIGTERM');
  }
  const [e1, e2] = await Promise.all([w1.exited, w2.exited]);
  await deleteQueueKeys(redisUrl, prefix);
  assert.deepEqual(e1, { code: 0, signal: null });
  assert.deepEqual(e2, { code: 0, signal: null });
  assert.ok(w1.lines.some((l) => l.includes('"worker stopped"')));
});

function startRedis(port: number, dir: string): ChildProcess {
  return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--dir', dir, '--maxmemory-policy', 'noeviction'], {
    stdio: 'ignore',
  });
}

async function redisUp(port: number): Promise<void> {
  await until(`redis on ${port}`, () => portOpen(port), 20_000);
}

test('a worker killed with SIGKILL and a Redis restart mid-run still end with every domain diagnosed exactly once', async () => {
  const port = await freePort();
  const dir = path.join(setup.lab.dir, 'redis');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  let redis = startRedis(port, dir);
  const stopRedis = async () => {
    const r = redis;
    if (r.exitCode !== null || r.signalCode !== null) return;
    const exited = new Promise((res) => r.on('exit', res));
    r.kill('SIGTERM');
    await exited;
  };
  const redisUrl = `redis://127.0.0.1:${port}`;
  const prefix = newQueuePrefix();
  try {
    await redisUp(port);
    // Each domain's probe is slower here, so the kills land mid-run.
    await survey('lab-faults');
    const e = { ...env(redisUrl, prefix), MAILCENSUS_WORKER_CONCURRENCY: '3', MAILCENSUS_PER_IP_INTERVAL_MS: '100' };
    const victim = spawnWorker(e);
    const survivor = spawnWorker(e);
    const s = await open(redisUrl, prefix);
    let runId: number;
    try {
      runId = (await createRun(s, 'lab-faults')).runId;
    } finally {
      await s.close();
    }
    const done = async () => (await runProgress(setup.tdb.db, runId)).done;
    await until('a quarter of the run', async () => (await done()) >= 50, 120_000);
    victim.child.kill('SIGKILL');
    const replacement = spawnWorker(e);
    await until('half of the run', async () => (await done()) >= 100, 120_000);
    await stopRedis();
    await new Promise((r) => setTimeout(r, 1500));
    redis = startRedis(port, dir);
    await redisUp(port);
    await waitForRunDone(setup.tdb.db, runId, 240_000, 'the run to finish after the faults');
    await assertOnePerDomain(runId);
    const probed = await setup.tdb.db.selectFrom('probed_ips').select(['ip']).where('run_id', '=', runId).execute();
    assert.equal(new Set(probed.map((p) => p.ip)).size, probed.length, 'one probed_ips row per IP');
    assert.equal((await victim.exited).signal, 'SIGKILL');
    for (const w of [survivor, replacement]) w.child.kill('SIGTERM');
    for (const w of [survivor, replacement]) assert.equal((await w.exited).code, 0);
  } finally {
    for (const c of children) killIfAlive(c);
    await stopRedis();
  }
});
