// Sessions in flight (issue 18): can one worker hold thousands of SMTP sessions with slow and silent servers at
// bounded memory? A lab world of only slow greeters (each domain its own MX host, greeting after 20-30 s) and
// silent tarpits (never greet), one real `mailcensus worker` with MAILCENSUS_PROBE_CONCURRENCY high enough to
// hold them all (the production path: the probe-ip job's observeIp, through the outbound gate and the Redis
// per-IP gate), and `mailcensus run --survey --wait`. Every second: the worker's VmRSS (/proc), its V8 heap
// (bench/lib/mem-sampler.mjs, preloaded), and the SMTP sessions open (`ss`: established sockets to the lab's
// SMTP port). Reported: peak RSS, RSS per session in flight (the slope), whether memory stays flat from the
// first wave of sessions to the next, and the time per session.
//
// Options (after `npm run bench -- sessions`): --hosts 4500 (slow greeters) --silent 500 (never greet)
// --concurrency 2500 (MAILCENSUS_PROBE_CONCURRENCY: SMTP sessions at once) --domain-concurrency 150
// (MAILCENSUS_WORKER_CONCURRENCY: domain jobs at once, as in the survey bench) --max-old-space MiB (the
// worker's --max-old-space-size) --tls-handshakes N (MAILCENSUS_TLS_HANDSHAKES: the worker's handshakes at once;
// default the shipped 32, a large figure such as 100000 measures the worker without the bound) --heap-snapshot (a heap snapshot of the
// worker at its peak of sessions, kept with --keep) --keep.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { machine, updateSection } from './_report.ts';
import { ROOT, peakRss, spawnCli, stopAll, waitFor, type Spawned } from './lib/proc.ts';
import { deletePrefix, openRedis } from './lib/redis.ts';
import { BENCH_ENV, childEnv, createBenchSurvey, pct, startLabWorld, type LabUp } from './lib/bench-lab.ts';
import type { BenchArgs } from './lib/args.ts';

const SERVER_URL = process.env.TEST_DATABASE_SERVER_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const MEM_SAMPLER = pathToFileURL(path.join(ROOT, 'bench', 'lib', 'mem-sampler.mjs')).href;
/** Greeting delays of the slow hosts: 20, 21, … 30 s, as many hosts each. */
const DELAYS_MS = Array.from({ length: 11 }, (_, k) => 20_000 + k * 1000);
/** Longer than the slowest greeting, so every slow host is waited for; the silent ones time out here. */
const BANNER_TIMEOUT_MS = 40_000;
const run_ = promisify(execFile);
const mib = (b: number) => b / 2 ** 20;

function intArg(v: string | boolean | undefined, fallback: number, name: string, min = 0): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`bench: --${name} takes an integer >= ${min}, got "${v}"`);
  return n;
}

/**
 * The world: `hosts` domains whose own MX greets after 20-30 s and `silent` whose MX never greets. Names like
 * `h17.d23.test`, so the feeder (which takes domains in name order) mixes delays and tarpits in every wave.
 */
export function slowWorld(hosts: number, silent: number): object {
  const per = Math.floor(hosts / DELAYS_MS.length);
  const populations = DELAYS_MS.map((ms, k) => ({
    count: per + (k < hosts - per * DELAYS_MS.length ? 1 : 0),
    name: `h{i}.d${ms / 1000}.test`,
    template: { mx: [{ smtp: { behavior: 'slow', bannerDelayMs: ms } }], spf: 'v=spf1 mx -all' },
  }));
  if (silent > 0) populations.push({ count: silent, name: 'h{i}.silent.test', template: { mx: [{ smtp: { behavior: 'silent', bannerDelayMs: 0 } }], spf: 'v=spf1 mx -all' } });
  return { version: 1, name: 'sessions', observedAt: '2026-12-01T00:00:00Z', hosts: {}, domains: [], populations: populations.filter((p) => p.count > 0) };
}

interface Sample {
  t: number;
  rss: number;
  sessions: number;
  /** IPs probed so far (the worker's `ip probed` log lines). */
  done: number;
}

interface MemSample {
  t: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

function vmRss(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Established TCP connections to the lab's SMTP port: the worker's sessions (nothing else talks to that port). */
async function sessionsOpen(port: number): Promise<number> {
  const { stdout } = await run_('ss', ['-Htn', 'state', 'established', `( dport = :${port} )`], { maxBuffer: 64 * 2 ** 20 });
  return stdout.split('\n').filter((l) => l.trim() !== '').length;
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number | null {
  const n = xs.length;
  if (n < 3) return null;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? null : num / den;
}

export interface SessionsResult {
  hosts: number;
  silent: number;
  concurrency: number;
  domainConcurrency: number;
  probed: number;
  seconds: number;
  idleRssMiB: number;
  peakRssMiB: number;
  hwmMiB: number;
  peakHeapMiB: number;
  peakExternalMiB: number;
  peakSessions: number;
  /** Samples with at least 90% of the peak sessions open. */
  plateauSeconds: number;
  slopeKiB: number | null;
  perSessionKiB: number;
  firstWaveRssMiB: number;
  laterWaveRssMiB: number;
  afterRssMiB: number;
  afterHeapMiB: number;
  timeBySlow: { p50: number | null; p99: number | null; n: number };
  timeBySilent: { p50: number | null; p99: number | null; n: number };
  ends: string;
  load: [number, number];
  heapSnapshot?: string;
}

export async function run(args: BenchArgs = {}): Promise<void> {
  const hosts = intArg(args.hosts, 4500, 'hosts');
  const silent = intArg(args.silent, 500, 'silent');
  const concurrency = intArg(args.concurrency, 2500, 'concurrency', 1);
  const domainConcurrency = intArg(args['domain-concurrency'], 150, 'domain-concurrency', 1);
  // V8's old-space limit for the worker (MiB; 0 = Node's default): the heap grows with garbage, not only with
  // what is live, until it nears this limit.
  const maxOldSpace = intArg(args['max-old-space'], 0, 'max-old-space');
  const tlsHandshakes = intArg(args['tls-handshakes'], 0, 'tls-handshakes');
  const heapSnapshot = args['heap-snapshot'] === true || args['heap-snapshot'] === 'true';
  const keep = args.keep === true;
  const dir = await mkdtemp(path.join(tmpdir(), 'mailcensus-bench-sessions-'));
  const admin = postgres(SERVER_URL, { max: 1, onnotice: () => {} });
  const dbName = `mailcensus_bench_${randomBytes(4).toString('hex')}`;
  const url = new URL(SERVER_URL);
  url.pathname = `/${dbName}`;
  const dbUrl = url.toString();
  const prefix = `mcbench${randomBytes(4).toString('hex')}`;
  const redis = openRedis(REDIS_URL);
  let lab: LabUp<'slow'> | null = null;
  let worker: Spawned | null = null;
  try {
    console.log(`sessions: ${hosts} slow greeters (20-30 s) + ${silent} silent hosts, one worker × ${concurrency}; starting the lab…`);
    // Each lab process holds at most --max-sessions at once (421 beyond): room for every session of the run.
    lab = await startLabWorld(slowWorld(hosts, silent), dir, 'slow', ['--max-sessions', String(concurrency + 1000)]);
    console.log(`  lab up in ${lab.startSeconds.toFixed(1)} s in ${lab.pids.length} process(es), SMTP port ${lab.smtpPort}`);
    await createBenchSurvey(admin, dbName, dbUrl, dir, lab.domains);
    const memLog = path.join(dir, 'worker-mem.jsonl');
    const env = childEnv({
      ...lab.env,
      ...BENCH_ENV,
      MAILCENSUS_SMTP_BANNER_TIMEOUT_MS: String(BANNER_TIMEOUT_MS),
      // Domain jobs compute (DNS, judging) and are few at once; probe jobs wait, thousands at once.
      MAILCENSUS_WORKER_CONCURRENCY: String(domainConcurrency),
      MAILCENSUS_PROBE_CONCURRENCY: String(concurrency),
      ...(tlsHandshakes > 0 ? { MAILCENSUS_TLS_HANDSHAKES: String(tlsHandshakes) } : {}),
      DATABASE_URL: dbUrl,
      REDIS_URL,
      MAILCENSUS_QUEUE_PREFIX: prefix,
      BENCH_MEM_LOG: memLog,
    });
    let done = 0;
    worker = spawnCli('worker', ['worker'], {
      env,
      logDir: dir,
      keepBytes: 64 * 1024,
      nodeArgs: ['--import', MEM_SAMPLER, ...(maxOldSpace > 0 ? [`--max-old-space-size=${maxOldSpace}`] : []), ...(heapSnapshot ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`] : [])],
      onStderrLine: (line) => {
        if (line.includes('"ip probed"')) done++;
      },
    });
    const w = worker;
    await waitFor('the worker to start', () => {
      if (w.child.exitCode !== null) throw new Error(`bench: the worker exited: ${w.stderr().slice(-500)}`);
      return w.stderr().includes('worker started');
    }, 60_000);
    await new Promise((r) => setTimeout(r, 2000));
    const idleRss = vmRss(w.pid) ?? 0;
    const load0 = loadavg()[0]!;
    const t0 = Date.now();
    const runProc = spawnCli('run', ['run', '--survey', 'bench', '--wait'], { env, logDir: dir });
    let finished = false;
    void runProc.exited.then(() => (finished = true));
    const samples: Sample[] = [];
    let snapshotAt: number | null = null;
    const total = hosts + silent;
    while (!finished) {
      const at = Date.now();
      const [sessions, rss] = [await sessionsOpen(lab.smtpPort).catch(() => 0), vmRss(w.pid) ?? 0];
      samples.push({ t: at, rss, sessions, done });
      if (heapSnapshot && snapshotAt === null && sessions >= Math.min(concurrency, total) * 0.9) {
        snapshotAt = at;
        process.kill(w.pid, 'SIGUSR2');
        console.log(`  heap snapshot requested at ${sessions} sessions`);
      }
      if (samples.length % 10 === 0) console.log(`  ${((at - t0) / 1000).toFixed(0)} s: ${sessions} sessions open, ${done} IPs probed, RSS ${mib(rss).toFixed(0)} MiB`);
      await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - at))));
    }
    const code = await runProc.exited;
    if (code !== 0) throw new Error(`bench: mailcensus run exited with ${code}: ${runProc.stderr().trim().slice(-500)}`);
    const seconds = (Date.now() - t0) / 1000;
    const load1 = loadavg()[0]!;
    // The worker idles after the run: what it keeps once every session is over.
    await new Promise((r) => setTimeout(r, 5000));
    const afterRss = vmRss(w.pid) ?? 0;
    if (heapSnapshot) {
      // A second snapshot: what the idle worker still holds after the run.
      process.kill(w.pid, 'SIGUSR2');
      await new Promise((r) => setTimeout(r, 20_000));
    }
    const hwm = peakRss(w.pid) ?? 0;
    const mem: MemSample[] = (await readFile(memLog, 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as MemSample);
    const during = mem.filter((m) => m.t >= t0);
    const afterHeap = mem.at(-1)?.heapUsed ?? 0;

    const db = postgres(dbUrl, { max: 1, onnotice: () => {} });
    let rows: { ms: number; step: string | null; err: string | null; silent: boolean }[];
    try {
      rows = await db<(typeof rows)[number][]>`
        SELECT (observations->'smtp'->>'durationMs')::int AS ms,
               observations->'smtp'->'connections'->0->>'step' AS step,
               observations->'smtp'->'connections'->0->>'error' AS err,
               (observations->'smtp'->'greeting') = 'null'::jsonb AS silent
        FROM probed_ips`;
    } finally {
      await db.end();
    }
    const ends = new Map<string, number>();
    for (const r of rows) ends.set(`${r.step}${r.err ? `:${r.err}` : ''}`, (ends.get(`${r.step}${r.err ? `:${r.err}` : ''}`) ?? 0) + 1);
    const times = (sel: (r: (typeof rows)[number]) => boolean) => {
      const v = rows.filter(sel).map((r) => r.ms).sort((a, b) => a - b);
      return { p50: pct(v, 50), p99: pct(v, 99), n: v.length };
    };
    const peakSessions = Math.max(0, ...samples.map((s) => s.sessions));
    const plateau = samples.filter((s) => s.sessions >= peakSessions * 0.9);
    const peakRssSample = Math.max(0, ...samples.map((s) => s.rss));
    const sl = slope(samples.map((s) => s.sessions), samples.map((s) => s.rss));
    // Flat as the survey grows: the RSS while the first `concurrency` sessions ran against later ones.
    const first = samples.filter((s) => s.done < Math.min(concurrency, total) * 0.8);
    const later = samples.filter((s) => s.done >= Math.min(concurrency, total));
    const rssAtPeak = plateau.length ? plateau.reduce((a, s) => a + s.rss, 0) / plateau.length : peakRssSample;
    const r: SessionsResult = {
      hosts,
      silent,
      concurrency,
      domainConcurrency,
      probed: rows.length,
      seconds,
      idleRssMiB: mib(idleRss),
      peakRssMiB: mib(peakRssSample),
      hwmMiB: mib(hwm),
      peakHeapMiB: mib(Math.max(0, ...during.map((m) => m.heapUsed))),
      peakExternalMiB: mib(Math.max(0, ...during.map((m) => m.external))),
      peakSessions,
      plateauSeconds: plateau.length,
      slopeKiB: sl === null ? null : sl / 1024,
      perSessionKiB: peakSessions > 0 ? (rssAtPeak - idleRss) / peakSessions / 1024 : 0,
      firstWaveRssMiB: mib(Math.max(0, ...first.map((s) => s.rss))),
      laterWaveRssMiB: mib(Math.max(0, ...later.map((s) => s.rss))),
      afterRssMiB: mib(afterRss),
      afterHeapMiB: mib(afterHeap),
      timeBySlow: times((x) => !x.silent),
      timeBySilent: times((x) => x.silent),
      ends: [...ends].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', '),
      load: [load0, load1],
    };
    if (heapSnapshot) r.heapSnapshot = dir;
    console.log(JSON.stringify(r, null, 2));
    await updateSection('sessions', section(r, args));
  } finally {
    await worker?.stop(20_000);
    const labCode = lab ? await lab.proc.stop(20_000) : 0;
    if (lab && labCode !== 0) console.log(`  (the lab exited with ${labCode})`);
    await stopAll();
    await deletePrefix(redis, prefix).catch(() => {});
    await redis.quit().catch(() => {});
    await admin.unsafe(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => {});
    await admin.end();
    if (!keep) await rm(dir, { recursive: true, force: true });
    else console.log(`bench data kept in ${dir}`);
  }
}

function section(r: SessionsResult, args: BenchArgs): string {
  const s = (v: number | null) => (v === null ? '–' : `${(v / 1000).toFixed(1)} s`);
  const cmd = `npm run bench -- sessions${Object.entries(args).map(([k, v]) => (v === true ? ` --${k}` : ` --${k} ${v}`)).join('')}`;
  const flat = r.laterWaveRssMiB <= r.firstWaveRssMiB * 1.1;
  return [
    '## sessions (slow servers in flight, one worker)',
    '',
    `\`${cmd}\` (${new Date().toISOString().slice(0, 10)}; ${machine()}; 1-minute load average ${r.load[0].toFixed(1)} at the start, ${r.load[1].toFixed(1)} at the end)`,
    '',
    '| hosts (slow + silent) | probe / domain concurrency | peak sessions open | peak RSS (VmHWM) | RSS idle → after | peak V8 heap used | RSS per session in flight | RSS first wave / later waves | time per session: slow / silent (p50, p99) |',
    '|---|---:|---:|---:|---|---:|---|---|---|',
    `| ${r.hosts.toLocaleString('en')} + ${r.silent.toLocaleString('en')} | ${r.concurrency.toLocaleString('en')} / ${r.domainConcurrency} | **${r.peakSessions.toLocaleString('en')}** (≥ 90% of it for ${r.plateauSeconds} s) | **${r.peakRssMiB.toFixed(0)} MiB** (${r.hwmMiB.toFixed(0)}) | ${r.idleRssMiB.toFixed(0)} → ${r.afterRssMiB.toFixed(0)} MiB | ${r.peakHeapMiB.toFixed(0)} MiB (external ${r.peakExternalMiB.toFixed(0)}) | ${r.perSessionKiB.toFixed(0)} KiB (slope ${r.slopeKiB === null ? '–' : r.slopeKiB.toFixed(0)} KiB) | ${r.firstWaveRssMiB.toFixed(0)} / ${r.laterWaveRssMiB.toFixed(0)} MiB (${flat ? 'flat' : 'grows'}) | ${s(r.timeBySlow.p50)}, ${s(r.timeBySlow.p99)} / ${s(r.timeBySilent.p50)}, ${s(r.timeBySilent.p99)} |`,
    '',
    `World: every domain its own MX host (one IP each, so per-IP politeness never queues): ${r.hosts.toLocaleString('en')} greet after 20, 21, … 30 s (\`slow\`), ${r.silent.toLocaleString('en')} never greet (\`silent\`); all offer STARTTLS and refuse relaying. ` +
      `One \`mailcensus worker\` with MAILCENSUS_PROBE_CONCURRENCY=${r.concurrency} (SMTP sessions), MAILCENSUS_WORKER_CONCURRENCY=${r.domainConcurrency} (domain jobs) and MAILCENSUS_SMTP_BANNER_TIMEOUT_MS=${BANNER_TIMEOUT_MS} (every slow host is waited for; a silent one times out), the other settings as the survey bench; \`mailcensus run --survey bench --wait\`. The lab runs with \`--max-sessions ${r.concurrency + 1000}\`.`,
    '',
    `- **Target: RSS ≤ 400 MiB per worker with ≥ 2,000 sessions in flight**: ${r.peakSessions >= 2000 && r.hwmMiB <= 400 ? '**met**' : '**not met**'} (${r.peakSessions.toLocaleString('en')} sessions, peak RSS ${r.hwmMiB.toFixed(0)} MiB).`,
    `- **sessions open** = established TCP connections to the lab's SMTP port (\`ss\`), sampled every second with the worker's VmRSS (/proc/<pid>/status) and its \`process.memoryUsage()\` (bench/lib/mem-sampler.mjs, preloaded). **RSS per session in flight** = (mean RSS while ≥ 90% of the peak sessions were open − idle RSS before the run) / peak sessions; the slope is the least-squares fit of RSS over sessions open across all samples.`,
    `- **first wave / later waves** = peak RSS while the first ${r.concurrency.toLocaleString('en')} IPs were being probed (fewer than 80% of them done) / after them: equal means memory does not grow with the survey.`,
    `- ${r.probed.toLocaleString('en')} IPs probed in ${r.seconds.toFixed(0)} s; where the sessions ended: ${r.ends}.`,
  ].join('\n');
}
