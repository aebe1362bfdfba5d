// What the survey bench (bench/survey.ts) and the sequential baseline (bench/baseline.ts) share: the worker
// settings, and the running lab. A module of its
// own, so the benches do not import each other.
import type { Spawned } from './proc.ts';
import type { BenchWorld } from './args.ts';

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

export interface LabUp {
  dir: string;
  worldFile: string;
  domains: string[];
  env: Record<string, string>;
  proc: Spawned;
  stateDir: string;
  startSeconds: number;
  /** The lab process and its SMTP shard processes (lab/smtp-shard.ts), for CPU accounting. */
  pids: number[];
  world: BenchWorld;
}
