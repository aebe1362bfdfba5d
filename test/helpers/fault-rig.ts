// A survey set-up that may be broken on purpose, for the fault-injection test (workers-chaos) and the faults
// bench: a PRIVATE Postgres and Redis (random ports, temp dirs: the shared servers are never touched), each
// behind a TCP proxy that can stall, a migrated database, the lab of a generated world and a survey of all its
// domains. Workers reach the servers through the proxies (`proxiedEnv`); the test itself goes straight to them.
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import postgres from 'postgres';
import { openDatabase, migrateSchema, type DbHandle } from '../../lib/db.ts';
import { startLab, type Lab } from '../../lab/index.ts';
import { generateWorld, type GenerateOptions } from '../../lab/generate.ts';
import { startPrivatePostgres, startPrivateRedis, type PrivatePostgres, type PrivateRedis } from './private-services.ts';
import { startStallProxy, type StallProxy } from './stall-proxy.ts';
import { insertSurvey } from './survey-run.ts';

export interface FaultRig {
  pg: PrivatePostgres;
  redis: PrivateRedis;
  pgProxy: StallProxy;
  redisProxy: StallProxy;
  lab: Lab;
  db: DbHandle;
  /** The database, reached directly. */
  dbUrl: string;
  /** The lab's variables, and the database and Redis through the proxies: where workers find them. */
  proxiedEnv: Record<string, string>;
  /** Stops and removes all of it (not `dir`, the caller's); never throws. */
  stop(): Promise<void>;
}

export interface FaultRigOptions {
  /** Where the world file and the lab's state go (the caller's, removed by the caller). */
  dir: string;
  /** The database's name on the private server. */
  database: string;
  /** The survey of every domain of the world. */
  survey: string;
  world: GenerateOptions;
  /** Connections of the test's own pool. */
  poolMax: number;
}

export async function startFaultRig(opts: FaultRigOptions): Promise<FaultRig> {
  const rig: Partial<FaultRig> = {};
  const stop = async () => {
    await rig.db?.close().catch(() => {});
    await rig.lab?.stop().catch(() => {});
    await rig.pgProxy?.close().catch(() => {});
    await rig.redisProxy?.close().catch(() => {});
    await rig.pg?.stop().catch(() => {});
    await rig.redis?.stop().catch(() => {});
  };
  try {
    const pg = (rig.pg = await startPrivatePostgres());
    rig.redis = await startPrivateRedis();
    const admin = postgres(pg.url, { max: 1, onnotice: () => {} });
    await admin.unsafe(`CREATE DATABASE ${opts.database}`);
    await admin.end();
    const dbUrl = pg.urlFor(opts.database);
    const db = (rig.db = openDatabase(dbUrl, { max: opts.poolMax }));
    await migrateSchema(db.db);
    const pgProxy = (rig.pgProxy = await startStallProxy({ port: pg.port }));
    const redisProxy = (rig.redisProxy = await startStallProxy({ port: rig.redis.port }));
    const worldFile = path.join(opts.dir, 'world.json');
    writeFileSync(worldFile, JSON.stringify(generateWorld(opts.world)));
    const lab = (rig.lab = await startLab(worldFile, { dnsPort: 0, smtpPort: 0, stateDir: path.join(opts.dir, 'lab') }));
    await insertSurvey(db.db, opts.survey, lab.world.domains.map((d) => d.name));
    return {
      ...(rig as Omit<FaultRig, 'dbUrl' | 'proxiedEnv' | 'stop'>),
      dbUrl,
      proxiedEnv: {
        ...lab.env,
        DATABASE_URL: `postgres://postgres@127.0.0.1:${pgProxy.port}/${opts.database}`,
        REDIS_URL: `redis://127.0.0.1:${redisProxy.port}`,
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
