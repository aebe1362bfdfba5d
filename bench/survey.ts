// End-to-end survey throughput: generated lab worlds (40% of the domains on a few providers' shared MX hosts,
// DNS 20 ms per answer, SMTP 30 ms per reply line), the lab in its own process, the domains ingested as a
// survey into a fresh database, 1 then 2 `mailcensus worker` processes, and `mailcensus run --survey --wait`.
// Measured: domains/s, p50/p99 time per domain, SMTP sessions per distinct IP (from the lab's log), peak RSS
// per worker (VmHWM), Redis memory, and the CPU the lab itself took. Then the sequential baseline on the same
// 10,000-domain world (bench/lib/baseline-measure.ts), while the lab is still up.
//
// By default (issue 18's plan, bench/lib/args.ts DEFAULT_PLAN): the uniform world of 100,000 domains with
// 2 workers, read on the way at 10,000 and 50,000 domains diagnosed (rate so far, RSS per worker, Redis
// memory), then the internet-like world of 10,000 domains, compared with the uniform survey's first 10,000.
//
// Options (after `npm run bench -- survey`): --sizes 10000,50000 and --world uniform,internet (instead of the
// plan: every size × world)  --workers 1,2  --concurrency 100  --checkpoints 10000,50000
// --baseline-sample 300  --no-baseline  --cpu-prof (profile worker 1 and print its hottest functions).
import { mkdtemp, readFile, rm, stat, open as openFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { generateWorld } from '../lab/generate.ts';
import { generateInternetWorld, INTERNET_DEFAULTS } from '../lab/generate-internet.ts';
import { machine, updateSection } from './_report.ts';
import { cpuSeconds, currentRss, machineBusySeconds, peakRss, spawnCli, stopAll, waitFor, type Spawned } from './lib/proc.ts';
import { commandCalls, deletePrefix, openRedis, prefixMemory, sampleRedis } from './lib/redis.ts';
import { summarizeProfile } from './lib/profile.ts';
import { benchOptions, results, type BenchArgs, type BenchWorld, type Checkpoint, type PipelineResult } from './lib/args.ts';
import { BENCH_ENV, childEnv, createBenchSurvey, pct, startLabWorld, type LabUp } from './lib/bench-lab.ts';
import { runBaseline } from './lib/baseline-measure.ts';

const COUNT_CALLS = path.join(path.dirname(new URL(import.meta.url).pathname), 'lib', 'count-calls.mjs');

/** The counts every process preloaded with count-calls.mjs wrote to `dir`, summed. */
async function ownCalls(dir: string): Promise<{ redis: Map<string, number>; pgStatements: number }> {
  const redis = new Map<string, number>();
  let pgStatements = 0;
  const { readdir } = await import('node:fs/promises');
  for (const f of existsSync(dir) ? await readdir(dir) : []) {
    try {
      const c = JSON.parse(await readFile(path.join(dir, f), 'utf8')) as { redis: Record<string, number>; pgStatements: number };
      for (const [k, v] of Object.entries(c.redis)) redis.set(k, (redis.get(k) ?? 0) + v);
      pgStatements += c.pgStatements;
    } catch {
      // being rewritten this instant: the next read has it
    }
  }
  return { redis, pgStatements };
}

const SERVER_URL = process.env.TEST_DATABASE_SERVER_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
export const WORLD = { sharedMxShare: 0.4, providers: 5, dnsLatencyMs: 20, smtpRttMs: 30, seed: 1 } as const;

/**
 * On the internet-like world the banner timeout is the shipped one (30 s): postscreen hosts greet after 6 s and
 * must be waited for, as a real survey would; tarpits (30 s, or never) time out.
 */
export const INTERNET_ENV: Record<string, string> = { MAILCENSUS_SMTP_BANNER_TIMEOUT_MS: '30000' };

const mib = (b: number) => b / 2 ** 20;

/** The lab DNS server's query count so far (dns-stats.json, rewritten by the lab once a second), or null. */
export async function labDnsQueries(stateDir: string): Promise<number | null> {
  try {
    const q = (JSON.parse(await readFile(path.join(stateDir, 'dns-stats.json'), 'utf8')) as { queries?: unknown }).queries;
    return typeof q === 'number' ? q : null;
  } catch {
    return null;
  }
}

/** Generates the world of `size` domains and starts `mailcensus lab up` on it in its own process. */
export async function startBenchLab(size: number, dir: string, kind: BenchWorld = 'uniform'): Promise<LabUp> {
  const world = kind === 'internet' ? generateInternetWorld({ domains: size, seed: WORLD.seed }) : generateWorld({ domains: size, ...WORLD });
  return startLabWorld(world, dir, kind);
}

/** SMTP connections per host IP in the lab log from byte `offset` on. */
async function smtpSessions(stateDir: string, offset: number): Promise<{ per: Map<string, number>; tlsFailed: Set<string> }> {
  const file = path.join(stateDir, 'smtp-log.jsonl');
  const fh = await openFile(file, 'r');
  const per = new Map<string, number>();
  const tlsFailed = new Set<string>();
  try {
    const size = (await fh.stat()).size;
    const stream = fh.createReadStream({ start: offset, end: Math.max(offset, size - 1), encoding: 'utf8' });
    let rest = '';
    for await (const chunk of stream) {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop()!;
      for (const line of lines) {
        if (!line.includes('"connect"') && !line.includes('"close"')) continue;
        const e = JSON.parse(line) as { ip: string; event: string; line?: string };
        if (e.event === 'connect') per.set(e.ip, (per.get(e.ip) ?? 0) + 1);
        // The probe opens a second, plain-text session after a failed STARTTLS handshake (by design).
        else if (e.event === 'close' && /tls/i.test(e.line ?? '')) tlsFailed.add(e.ip);
      }
    }
  } finally {
    await fh.close();
  }
  return { per, tlsFailed };
}

/** One run: `workers` worker processes over the survey, measured. */
async function measureRun(
  lab: LabUp,
  dbUrl: string,
  admin: postgres.Sql,
  dbName: string,
  size: number,
  workers: number,
  concurrency: number,
  cpuProf: boolean,
  checkpointsAt: number[],
): Promise<PipelineResult> {
  const prefix = `mcbench${randomBytes(4).toString('hex')}`;
  const countsDir = path.join(lab.dir, `counts-${workers}`);
  const env = childEnv({
    ...lab.env,
    ...BENCH_ENV,
    ...(lab.world === 'internet' ? INTERNET_ENV : {}),
    DATABASE_URL: dbUrl,
    REDIS_URL,
    MAILCENSUS_QUEUE_PREFIX: prefix,
    MAILCENSUS_BENCH_COUNTS_DIR: countsDir,
  });
  const countArgs = ['--import', COUNT_CALLS];
  const redis = openRedis(REDIS_URL);
  const durations: number[] = [];
  const procs: Spawned[] = [];
  // The checkpoints: when the k-th domain is diagnosed (counted from the workers' lines, so reading them costs
  // the run nothing), the rate so far, each worker's RSS and our Redis keys' memory at that moment.
  const pending = checkpointsAt.filter((k) => k < size).sort((a, b) => a - b);
  const checkpoints: Promise<Checkpoint>[] = [];
  let runStarted = 0;
  const onDiagnosed = () => {
    if (pending.length === 0 || durations.length < pending[0]!) return;
    const diagnosed = pending.shift()!;
    const seconds = (Date.now() - runStarted) / 1000;
    const rssMiB = procs.map((p) => mib(currentRss(p.pid) ?? 0));
    const peakRssMiB = procs.map((p) => mib(peakRss(p.pid) ?? 0));
    checkpoints.push(
      prefixMemory(redis, prefix)
        .catch(() => ({ keys: 0, bytes: NaN }))
        .then((k) => ({ diagnosed, seconds, perSecond: diagnosed / seconds, rssMiB, peakRssMiB, redisOwnMiB: mib(k.bytes), redisOwnKeys: k.keys })),
    );
  };
  const profDir = path.join(lab.dir, `prof-${workers}`);
  try {
    for (let i = 1; i <= workers; i++) {
      procs.push(
        // The same figure for domain jobs and probe sessions, as before the probe queue had its own setting: with
        // the default 2,000 probes against one lab process, the lab itself answers 421 past its session limit and
        // drops DNS, which measures the lab, not us (bench sessions measures thousands of sessions on their own).
        spawnCli(`worker-${workers}-${i}`, ['worker', '--concurrency', String(concurrency), '--probe-concurrency', String(concurrency)], {
          env,
          logDir: lab.dir,
          keepBytes: 64 * 1024,
          nodeArgs: [...countArgs, ...(cpuProf && i === 1 ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [])],
          onStderrLine: (line) => {
            if (!line.includes('domain diagnosed')) return;
            try {
              const ms = (JSON.parse(line) as { ms?: number }).ms;
              if (typeof ms === 'number') {
                durations.push(ms);
                onDiagnosed();
              }
            } catch {
              // not a JSON line
            }
          },
        }),
      );
    }
    for (const p of procs) {
      await waitFor(`${p.name} to start`, () => {
        if (p.child.exitCode !== null) throw new Error(`bench: ${p.name} exited: ${p.stderr().slice(-500)}`);
        return p.stderr().includes('worker started');
      }, 60_000);
    }
    const logFile = path.join(lab.stateDir, 'smtp-log.jsonl');
    const logOffset = existsSync(logFile) ? (await stat(logFile)).size : 0;
    const cmd0 = await commandCalls(redis);
    const pg0 = (await admin`SELECT (xact_commit + xact_rollback)::int AS c FROM pg_stat_database WHERE datname = ${dbName}`)[0]?.c ?? 0;
    // The workers rewrite their counts every 0.5 s: wait for a fresh snapshot of what starting them took.
    await new Promise((r) => setTimeout(r, 1200));
    const own0 = await ownCalls(countsDir);
    const sampler = sampleRedis(redis, prefix);
    const labCpuNow = () => lab.pids.reduce((sum, pid) => sum + (cpuSeconds(pid) ?? 0), 0);
    const labCpu0 = labCpuNow();
    const dns0 = await labDnsQueries(lab.stateDir);
    const workerCpu0 = procs.map((p) => cpuSeconds(p.pid) ?? 0);
    const busy0 = machineBusySeconds();
    const t0 = Date.now();
    runStarted = t0;
    const load0 = loadavg()[0]!;

    const runProc = spawnCli(`run-${workers}`, ['run', '--survey', 'bench', '--wait'], { env, logDir: lab.dir, nodeArgs: countArgs });
    const code = await runProc.exited;
    if (code !== 0) throw new Error(`bench: mailcensus run exited with ${code}: ${runProc.stderr().trim().slice(-500)}`);
    const wall = (Date.now() - t0) / 1000;
    const labCpu = labCpuNow() - labCpu0;
    // The lab rewrites its count once a second: wait for the last answers to be counted.
    await new Promise((r) => setTimeout(r, 1500));
    const dns1 = await labDnsQueries(lab.stateDir);
    const workerCpu = procs.reduce((s, p, i) => s + ((cpuSeconds(p.pid) ?? workerCpu0[i]!) - workerCpu0[i]!), 0);
    const busy = machineBusySeconds() - busy0;
    const rss = procs.map((p) => peakRss(p.pid) ?? 0);
    const mem = await sampler.stop();
    const cmd1 = await commandCalls(redis);
    const pg1 = (await admin`SELECT (xact_commit + xact_rollback)::int AS c FROM pg_stat_database WHERE datname = ${dbName}`)[0]?.c ?? 0;
    const own1 = await ownCalls(countsDir);

    const runId = Number(runProc.stdout().trim().split('\n').pop());
    const db = postgres(dbUrl, { max: 1, onnotice: () => {} });
    let row: { started: Date; last: Date; n: number; incomplete: number };
    let verdicts: Record<string, number> = {};
    let ipsProbed = 0;
    let unknowns = '';
    try {
      [row] = await db<(typeof row)[]>`
        SELECT r.started_at AS started, max(d.created_at) AS last, count(d.*)::int AS n,
               count(*) FILTER (WHERE d.verdict = 'incomplete')::int AS incomplete
        FROM runs r JOIN diagnoses d ON d.run_id = r.id WHERE r.id = ${runId} GROUP BY r.started_at`;
      for (const v of await db`SELECT verdict, count(*)::int AS n FROM diagnoses WHERE run_id = ${runId} GROUP BY verdict ORDER BY verdict`) {
        verdicts[v.verdict as string] = v.n as number;
      }
      ipsProbed = (await db`SELECT count(*)::int AS n FROM probed_ips WHERE run_id = ${runId}`)[0]!.n as number;
      // Why domains are incomplete: the unknown criteria and their reasons (tls_send is never measured by a scan).
      unknowns = (
        await db`
          SELECT c || ':' || r AS k, count(*)::int AS n FROM diagnoses,
            LATERAL (VALUES ('open_relay', open_relay, open_relay_reason), ('spf', spf, spf_reason), ('dkim', dkim, dkim_reason),
                            ('tls_receive', tls_receive, tls_receive_reason), ('reverse_dns', reverse_dns, reverse_dns_reason),
                            ('dnssec', dnssec, dnssec_reason), ('dnsbl', dnsbl, dnsbl_reason)) AS v(c, s, r)
          WHERE run_id = ${runId} AND s = 'unknown' GROUP BY 1 ORDER BY 2 DESC LIMIT 6`
      )
        .map((u) => `${u.k} ${u.n}`)
        .join(', ');
    } finally {
      await db.end();
    }
    for (const p of procs) await p.stop(20_000);
    const seconds = (row.last.getTime() - row.started.getTime()) / 1000;
    const { per: sessions, tlsFailed } = await smtpSessions(lab.stateDir, logOffset);
    const counts = [...sessions.values()];
    const extra = [...sessions].filter(([, n]) => n > 1);
    const extraAfterTls = extra.filter(([ip]) => tlsFailed.has(ip)).length;
    durations.sort((a, b) => a - b);
    const cores = cpus().length;
    const top = [...cmd1]
      .map(([name, v]) => ({ name, calls: v.calls - (cmd0.get(name)?.calls ?? 0), usec: v.usec - (cmd0.get(name)?.usec ?? 0) }))
      // The bench's own sampling (INFO, SCAN, MEMORY USAGE) is not the pipeline's work.
      .filter((c) => c.calls > 0 && !/^(memory|scan|info)/.test(c.name))
      .sort((a, b) => b.usec - a.usec)
      .slice(0, 5)
      .map((c) => `${c.name} ${Math.round(c.calls / row.n)}/domain (${(c.usec / 1e6).toFixed(1)} s)`)
      .join(', ');
    let profile: string | undefined;
    if (cpuProf) profile = await summarizeProfile(profDir, 15).catch((e) => `(no profile: ${(e as Error).message})`);
    return {
      size,
      world: lab.world,
      dnsPerDomain: dns0 !== null && dns1 !== null && row.n > 0 ? (dns1 - dns0) / row.n : null,
      workers,
      concurrency,
      diagnosed: row.n,
      seconds,
      perSecond: row.n / seconds,
      p50: pct(durations, 50),
      p99: pct(durations, 99),
      ips: sessions.size,
      sessionsMax: counts.length ? Math.max(...counts) : 0,
      sessionsOver1: extra.length,
      sessionsOver1AfterTls: extraAfterTls,
      sessionsMean: counts.length ? counts.reduce((a, b) => a + b, 0) / counts.length : 0,
      ipsProbed,
      rssMiB: rss.map(mib),
      redisOwnMiB: mib(mem.ownPeakBytes),
      redisOwnKeys: mem.ownPeakKeys,
      redisServerGrowthMiB: mib(mem.peakUsed - mem.baseUsed),
      redisServerPeakMiB: mib(mem.serverPeak),
      labCpuShare: labCpu / wall / cores,
      workerCpuShare: workerCpu / wall / cores,
      machineBusy: busy / wall / cores,
      incomplete: row.incomplete,
      unknowns,
      load: [load0, loadavg()[0]!],
      verdicts,
      topRedis: top,
      pgCommits: pg1 - pg0,
      ownRedis: Object.fromEntries(
        [...own1.redis].map(([k, v]) => [k, v - (own0.redis.get(k) ?? 0)] as const).filter(([, v]) => v > 0).sort((x, y) => y[1] - x[1]),
      ),
      pgStatements: own1.pgStatements - own0.pgStatements,
      profile,
      checkpoints: await Promise.all(checkpoints),
    };
  } finally {
    await Promise.all(procs.map((p) => p.stop(20_000)));
    await deletePrefix(redis, prefix).catch(() => {});
    await redis.quit().catch(() => {});
  }
}

export function formatPipeline(r: PipelineResult): string {
  const ms = (v: number | null) => (v === null ? '–' : v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`);
  return (
    `| ${r.size.toLocaleString('en')}${r.world === 'uniform' ? '' : ` (${r.world})`} | ${r.workers} × ${r.concurrency} | ${r.seconds.toFixed(1)} s | **${r.perSecond.toFixed(1)}** | ` +
    `${ms(r.p50)} / ${ms(r.p99)} | ${r.ips.toLocaleString('en')} IPs: max ${r.sessionsMax}, mean ${r.sessionsMean.toFixed(2)} | ` +
    `${r.rssMiB.map((x) => x.toFixed(0)).join(' + ')} MiB | ${r.redisOwnMiB.toFixed(1)} MiB (${r.redisOwnKeys.toLocaleString('en')} keys) | ` +
    `${(r.labCpuShare * 100).toFixed(0)}% | ${(r.workerCpuShare * 100).toFixed(0)}% | ${(r.machineBusy * 100).toFixed(0)}% |`
  );
}

/** One checkpoint as a line of the console. */
function formatCheckpoint(c: Checkpoint): string {
  return (
    `at ${c.diagnosed.toLocaleString('en')} diagnosed: ${c.seconds.toFixed(1)} s, ${c.perSecond.toFixed(1)} domains/s so far; ` +
    `RSS ${c.rssMiB.map((x) => x.toFixed(0)).join(' + ')} MiB (peak so far ${c.peakRssMiB.map((x) => x.toFixed(0)).join(' + ')}); Redis ${c.redisOwnMiB.toFixed(1)} MiB`
  );
}

/** A run's checkpoints and its end as table rows: is the rate kept and the memory flat as the survey grows? */
function checkpointRows(r: PipelineResult): string[] {
  const mibs = (xs: number[]) => `${xs.map((x) => x.toFixed(0)).join(' + ')} MiB`;
  const label = `${r.size.toLocaleString('en')}${r.world === 'uniform' ? '' : ` (${r.world})`}, ${r.workers} worker(s)`;
  return [
    ...r.checkpoints.map(
      (c) => `| ${label} | ${c.diagnosed.toLocaleString('en')} | ${c.seconds.toFixed(1)} s | **${c.perSecond.toFixed(1)}** | ${mibs(c.rssMiB)} | ${mibs(c.peakRssMiB)} | ${c.redisOwnMiB.toFixed(1)} MiB (${c.redisOwnKeys.toLocaleString('en')} keys) |`,
    ),
    `| ${label} | ${r.diagnosed.toLocaleString('en')} (end) | ${r.seconds.toFixed(1)} s | **${r.perSecond.toFixed(1)}** | – | ${mibs(r.rssMiB)} | ${r.redisOwnMiB.toFixed(1)} MiB peak (${r.redisOwnKeys.toLocaleString('en')} keys) |`,
  ];
}

const CHECKPOINT_HEADER =
  '| run | domains diagnosed | time since `run` started | domains/s so far | RSS per worker then | peak RSS per worker so far | Redis (our keys) |\n' +
  '|---|---:|---:|---:|---|---|---|';

export const PIPELINE_HEADER =
  '| domains | workers × concurrency | time | domains/s | p50 / p99 per domain | SMTP sessions per distinct IP | peak RSS per worker | Redis (our keys, peak) | lab CPU | workers CPU | machine busy |\n' +
  '|---:|---|---:|---:|---|---|---|---|---:|---:|---:|';

export async function run(args: BenchArgs = {}): Promise<void> {
  const opts = benchOptions(args);
  const base = await mkdtemp(path.join(tmpdir(), 'mailcensus-bench-survey-'));
  const admin = postgres(SERVER_URL, { max: 1, onnotice: () => {} });
  const all: PipelineResult[] = [];
  const labNotes: string[] = [];
  try {
    for (const { size, world: kind } of opts.plan) {
      const dir = path.join(base, `${kind}-${size}`);
      await rm(dir, { recursive: true, force: true });
      await import('node:fs/promises').then((f) => f.mkdir(dir, { recursive: true }));
      const dbName = `mailcensus_bench_${randomBytes(4).toString('hex')}`;
      const url = new URL(SERVER_URL);
      url.pathname = `/${dbName}`;
      const dbUrl = url.toString();
      let lab: LabUp | null = null;
      try {
        console.log(`survey ${size.toLocaleString('en')} (${kind} world): generating the world and starting the lab…`);
        lab = await startBenchLab(size, dir, kind);
        console.log(`  lab up in ${lab.startSeconds.toFixed(1)} s (pid ${lab.proc.pid}); ${lab.proc.stderr().trim().split('\n').pop()}`);
        labNotes.push(
          `${size.toLocaleString('en')} domains (${kind}): lab up in ${lab.startSeconds.toFixed(1)} s in ${lab.pids.length} process(es) ` +
            `(${lab.pids.length > 1 ? 'the SMTP hosts spread over several processes: ulimit -n is per process' : 'DNS and every SMTP host in one process'}), ` +
            `peak RSS ${lab.pids.map((p) => mib(peakRss(p) ?? 0).toFixed(0)).join(' + ')} MiB after start`,
        );
        await createBenchSurvey(admin, dbName, dbUrl, dir, lab.domains);
        for (const workers of opts.workersFor(size)) {
          const r = await measureRun(lab, dbUrl, admin, dbName, size, workers, opts.concurrency, opts.cpuProf, opts.checkpoints);
          all.push(r);
          results.pipeline.push(r);
          console.log(PIPELINE_HEADER.split('\n')[0]);
          console.log(formatPipeline(r));
          for (const c of r.checkpoints) console.log(`  ${formatCheckpoint(c)}`);
          console.log(`  DNS queries per domain ${r.dnsPerDomain?.toFixed(1) ?? '?'}; load ${r.load[0].toFixed(1)} → ${r.load[1].toFixed(1)}`);
          console.log(`  verdicts ${JSON.stringify(r.verdicts)}; unknown criteria: ${r.unknowns}; ${r.ipsProbed} IPs probed; Redis top: ${r.topRedis}; Postgres commits ${r.pgCommits}`);
          console.log(`  ${roundTrips(r)}`);
          if (r.profile) console.log(r.profile);
        }
        if (opts.baseline && kind === 'uniform' && size === opts.baselineSize && !results.baseline) {
          await runBaseline(lab, opts.baselineSample);
        }
      } finally {
        const labCode = lab ? await lab.proc.stop(20_000) : 0;
        if (lab && labCode !== 0) console.log(`  (the lab exited with ${labCode})`);
        await admin.unsafe(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => {});
      }
    }
    // The default plan writes the issue's section; another run with the internet-like world writes the world
    // comparison to a section of its own, so a small comparison run never replaces the issue's figures.
    const withInternet = opts.plan.some((p) => p.world === 'internet');
    const section = opts.defaultPlan || !withInternet ? 'survey' : 'survey-worlds';
    if (all.length > 0) await updateSection(section, surveySection(all, labNotes, opts.command, withInternet));
  } finally {
    await stopAll();
    await admin.end();
    if (!opts.keep) await rm(base, { recursive: true, force: true });
    else console.log(`bench data kept in ${base}`);
  }
}

/** Our processes' round trips per diagnosed domain: Redis commands (total and by command), Postgres statements and transactions. */
export function roundTrips(r: PipelineResult): string {
  const per = (n: number) => (n / r.diagnosed).toFixed(2);
  const redisTotal = Object.values(r.ownRedis).reduce((a, b) => a + b, 0);
  return (
    `per domain: Redis commands ${per(redisTotal)} (${Object.entries(r.ownRedis).map(([k, v]) => `${k} ${per(v)}`).join(', ')}); ` +
    `Postgres statements ${per(r.pgStatements)}, transactions ${per(r.pgCommits)}`
  );
}

/** Per size and worker count: internet-world rate / uniform-world rate, when both ran. */
function worldRatios(all: PipelineResult[]): string[] {
  const out: string[] = [];
  for (const i of all.filter((r) => r.world === 'internet')) {
    const whole = all.find((r) => r.world === 'uniform' && r.size === i.size && r.workers === i.workers);
    // Else the first `size` domains of a larger uniform survey (its checkpoint at that many).
    const part = whole ? undefined : all.find((r) => r.world === 'uniform' && r.workers === i.workers && r.checkpoints.some((c) => c.diagnosed === i.size));
    const u = whole ?? part;
    if (!u) continue;
    const uniformRate = whole ? whole.perSecond : part!.checkpoints.find((c) => c.diagnosed === i.size)!.perSecond;
    const against = whole ? 'same invocation' : `same invocation; uniform: the first ${i.size.toLocaleString('en')} domains of its ${u.size.toLocaleString('en')}-domain survey`;
    out.push(
      `- **Internet-like / uniform, ${i.size.toLocaleString('en')} domains, ${i.workers} worker(s)**: ` +
        `${i.perSecond.toFixed(1)} / ${uniformRate.toFixed(1)} domains/s = **${(i.perSecond / uniformRate).toFixed(2)}** ` +
        `(${against}; target ≥ 0.80; load average ${u.load[0].toFixed(1)} → ${u.load[1].toFixed(1)} and ${i.load[0].toFixed(1)} → ${i.load[1].toFixed(1)}); ` +
        `DNS queries per domain ${u.dnsPerDomain?.toFixed(1) ?? '?'} (uniform) and ${i.dnsPerDomain?.toFixed(1) ?? '?'} (internet-like).`,
    );
  }
  return out;
}

function surveySection(all: PipelineResult[], labNotes: string[], command: string, withInternet = false): string {
  const when = new Date().toISOString().slice(0, 10);
  // Issue 18: ≥ 250 domains/s at 100,000 domains on the uniform world with 2 workers.
  const at100k = all.filter((r) => r.size >= 100_000 && r.world === 'uniform' && r.workers === 2).sort((a, b) => b.perSecond - a.perSecond)[0];
  const target = at100k
    ? `**${at100k.perSecond >= 250 ? 'met' : 'not met'}**: ${at100k.perSecond.toFixed(1)} domains/s at ${at100k.size.toLocaleString('en')} domains with 2 workers`
    : 'not measured in this run (no uniform survey of 100,000 domains with 2 workers)';
  const sessionsOk = all.every((r) => r.sessionsMax === 1);
  const d = INTERNET_DEFAULTS;
  return [
    withInternet ? '## survey: uniform and internet-like worlds' : '## survey (end to end)',
    '',
    `\`${command}\` (${when}; ${machine()}; PostgreSQL, Redis, the lab and the workers on the same machine)`,
    '',
    PIPELINE_HEADER,
    ...all.map(formatPipeline),
    '',
    `World: \`generateWorld({ domains, sharedMxShare: ${WORLD.sharedMxShare}, providers: ${WORLD.providers}, dnsLatencyMs: ${WORLD.dnsLatencyMs}, smtpRttMs: ${WORLD.smtpRttMs}, seed: ${WORLD.seed} })\`. ` +
      (withInternet
        ? `Internet-like world: \`generateInternetWorld({ domains, seed: ${WORLD.seed} })\` (lab/generate-internet.ts, docs/lab.md): ` +
          `${Math.round(d.sharedMxShare * 100)}% of domains on ${d.providers} providers (Zipf s=${d.zipfExponent}), ${d.mxAddresses} A records per large-provider MX name, ` +
          `DNS/SMTP latency log-normal median ${d.latencyMedianMs} ms (${d.latencyMinMs}..${d.latencyMaxMs} ms) per host and per domain, of self-hosted MX ` +
          `${d.postscreenShare * 100}% greet after ${d.postscreenDelayMs / 1000} s, ${d.tarpitShare * 100}% after ${d.tarpitDelayMs / 1000} s, ${d.silentShare * 100}% never, ${d.greylistShare * 100}% greylist; ` +
          `there the workers run with ${Object.entries(INTERNET_ENV).map(([k, v]) => `${k}=${v}`).join(', ')} (the shipped banner timeout). `
        : '') +
      `Worker settings: ${Object.entries(BENCH_ENV).filter(([k]) => k !== 'MAILCENSUS_LOG_LEVEL').map(([k, v]) => `${k}=${v}`).join(', ')}.`,
    '',
    ...(all.some((r) => r.checkpoints.length > 0) ? ['Along the way (checkpoints: when the k-th domain was diagnosed, from the workers\' own lines):', '', CHECKPOINT_HEADER, ...all.flatMap(checkpointRows), ''] : []),
    ...worldRatios(all),
    `- **Target ≥ 250 domains/s at 100,000 domains (uniform world, 2 workers)**: ${target}.`,
    `- **SMTP sessions per distinct IP**: ${sessionsOk ? 'exactly 1 in every run' : `more than 1 at ${all.map((r) => `${r.sessionsOver1} IP(s) (${r.sessionsOver1AfterTls} after a failed STARTTLS handshake)`).join(' / ')}`} ` +
      "(counted from the lab's own log of accepted connections; the probe opens a second, plain-text session only when STARTTLS fails, to still test relaying).",
    '- **domains/s** = diagnoses stored / (last diagnosis stored − run started). **p50/p99** = from a worker first taking a domain job to its diagnosis stored (includes waiting for the shared MX probes).',
    '- **lab CPU** = utime+stime of the lab process(es) / wall time / cores; **workers CPU** likewise for the worker processes; **machine busy** = all of /proc/stat (Postgres, Redis, other users of the machine included).',
    '- **Redis (our keys, peak)**: MEMORY USAGE summed over the run\'s key prefix, sampled every 15 s (the Redis is shared, so the server-wide figure is not ours alone).',
    ...labNotes.map((n) => `- Lab: ${n}.`),
    ...all.map((r) => `- ${r.size.toLocaleString('en')} (${r.world}) × ${r.workers} worker(s): DNS queries per domain ${r.dnsPerDomain?.toFixed(1) ?? '?'}; verdicts ${Object.entries(r.verdicts).map(([k, v]) => `${k} ${v}`).join(', ')}; load average ${r.load[0].toFixed(1)} → ${r.load[1].toFixed(1)}; unknown criteria (top): ${r.unknowns || 'none'}; ${r.ipsProbed.toLocaleString('en')} MX IPs probed; Redis busiest commands: ${r.topRedis}; Postgres commits ${r.pgCommits.toLocaleString('en')} (${(r.pgCommits / r.diagnosed).toFixed(1)}/domain); our processes' round trips ${roundTrips(r)}.`),
  ].join('\n');
}
