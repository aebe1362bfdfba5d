// Runs: creation (with the configuration they are measured with), the durable feeder that keeps at most
// `maxQueued` domain jobs in Redis and tops up from Postgres, progress, completion, cancel and resume.
//
// The feeder is durable: any worker (and `run --wait`) calls topUp() under a Redis lock, reading "survey
// domains minus those diagnosed in this run" from Postgres in `domain` order from a cursor stored on the run.
// A 1M-domain survey thus never parks 1M jobs in Redis, and the run goes on when `run` is not running.
// Enqueueing is idempotent (job id `d-<run>-<domain>`), so after the cursor reaches the end the feeder sweeps
// again now and then: jobs lost with Redis data (a restart without persistence) are found and re-added.
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { sql } from 'kysely';
import type { Redis as IORedis } from 'ioredis';
import type pino from 'pino';
import type { Db } from '../lib/db.ts';
import type { Config } from '../lib/config.ts';
import { RULES_VERSION } from '../lib/verdict.ts';
import { InputError } from '../lib/errors.ts';
import { domainJobId, type DomainJob } from './jobs.ts';
import { MAX_SEEN_TRIED, jobSelectors } from '../lib/checks/dkim/remember.ts';
import { JOB_OPTIONS, type Queues } from './queues.ts';

const PACKAGE_VERSION: string = (() => {
  try {
    return JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;
  } catch {
    return 'unknown';
  }
})();
const BULLMQ_VERSION: string = (() => {
  try {
    return JSON.parse(readFileSync(new URL('../node_modules/bullmq/package.json', import.meta.url), 'utf8')).version;
  } catch {
    return 'unknown';
  }
})();

/** How a run measures: stored with the run (runs.config), so a report can say how its data was measured. */
export interface RunSettings {
  versions: { mailcensus: string; rules: number; node: string; bullmq: string };
  resolver: string;
  lab: boolean;
  smtpPort: number;
  ehloName: string;
  contact: string;
  relayTestDomain: string;
  timeouts: {
    dnsTimeoutMs: number;
    dnsRetries: number;
    smtpConnectTimeoutMs: number;
    smtpBannerTimeoutMs: number;
    smtpCommandTimeoutMs: number;
  };
  limits: {
    dnsQps: number;
    perIpConcurrency: number;
    perIpIntervalMs: number;
    jobsPerSecond: number;
    transientRetries: number;
    transientRetryDelayMs: number;
  };
  dnsblZones: string[];
  dkimSelectors: string[];
  optOut: string[];
  clock: string | null;
}

export function runSettingsOf(config: Readonly<Config>): RunSettings {
  return {
    versions: { mailcensus: PACKAGE_VERSION, rules: RULES_VERSION, node: process.version, bullmq: BULLMQ_VERSION },
    resolver: config.resolver ? `${config.resolver.host}:${config.resolver.port}` : 'system (/etc/resolv.conf)',
    lab: config.lab,
    smtpPort: config.smtpPort,
    ehloName: config.ehloName,
    contact: config.contact,
    relayTestDomain: config.relayTestDomain,
    timeouts: {
      dnsTimeoutMs: config.dnsTimeoutMs,
      dnsRetries: config.dnsRetries,
      smtpConnectTimeoutMs: config.smtpConnectTimeoutMs,
      smtpBannerTimeoutMs: config.smtpBannerTimeoutMs,
      smtpCommandTimeoutMs: config.smtpCommandTimeoutMs,
    },
    limits: {
      dnsQps: config.dnsQps,
      perIpConcurrency: config.perIpConcurrency,
      perIpIntervalMs: config.perIpIntervalMs,
      jobsPerSecond: config.jobsPerSecond,
      transientRetries: config.transientRetries,
      transientRetryDelayMs: config.transientRetryDelayMs,
    },
    dnsblZones: [...config.dnsblZones],
    dkimSelectors: [...config.dkimSelectors],
    optOut: [...config.optOut],
    clock: config.clock ? config.clock.toISOString() : null,
  };
}

/**
 * The configuration a worker measures a run with: its own machine-local settings (resolver, SMTP port, lab,
 * CA file) overlaid with the run's stored measurement settings, so every worker of a run, on any machine,
 * probes with the same timeouts, limits, EHLO name, contact and opt-out list.
 */
export function measurementConfig(base: Readonly<Config>, stored: Partial<RunSettings> | null | undefined): Readonly<Config> {
  if (!stored || typeof stored !== 'object' || !stored.timeouts || !stored.limits) return base;
  return Object.freeze({
    ...base,
    ehloName: stored.ehloName ?? base.ehloName,
    contact: stored.contact ?? base.contact,
    relayTestDomain: stored.relayTestDomain ?? base.relayTestDomain,
    ...stored.timeouts,
    dnsQps: stored.limits.dnsQps,
    perIpConcurrency: stored.limits.perIpConcurrency,
    perIpIntervalMs: stored.limits.perIpIntervalMs,
    transientRetries: stored.limits.transientRetries,
    transientRetryDelayMs: stored.limits.transientRetryDelayMs,
    dnsblZones: stored.dnsblZones ?? base.dnsblZones,
    dkimSelectors: stored.dkimSelectors ?? base.dkimSelectors,
    optOut: stored.optOut ?? base.optOut,
  });
}

// ---- opt-out -------------------------------------------------------------------------------------------

/** The opt-out list split into domains (a domain opts out itself and its subdomains) and IP addresses. */
export function optOutSets(optOut: readonly string[]): { domains: string[]; ips: Set<string> } {
  const domains: string[] = [];
  const ips = new Set<string>();
  for (const raw of optOut) {
    const e = raw.trim().toLowerCase().replace(/\.$/, '');
    if (!e) continue;
    if (isIP(e)) ips.add(e);
    else domains.push(e);
  }
  return { domains, ips };
}

/** SQL: survey domain `sd.domain` is not on the opt-out list (itself or a parent domain). */
function notOptedOut(optOutDomains: readonly string[]) {
  if (optOutDomains.length === 0) return sql`true`;
  const list = sql.join(optOutDomains.map((o) => sql`${o}`));
  return sql`NOT (sd.domain IN (${list}) OR EXISTS (
    SELECT 1 FROM (VALUES ${sql.join(optOutDomains.map((o) => sql`(${o}::text)`))}) AS o(name)
    WHERE right(sd.domain, length(o.name) + 1) = '.' || o.name))`;
}

// ---- runs ----------------------------------------------------------------------------------------------

export interface FeederContext {
  db: Db;
  queues: Queues;
  redis: IORedis;
  config: Readonly<Config>;
  logger: pino.Logger;
}

export async function surveyIdOf(db: Db, name: string): Promise<number> {
  const row = await db.selectFrom('surveys').select('id').where('name', '=', name).executeTakeFirst();
  if (!row) throw new InputError(`survey "${name}" does not exist (create it with \`mailcensus ingest FILE --survey ${name}\`)`);
  return row.id;
}

/** Survey domains a run would probe, and how many the opt-out list leaves out. */
export async function countSurvey(db: Db, surveyId: number, optOut: readonly string[]): Promise<{ total: number; optedOut: number }> {
  const { domains } = optOutSets(optOut);
  const res = await sql<{ all: string; kept: string }>`
    SELECT count(*) AS all, count(*) FILTER (WHERE ${notOptedOut(domains)}) AS kept
    FROM survey_domains sd WHERE sd.survey_id = ${surveyId}`.execute(db);
  const all = Number(res.rows[0].all);
  const kept = Number(res.rows[0].kept);
  return { total: kept, optedOut: all - kept };
}

export interface CreatedRun {
  runId: number;
  surveyId: number;
  total: number;
  optedOut: number;
  /** false when `dedupeKey` named a run that already existed. */
  created: boolean;
}

/**
 * Creates a run of the survey and enqueues its first domains. With `dedupeKey`, creating the same run twice
 * (a retried scheduled-run job) returns the first.
 */
export async function createRun(ctx: FeederContext, survey: string, options: { dedupeKey?: string } = {}): Promise<CreatedRun> {
  const surveyId = await surveyIdOf(ctx.db, survey);
  if (options.dedupeKey) {
    const existing = await ctx.db.selectFrom('runs').select(['id', 'total', 'opted_out']).where('dedupe_key', '=', options.dedupeKey).executeTakeFirst();
    if (existing) return { runId: existing.id, surveyId, total: existing.total, optedOut: existing.opted_out, created: false };
  }
  const { total, optedOut } = await countSurvey(ctx.db, surveyId, ctx.config.optOut);
  const inserted = await ctx.db
    .insertInto('runs')
    .values({
      survey_id: surveyId,
      state: 'running',
      total,
      opted_out: optedOut,
      config: runSettingsOf(ctx.config),
      started_at: new Date(),
      dedupe_key: options.dedupeKey ?? null,
    })
    .onConflict((oc) => oc.column('dedupe_key').doNothing())
    .returning(['id'])
    .executeTakeFirst();
  if (!inserted) {
    const existing = await ctx.db.selectFrom('runs').select(['id', 'total', 'opted_out']).where('dedupe_key', '=', options.dedupeKey!).executeTakeFirstOrThrow();
    return { runId: existing.id, surveyId, total: existing.total, optedOut: existing.opted_out, created: false };
  }
  const runId = inserted.id;
  ctx.logger.info({ runId, survey, total, optedOut }, 'run created');
  await topUp(ctx, runId);
  await completeIfDone(ctx, runId);
  return { runId, surveyId, total, optedOut, created: true };
}

const PENDING_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'paused', 'waiting-children'] as const;

async function pendingDomainJobs(queues: Queues): Promise<number> {
  const counts = await queues.domains.getJobCounts(...PENDING_STATES);
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/**
 * Tops up the run's domain jobs to `maxQueued` (all runs together) when fewer than half remain. Safe to call
 * from any number of processes: one holds the feeder lock, the others return 0. Returns how many were added.
 */
export async function topUp(ctx: FeederContext, runId: number): Promise<number> {
  const prefix = ctx.config.queuePrefix;
  const lockKey = `${prefix}:mc:feed-lock:${runId}`;
  const token = randomUUID();
  const locked = await ctx.redis.set(lockKey, token, 'PX', 60_000, 'NX');
  if (locked !== 'OK') return 0;
  let added = 0;
  try {
    const run = await ctx.db.selectFrom('runs').select(['state', 'survey_id', 'feed_cursor', 'config', 'created_at']).where('id', '=', runId).executeTakeFirst();
    if (!run || run.state !== 'running') return 0;
    const maxQueued = ctx.config.maxQueued;
    const pending = await pendingDomainJobs(ctx.queues);
    if (pending > maxQueued / 2) return 0;
    let room = maxQueued - pending;
    let cursor = run.feed_cursor;
    const optOut = (run.config as Partial<RunSettings>)?.optOut ?? ctx.config.optOut;
    const { domains: optOutDomains } = optOutSets(optOut);
    const endKey = `${prefix}:mc:feed-end:${runId}`;
    // Each pass reads at most `room` rows; bounded also in count (a sweep restarts at most once per call).
    for (let pass = 0; room > 0 && pass < 10_000; pass++) {
      const res = await sql<{ domain: string; listed: string[]; seen: string[] }>`
        SELECT sd.domain, sd.dkim_selectors AS listed,
               -- DKIM selectors seen in the domain's test mails, most recent first (bounded: remember.ts).
               -- sd.domain is COLLATE "C" (migration 20261202000600); naming the other column's collation
               -- lets its index serve the comparison, here and in the NOT EXISTS below.
               ARRAY(SELECT s.selector FROM dkim_selectors_seen s WHERE s.domain = sd.domain COLLATE "default"
                      ORDER BY s.last_seen DESC, s.selector LIMIT ${MAX_SEEN_TRIED}) AS seen
          FROM survey_domains sd
        WHERE sd.survey_id = ${run.survey_id} AND sd.domain > ${cursor}
          -- A run surveys the list as it was when the run was created (its total): domains ingested later
          -- wait for the next run instead of racing the run's completion.
          AND sd.added_at <= ${run.created_at}
          AND NOT EXISTS (SELECT 1 FROM diagnoses d WHERE d.run_id = ${runId} AND d.domain = sd.domain COLLATE "default")
          AND ${notOptedOut(optOutDomains)}
        ORDER BY sd.domain
        LIMIT ${Math.min(room, 1000)}`.execute(ctx.db);
      const rows = res.rows;
      if (rows.length === 0) {
        if (cursor === '') break; // nothing left undiagnosed
        // End of a sweep. Sweep again once the rest has had time to finish (2 lock durations, at least 10 s):
        // whatever is still undiagnosed then and not in Redis was lost and is enqueued again.
        const endedAt = Number(await ctx.redis.get(endKey));
        const sweepAfter = Math.max(10_000, 2 * ctx.config.lockDurationMs);
        if (!endedAt) {
          await ctx.redis.set(endKey, String(Date.now()));
          break;
        }
        if (Date.now() - endedAt < sweepAfter || pass > 0) break;
        await ctx.redis.del(endKey);
        cursor = '';
        await ctx.db.updateTable('runs').set({ feed_cursor: '' }).where('id', '=', runId).execute();
        continue;
      }
      const jobs = rows.map((r) => {
        const dkimSelectors = jobSelectors(r.listed, r.seen);
        return {
          name: 'domain' as const,
          data: { runId, surveyId: run.survey_id, domain: r.domain, ...(dkimSelectors ? { dkimSelectors } : {}) } satisfies DomainJob,
          opts: { ...JOB_OPTIONS.domain, jobId: domainJobId(runId, r.domain) },
        };
      });
      // A sweep meets mostly domains whose jobs are still queued or running: when every job of the page is
      // there (one EXISTS over their keys), adding them again would be a no-op per job (issue 18: a Redis
      // command per in-flight domain and sweep). All of a queue's keys share its prefix, so one Cluster slot
      // whenever BullMQ itself works there.
      const present = await ctx.redis.exists(...jobs.map((j) => ctx.queues.domains.toKey(j.opts.jobId)));
      const adding = present < jobs.length;
      if (adding) await ctx.queues.domains.addBulk(jobs);
      cursor = rows[rows.length - 1].domain;
      // After addBulk: a crash in between re-adds the same ids next time, which is a no-op.
      await ctx.db.updateTable('runs').set({ feed_cursor: cursor }).where('id', '=', runId).execute();
      room -= rows.length;
      if (adding) added += rows.length;
    }
    if (added > 0) ctx.logger.debug({ runId, added, cursor }, 'feeder enqueued domains');
    return added;
  } finally {
    await ctx.redis
      .eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", 1, lockKey, token)
      .catch(() => {});
  }
}

export interface RunProgress {
  runId: number;
  survey: string;
  state: string;
  total: number;
  optedOut: number;
  done: number;
  /** Diagnoses whose verdict is `incomplete` (an unknown left the verdict open). */
  unknowns: number;
  verdicts: Record<string, number>;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  cancelledAt: Date | null;
  config: unknown;
}

export async function latestRunId(db: Db, survey?: string): Promise<number | null> {
  let q = db.selectFrom('runs').innerJoin('surveys', 'surveys.id', 'runs.survey_id').select('runs.id').orderBy('runs.id', 'desc').limit(1);
  if (survey) q = q.where('surveys.name', '=', survey);
  const row = await q.executeTakeFirst();
  return row?.id ?? null;
}

export async function runProgress(db: Db, runId: number): Promise<RunProgress> {
  const run = await db
    .selectFrom('runs')
    .innerJoin('surveys', 'surveys.id', 'runs.survey_id')
    .select(['runs.id', 'surveys.name', 'runs.state', 'runs.total', 'runs.opted_out', 'runs.created_at', 'runs.started_at', 'runs.finished_at', 'runs.cancelled_at', 'runs.config'])
    .where('runs.id', '=', runId)
    .executeTakeFirst();
  if (!run) throw new InputError(`run ${runId} does not exist`);
  const rows = await db
    .selectFrom('diagnoses')
    .select(['verdict', (eb) => eb.fn.countAll<string>().as('n')])
    .where('run_id', '=', runId)
    .groupBy('verdict')
    .execute();
  const verdicts: Record<string, number> = {};
  let done = 0;
  for (const r of rows) {
    verdicts[r.verdict] = Number(r.n);
    done += Number(r.n);
  }
  return {
    runId: run.id,
    survey: run.name,
    state: run.state,
    total: run.total,
    optedOut: run.opted_out,
    done,
    unknowns: verdicts.incomplete ?? 0,
    verdicts,
    createdAt: run.created_at,
    startedAt: run.started_at,
    finishedAt: run.finished_at,
    cancelledAt: run.cancelled_at,
    config: run.config,
  };
}

/** Marks the run done once every domain has its diagnosis; the one caller that flips it logs the summary. */
export async function completeIfDone(ctx: Pick<FeederContext, 'db' | 'logger'>, runId: number): Promise<boolean> {
  const res = await sql<{ id: number }>`
    UPDATE runs SET state = 'done', finished_at = now()
    WHERE id = ${runId} AND state = 'running'
      AND (SELECT count(*) FROM diagnoses WHERE run_id = ${runId}) >= total
    RETURNING id`.execute(ctx.db);
  if (res.rows.length === 0) return false;
  const p = await runProgress(ctx.db, runId);
  const seconds = p.startedAt && p.finishedAt ? (p.finishedAt.getTime() - p.startedAt.getTime()) / 1000 : null;
  ctx.logger.info(
    { runId, survey: p.survey, total: p.total, optedOut: p.optedOut, diagnosed: p.done, verdicts: p.verdicts, seconds, perSecond: seconds ? +(p.done / seconds).toFixed(2) : null },
    'run finished',
  );
  return true;
}

export async function activeRunIds(db: Db): Promise<number[]> {
  const rows = await db.selectFrom('runs').select('id').where('state', '=', 'running').orderBy('id').execute();
  return rows.map((r) => r.id);
}

/** Removes the run's jobs in the given states from both run queues. Returns how many. */
async function removeRunJobs(queues: Queues, runId: number, states: ('waiting' | 'delayed' | 'prioritized' | 'failed' | 'completed' | 'paused')[]): Promise<number> {
  let removed = 0;
  for (const q of [queues.domains, queues.probes] as const) {
    const ids: string[] = [];
    // Collect first, then remove: removing while paging would shift the pages.
    for (let start = 0; start < 1_000_000; start += 1000) {
      const jobs = await q.getJobs(states, start, start + 999, true);
      if (jobs.length === 0) break;
      for (const j of jobs) if (j && (j.data as { runId?: number })?.runId === runId && j.id) ids.push(j.id);
      if (jobs.length < 1000) break;
    }
    for (const id of ids) {
      const job = await q.getJob(id);
      // An active job holds a lock and cannot be removed; it sees the state at its next step.
      if (job && !(await job.isActive())) {
        await job.remove().catch(() => {});
        removed++;
      }
    }
  }
  return removed;
}

export async function cancelRun(ctx: FeederContext, runId: number): Promise<{ cancelled: boolean; removedJobs: number; state: string }> {
  const res = await ctx.db
    .updateTable('runs')
    .set({ state: 'cancelled', cancelled_at: new Date() })
    .where('id', '=', runId)
    .where('state', 'in', ['queued', 'running'])
    .returning('state')
    .executeTakeFirst();
  if (!res) {
    const run = await ctx.db.selectFrom('runs').select('state').where('id', '=', runId).executeTakeFirst();
    if (!run) throw new InputError(`run ${runId} does not exist`);
    return { cancelled: false, removedJobs: 0, state: run.state };
  }
  const removedJobs = await removeRunJobs(ctx.queues, runId, ['waiting', 'delayed', 'prioritized', 'paused']);
  ctx.logger.info({ runId, removedJobs }, 'run cancelled');
  return { cancelled: true, removedJobs, state: 'cancelled' };
}

/**
 * Resumes a cancelled run, or re-kicks a running one whose jobs failed for good (e.g. Postgres was down
 * longer than their retries): failed jobs are cleared and the feeder sweeps the survey again from the start.
 */
export async function resumeRun(ctx: FeederContext, runId: number): Promise<{ resumed: boolean; state: string; added: number }> {
  const run = await ctx.db.selectFrom('runs').select('state').where('id', '=', runId).executeTakeFirst();
  if (!run) throw new InputError(`run ${runId} does not exist`);
  if (run.state === 'done') return { resumed: false, state: 'done', added: 0 };
  await ctx.db.updateTable('runs').set({ state: 'running', cancelled_at: null, feed_cursor: '', finished_at: null }).where('id', '=', runId).execute();
  await removeRunJobs(ctx.queues, runId, ['failed']);
  await ctx.redis.del(`${ctx.config.queuePrefix}:mc:feed-end:${runId}`);
  const added = await topUp(ctx, runId);
  await completeIfDone(ctx, runId);
  ctx.logger.info({ runId, added }, 'run resumed');
  return { resumed: true, state: 'running', added };
}

/** Queue counts (all runs together) for status displays. */
export async function queueCounts(queues: Queues): Promise<{ domains: Record<string, number>; probes: Record<string, number> }> {
  const states = ['waiting', 'active', 'delayed', 'prioritized', 'failed'] as const;
  return {
    domains: await queues.domains.getJobCounts(...states),
    probes: await queues.probes.getJobCounts(...states),
  };
}

export interface RunHealth {
  /** When the run's latest diagnosis was written, and how long ago (s). */
  lastDiagnosisAt: Date | null;
  secondsSinceLastDiagnosis: number | null;
  /** Active jobs of the run whose current step has run longer than `longRunningMs`. */
  longRunning: { queue: string; jobId: string; subject: string; seconds: number; attemptsMade: number }[];
  longRunningMs: number;
  /** Job failures retried after an infrastructure error, jobs that failed for good, steps the watchdog abandoned. */
  retries: number;
  failedForGood: number;
  abandoned: number;
}

/**
 * What `status` shows beyond progress: whether the run is moving (time since its last diagnosis), jobs that
 * run longer than expected, and retries after infrastructure errors (counted by the workers in Redis; a Redis
 * restart without persistence resets them).
 */
export async function runHealth(ctx: FeederContext, runId: number, longRunningMs = 60_000): Promise<RunHealth> {
  const last = await ctx.db.selectFrom('diagnoses').select((eb) => eb.fn.max('created_at').as('at')).where('run_id', '=', runId).executeTakeFirst();
  const lastAt = last?.at ? new Date(last.at as Date) : null;
  const now = Date.now();
  const longRunning: RunHealth['longRunning'] = [];
  for (const q of [ctx.queues.domains, ctx.queues.probes] as const) {
    const active = await q.getJobs(['active'], 0, 999, true);
    for (const j of active) {
      const data = j?.data as { runId?: number; domain?: string; ip?: string } | undefined;
      if (!j || data?.runId !== runId || !j.processedOn) continue;
      const ms = now - j.processedOn;
      if (ms >= longRunningMs) longRunning.push({ queue: q.name, jobId: j.id ?? '', subject: data.domain ?? data.ip ?? '', seconds: Math.round(ms / 1000), attemptsMade: j.attemptsMade });
    }
  }
  longRunning.sort((a, b) => b.seconds - a.seconds);
  const stats = await ctx.redis.hgetall(`${ctx.config.queuePrefix}:mc:run-stats:${runId}`).catch(() => ({}) as Record<string, string>);
  return {
    lastDiagnosisAt: lastAt,
    secondsSinceLastDiagnosis: lastAt ? Math.round((now - lastAt.getTime()) / 1000) : null,
    longRunning,
    longRunningMs,
    retries: Number(stats.retries ?? 0),
    failedForGood: Number(stats.failed ?? 0),
    abandoned: Number(stats.abandoned ?? 0),
  };
}
