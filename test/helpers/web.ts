// Everything `mailcensus serve` runs beside, for the web tests: the lab (test-mail-senders world), a fresh
// database, a random Redis prefix with the queues, `mailcensus receive`, one `mailcensus worker`, and the web
// server itself on an ephemeral port. stop() closes all of it and removes every Redis key of the prefix.
import { before, after } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { createTestDatabase, type TestDatabase } from './db.ts';
import { startLab, type Lab } from '../../lab/index.ts';
import { loadConfig, type Config } from '../../lib/config.ts';
import { createProbeDeps } from '../../lib/diagnose.ts';
import { startReceiver, type Receiver } from '../../receiver/server.ts';
import { createRedis, openQueues, enqueueTestMail, deleteKeysUnder, type Queues } from '../../workers/queues.ts';
import { startWorker, type RunningWorker } from '../../workers/worker.ts';
import { loadDiagnose } from '../../workers/diagnose-api.ts';
import { buildServer, type WebApp } from '../../web/server.ts';
import { FAST_LAB_CHECKER_ENV } from './lab-env.ts';
import { launchBrowser, type TestBrowser } from './browser.ts';
import { startedInBefore } from './for-file.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const OUR_DOMAIN = 'mailcensus.lab.test';
export const OPERATOR_PASSWORD = 'lab-operator-password-17';
export const API_KEY = 'lab-api-key-0123456789abcdef0123';

export interface WebStack {
  lab: Lab;
  tdb: TestDatabase;
  config: Readonly<Config>;
  rx: Receiver;
  web: WebApp;
  queues: Queues;
  baseUrl: string;
  dataDir: string;
  stop(): Promise<void>;
}

export async function startWebStack(env: Record<string, string> = {}, options: { worker?: boolean } = {}): Promise<WebStack> {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'mc-web-lab-'));
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mc-web-data-'));
  const [lab, tdb] = await Promise.all([
    startLab(path.join(ROOT, 'lab/worlds/test-mail-senders.json'), { dnsPort: 0, smtpPort: 0, stateDir }),
    createTestDatabase(),
  ]);
  const prefix = `mc-test-${randomBytes(4).toString('hex')}`;
  const config = loadConfig({
    ...lab.env,
    DATABASE_URL: tdb.url,
    MAILCENSUS_QUEUE_PREFIX: prefix,
    MAILCENSUS_RECEIVER_DOMAIN: OUR_DOMAIN,
    ...FAST_LAB_CHECKER_ENV,
    MAILCENSUS_RESULT_MAIL: '0',
    MAILCENSUS_TRANSIENT_RETRIES: '0',
    MAILCENSUS_LOCK_DURATION_MS: '30000',
    MAILCENSUS_WEB_OPERATOR_PASSWORD: OPERATOR_PASSWORD,
    MAILCENSUS_WEB_API_KEYS: API_KEY,
    MAILCENSUS_WEB_DATA_DIR: dataDir,
    ...env,
  });
  const logger = pino({ level: 'silent' });
  const producer = createRedis(config.redisUrl);
  const consumer = createRedis(config.redisUrl, { worker: true });
  const queues = openQueues(producer, config);
  const rx = await startReceiver({
    db: tdb.db, domain: OUR_DOMAIN, port: 0, clock: config.clock, sweepIntervalMs: 0, maxConnectionsPerIp: 50,
    enqueue: async (id) => {
      await enqueueTestMail(queues, id);
    },
  });
  let worker: RunningWorker | null = null;
  if (options.worker !== false) {
    const diag = await loadDiagnose();
    worker = startWorker({ db: tdb.db, config, redis: consumer, logger, deps: createProbeDeps(config) as never, queues, diag }, { concurrency: 4 });
  }
  const web = await buildServer({ db: tdb.db, sql: tdb.sql, redis: producer, queues, config, logger });
  const baseUrl = await web.app.listen({ host: '127.0.0.1', port: 0 });
  return {
    lab, tdb, config, rx, web, queues, baseUrl, dataDir,
    async stop() {
      await web.app.close().catch(() => {});
      await worker?.close(10_000).catch(() => {});
      await rx.close().catch(() => {});
      await deleteKeysUnder(producer, prefix).catch(() => {});
      await queues.close().catch(() => {});
      await producer.quit().catch(() => {});
      await consumer.quit().catch(() => {});
      await lab.stop();
      await tdb.drop();
      rmSync(stateDir, { recursive: true, force: true });
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * The browser tests' set-up: a stack (with its worker) and a headless browser for every test of the calling
 * file, started in a `before` hook and closed in an `after` hook. Read `stack` and `browser` inside the tests.
 */
export function webStackWithBrowserForFile(): { readonly stack: WebStack; readonly browser: TestBrowser } {
  let stack: WebStack | undefined;
  let browser: TestBrowser | undefined;
  before(async () => {
    stack = await startWebStack();
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
  });
  return {
    get stack() {
      return startedInBefore(stack, 'the web stack');
    },
    get browser() {
      return startedInBefore(browser, 'the browser');
    },
  };
}
