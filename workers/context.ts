// What every job processor gets: the database, the configuration, Redis, a logger and the probe
// dependencies (resolver, shared DNS limiter, per-IP gate). Built once per worker process.
import type { Redis as IORedis } from 'ioredis';
import type pino from 'pino';
import type { Db } from '../lib/db.ts';
import type { Config } from '../lib/config.ts';
import type { ProbeDeps } from '../lib/diagnose.ts';

export interface WorkerContext {
  db: Db;
  config: Readonly<Config>;
  /** A general-purpose connection (maxRetriesPerRequest: null, as BullMQ requires for workers). */
  redis: IORedis;
  logger: pino.Logger;
  /** Probe dependencies built from the worker's own configuration (runs may overlay their stored settings). */
  deps: ProbeDeps;
}
