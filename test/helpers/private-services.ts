// Private Postgres and Redis servers for tests that kill, restart or stall them (test/*chaos*.test.ts, the
// `faults` bench). The shared servers on 5432/6379 are never touched: each private server lives in its own
// temp directory on a random port and is stopped and deleted by `stop()`.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, chmodSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { until as waitUntil } from './until.ts';
import { freePort } from '../../lab/listen.ts';

export { freePort };

const until = (what: string, cond: () => Promise<boolean>, ms: number) => waitUntil(what, cond, ms, { pollMs: 200 });

export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1', () => {
      sock.end();
      resolve(true);
    });
    sock.on('error', () => resolve(false));
    sock.setTimeout(1000, () => {
      sock.destroy();
      resolve(false);
    });
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

/** The directory of the Postgres server binaries (initdb, postgres), newest version first. */
function pgBinDir(): string {
  const base = '/usr/lib/postgresql';
  if (existsSync(base)) {
    const versions = readdirSync(base).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) if (existsSync(path.join(base, v, 'bin', 'postgres'))) return path.join(base, v, 'bin');
  }
  throw new Error('no Postgres server binaries under /usr/lib/postgresql (apt-get install postgresql)');
}

/** Runs a command as the `postgres` user when we are root (initdb and postgres refuse to run as root). */
function asPostgres(cmd: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
}

export interface PrivatePostgres {
  port: number;
  /** URL of the `postgres` database (trust auth, user postgres). */
  url: string;
  urlFor(database: string): string;
  /** Kills the server as a crash would (`pg_ctl stop -m immediate`: SIGQUIT), then starts it again. */
  restartImmediate(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = pgBinDir();
  const dir = mkdtempSync(path.join(tmpdir(), 'mc-pg-'));
  chmodSync(dir, 0o777);
  const data = path.join(dir, 'data');
  if (process.getuid?.() === 0) execFileSync('chown', ['postgres', dir]);
  const [initCmd, initArgs] = asPostgres(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  execFileSync(initCmd, initArgs, { stdio: 'ignore' });
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    const [cmd, args] = asPostgres(path.join(bin, 'postgres'), [
      '-D', data, '-p', String(port), '-k', dir, '-h', '127.0.0.1',
      '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200',
    ]);
    child = spawn(cmd, args, { stdio: 'ignore' });
    await until(`private Postgres on ${port}`, async () => {
      if (!(await portOpen(port))) return false;
      // The port opens before recovery ends: wait until a query would work.
      try {
        execFileSync('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-tAc', 'SELECT 1'], { stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    }, 60_000);
  };
  // Signal the postmaster itself (its pid is the first line of postmaster.pid), not the `runuser` wrapper.
  const kill = async (signal: NodeJS.Signals) => {
    const c = child;
    if (!c) return;
    try {
      const pid = Number(readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
      if (pid > 0) process.kill(pid, signal);
    } catch {
      c.kill(signal);
    }
    await Promise.race([exited(c), new Promise((r) => setTimeout(r, 15_000))]);
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    // The postmaster's backends exit right after it; wait until the port is free again.
    await until('Postgres to stop', async () => !(await portOpen(port)), 30_000).catch(() => {});
  };
  await start();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return {
    port,
    url,
    urlFor: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    async restartImmediate(downMs = 1000) {
      await kill('SIGQUIT');
      await new Promise((r) => setTimeout(r, downMs));
      await start();
    },
    async stop() {
      await kill('SIGQUIT');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface PrivateRedis {
  port: number;
  url: string;
  /** Kills the server (SIGKILL: nothing is kept, it persists nothing anyway) and starts an empty one. */
  restartEmpty(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mc-redis-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--maxmemory-policy', 'noeviction'], {
      stdio: 'ignore',
    });
    await until(`private Redis on ${port}`, () => portOpen(port), 20_000);
  };
  const kill = async () => {
    const c = child;
    if (!c) return;
    c.kill('SIGKILL');
    await exited(c);
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async restartEmpty(downMs = 1000) {
      await kill();
      await new Promise((r) => setTimeout(r, downMs));
      await start();
    },
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
