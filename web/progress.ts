// A run's progress as the pages and the API show it: done / total, rate and ETA (from this server's recent
// samples, as `run --wait` computes them: workers/progress.ts), unknowns so far.
import { formatDuration, rateOf } from '../workers/progress.ts';
import type { RunProgress } from '../workers/run.ts';

/** Recent (time, done) samples per run, kept by the server process for the rate. */
export type ProgressSamples = Map<number, { t: number; done: number }[]>;

export interface ProgressView extends RunProgress {
  percent: string;
  /** Domains per second, e.g. "3.2/s". */
  rate: string;
  ratePerSecond: number;
  /** "1m05s", "0s" when done, "--" before a rate is known. */
  eta: string;
  etaSeconds: number | null;
}

export function progressView(p: RunProgress, samples: ProgressSamples, now = Date.now()): ProgressView {
  let list = samples.get(p.runId);
  if (!list) {
    if (samples.size > 1000) samples.clear();
    list = [];
    samples.set(p.runId, list);
  }
  list.push({ t: now, done: p.done });
  while (list.length > 2 && now - list[0].t > 30_000) list.shift();
  if (list.length > 200) list.splice(0, list.length - 200);
  const rate = p.state === 'running' ? rateOf(p, list, now) : rateOf(p, [], now);
  const remaining = Math.max(0, p.total - p.done);
  const etaSeconds = remaining === 0 ? 0 : rate > 0 && p.state === 'running' ? remaining / rate : null;
  return {
    ...p,
    percent: `${(p.total > 0 ? (100 * Math.min(p.done, p.total)) / p.total : 100).toFixed(1)}%`,
    rate: `${rate.toFixed(1)}/s`,
    ratePerSecond: rate,
    eta: etaSeconds === null ? '--' : formatDuration(etaSeconds),
    etaSeconds,
  };
}
