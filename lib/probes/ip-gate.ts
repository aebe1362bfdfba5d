// Politeness toward the servers we probe, inside one process: a provider's MX serves thousands of domains, so
// an IP is never probed by more than N sessions at a time, with a minimum interval between session starts
// (createIpGate; lib/diagnose.ts uses it for `check`). The workers' cross-process version (Redis per-IP
// leases, workers/limits.ts) offers the same interface, and the workers probe each IP once per run (one
// probe-ip job per run and IP, workers/jobs.ts).

export interface IpGate {
  /** Runs `fn` when `ip` has a free session slot and the interval since the last start has passed. */
  run<T>(ip: string, fn: () => Promise<T>): Promise<T>;
}

export interface IpGateOptions {
  /** Max concurrent sessions to one IP. @defaultValue 1 */
  concurrency?: number;
  /** Minimum milliseconds between two session starts to one IP. @defaultValue 1000 */
  intervalMs?: number;
  /** @defaultValue setTimeout */
  sleep?: (ms: number) => Promise<void>;
  /** @defaultValue Date.now */
  now?: () => number;
}

interface IpState {
  active: number;
  waiting: (() => void)[];
  nextStart: number;
}

export function createIpGate(opts: IpGateOptions = {}): IpGate {
  const concurrency = Math.max(1, opts.concurrency ?? 1);
  const intervalMs = Math.max(0, opts.intervalMs ?? 1000);
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = opts.now ?? Date.now;
  const states = new Map<string, IpState>();

  async function acquire(s: IpState): Promise<void> {
    if (s.active < concurrency) {
      s.active++;
      return;
    }
    // The releasing run hands its slot over directly (active stays the same), so waiters start in FIFO order.
    await new Promise<void>((resolve) => s.waiting.push(resolve));
  }

  function release(ip: string, s: IpState): void {
    const next = s.waiting.shift();
    if (next) {
      next();
      return;
    }
    s.active--;
    // Forget an idle IP once its interval has passed, so a survey of millions of IPs does not grow the map.
    if (s.active === 0 && s.nextStart <= now()) states.delete(ip);
  }

  return {
    async run<T>(ip: string, fn: () => Promise<T>): Promise<T> {
      let s = states.get(ip);
      if (!s) {
        s = { active: 0, waiting: [], nextStart: 0 };
        states.set(ip, s);
      }
      await acquire(s);
      try {
        // Reserve the start time now (synchronously), so concurrent slots are spaced by the interval too.
        const t = now();
        const start = Math.max(t, s.nextStart);
        s.nextStart = start + intervalMs;
        if (start > t) await sleep(start - t);
        return await fn();
      } finally {
        release(ip, s);
      }
    },
  };
}
