// A lab for a test file: every service of a world on ephemeral ports (DNS, SMTP, HTTPS), its state in a fresh
// temp directory that stop() removes as well. The directory is the test's own too (a CSV, a Redis dir): the
// lab keeps its state in `dir/lab`. The *ForFile helpers start it (with a test database and our receiver where
// the file needs them) in the file's `before` hook and stop it in its `after` hook.
import { after, before } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startLab, type Lab } from '../../lab/index.ts';
import type { Receiver, ReceiverOptions } from '../../receiver/server.ts';
import { FAST_LAB_CHECKER_ENV } from './lab-env.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';
import { startLabReceiver } from './lab-receiver.ts';
import { workerServicesEnv } from './worker-process.ts';
import { startedInBefore } from './for-file.ts';

export interface TestLab extends Lab {
  dir: string;
}

/**
 * @param world a world file, or a world document (written to `dir/world.json`, so it is read as `lab up` reads one)
 * @param tmpPrefix how the temp directory's name starts (`mc-<file>-`), to tell a leftover's test
 */
export async function startTestLab(world: string | object, tmpPrefix: string): Promise<TestLab> {
  const dir = mkdtempSync(path.join(os.tmpdir(), tmpPrefix));
  try {
    let file = world;
    if (typeof world !== 'string') {
      file = path.join(dir, 'world.json');
      writeFileSync(file, JSON.stringify(world));
    }
    const lab = await startLab(file as string, { dnsPort: 0, smtpPort: 0, httpsPort: 0, stateDir: path.join(dir, 'lab') });
    return {
      ...lab,
      dir,
      async stop() {
        await lab.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * The set-up of the tests that run `mailcensus check` against a lab: a lab for every test of the calling file,
 * started in a `before` hook and stopped in an `after` hook. Inside tests and `setUp`, `checkEnv` is the
 * environment a `check` process runs with (this process's, the lab's and FAST_LAB_CHECKER_ENV, `extra` last),
 * and `dir` the lab's temp directory, the test's own too.
 * @param setUp what the file does once the lab is up, in the same hook: Node 20 starts a file's `before` hooks
 * together, so a hook of the file's own could run before the lab is there.
 */
export function checkLabForFile(
  world: string,
  tmpPrefix: string,
  setUp?: () => Promise<void>,
): { checkEnv(extra?: Readonly<Record<string, string>>): NodeJS.ProcessEnv; readonly dir: string } {
  let lab: TestLab | undefined;
  before(async () => {
    lab = await startTestLab(world, tmpPrefix);
    await setUp?.();
  });
  after(async () => {
    await lab?.stop();
  });
  return {
    checkEnv(extra = {}) {
      return { ...process.env, ...startedInBefore(lab, 'the lab').env, ...FAST_LAB_CHECKER_ENV, ...extra };
    },
    get dir() {
      return startedInBefore(lab, 'the lab').dir;
    },
  };
}

/** The lab's clock: its world's observedAt, the time `loadConfig` reads from the lab's MAILCENSUS_CLOCK. */
export const labClock = (lab: Lab): Date | null => (lab.world.observedAt ? new Date(lab.world.observedAt) : null);

export interface LabWithDatabase {
  readonly lab: TestLab;
  readonly tdb: TestDatabase;
  /** Our receiver, where the file asked for one. */
  readonly rx: Receiver;
  /**
   * Where a worker process finds this lab, this database, Redis at `redisUrl` and the queue `prefix`, with the
   * file's own `settings` over them.
   */
  workerEnv(redisUrl: string, prefix: string, settings?: Record<string, string>): Record<string, string>;
}

/**
 * The set-up of the tests that diagnose the lab's mail or run surveys of it: a lab and a test database for every
 * test of the calling file, started together in a `before` hook, then, with `receiver`, our receiver in front of
 * that database (its options from the started lab), then `setUp`. The `after` hook runs `stopFirst` (for a worker
 * process that still uses them), then closes the receiver, stops the lab and drops the database. Read the fields
 * inside tests and `setUp`.
 * @param opts.setUp what the file does once all is up, in the same hook: Node 20 starts a file's `before` hooks
 * together, so a hook of the file's own could run before the lab is there.
 */
export function labWithDatabaseForFile(
  world: string | object,
  tmpPrefix: string,
  opts: { receiver?: (lab: TestLab) => Partial<Omit<ReceiverOptions, 'db'>>; setUp?: () => Promise<void> | void; stopFirst?: () => void } = {},
): LabWithDatabase {
  let lab: TestLab | undefined;
  let tdb: TestDatabase | undefined;
  let rx: Receiver | undefined;
  before(async () => {
    // Both settled before either failure goes on, so the after hook cleans up whichever did start.
    const [l, d] = await Promise.allSettled([startTestLab(world, tmpPrefix), createTestDatabase()]);
    if (l.status === 'fulfilled') lab = l.value;
    if (d.status === 'fulfilled') tdb = d.value;
    if (l.status === 'rejected') throw l.reason;
    if (d.status === 'rejected') throw d.reason;
    if (opts.receiver) rx = await startLabReceiver(d.value.db, opts.receiver(l.value));
    await opts.setUp?.();
  });
  after(async () => {
    opts.stopFirst?.();
    await rx?.close();
    await lab?.stop();
    await tdb?.drop();
  });
  return {
    get lab() {
      return startedInBefore(lab, 'the lab');
    },
    get tdb() {
      return startedInBefore(tdb, 'the test database');
    },
    get rx() {
      return startedInBefore(rx, 'the receiver (with the receiver option)');
    },
    workerEnv(redisUrl, prefix, settings = {}) {
      return { ...workerServicesEnv(startedInBefore(lab, 'the lab').env, startedInBefore(tdb, 'the test database').url, redisUrl, prefix), ...settings };
    },
  };
}
