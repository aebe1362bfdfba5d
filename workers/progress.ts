// The progress line of `run --wait` and `status`: done / total, rate, ETA, unknowns so far.
import type { RunProgress } from './run.ts';

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

/** Domains per second: from recent samples when there are some, else over the whole run. */
export function rateOf(p: RunProgress, samples: { t: number; done: number }[] = [], now = Date.now()): number {
  if (samples.length >= 2) {
    const a = samples[0];
    const b = samples[samples.length - 1];
    if (b.t > a.t && b.done >= a.done) return ((b.done - a.done) * 1000) / (b.t - a.t);
  }
  const start = p.startedAt?.getTime();
  const end = p.finishedAt?.getTime() ?? now;
  return start && end > start ? (p.done * 1000) / (end - start) : 0;
}

export function progressLine(p: RunProgress, rate: number, width = 24): string {
  const frac = p.total > 0 ? Math.min(1, p.done / p.total) : 1;
  const filled = Math.round(frac * width);
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
  const eta = p.done >= p.total ? '0s' : rate > 0 ? formatDuration((p.total - p.done) / rate) : '--';
  return `${bar} ${p.done}/${p.total} ${(frac * 100).toFixed(1)}%  ${rate.toFixed(1)}/s  ETA ${eta}  unknown ${p.unknowns}`;
}
