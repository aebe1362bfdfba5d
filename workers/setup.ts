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
  close(): Promise<void>;
}

export async function openServices(
  config: Readonly<Config>,
  logger: pino.Logger,
  options: { worker?: boolean; checkEviction?: boolean; dbMax?: number } = {},
): Promise<Services> {
  const handle = openDatabase(config.databaseUrl, { max: options.dbMax ?? 10 });
  let redis: IORedis | undefined;
  let queues: Queues | undefined;
  try {
    await assertReachable(handle, config.databaseUrl);
    await ensureSchema(handle.db);
    redis = createRedis(config.redisUrl, { worker: options.worker });
    redis.on('error', () => {}); // reconnects on its own; commands surface their own errors
    await assertRedisReachable(redis, config.redisUrl);
    if (options.checkEviction) await checkEvictionPolicy(redis, logger);
    queues = openQueues(redis, config);
  } catch (err) {
    redis?.disconnect();
    await handle.close();
    throw err;
  }
  const r = redis;
  const q = queues;
  return {
    handle,
    db: handle.db,
    redis: r,
    queues: q,
    config,
    logger,
    async close() {
      await q.close().catch(() => {});
      await r.quit().catch(() => r.disconnect());
      await handle.close();
    },
  };
}
