// The worker process: BullMQ workers for the three queues of jobs.ts, and a maintenance loop that keeps runs
// fed and marks them done. Start as many as you like, on as many machines as share Redis and Postgres.
//
// A domain job never blocks a worker slot while it waits for the probe of a shared MX IP: it stores its step
// in its own data (job.updateData), enqueues the probes it misses (deduplicated by job id per run), moves
// itself to the delayed set and runs again later, reading `probed_ips`. So an MX shared by 10,000 domains is
// probed once per run, and every domain that uses it reuses the result.
import { Worker, DelayedError, type Job, type Processor } from 'bullmq';
import { sql } from 'kysely';
import type { Redis as IORedis } from 'ioredis';
import type pino from 'pino';
import type { Config } from '../lib/config.ts';
import { insertScanDiagnoses, type Diagnosis, type ScanDiagnosis } from '../lib/diagnosis.ts';
import type { Db } from '../lib/db.ts';
import { createBatcher } from './batch.ts';
import type { Criterion } from '../lib/criteria.ts';
import { QUEUES, probeJobId, type DomainJob, type DomainStep, type JobName, type JobPayloads, type ProbeIpJob, type ScheduledRunJob, type TestMailJob } from './jobs.ts';
import { JOB_OPTIONS, type Queues } from './queues.ts';
import { redisDnsLimiter, redisIpGate } from './limits.ts';
import { activeRunIds, completeIfDone, createRun, measurementConfig, optOutSets, topUp, type FeederContext, type RunSettings } from './run.ts';
import type { DiagnoseApi, WorkerDiagnoseApi } from './diagnose-api.ts';
import type { WorkerContext } from './context.ts';

/** Criteria measured from an MX IP's probe (SMTP session, PTR/FCrDNS, DNSBL): a transient there re-probes. */
const IP_LEVEL: Criterion[] = ['open_relay', 'tls_receive', 'reverse_dns', 'dnsbl'];
const PENDING = new Set(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'paused']);
/** How often a domain may find one of its probes gone (failed for good, lost) and re-enqueue it. */
const MAX_PROBE_REQUEUES = 5;
/**
 * A domain waiting for its probes asks BullMQ for their state (to find one that failed for good or was lost)
 * only after waiting this long: until then a probe it enqueued is running or about to (issue 18: a state
 * query per missing IP and wait was a Redis command per domain).
 */
const PROBE_STATE_AFTER_MS = 10_000;
/** A running run's row is read again after this long (its state: a cancelled run stops within it). */
const RUN_ROW_TTL_MS = 2000;

/** One MX IP's probe result of a run, for the domains that wait for it. */
export interface ProbeResult {
  ip: string;
  observations: unknown;
  attempt: number;
}

/**
 * The probe results of many (run, IP) pairs in one query: every domain job of a worker asking within a few
 * milliseconds shares the round trip (the batcher below).
 */
export async function probeResults(db: Db, wanted: { runId: number; ips: string[] }[]): Promise<ProbeResult[][]> {
  const pairs = new Map<string, { runId: number; ip: string }>();
  for (const w of wanted) for (const ip of w.ips) pairs.set(`${w.runId} ${ip}`, { runId: w.runId, ip });
  if (pairs.size === 0) return wanted.map(() => []);
  const list = [...pairs.values()];
  const rows = await sql<ProbeResult & { run_id: number }>`
    SELECT p.run_id, host(p.ip) AS ip, p.observations, p.attempt
      FROM unnest(${sql.val(list.map((p) => p.runId))}::int[], ${sql.val(list.map((p) => p.ip))}::inet[]) AS w(run_id, ip)
      JOIN probed_ips p ON p.run_id = w.run_id AND p.ip = w.ip`.execute(db);
  const found = new Map(rows.rows.map((r) => [`${r.run_id} ${r.ip}`, r] as const));
  return wanted.map((w) => w.ips.flatMap((ip) => {
    const r = found.get(`${w.runId} ${ip}`);
    return r ? [{ ip: r.ip, observations: r.observations, attempt: r.attempt }] : [];
  }));
}

/** Whether an IP-level criterion (open relay, receive TLS, reverse DNS, DNSBL) is among the transient reasons. */
function ipLevelTransient(d: Diagnosis, transient: string[]): boolean {
  // transientUnknowns() returns `criterion:reason` (or bare reasons): accept both.
  const set = new Set(transient);
  return IP_LEVEL.some((c) => d.criteria[c].status === 'unknown' && (set.has(`${c}:${d.criteria[c].reason}`) || set.has(d.criteria[c].reason)));
}

export interface StartOptions {
  /** Domain jobs at once. @defaultValue config.workerConcurrency */
  concurrency?: number;
  /** Probe jobs (SMTP sessions) at once: they mostly wait on slow servers (issue 18). @defaultValue config.probeConcurrency */
  probeConcurrency?: number;
  /**
   * Diagnoses are written in batches (several domains' rows and MX rows in one statement): a batch goes after
   * this long, or at `writeBatchSize` diagnoses, or when the worker stops. A job completes only once its
   * diagnosis is written; a failed batch fails (and so retries) every job in it. @defaultValue 50
   */
  writeBatchMs?: number;
  /** @defaultValue 100 */
  writeBatchSize?: number;
  /** Maintenance (feeder top-up, completion) period. @defaultValue min(5000, lockDurationMs) */
  maintenanceMs?: number;
}

export interface RunningWorker {
  workers: Worker[];
  /** Lets active jobs finish for up to `timeoutMs`, then stops (jobs still active are retried elsewhere). */
  close(timeoutMs?: number): Promise<{ graceful: boolean }>;
}

interface RunInfo {
  state: string;
  surveyId: number;
  config: Readonly<Config>;
  deps: unknown;
  optOutIps: Set<string>;
}

/** Sets up the probe dependencies of a worker: the Redis-shared DNS qps bucket and per-IP gate. */
export function createProbeDepsFor<Deps>(diag: DiagnoseApi<Deps, unknown, unknown>, config: Readonly<Config>, redis: IORedis, logger: pino.Logger): Deps {
  const dnsLimiter = redisDnsLimiter(redis, { prefix: config.queuePrefix, qps: config.dnsQps });
  const ipGate = redisIpGate(redis, {
    prefix: config.queuePrefix,
    concurrency: config.perIpConcurrency,
    intervalMs: config.perIpIntervalMs,
    // Long enough for a whole session at the configured timeouts; renewed while it runs anyway.
    leaseMs: Math.max(30_000, config.smtpConnectTimeoutMs),
    onLeaseLost: (ip) => logger.warn({ ip }, 'per-IP lease lost (Redis restarted or this process stalled)'),
  });
  return diag.createProbeDeps(config as Config, { dnsLimiter, ipGate });
}

export class JobTimeoutError extends Error {
  constructor(ms: number) {
    super(`job step still running after ${ms} ms (MAILCENSUS_JOB_TIMEOUT_MS): abandoned, the job will be retried`);
    this.name = 'JobTimeoutError';
  }
}

/** Redis key of a run's counters (infrastructure retries, abandoned steps), for `status`. */
export function runStatsKey(prefix: string, runId: number): string {
  return `${prefix}:mc:run-stats:${runId}`;
}

export function startWorker(
  ctx: WorkerContext & { queues: Queues; diag: WorkerDiagnoseApi; workerRedis?: IORedis },
  options: StartOptions = {},
): RunningWorker {
  const { db, config, redis, logger, queues, diag } = ctx;
  const feeder: FeederContext = { db, queues, redis, config, logger };
  const runs = new Map<number, { info: RunInfo; at: number }>();

  /**
   * The run's state and its measurement config and probe deps (cached: they never change). A running run's
   * row is read again after RUN_ROW_TTL_MS (so a cancel stops the run's jobs within that), any other state
   * every time (a resumed run goes on at once).
   */
  async function runInfo(runId: number): Promise<RunInfo | null> {
    const cached = runs.get(runId);
    if (cached && cached.info.state === 'running' && Date.now() - cached.at < RUN_ROW_TTL_MS) return cached.info;
    const row = await db.selectFrom('runs').select(['state', 'survey_id', 'config']).where('id', '=', runId).executeTakeFirst();
    if (!row) return null;
    if (cached) {
      const info = { ...cached.info, state: row.state };
      runs.set(runId, { info, at: Date.now() });
      return info;
    }
    const stored = row.config as Partial<RunSettings>;
    const runConfig = measurementConfig(config, stored);
    const info: RunInfo = {
      state: row.state,
      surveyId: row.survey_id,
      config: runConfig,
      deps: createProbeDepsFor(diag, runConfig, redis, logger),
      optOutIps: optOutSets(runConfig.optOut).ips,
    };
    if (runs.size > 100) runs.clear();
    runs.set(runId, { info, at: Date.now() });
    return info;
  }

  const writeBatchMs = options.writeBatchMs ?? 50;
  const diagnosisWriter = createBatcher<ScanDiagnosis, boolean>({
    maxItems: options.writeBatchSize ?? 100,
    maxWaitMs: writeBatchMs,
    run: (items) => insertScanDiagnoses(db, items),
  });
  const probeReader = createBatcher<{ runId: number; ips: string[] }, ProbeResult[]>({
    maxItems: 500,
    maxWaitMs: 20,
    run: (items) => probeResults(db, items),
  });
  /** Probe jobs this process enqueued lately: a domain needing the same IP does not enqueue it again. */
  const probesAdded = new Map<string, number>();
  const PROBE_ADDED_FOR_MS = 60_000;
  let probesSweptAt = 0;
  /**
   * Was `id` enqueued by this process within the last minute (as of `now`)? Older entries count as absent here
   * and are dropped by a sweep at most once a second: sweeping the whole map at every domain step (thousands
   * of entries, a few hundred steps a second) was most of what a worker allocated with 2,500 sessions in
   * flight (issue 18, `npm run bench -- sessions`: 7 of 11 GB sampled in 90 s).
   */
  function addedLately(id: string, now: number): boolean {
    if (now - probesSweptAt >= 1000) {
      probesSweptAt = now;
      probesAdded.forEach((at, key) => {
        if (now - at > PROBE_ADDED_FOR_MS) probesAdded.delete(key);
      });
    }
    const at = probesAdded.get(id);
    return at !== undefined && now - at <= PROBE_ADDED_FOR_MS;
  }

  const lastTopUp = new Map<number, number>();
  async function maybeTopUp(runId: number): Promise<void> {
    const now = Date.now();
    if (now - (lastTopUp.get(runId) ?? 0) < 1000) return;
    lastTopUp.set(runId, now);
    await topUp(feeder, runId).catch((err) => logger.warn({ runId, err: (err as Error).message }, 'feeder top-up failed'));
  }

  /** Jobs whose processor the watchdog abandoned: their late steps must not touch the job any more. */
  const abandoned = new WeakSet<Job>();
  function assertLive(job: Job): void {
    if (abandoned.has(job)) throw new JobTimeoutError(config.jobTimeoutMs);
  }

  /** Moves the job to the delayed set; its data is written only when the step changed in what it keeps. */
  async function waitAgain(job: Job, token: string | undefined, step: DomainStep, delayMs: number): Promise<never> {
    assertLive(job);
    const stored = (job.data as DomainJob).step;
    if (!stored || stored.phase !== step.phase || stored.attempt !== step.attempt || stored.requeues !== step.requeues || stored.waitingSince !== step.waitingSince) {
      await job.updateData({ ...(job.data as DomainJob), step });
    }
    await job.moveToDelayed(Date.now() + delayMs, token);
    throw new DelayedError();
  }

  const processDomain = async (job: Job<DomainJob>, token?: string): Promise<unknown> => {
    const { runId, domain } = job.data;
    const run = await runInfo(runId);
    if (!run || run.state !== 'running') return { skipped: run?.state ?? 'no such run' };
    // Only a job that ran before (failed, or stalled with its worker) can find its diagnosis written already;
    // a first run would pay a round trip for nothing (and the insert is idempotent anyway).
    if (job.attemptsMade > 0 || job.stalledCounter > 0) {
      const existing = await db.selectFrom('diagnoses').select('id').where('run_id', '=', runId).where('domain', '=', domain).executeTakeFirst();
      if (existing) return { skipped: 'diagnosed' };
    }

    let step: DomainStep = job.data.step ?? { phase: 'dns', attempt: 0, waits: 0, startedAt: Date.now() };
    if (step.phase === 'dns' || step.dns === undefined) {
      const dns = await diag.collectDomain(domain, run.deps, job.data.dkimSelectors ? { dkimSelectors: job.data.dkimSelectors } : {});
      const seen = new Set<string>();
      const targets = diag.mxTargets(dns).filter((t) => {
        if (run.optOutIps.has(t.ip) || seen.has(t.ip)) return false;
        seen.add(t.ip);
        return true;
      });
      // Kept in the job's data only if it has to wait (waitAgain): a domain whose probes are done goes on.
      step = { ...step, phase: 'probes', dns, targets, waits: 0, requeues: 0, waitingSince: Date.now() };
    }
    const targets = step.targets ?? [];
    const need = step.need ?? {};
    const have = new Map<string, unknown>();
    if (targets.length > 0) {
      const rows = await probeReader.add({ runId, ips: [...new Set(targets.map((t) => t.ip))] });
      for (const r of rows) if (r.attempt >= (need[r.ip] ?? 0)) have.set(r.ip, r.observations);
    }
    const missing = targets.filter((t) => !have.has(t.ip));
    if (missing.length > 0) {
      let requeued = false;
      const waited = Date.now() - (step.waitingSince ?? Date.now());
      const toAdd: { name: 'probe-ip'; data: ProbeIpJob; opts: { jobId: string } }[] = [];
      const now = Date.now();
      for (const m of missing) {
        const attempt = need[m.ip] ?? 0;
        const id = probeJobId(runId, m.ip, attempt);
        if (waited >= PROBE_STATE_AFTER_MS) {
          const state = await queues.probes.getJobState(id);
          if (PENDING.has(state)) continue;
          if (state === 'completed' || state === 'failed') {
            // Finished without a result row (its run was cancelled, or it failed for good): run it again.
            requeued = true;
            await (await queues.probes.getJob(id))?.remove().catch(() => {});
          }
        } else if (addedLately(id, now)) {
          continue; // enqueued by this process a moment ago (adding it again would be a no-op)
        }
        const hostnames = targets.filter((t) => t.ip === m.ip).map((t) => t.host);
        toAdd.push({ name: 'probe-ip', data: { runId, ip: m.ip, hostnames, attempt }, opts: { ...JOB_OPTIONS['probe-ip'], jobId: id } });
      }
      if (toAdd.length > 0) {
        // Marked before the call, so the jobs of this process that need the same IP meanwhile do not add it too.
        for (const a of toAdd) probesAdded.set(a.opts.jobId, now);
        // Adding an id that exists is a no-op in BullMQ: probes other domains enqueued stay as they are.
        await queues.probes.addBulk(toAdd).catch((err: unknown) => {
          for (const a of toAdd) probesAdded.delete(a.opts.jobId);
          throw err;
        });
      }
      const requeues = (step.requeues ?? 0) + (requeued ? 1 : 0);
      if (requeues <= MAX_PROBE_REQUEUES) {
        const waits = step.waits + 1;
        // Probes usually finish within seconds; back off with the time waited (about half of it, 0.75 to
        // 15 s) so 10,000 waiting domains stay cheap, without writing a counter into the job at every wait.
        return waitAgain(job, token, { ...step, waits, requeues }, Math.min(15_000, Math.max(750, waited / 2)));
      }
      logger.warn({ runId, domain, missing: missing.map((m) => m.ip) }, 'judging without the probes that kept failing');
    }

    const observedAt = run.config.clock ?? new Date();
    const ips: Record<string, unknown> = Object.fromEntries(have);
    const diagnosis: Diagnosis = diag.judgeScan(domain, step.dns, ips, observedAt);
    const transient = diag.transientUnknowns(diagnosis);
    if (transient.length > 0 && step.attempt < run.config.transientRetries) {
      // Re-probe only the IPs whose own observation is transient (a shared MX that answered is not asked
      // again because this domain's DNS timed out); DNS is collected again in any case.
      const nextNeed = { ...need };
      for (const [ip, obs] of have) {
        // Judge the domain as if every MX IP had answered like this one: the result reflects this IP alone
        // (judging it without the others would report them as not probed).
        const alone = diag.judgeScan(domain, step.dns, Object.fromEntries(targets.map((t) => [t.ip, obs])), observedAt);
        if (ipLevelTransient(alone, diag.transientUnknowns(alone))) nextNeed[ip] = step.attempt + 1;
      }
      const delay = run.config.transientRetryDelayMs * 2 ** step.attempt;
      logger.debug({ runId, domain, transient, attempt: step.attempt + 1, delay }, 'transient unknowns: retrying later');
      return waitAgain(job, token, { phase: 'dns', attempt: step.attempt + 1, need: nextNeed, waits: 0, requeues: 0, startedAt: step.startedAt }, delay);
    }

    assertLive(job);
    const inserted = await diagnosisWriter.add({ diagnosis, runId, surveyId: run.surveyId });
    logger.debug(
      { runId, domain, verdict: diagnosis.verdict.verdict, attempt: step.attempt, waits: step.waits, inserted, mx: targets.length, ms: step.startedAt ? Date.now() - step.startedAt : undefined },
      'domain diagnosed',
    );
    await maybeTopUp(runId);
    return { verdict: diagnosis.verdict.verdict, inserted };
  };

  const processProbe = async (job: Job<ProbeIpJob>): Promise<unknown> => {
    const { runId, ip, hostnames, attempt } = job.data;
    const run = await runInfo(runId);
    if (!run || run.state !== 'running') return { skipped: run?.state ?? 'no such run' };
    if (run.optOutIps.has(ip)) return { skipped: 'opted out' };
    // A probe job runs once per run and IP (its job id); only a job that ran before can find its result
    // stored already, and must then not open a second session to the IP.
    if (job.attemptsMade > 0 || job.stalledCounter > 0) {
      const existing = await db
        .selectFrom('probed_ips')
        .select('attempt')
        .where('run_id', '=', runId)
        .where(sql<boolean>`ip = ${ip}::inet`)
        .executeTakeFirst();
      if (existing && existing.attempt >= attempt) return { skipped: 'probed' };
    }
    const started = Date.now();
    const observations = await diag.observeIp(ip, hostnames, run.deps);
    await sql`
      INSERT INTO probed_ips (run_id, ip, hostnames, observations, probed_at, attempt)
      VALUES (${runId}, ${ip}::inet, ${sql.val(hostnames)}::text[], ${JSON.stringify(observations)}::text::jsonb, ${run.config.clock ?? new Date()}, ${attempt})
      ON CONFLICT (run_id, ip) WHERE run_id IS NOT NULL DO UPDATE
        SET hostnames = EXCLUDED.hostnames, observations = EXCLUDED.observations,
            probed_at = EXCLUDED.probed_at, attempt = EXCLUDED.attempt
        WHERE probed_ips.attempt < EXCLUDED.attempt`.execute(db);
    logger.debug({ runId, ip, attempt, ms: Date.now() - started }, 'ip probed');
    return { probed: true };
  };

  const processControl = async (job: Job<TestMailJob | ScheduledRunJob>, token?: string): Promise<unknown> => {
    const name = job.name as JobName;
    if (name === 'test-mail') {
      const { processTestMail } = await import('./test-mail.ts');
      const data = job.data as TestMailJob;
      const attempt = data.transientAttempt ?? 0;
      const r = await processTestMail(data, ctx, { retryTransient: attempt < config.transientRetries });
      if (r.transient) {
        // As for a domain: wait (without holding a worker slot), then diagnose the mail again.
        const delay = config.transientRetryDelayMs * 2 ** attempt;
        assertLive(job);
        await job.updateData({ ...data, transientAttempt: attempt + 1 });
        await job.moveToDelayed(Date.now() + delay, token);
        throw new DelayedError();
      }
      return { done: true, diagnosisId: r.diagnosisId };
    }
    if (name === 'scheduled-run') {
      const { survey } = job.data as ScheduledRunJob;
      // One run per firing, even if this job is retried after creating it.
      const created = await createRun(feeder, survey, { dedupeKey: `scheduled-${job.id}` });
      logger.info({ survey, runId: created.runId, total: created.total, created: created.created }, 'scheduled run started');
      return created;
    }
    throw new Error(`unknown job name "${job.name}" on the control queue`);
  };

  /**
   * The watchdog: a processor still running after `jobTimeoutMs` (a call that never returns — a half-open
   * connection, a server that stopped answering) is abandoned: the job fails with JobTimeoutError, so BullMQ
   * stops renewing its lock and retries it with backoff, and the slot is free again. Whatever the abandoned
   * processor still does later is harmless: it may not touch the job, and a diagnosis is written once per run
   * and domain whoever writes it.
   */
  function watched<T>(fn: (job: Job<T>, token?: string) => Promise<unknown>): Processor {
    return async (job: Job<T>, token?: string) => {
      let timer: NodeJS.Timeout | undefined;
      const work = fn(job, token);
      work.catch(() => {});
      try {
        return await Promise.race([
          work,
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => {
              abandoned.add(job);
              const runId = (job.data as { runId?: number })?.runId;
              logger.error({ queue: job.queueName, jobId: job.id, runId, timeoutMs: config.jobTimeoutMs }, 'job step did not finish in time: abandoned, it will be retried');
              if (runId !== undefined) redis.hincrby(runStatsKey(config.queuePrefix, runId), 'abandoned', 1).catch(() => {});
              reject(new JobTimeoutError(config.jobTimeoutMs));
            }, config.jobTimeoutMs);
          }),
        ]);
      } finally {
        clearTimeout(timer);
      }
    };
  }

  const common = {
    // BullMQ blocks on this connection, so it has no command timeout; our own commands use `redis`, which has.
    connection: ctx.workerRedis ?? redis,
    prefix: config.queuePrefix,
    lockDuration: config.lockDurationMs,
    // A killed worker's jobs are noticed within one lock duration; a job may stall a few times (kills,
    // Redis restarts) before BullMQ fails it (the default, 1, fails it on the second stall).
    stalledInterval: config.lockDurationMs,
    maxStalledCount: 5,
    limiter: config.jobsPerSecond > 0 ? { max: config.jobsPerSecond, duration: 1000 } : undefined,
  };
  const concurrency = options.concurrency ?? config.workerConcurrency;
  const workers = [
    new Worker(QUEUES.domains, watched(processDomain), { ...common, concurrency }),
    new Worker(QUEUES.probes, watched(processProbe), { ...common, concurrency: options.probeConcurrency ?? config.probeConcurrency }),
    new Worker(QUEUES.control, watched(processControl), { ...common, concurrency: 2, limiter: undefined }),
  ];
  for (const w of workers) {
    w.on('error', (err) => logger.warn({ queue: w.name, err: err.message }, 'worker error'));
    w.on('failed', (job, err) => {
      if (!job) return;
      const final = job.attemptsMade >= (job.opts.attempts ?? 1);
      const runId = (job.data as { runId?: number })?.runId;
      if (runId !== undefined) redis.hincrby(runStatsKey(config.queuePrefix, runId), final ? 'failed' : 'retries', 1).catch(() => {});
      logger[final ? 'error' : 'warn'](
        { queue: w.name, jobId: job.id, attemptsMade: job.attemptsMade, final, err: err.message },
        final ? 'job failed for good (`mailcensus resume --run ID` retries it)' : 'job failed, will retry',
      );
    });
  }

  // Maintenance: keep every running run fed and mark finished ones done, even when no `run` process waits.
  const maintenanceMs = options.maintenanceMs ?? Math.min(5000, config.lockDurationMs);
  let stopping = false;
  let maintaining: Promise<void> = Promise.resolve();
  const tick = async () => {
    try {
      for (const runId of await activeRunIds(db)) {
        if (stopping) return;
        await topUp(feeder, runId);
        await completeIfDone(feeder, runId);
      }
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'maintenance failed (will retry)');
    }
  };
  // A tick that hangs (a stalled connection) is abandoned after a minute, so maintenance never stops for good.
  const boundedTick = () => bounded(tick(), 60_000, () => logger.warn('maintenance did not finish within 60 s (will retry)'));
  const timer = setInterval(() => {
    maintaining = maintaining.then(boundedTick);
  }, maintenanceMs);
  maintaining = maintaining.then(boundedTick);

  // Health: say loudly when Postgres or Redis is lost and when it is back (jobs fail and retry meanwhile).
  const health = { postgres: true, redis: true };
  const lostAt: Record<keyof typeof health, number> = { postgres: 0, redis: 0 };
  const setHealth = (what: keyof typeof health, ok: boolean, error?: string) => {
    if (ok === health[what] || stopping) return;
    health[what] = ok;
    if (!ok) {
      lostAt[what] = Date.now();
      logger.error({ service: what, err: error }, `LOST ${what === 'postgres' ? 'Postgres' : 'Redis'}: jobs fail and are retried until it is back`);
    } else {
      logger.warn({ service: what, downMs: Date.now() - lostAt[what] }, `${what === 'postgres' ? 'Postgres' : 'Redis'} is back: work resumes`);
    }
  };
  const probeHealth = async (what: keyof typeof health, check: () => Promise<unknown>) => {
    try {
      await bounded(check(), 5000, () => {
        throw new Error('no answer within 5 s');
      }, true);
      setHealth(what, true);
    } catch (err) {
      setHealth(what, false, (err as Error).message);
    }
  };
  // A Redis restart can be shorter than a ping: the connection's own events say so at once.
  const onRedisClose = () => setHealth('redis', false, 'connection closed');
  const onRedisReady = () => setHealth('redis', true);
  redis.on('close', onRedisClose);
  redis.on('ready', onRedisReady);
  let healthRunning = false;
  const healthTimer = setInterval(() => {
    if (healthRunning || stopping) return;
    healthRunning = true;
    Promise.all([
      probeHealth('postgres', () => sql`SELECT 1`.execute(db)),
      probeHealth('redis', () => redis.ping()),
    ]).finally(() => {
      healthRunning = false;
    });
  }, 2000);

  return {
    workers,
    async close(timeoutMs = config.shutdownTimeoutMs) {
      stopping = true;
      clearInterval(timer);
      clearInterval(healthTimer);
      redis.off('close', onRedisClose);
      redis.off('ready', onRedisReady);
      // Diagnoses queued for a batch go now, and every later one at once: the jobs waiting for them finish
      // instead of waiting for a timer (or being cut off as stalled, their DNS and probes wasted).
      const drained = Promise.all([diagnosisWriter.drain(), probeReader.drain()]);
      let timeout: NodeJS.Timeout | undefined;
      const graceful = await Promise.race([
        Promise.all([drained, ...workers.map((w) => w.close())]).then(() => true),
        new Promise<boolean>((r) => {
          timeout = setTimeout(() => r(false), timeoutMs);
        }),
      ]);
      clearTimeout(timeout);
      if (!graceful) {
        logger.warn({ timeoutMs }, 'active jobs did not finish in time; they will be picked up as stalled jobs');
        await Promise.all(workers.map((w) => w.close(true).catch(() => {})));
      }
      // A batch still being written finishes (or fails) before the database is closed; either way its jobs
      // are not completed unless it was written, so nothing is lost.
      await bounded(Promise.all([diagnosisWriter.flush(), probeReader.flush()]), 10_000, () => {});
      await bounded(maintaining.catch(() => {}), 10_000, () => {});
      return { graceful };
    },
  };
}


/**
 * Waits for `p` at most `ms`; then calls `onTimeout` and (unless `rethrow`) resolves anyway, leaving `p` to
 * finish on its own. With `rethrow`, what onTimeout throws rejects the result.
 */
async function bounded<T>(p: Promise<T>, ms: number, onTimeout: () => void, rethrow = false): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  p.catch(() => {});
  try {
    return await Promise.race([
      p,
      new Promise<undefined>((resolve, reject) => {
        timer = setTimeout(() => {
          try {
            onTimeout();
            resolve(undefined);
          } catch (err) {
            if (rethrow) reject(err);
            else resolve(undefined);
          }
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
