// Opens what a command needs (Postgres, Redis, the queues), failing with one line when a service is down,
// and closes all of it again.
import type { Redis as IORedis } from 'ioredis';
import type pino from 'pino';
import type { Config } from '../lib/config.ts';
import { openDatabase, assertReachable, ensureSchema, type DbHandle } from '../lib/db.ts';
import { createRedis, assertRedisReachable, checkEvictionPolicy, openQueues, type Queues } from './queues.ts';
import type { FeederContext } from './run.ts';

export interface Services extends FeederContext {
  handle: DbHandle;
  /** With `worker: true`: the connection the BullMQ Workers use (no command timeout: they block on it). */
  workerRedis?: IORedis;
  close(): Promise<void>;
}

export async function openServices(
  config: Readonly<Config>,
  logger: pino.Logger,
  options: { worker?: boolean; checkEviction?: boolean; dbMax?: number } = {},
): Promise<Services> {
  // A worker's statements are short (one domain step); a stuck one is cut off after a minute. CLI commands
  // (reports, ingest) keep the long default.
  const handle = openDatabase(config.databaseUrl, { max: options.dbMax ?? 10, ...(options.worker ? { statementTimeoutMs: 60_000 } : {}) });
  let redis: IORedis | undefined;
  let workerRedis: IORedis | undefined;
  let queues: Queues | undefined;
  try {
    await assertReachable(handle, config.databaseUrl);
    await ensureSchema(handle.db);
    redis = createRedis(config.redisUrl, { worker: options.worker, commandTimeoutMs: 15_000 });
    redis.on('error', () => {}); // reconnects on its own; commands surface their own errors
    await assertRedisReachable(redis, config.redisUrl);
    if (options.worker) {
      workerRedis = createRedis(config.redisUrl, { worker: true });
      workerRedis.on('error', () => {});
    }
    if (options.checkEviction) await checkEvictionPolicy(redis, logger);
    queues = openQueues(redis, config);
  } catch (err) {
    redis?.disconnect();
    workerRedis?.disconnect();
    await handle.close();
    throw err;
  }
  const r = redis;
  const wr = workerRedis;
  const q = queues;
  return {
    handle,
    db: handle.db,
    redis: r,
    workerRedis: wr,
    queues: q,
    config,
    logger,
    async close() {
      await q.close().catch(() => {});
      await r.quit().catch(() => r.disconnect());
      if (wr) await wr.quit().catch(() => wr.disconnect());
      await handle.close();
    },
  };
}
