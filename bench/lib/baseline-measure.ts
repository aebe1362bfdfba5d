// The sequential baseline's measurement (see bench/baseline.ts): the same generated world checked one domain
// at a time, in-process, with diagnoseDomain. The survey bench calls it while its 10,000-domain lab is up.
import { loadConfig } from '../../lib/config.ts';
import { createProbeDeps, diagnoseDomain } from '../../lib/diagnose.ts';
import { machine, updateSection } from '../_report.ts';
import { benchOptions, results } from './args.ts';
import { BENCH_ENV, type LabUp } from './bench-lab.ts';

/** Seeded Fisher-Yates: the same sample every run. */
function sample<T>(list: T[], n: number, seed = 7): T[] {
  const a = [...list];
  let s = seed >>> 0;
  const rnd = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a.slice(0, Math.min(n, a.length));
}

export async function runBaseline(lab: LabUp, sampleSize: number): Promise<void> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MAILCENSUS_') && v !== undefined) env[k] = v;
  const config = loadConfig({ ...env, ...lab.env, ...BENCH_ENV });
  const deps = createProbeDeps(config);
  const domains = sample(lab.domains, sampleSize);
  console.log(`baseline: ${domains.length} of ${lab.domains.length.toLocaleString('en')} domains, one at a time, in-process…`);
  const times: number[] = [];
  const verdicts: Record<string, number> = {};
  const t0 = Date.now();
  for (const d of domains) {
    const t = Date.now();
    const diag = await diagnoseDomain(d, deps);
    times.push(Date.now() - t);
    verdicts[diag.verdict.verdict] = (verdicts[diag.verdict.verdict] ?? 0) + 1;
  }
  const wall = (Date.now() - t0) / 1000;
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  const sorted = [...times].sort((a, b) => a - b);
  const p50 = sorted[Math.floor(sorted.length / 2)]!;
  const p99 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]!;
  const rate = 1000 / mean;
  const size = lab.domains.length;
  const pipeline = results.pipeline.filter((r) => r.size === size).sort((a, b) => b.perSecond - a.perSecond);
  const best = pipeline[0];
  const extrapolated = size / rate;
  const ratio = best ? best.perSecond / rate : null;
  results.baseline = true;
  console.log(
    `baseline: ${rate.toFixed(2)} domains/s (mean ${mean.toFixed(0)} ms, p50 ${p50} ms, p99 ${p99} ms; ${wall.toFixed(1)} s for the sample); ` +
      `${size.toLocaleString('en')} domains would take ${(extrapolated / 60).toFixed(1)} min` +
      (ratio ? `; pipeline ${best!.perSecond.toFixed(1)} domains/s → speed-up ×${ratio.toFixed(1)}` : ''),
  );
  const when = new Date().toISOString().slice(0, 10);
  await updateSection(
    'baseline',
    [
      '## baseline (sequential, one domain at a time)',
      '',
      `Measured by the same invocation as the survey table (${when}; ${machine()}).`,
      '',
      '| world | sample | baseline domains/s | per domain mean / p50 / p99 | whole world, extrapolated | pipeline domains/s (same world, same invocation) | speed-up |',
      '|---:|---:|---:|---|---:|---:|---:|',
      `| ${size.toLocaleString('en')} | ${domains.length} (seeded random) | ${rate.toFixed(2)} | ${mean.toFixed(0)} / ${p50} / ${p99} ms | ${(extrapolated / 60).toFixed(1)} min | ` +
        `${best ? `${best.perSecond.toFixed(1)} (${best.workers} worker(s) × ${best.concurrency})` : '–'} | ${ratio ? `**×${ratio.toFixed(1)}**` : '–'} |`,
      '',
      'The baseline is `diagnoseDomain` from lib/diagnose.ts called for one domain after the other in one process, with ' +
        'the same lab, the same world and the same timeouts and per-IP spacing as the workers: what a sequential checker ' +
        '(checkdmarc, a shell loop over `mailcensus check`) does. It probes a shared provider MX again for every domain behind it; ' +
        'the pipeline probes it once per run and runs many domains at once. The whole-world time is the sample mean × the world size ' +
        `(sample verdicts: ${Object.entries(verdicts).map(([k, v]) => `${k} ${v}`).join(', ')}).`,
    ].join('\n'),
  );
}
