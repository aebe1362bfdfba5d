import { readFileSync } from 'node:fs';

/** Runs at most `n` of the given tasks at once; the others wait in FIFO order. */
export function concurrencyLimit(n: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (task) => {
    if (active >= n) await new Promise<void>((r) => waiting.push(r));
    else active++;
    try {
      return await task();
    } finally {
      // Hand the slot straight to the next waiter, so `active` never drops below the number running.
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
}

/** The soft limit of open files (`ulimit -n`), from /proc (Node has no getrlimit). Null when unknown (not Linux). */
export function openFileLimit(): number | null {
  try {
    const limits = readFileSync('/proc/self/limits', 'utf8');
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
    if (m === null) return null;
    return m[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(m[1]);
  } catch {
    return null;
  }
}
