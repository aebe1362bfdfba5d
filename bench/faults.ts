// `npm run bench -- faults`: how long a survey run takes to recover from each fault of issue 13. A generated
// lab world (default 300 domains, DNS 20 ms, SMTP 30 ms, 40% shared MX) is surveyed by two `mailcensus worker`
// processes with the shipped defaults, against a PRIVATE Postgres and Redis (random ports, temp dirs; the
// shared servers are never touched) reached through TCP stall proxies: once without faults, then once per
// fault injected at 30% of the run. For each: the time from the fault (for a stall: from its start and from
// its end) to the first diagnosis written after it, the run's total time against the fault-free run, and
// that every domain was diagnosed exactly once with the fault-free run's verdicts and criteria.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, loadavg, cpus } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import type { DbHandle } from '../lib/db.ts';
import { loadConfig } from '../lib/config.ts';
import { CRITERIA, type Criterion } from '../lib/criteria.ts';
import { createLogger } from '../workers/logger.ts';
import { openServices } from '../workers/setup.ts';
import { createRun, runProgress } from '../workers/run.ts';
import { startFaultRig, type FaultRig } from '../test/helpers/fault-rig.ts';
import { spawnCli, type Spawned } from './lib/proc.ts';
import type { BenchArgs } from './lib/args.ts';
import { machine, updateSection } from './_report.ts';

interface FaultResult {
  fault: string;
  seconds: number;
  /** Fault start → first diagnosis written after it (s). */
  firstAfterFault: number | null;
  /** For stalls: end of the stall → first diagnosis written after it (s). */
  firstAfterResume: number | null;
  ok: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond().catch(() => false)) return;
    await sleep(250);
  }
  throw new Error(`bench faults: timed out after ${ms} ms waiting for ${what}`);
}

async function comparable(db: DbHandle, runId: number): Promise<Map<string, string>> {
  const rows = await db.db.selectFrom('diagnoses').selectAll().where('run_id', '=', runId).execute();
  const m = new Map<string, string>();
  for (const r of rows) {
    const v = [r.verdict, ...CRITERIA.map((c) => `${r[c]}/${r[`${c}_reason` as `${Criterion}_reason`]}`)].join(' ');
    m.set(r.domain, m.has(r.domain) ? `${m.get(r.domain)} DUPLICATE` : v);
  }
  return m;
}

async function firstDiagnosisAfter(db: DbHandle, runId: number, at: number): Promise<number | null> {
  const r = await sql<{ t: Date | null }>`SELECT min(created_at) AS t FROM diagnoses WHERE run_id = ${runId} AND created_at > ${new Date(at)}`.execute(db.db);
  const t = r.rows[0]?.t;
  return t ? (new Date(t).getTime() - at) / 1000 : null;
}

export async function run(args: BenchArgs): Promise<void> {
  const domains = Number(args.domains ?? 300);
  const stallMs = Number(args['stall-ms'] ?? 60_000);
  const dir = mkdtempSync(path.join(tmpdir(), 'mailcensus-bench-faults-'));
  const workers: Spawned[] = [];
  let rig: FaultRig | undefined;
  try {
    rig = await startFaultRig({
      dir,
      database: 'faults',
      survey: 'faults',
      world: { domains, sharedMxShare: 0.4, providers: 5, dnsLatencyMs: 20, smtpRttMs: 30, seed: 7 },
      poolMax: 3,
    });
    const { pg, redis, pgProxy, redisProxy, db, dbUrl } = rig;
    // The shipped defaults, except where the machine is: the lab, the private servers behind the proxies.
    const workerEnv = {
      ...rig.proxiedEnv,
      MAILCENSUS_QUEUE_PREFIX: 'mcbenchfaults',
      MAILCENSUS_LOG_LEVEL: 'warn',
      // Shorter than the shipped 60 s, so the transient retries of the world's faulty domains do not
      // dominate every run; recovery does not depend on it.
      MAILCENSUS_TRANSIENT_RETRY_DELAY_MS: '5000',
    };
    const spawnWorker = () => {
      const w = spawnCli(`worker-${workers.length + 1}`, ['worker'], { env: { ...process.env, ...workerEnv }, logDir: dir });
      workers.push(w);
      return w;
    };
    const alive = () => workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
    const direct = loadConfig({ ...workerEnv, DATABASE_URL: dbUrl, REDIS_URL: redis.url });

    let reference: Map<string, string> | null = null;
    let baseSeconds = 0;
    const results: FaultResult[] = [];
    const faults: [string, (at: () => number) => Promise<{ resumedAt?: number }>][] = [
      ['none (fault-free)', async () => ({})],
      ['worker SIGKILL (another started)', async () => {
        alive()[0].child.kill('SIGKILL');
        spawnWorker();
        return {};
      }],
      ['worker SIGTERM mid-job (another started)', async () => {
        const w = alive()[0];
        w.child.kill('SIGTERM');
        await w.exited;
        spawnWorker();
        return {};
      }],
      ['Redis restarted, data lost', async () => {
        await redis.restartEmpty(3000);
        return {};
      }],
      ['Postgres restarted (immediate)', async () => {
        await pg.restartImmediate(2000);
        return {};
      }],
      [`${stallMs / 1000} s stall workers↔Postgres`, async () => {
        await pgProxy.stallFor(stallMs);
        return { resumedAt: Date.now() };
      }],
      [`${stallMs / 1000} s stall workers↔Redis`, async () => {
        await redisProxy.stallFor(stallMs);
        return { resumedAt: Date.now() };
      }],
    ];
    for (const [fault, inject] of faults) {
      const started = Date.now();
      spawnWorker();
      spawnWorker();
      const s = await openServices(direct, createLogger({ level: 'silent' }));
      const { runId, total } = await createRun(s, 'faults');
      await s.close();
      await until('30% of the run', async () => (await runProgress(db.db, runId)).done >= 0.3 * total, 30 * 60_000);
      const faultAt = Date.now();
      const { resumedAt } = await inject(() => faultAt);
      await until('the run to finish', async () => (await runProgress(db.db, runId)).state === 'done', 30 * 60_000);
      const seconds = (Date.now() - started) / 1000;
      for (const w of alive()) w.child.kill('SIGTERM');
      await Promise.all(workers.map((w) => w.exited));
      const got = await comparable(db, runId);
      let ok = 'fault-free run';
      if (reference) {
        const differ = [...reference].filter(([d, v]) => got.get(d) !== v).length;
        ok = got.size === reference.size && differ === 0 ? `all ${got.size} equal, once each` : `${differ} differ of ${reference.size} (${got.size} diagnosed)`;
      } else {
        reference = got;
        baseSeconds = seconds;
      }
      const r: FaultResult = {
        fault,
        seconds,
        firstAfterFault: reference === got ? null : await firstDiagnosisAfter(db, runId, faultAt),
        firstAfterResume: resumedAt ? await firstDiagnosisAfter(db, runId, resumedAt) : null,
        ok,
      };
      results.push(r);
      console.log(`  ${fault}: ${seconds.toFixed(0)} s; first diagnosis ${r.firstAfterFault?.toFixed(1) ?? '-'} s after the fault${r.firstAfterResume !== null ? `, ${r.firstAfterResume.toFixed(1)} s after the stall ended` : ''}; ${ok}`);
    }
    const f = (n: number | null) => (n === null ? '–' : n.toFixed(1));
    const body = [
      '## faults (recovery time)',
      '',
      `\`npm run bench -- faults${domains !== 300 ? ` --domains ${domains}` : ''}${stallMs !== 60_000 ? ` --stall-ms ${stallMs}` : ''}\` on ${machine()}, ${new Date().toISOString().slice(0, 10)}.`,
      `A generated world of ${domains} domains (\`lab generate --domains ${domains} --shared-mx-share 0.4 --dns-latency 20 --smtp-latency 30 --seed 7\`),`,
      'two `mailcensus worker` processes with the shipped defaults (20 jobs per queue, 30 s locks, 10 min job watchdog;',
      'only the transient-retry delay is 5 s instead of 60 s),',
      'a private Postgres and Redis behind TCP stall proxies; each fault injected once, at 30% of its run.',
      `Load average at the end: ${loadavg()[0].toFixed(1)} on ${cpus().length} cores; on a shared machine the run times vary by a minute or more`,
      'between runs, so compare the recovery columns, not small differences in run time.',
      '',
      '| fault | run time (s) | vs fault-free | first diagnosis after the fault (s) | after the stall ended (s) | diagnoses |',
      '|---|---:|---:|---:|---:|---|',
      ...results.map((r) => `| ${r.fault} | ${r.seconds.toFixed(0)} | ${r === results[0] ? '–' : `${r.seconds >= baseSeconds ? '+' : '−'}${Math.abs(r.seconds - baseSeconds).toFixed(0)} s`} | ${f(r.firstAfterFault)} | ${f(r.firstAfterResume)} | ${r.ok} |`),
      '',
      '"First diagnosis after the fault" counts any diagnosis written after it (steps that needed only the other',
      'service go on during a stall); for a stall, the recovery is the time after it ended.',
      'A worker\'s death costs little: the other worker goes on at once, and the dead one\'s jobs come back when',
      'their 30 s locks expire. After a Redis loss the feeder refills the queue from Postgres and its sweep',
      'finds the domains whose jobs were lost; after a Postgres restart jobs fail, retry with backoff and the',
      'pool reconnects. During a stall nothing is written; when it ends the held connections deliver again.',
    ].join('\n');
    await updateSection('faults', body);
  } finally {
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    await Promise.all(workers.map((w) => w.exited));
    await rig?.stop();
    if (!args.keep) rmSync(dir, { recursive: true, force: true });
  }
}
