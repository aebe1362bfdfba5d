// Redis connections and the BullMQ queues of jobs.ts, plus the `noeviction` check: BullMQ keeps job state in
// Redis, and an evicting Redis silently drops jobs (a run would never finish).
import { Queue, type JobsOptions } from 'bullmq';
import { Redis as IORedis } from 'ioredis';
import type pino from 'pino';
import type { Config } from '../lib/config.ts';
import { ServiceUnavailableError } from '../lib/errors.ts';
import { redactUrl } from '../lib/redact-url.ts';
import { QUEUES, testMailJobId, type JobName, type JobPayloads } from './jobs.ts';

/**
 * A Redis connection. Workers (and anything that must survive a Redis restart) need
 * `maxRetriesPerRequest: null` (BullMQ requirement); commands run by a CLI fail fast instead.
 * `commandTimeoutMs` bounds every command, queued ones included (nothing waits forever on a stalled Redis);
 * never set it on a connection BullMQ blocks on (a Worker's), whose blocking reads have their own watchdog.
 */
export function createRedis(url: string, options: { worker?: boolean; commandTimeoutMs?: number } = {}): IORedis {
  return new IORedis(url, {
    maxRetriesPerRequest: options.worker ? null : 2,
    enableOfflineQueue: true,
    connectTimeout: 5000,
    commandTimeout: options.commandTimeoutMs,
    keepAlive: 10_000,
    retryStrategy: (times: number) => Math.min(times * 200, 2000),
    lazyConnect: false,
  });
}

/** Fails with a one-line error (exit 3) when Redis cannot be reached. */
export async function assertRedisReachable(redis: IORedis, url: string): Promise<void> {
  try {
    await Promise.race([
      redis.ping(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('timed out after 5 s')), 5000).unref()),
    ]);
  } catch (err) {
    throw new ServiceUnavailableError(`cannot reach Redis at ${redactUrl(url, 'REDIS_URL')}: ${(err as Error).message}`);
  }
}

/**
 * Returns the eviction policy, and warns loudly unless it is `noeviction`. Managed Redis services may refuse
 * CONFIG; INFO memory carries the same field.
 */
export async function checkEvictionPolicy(redis: IORedis, logger: pino.Logger): Promise<string | null> {
  let policy: string | null = null;
  try {
    const res = (await redis.call('CONFIG', 'GET', 'maxmemory-policy')) as string[];
    policy = res?.[1] ?? null;
  } catch {
    try {
      const info = await redis.info('memory');
      policy = /maxmemory_policy:(\S+)/.exec(info)?.[1] ?? null;
    } catch {
      policy = null;
    }
  }
  if (policy !== 'noeviction') {
    const msg =
      `Redis maxmemory-policy is ${policy ?? '(unknown)'}, not noeviction: Redis may evict queued jobs and a run ` +
      'would never finish. Set `maxmemory-policy noeviction` in redis.conf (or CONFIG SET maxmemory-policy noeviction).';
    logger.warn({ maxmemoryPolicy: policy }, msg);
    process.stderr.write(`\n!!! WARNING: ${msg}\n\n`);
  }
  return policy;
}

/** Default options per job name: attempts with exponential backoff are for infrastructure failures. */
export const JOB_OPTIONS: { [N in JobName]: JobsOptions } = {
  domain: {
    attempts: 8,
    backoff: { type: 'exponential', delay: 2000 },
    // Removed when done (the diagnosis row is the record), so `resume` can enqueue the domain again.
    removeOnComplete: true,
    removeOnFail: { age: 7 * 24 * 3600 },
  },
  'probe-ip': {
    attempts: 5,
    backoff: { type: 'exponential', delay: 2000 },
    // The probed_ips row is the record: a domain job reads it before it adds `probe-<run>-<ip>`. The last
    // 10,000 completed jobs are kept (an hour at most) only so that a domain job that read probed_ips just before
    // the row was written adds a no-op, not a second session. Keeping every one for a day cost ~1.5 KB of Redis
    // per IP probed: memory grew with the survey (issue 18: 108 MiB at 100,000 domains).
    removeOnComplete: { age: 3600, count: 10_000 },
    removeOnFail: { age: 7 * 24 * 3600 },
  },
  'test-mail': {
    attempts: 8,
    backoff: { type: 'exponential', delay: 2000 },
    removeOnComplete: { age: 24 * 3600 },
    removeOnFail: { age: 30 * 24 * 3600 },
  },
  'scheduled-run': {
    attempts: 8,
    backoff: { type: 'exponential', delay: 5000 },
    removeOnComplete: { age: 30 * 24 * 3600 },
    removeOnFail: { age: 30 * 24 * 3600 },
  },
};

export interface Queues {
  domains: Queue<JobPayloads['domain'], unknown, 'domain'>;
  probes: Queue<JobPayloads['probe-ip'], unknown, 'probe-ip'>;
  control: Queue<JobPayloads['test-mail'] | JobPayloads['scheduled-run'], unknown, 'test-mail' | 'scheduled-run'>;
  close(): Promise<void>;
}

export function openQueues(connection: IORedis, config: Pick<Config, 'queuePrefix'>): Queues {
  const opts = { connection, prefix: config.queuePrefix };
  const domains = new Queue<JobPayloads['domain'], unknown, 'domain'>(QUEUES.domains, opts);
  const probes = new Queue<JobPayloads['probe-ip'], unknown, 'probe-ip'>(QUEUES.probes, opts);
  const control = new Queue<JobPayloads['test-mail'] | JobPayloads['scheduled-run'], unknown, 'test-mail' | 'scheduled-run'>(
    QUEUES.control,
    opts,
  );
  // Errors are re-thrown to the caller of each command; the 'error' event only needs a listener.
  for (const q of [domains, probes, control]) q.on('error', () => {});
  return {
    domains,
    probes,
    control,
    async close() {
      await Promise.all([domains.close(), probes.close(), control.close()]);
    },
  };
}

/** Enqueues a received test mail for the test-mail worker (used by the receiver). Idempotent per mail. */
export async function enqueueTestMail(queues: Queues, testMailId: string): Promise<void> {
  await queues.control.add('test-mail', { testMailId }, { ...JOB_OPTIONS['test-mail'], jobId: testMailJobId(testMailId) });
}

/**
 * Deletes every key under `prefix:` (BullMQ queues, limiter buckets, per-IP leases): what a demo, a test or a
 * benchmark that used a prefix of its own leaves behind. Refuses short or unusual prefixes, so a slip cannot
 * empty someone else's queues. Returns how many keys went.
 */
export async function deleteKeysUnder(redis: IORedis, prefix: string): Promise<number> {
  if (!/^[A-Za-z0-9_-]{6,}$/.test(prefix)) throw new Error(`refusing to delete keys under an unusual prefix "${prefix}"`);
  let cursor = '0';
  let n = 0;
  let rounds = 0;
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 2000);
    cursor = next;
    if (batch.length > 0) n += await redis.unlink(...batch);
  } while (cursor !== '0' && ++rounds < 100_000);
  return n;
}
