// What the tests of survey runs do around a run: a survey of domains in the test database, a queue prefix of
// their own in the shared Redis (and its keys removed afterwards), and waiting, bounded, for a run to end.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { DbHandle } from '../../lib/db.ts';
import { loadConfig, type Config } from '../../lib/config.ts';
import { createLogger } from '../../workers/logger.ts';
import { openServices, type Services } from '../../workers/setup.ts';
import { runProgress } from '../../workers/run.ts';
import { deleteKeysUnder } from '../../workers/queues.ts';
import { until } from './until.ts';

export const TEST_REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';

/** A queue prefix no other test uses: `<tag>-<8 hex>`. */
export const newQueuePrefix = (tag = 'mctest'): string => `${tag}-${randomBytes(4).toString('hex')}`;

/** Inserts a survey named `name` with these domains (500 rows a statement); returns its id. */
export async function insertSurvey(db: DbHandle['db'], name: string, domains: readonly string[]): Promise<number> {
  const { id } = await db.insertInto('surveys').values({ name }).returning('id').executeTakeFirstOrThrow();
  for (let i = 0; i < domains.length; i += 500) {
    await db.insertInto('survey_domains').values(domains.slice(i, i + 500).map((domain) => ({ survey_id: id, domain }))).execute();
  }
  return id;
}

/** Waits until the run's state is `done`; fails after `ms` naming `what`. */
export function waitForRunDone(db: DbHandle['db'], runId: number, ms: number, what = 'the run to finish', opts: Parameters<typeof until>[3] = {}): Promise<void> {
  return until(what, async () => (await runProgress(db, runId)).state === 'done', ms, opts);
}

/** Removes every Redis key under `prefix` (the queues of a test), through a connection of its own. */
export async function deleteQueueKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl);
  try {
    await deleteKeysUnder(redis, prefix);
  } finally {
    await redis.quit();
  }
}

/**
 * The settings of workers run in the test process (the queue-mechanics tests): the test database, the shared
 * Redis under a fresh queue prefix, no DNS rate limit, 5 s locks; `env` adds to them or overrides them.
 */
export function inProcessWorkerConfig(databaseUrl: string, env: Record<string, string> = {}): Readonly<Config> {
  return loadConfig({
    DATABASE_URL: databaseUrl,
    REDIS_URL: TEST_REDIS_URL,
    MAILCENSUS_QUEUE_PREFIX: newQueuePrefix(),
    MAILCENSUS_DNS_QPS: '0',
    MAILCENSUS_LOCK_DURATION_MS: '5000',
    ...env,
  });
}

/** The services a worker in the test process runs on (its Redis connection a worker's), logging at TEST_LOG_LEVEL. */
export function openInProcessServices(config: Readonly<Config>): Promise<Services> {
  return openServices(config, createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }), { worker: true });
}
