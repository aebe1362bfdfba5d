// The per-IP-once property on the production path: a survey run through a real worker process (`node
// bin/mailcensus.mjs worker`), real Postgres and Redis, the lab's DNS and SMTP servers. Eight domains share one
// MX IP, two of them through a different MX name that resolves to the same address. Each run connects to that
// IP once (counted by the lab SMTP server) and stores one probe of it (probed_ips); a second run connects once
// more.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labWithDatabaseForFile } from './helpers/lab.ts';
import { loadConfig } from '../lib/config.ts';
import { createLogger } from '../workers/logger.ts';
import { openServices } from '../workers/setup.ts';
import { createRun } from '../workers/run.ts';
import { FAST_LAB_WORKER_ENV } from './helpers/lab-env.ts';
import { killIfAlive, spawnWorker, type WorkerProcess } from './helpers/worker-process.ts';
import { TEST_REDIS_URL, deleteQueueKeys, insertSurvey, newQueuePrefix, waitForRunDone } from './helpers/survey-run.ts';

const IP = '127.61.1.1';
const DIRECT = Array.from({ length: 6 }, (_, i) => `shared-${i + 1}.test`);
const ALIASED = ['alias-1.test', 'alias-2.test'];

let worker: WorkerProcess | null = null;

const world = {
  version: 2,
  name: 'workers-shared-ip',
  hosts: { s1: { ip: IP, name: 'mx.shared.test' } },
  records: [
    { name: 'mx-alias.shared.test', type: 'A', value: IP },
    ...ALIASED.map((d) => ({ name: d, type: 'MX', value: '10 mx-alias.shared.test' })),
  ],
  domains: [...DIRECT.map((name) => ({ name, mx: ['s1'], spf: `v=spf1 ip4:${IP} -all` })), ...ALIASED.map((name) => ({ name }))],
};
const setup = labWithDatabaseForFile(world, 'mc-shared-ip-', {
  stopFirst: () => killIfAlive(worker),
});

function env(redisUrl: string, prefix: string): Record<string, string> {
  return setup.workerEnv(redisUrl, prefix, {
    ...FAST_LAB_WORKER_ENV,
    MAILCENSUS_PER_IP_INTERVAL_MS: '0',
    MAILCENSUS_LOG_LEVEL: 'warn',
  });
}

test('domains sharing one MX IP (under two MX names) get one SMTP connection per run, in production workers', async () => {
  const prefix = newQueuePrefix();
  const redisUrl = TEST_REDIS_URL;
  await insertSurvey(setup.tdb.db, 'shared-ip', [...DIRECT, ...ALIASED]);
  const e = env(redisUrl, prefix);
  worker = spawnWorker(e);
  const s = await openServices(loadConfig(e), createLogger({ level: 'silent' }));
  try {
    for (const round of [1, 2]) {
      const before = setup.lab.smtp.connections(IP);
      const run = await createRun(s, 'shared-ip');
      assert.equal(run.total, 8);
      await waitForRunDone(setup.tdb.db, run.runId, 120_000, `run ${round} to finish`, { pollMs: 200 });
      assert.equal(setup.lab.smtp.connections(IP) - before, 1, `run ${round}: the shared IP was connected once`);
      const probed = await setup.tdb.db.selectFrom('probed_ips').select(['ip', 'hostnames']).where('run_id', '=', run.runId).execute();
      assert.deepEqual(probed.map((p) => p.ip), [IP], `run ${round}: one stored probe of the shared IP`);
      const diagnosed = await setup.tdb.db.selectFrom('diagnoses').select('domain').where('run_id', '=', run.runId).execute();
      assert.deepEqual(diagnosed.map((d) => d.domain).sort(), [...ALIASED, ...DIRECT].sort());
    }
  } finally {
    await s.close();
    worker.child.kill('SIGTERM');
  }
  assert.deepEqual(await worker.exited, { code: 0, signal: null });
  await deleteQueueKeys(redisUrl, prefix);
});
