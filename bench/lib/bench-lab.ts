// What the benches that start a lab (bench/survey.ts, bench/sessions.ts) and the sequential baseline
// (bench/baseline.ts) share: the worker settings, starting a lab world, the bench's own survey database. A
// module of its own, so the benches do not import each other.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type postgres from 'postgres';
import { spawnCli, waitFor, type Spawned } from './proc.ts';
import type { BenchWorld } from './args.ts';
import { freePort } from '../../lab/listen.ts';

/** The settings every benchmark worker runs with (stored with the run, so the workers all agree). */
export const BENCH_ENV: Record<string, string> = {
  // Politeness limits made non-binding against the lab (it is ours), but still exercised: every DNS query
  // still takes a Redis token and every SMTP session a Redis per-IP lease.
  MAILCENSUS_DNS_QPS: '100000',
  MAILCENSUS_PER_IP_CONCURRENCY: '1',
  MAILCENSUS_PER_IP_INTERVAL_MS: '10',
  // Transient unknowns (greylisting, 421, silent hosts, DNS faults: about 2% of a generated world) are final
  // at once: retrying them is spaced by minutes by design and would measure the retry delay, not the pipeline.
  MAILCENSUS_TRANSIENT_RETRIES: '0',
  // DNS timeouts as shipped (2 s, 3 tries): on a machine this loaded a shorter one turned scheduling delays
  // into `timeout` unknowns, and one shared provider IP's timeout makes hundreds of domains incomplete.
  MAILCENSUS_DNS_TIMEOUT_MS: '2000',
  MAILCENSUS_DNS_RETRIES: '2',
  MAILCENSUS_SMTP_CONNECT_TIMEOUT_MS: '5000',
  MAILCENSUS_SMTP_BANNER_TIMEOUT_MS: '5000',
  MAILCENSUS_SMTP_COMMAND_TIMEOUT_MS: '5000',
  MAILCENSUS_SHUTDOWN_TIMEOUT_MS: '10000',
  MAILCENSUS_LOG_LEVEL: 'debug',
};

/** A running bench lab; `W`: which generated world it serves. */
export interface LabUp<W extends string = BenchWorld> {
  dir: string;
  worldFile: string;
  domains: string[];
  env: Record<string, string>;
  proc: Spawned;
  stateDir: string;
  startSeconds: number;
  /** The lab process and its SMTP shard processes (lab/smtp-shard.ts), for CPU accounting. */
  pids: number[];
  world: W;
  /** The SMTP port on every host address. */
  smtpPort: number;
}

function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) env[line.slice(0, i)] = line.slice(i + 1);
  }
  return env;
}

/** The environment of a spawned command: ours minus any MAILCENSUS_* the user has set, plus `extra`. */
export function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MAILCENSUS_')) env[k] = v;
  return { ...env, ...extra };
}

/** Starts `mailcensus lab up` on `world` (with `labArgs`, e.g. `--max-sessions`) in its own process. */
export async function startLabWorld<W extends string>(worldObject: object, dir: string, kind: W, labArgs: string[] = []): Promise<LabUp<W>> {
  const world = worldObject as { populations: { count: number; name: string }[] };
  const worldFile = path.join(dir, 'world.json');
  await writeFile(worldFile, JSON.stringify(world));
  const domains: string[] = [];
  for (const p of world.populations) for (let i = 1; i <= p.count; i++) domains.push(p.name.replace('{i}', String(i)));
  const stateDir = path.join(dir, 'lab');
  const envFile = path.join(dir, 'lab.env');
  const started = Date.now();
  const port = await freePort();
  const proc = spawnCli(
    'lab',
    ['lab', 'up', '--world', worldFile, '--dns-port', '0', '--smtp-port', String(port), '--state-dir', stateDir, '--env-out', envFile, ...labArgs],
    { env: childEnv({}), logDir: dir },
  );
  let exited: number | null = null;
  void proc.exited.then((c) => (exited = c));
  const text = await waitFor(
    'the lab to start',
    async () => {
      if (exited !== null) throw new Error(`bench: the lab exited with ${exited}: ${proc.stderr().trim().slice(-500)}`);
      if (!existsSync(envFile)) return null;
      const t = await readFile(envFile, 'utf8');
      return t.includes('MAILCENSUS_LAB_STATE=') ? t : null;
    },
    600_000,
    200,
  );
  let smtpPids: number[] = [];
  try {
    smtpPids = (JSON.parse(await readFile(path.join(stateDir, 'lab.json'), 'utf8')) as { smtpPids?: number[] }).smtpPids ?? [];
  } catch {
    // an older lab without shards
  }
  return { dir, worldFile, domains, env: parseEnv(text), proc, stateDir, startSeconds: (Date.now() - started) / 1000, pids: [proc.pid, ...smtpPids], world: kind, smtpPort: port };
}

/** Creates database `dbName`, migrates it and ingests `domains` as survey `bench` (the bench's own database). */
export async function createBenchSurvey(admin: postgres.Sql, dbName: string, dbUrl: string, dir: string, domains: string[]): Promise<void> {
  await admin.unsafe(`CREATE DATABASE ${dbName}`);
  const csv = path.join(dir, 'domains.csv');
  await writeFile(csv, `domain\n${domains.join('\n')}\n`);
  const migrate = spawnCli('migrate', ['migrate'], { env: childEnv({ DATABASE_URL: dbUrl }), logDir: dir });
  if ((await migrate.exited) !== 0) throw new Error(`bench: migrate failed: ${migrate.stderr().trim().slice(-500)}`);
  const ingest = spawnCli('ingest', ['ingest', csv, '--survey', 'bench'], { env: childEnv({ DATABASE_URL: dbUrl }), logDir: dir });
  const code = await ingest.exited;
  if (code !== 0) throw new Error(`bench: ingest exited with ${code}: ${ingest.stderr().trim().slice(-500)}`);
}

/** The p-th percentile of an ascending list (nearest rank), null when empty. */
export function pct(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
