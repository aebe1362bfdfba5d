// Options of `npm run bench -- [part...] [--option value...]`, and the figures parts share within one
// invocation (the baseline ratio compares with the pipeline measured in the same run).

export type BenchArgs = Record<string, string | boolean>;

/** Splits argv into part names and `--key value` / `--flag` options. */
export function parseArgv(argv: string[]): { parts: string[]; args: BenchArgs } {
  const parts: string[] = [];
  const args: BenchArgs = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) {
      parts.push(a);
      continue;
    }
    const [key, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
    if (inline !== undefined) args[key] = inline;
    else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--') && !/^no-/.test(key) && !FLAGS.has(key)) args[key] = argv[++i]!;
    else args[key] = true;
  }
  return { parts, args };
}

const FLAGS = new Set(['cpu-prof', 'keep']);

function intList(v: string | boolean | undefined, fallback: number[], name: string): number[] {
  if (v === undefined) return fallback;
  const list = String(v).split(',').map((s) => Number(s.trim()));
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`bench: --${name} takes positive integers separated by commas, got "${v}"`);
  return list;
}

/** The benchmark worlds: today's uniform one (lab/generate.ts) and the internet-like one (lab/generate-internet.ts). */
export type BenchWorld = 'uniform' | 'internet';
const WORLDS: BenchWorld[] = ['uniform', 'internet'];

export interface SurveyOptions {
  sizes: number[];
  /** Worlds to survey at every size, in order (`--world uniform,internet`). @defaultValue ['uniform'] */
  worlds: BenchWorld[];
  /** Worker counts to run at a size. */
  workersFor(size: number): number[];
  concurrency: number;
  baseline: boolean;
  baselineSize: number;
  baselineSample: number;
  cpuProf: boolean;
  keep: boolean;
  command: string;
}

export function benchOptions(args: BenchArgs): SurveyOptions {
  const sizes = intList(args.sizes, [10_000, 50_000], 'sizes');
  const worlds = args.world === undefined ? ['uniform'] : String(args.world).split(',').map((w) => w.trim());
  const badWorld = worlds.find((w) => !WORLDS.includes(w as BenchWorld));
  if (badWorld !== undefined || worlds.length === 0 || args.world === true) {
    throw new Error(`bench: --world takes ${WORLDS.join(', ')} (or both, separated by a comma), got "${args.world}"`);
  }
  return {
    sizes,
    worlds: [...new Set(worlds)] as BenchWorld[],
    // Default: 1 and 2 workers up to 10,000 domains, 2 workers at 50,000 (1 worker there would take the whole
    // bench past 30 minutes on 2 cores); --workers applies to every size.
    workersFor: args.workers === undefined ? (size: number) => (size >= 50_000 ? [2] : [1, 2]) : () => intList(args.workers, [1, 2], 'workers'),
    concurrency: intList(args.concurrency, [150], 'concurrency')[0]!,
    baseline: args['no-baseline'] !== true,
    // The baseline runs on the 10,000-domain world when there is one, else on the smallest size.
    baselineSize: sizes.includes(10_000) ? 10_000 : Math.min(...sizes),
    baselineSample: intList(args['baseline-sample'], [150], 'baseline-sample')[0]!,
    cpuProf: args['cpu-prof'] === true,
    keep: args.keep === true,
    command: commandLine,
  };
}

let commandLine = 'npm run bench';
export function setCommandLine(argv: string[]): void {
  commandLine = argv.length ? `npm run bench -- ${argv.join(' ')}` : 'npm run bench';
}

export const results: { pipeline: PipelineResult[]; baseline: boolean } = { pipeline: [], baseline: false };

/** One measured survey run (bench/survey.ts). */
export interface PipelineResult {
  size: number;
  world: BenchWorld;
  /** DNS queries the lab answered (or dropped) during the run, per diagnosed domain; null if unknown. */
  dnsPerDomain: number | null;
  workers: number;
  concurrency: number;
  diagnosed: number;
  seconds: number;
  perSecond: number;
  p50: number | null;
  p99: number | null;
  ips: number;
  sessionsMax: number;
  sessionsMean: number;
  /** IPs with more than one session, and how many of them had a failed STARTTLS (the probe's plain-text retry). */
  sessionsOver1: number;
  sessionsOver1AfterTls: number;
  ipsProbed: number;
  rssMiB: number[];
  redisOwnMiB: number;
  redisOwnKeys: number;
  redisServerGrowthMiB: number;
  redisServerPeakMiB: number;
  labCpuShare: number;
  workerCpuShare: number;
  machineBusy: number;
  incomplete: number;
  unknowns: string;
  /** 1-minute load average at the start and the end of the run (the machine is shared). */
  load: [number, number];
  verdicts: Record<string, number>;
  topRedis: string;
  pgCommits: number;
  /**
   * Round trips our own processes (workers and `run`) made, counted in each process (bench/lib/count-calls.mjs):
   * Redis commands by name (EVALSHA by script), and Postgres statements (Sync/Query messages).
   */
  ownRedis: Record<string, number>;
  pgStatements: number;
  profile?: string;
}
