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

const FLAGS = new Set(['cpu-prof', 'keep', 'report-compare']);

function intList(v: string | boolean | undefined, fallback: number[], name: string): number[] {
  if (v === undefined) return fallback;
  const list = String(v).split(',').map((s) => Number(s.trim()));
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`bench: --${name} takes positive integers separated by commas, got "${v}"`);
  return list;
}

/** The benchmark worlds: today's uniform one (lab/generate.ts) and the internet-like one (lab/generate-internet.ts). */
export type BenchWorld = 'uniform' | 'internet';
const WORLDS: BenchWorld[] = ['uniform', 'internet'];

/** One survey of the bench: a world of `size` domains of one kind. */
export interface SurveyStep {
  size: number;
  world: BenchWorld;
}

/**
 * The default plan (issue 18's figures within about half an hour): one uniform survey of 100,000 domains, whose
 * rate, worker RSS and Redis memory are also read at 10,000 and 50,000 domains diagnosed (the checkpoints), and
 * the internet-like world at 10,000 domains, compared with the uniform survey's first 10,000.
 */
export const DEFAULT_PLAN: readonly SurveyStep[] = [
  { size: 100_000, world: 'uniform' },
  { size: 10_000, world: 'internet' },
];
export const DEFAULT_CHECKPOINTS: readonly number[] = [10_000, 50_000];

export interface SurveyOptions {
  /** The surveys, in order: the default plan, or every `--sizes` × `--world` pair. */
  plan: SurveyStep[];
  /** Domains diagnosed at which a run's rate and memory are read on the way (those below its size). */
  checkpoints: number[];
  /** Worker counts to run at a size. */
  workersFor(size: number): number[];
  concurrency: number;
  baseline: boolean;
  baselineSize: number;
  baselineSample: number;
  cpuProf: boolean;
  keep: boolean;
  /** True when the plan is the default one (its figures are the issue's: they go into the `survey` section). */
  defaultPlan: boolean;
  command: string;
}

export function benchOptions(args: BenchArgs): SurveyOptions {
  const worlds = args.world === undefined ? ['uniform'] : String(args.world).split(',').map((w) => w.trim());
  const badWorld = worlds.find((w) => !WORLDS.includes(w as BenchWorld));
  if (badWorld !== undefined || worlds.length === 0 || args.world === true) {
    throw new Error(`bench: --world takes ${WORLDS.join(', ')} (or both, separated by a comma), got "${args.world}"`);
  }
  const defaultPlan = args.sizes === undefined && args.world === undefined;
  const sizes = intList(args.sizes, [10_000, 50_000], 'sizes');
  const plan = defaultPlan
    ? DEFAULT_PLAN.map((s) => ({ ...s }))
    : sizes.flatMap((size) => [...new Set(worlds)].map((world) => ({ size, world: world as BenchWorld })));
  const uniformSizes = plan.filter((s) => s.world === 'uniform').map((s) => s.size);
  return {
    plan,
    checkpoints: intList(args.checkpoints, [...DEFAULT_CHECKPOINTS], 'checkpoints'),
    // Two workers, as the issue measures (`--workers 1,2` adds the one-worker run for the scaling).
    workersFor: () => intList(args.workers, [2], 'workers'),
    concurrency: intList(args.concurrency, [150], 'concurrency')[0]!,
    baseline: args['no-baseline'] !== true,
    // The baseline runs on the uniform 10,000-domain world when there is one, else on the smallest uniform one.
    baselineSize: uniformSizes.includes(10_000) ? 10_000 : Math.min(...uniformSizes),
    // 60 domains one after the other take about 50 s and measure the rate within a few percent (p50 and p99 of
    // a domain are within 10% of each other on the lab); 150 took two minutes of a half-hour bench.
    baselineSample: intList(args['baseline-sample'], [60], 'baseline-sample')[0]!,
    cpuProf: args['cpu-prof'] === true,
    keep: args.keep === true,
    defaultPlan,
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
  /** The run read on the way, at each checkpoint below its size. */
  checkpoints: Checkpoint[];
}

/** A run's figures when its `diagnosed`-th domain was diagnosed (a worker's `domain diagnosed` line). */
export interface Checkpoint {
  diagnosed: number;
  /** Since `mailcensus run` was started. */
  seconds: number;
  perSecond: number;
  /** Each worker's resident memory at that moment (VmRSS) and its peak so far (VmHWM). */
  rssMiB: number[];
  peakRssMiB: number[];
  /** Our keys' memory in Redis (MEMORY USAGE over the run's prefix), read at that moment. */
  redisOwnMiB: number;
  redisOwnKeys: number;
}
