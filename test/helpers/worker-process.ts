// A survey worker as production runs it: a `node bin/mailcensus.mjs worker` process with the given environment,
// for the tests that run surveys through real workers (workers-*, dkim-discovery-workers). Its stderr (the
// pino log, one JSON line each) is kept for assertions; its exit is a promise.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface WorkerProcess {
  child: ChildProcess;
  /** The log lines so far (the last `keepLines`). */
  lines: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** @param opts.keepLines lines kept, the newest (a long chaos run logs a lot). @defaultValue all */
export function spawnWorker(env: Record<string, string>, opts: { keepLines?: number } = {}): WorkerProcess {
  const keep = opts.keepLines ?? Infinity;
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/mailcensus.mjs'), 'worker'], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines: string[] = [];
  let buf = '';
  child.stderr!.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
    if (lines.length > keep) lines.splice(0, lines.length - keep);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, lines, exited };
}

/** Where a test's workers find the lab (resolver, ports, CA), the test's database, Redis and its own queue prefix. */
export function workerServicesEnv(labEnv: Readonly<Record<string, string>>, databaseUrl: string, redisUrl: string, prefix: string): Record<string, string> {
  return { ...labEnv, DATABASE_URL: databaseUrl, REDIS_URL: redisUrl, MAILCENSUS_QUEUE_PREFIX: prefix };
}

export const alive = (w: WorkerProcess): boolean => w.child.exitCode === null && w.child.signalCode === null;

/** SIGKILL for a worker that is still running (one a failed test left behind), so that the test file can end. */
export function killIfAlive(w: WorkerProcess | null): void {
  if (w && alive(w)) w.child.kill('SIGKILL');
}
