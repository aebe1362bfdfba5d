// Process helpers for the benchmarks: spawn a mailcensus command in its own process group (so a kill reaches
// everything it started), and read what Linux says about a process from /proc: peak resident memory (VmHWM)
// and CPU time (utime + stime).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = path.join(ROOT, 'bin', 'mailcensus.mjs');
/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat; 100 on every mainstream Linux build. */
const CLK_TCK = 100;

export interface Spawned {
  name: string;
  child: ChildProcess;
  pid: number;
  /** Resolves with the exit code (or 128 + signal) once the process has exited. */
  exited: Promise<number>;
  /** Everything it wrote on stdout / stderr so far (also written to the log files). */
  stdout(): string;
  stderr(): string;
  /** SIGTERM to the process group, SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<number>;
}

/**
 * Runs `node bin/mailcensus.mjs ...args` detached (its own process group). Output is kept in memory (capped)
 * and appended to `<logDir>/<name>.out|err`. Every process spawned here is registered so `stopAll()` can end
 * them on any failure.
 */
export function spawnCli(
  name: string,
  args: string[],
  opts: {
    env: NodeJS.ProcessEnv;
    logDir: string;
    nodeArgs?: string[];
    keepBytes?: number;
    /** Called with every complete stderr line (the workers' JSON log lines), however long the output. */
    onStderrLine?: (line: string) => void;
  },
): Spawned {
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), CLI, ...args], {
    cwd: ROOT,
    env: opts.env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`bench: cannot start ${name}`);
  const keep = opts.keepBytes ?? 4 * 2 ** 20;
  let out = '';
  let err = '';
  const outFile = createWriteStream(path.join(opts.logDir, `${name}.out`));
  const errFile = createWriteStream(path.join(opts.logDir, `${name}.err`));
  child.stdout!.on('data', (b: Buffer) => {
    outFile.write(b);
    if (out.length < keep) out += b.toString();
  });
  let partial = '';
  child.stderr!.on('data', (b: Buffer) => {
    errFile.write(b);
    const text = b.toString();
    if (err.length < keep) err += text;
    if (opts.onStderrLine) {
      const lines = (partial + text).split('\n');
      partial = lines.pop()!;
      for (const line of lines) opts.onStderrLine(line);
    }
  });
  const exited = new Promise<number>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(s);
      outFile.end();
      errFile.end();
      resolve(code ?? 128 + (signal ? signalNumber(signal) : 0));
    });
  });
  const pid = child.pid;
  const s: Spawned = {
    name,
    child,
    pid,
    exited,
    stdout: () => out,
    stderr: () => err,
    async stop(graceMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      killGroup(pid, 'SIGTERM');
      const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      killGroup(pid, 'SIGKILL'); // anything the process left behind in its group
      return code;
    },
  };
  running.add(s);
  return s;
}

function signalNumber(signal: NodeJS.Signals): number {
  return ({ SIGINT: 2, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[signal] ?? 0;
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

const running = new Set<Spawned>();

/** Stops every process this module started that is still running (used in `finally` blocks). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((s) => s.stop(5000)));
}

// A bench interrupted with Ctrl-C must not leave labs and workers behind.
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    for (const s of running) killGroup(s.pid, 'SIGKILL');
    process.exit(130);
  });
}

/** Peak resident set size (VmHWM) of a running process, in bytes; null once it has exited. */
export function peakRss(pid: number): number | null {
  return statusBytes(pid, 'VmHWM');
}

/** Resident memory of a running process now (VmRSS), in bytes; null once it has exited. */
export function currentRss(pid: number): number | null {
  return statusBytes(pid, 'VmRSS');
}

function statusBytes(pid: number, field: 'VmHWM' | 'VmRSS'): number | null {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** CPU seconds (user + system) a running process has used so far; null once it has exited. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces: the fields after it start past the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

/** CPU seconds the whole machine spent busy (all cores), from /proc/stat. */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const busy = v[0]! + v[1]! + v[2]! + v[5]! + v[6]! + v[7]!;
  return busy / CLK_TCK;
}

/** Waits until `test()` is truthy, polling every `everyMs`; throws `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, test: () => T | Promise<T>, timeoutMs: number, everyMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await test();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`bench: timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export { once };
