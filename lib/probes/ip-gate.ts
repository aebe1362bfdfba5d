// Politeness toward the servers we probe, inside one process: a provider's MX serves thousands of domains, so
// each distinct IP is probed once per run (createProbeCache) and never by more than N sessions at a time with a
// minimum interval between session starts (createIpGate). The workers' cross-process version (Redis) offers
// the same two small interfaces, so callers do not care which one they hold.
import type { SmtpObservation, SmtpProbeOptions } from './smtp/index.ts';

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

export interface ProbeCache<T> {
  /** The result for `key`: computed once, shared by concurrent and later callers. A rejection is not cached. */
  get(key: string, compute: () => Promise<T>): Promise<T>;
  /** How many keys were computed (for tests and run statistics). */
  readonly computed: number;
  clear(): void;
}

export function createProbeCache<T = SmtpObservation>(): ProbeCache<T> {
  const entries = new Map<string, Promise<T>>();
  let computed = 0;
  return {
    get(key, compute) {
      let p = entries.get(key);
      if (!p) {
        computed++;
        p = compute();
        entries.set(key, p);
        // An infrastructure failure (a thrown error) may be retried by a later caller.
        p.catch(() => {
          if (entries.get(key) === p) entries.delete(key);
        });
      }
      return p;
    },
    get computed() {
      return computed;
    },
    clear() {
      entries.clear();
    },
  };
}

/** What the survey calls: an IP probed at most once per run, politely. */
export type SmtpProber = (ip: string, host: string | null) => Promise<SmtpObservation>;

export function createSmtpProber(deps: {
  probe: (ip: string, opts: SmtpProbeOptions) => Promise<SmtpObservation>;
  options: SmtpProbeOptions;
  gate: IpGate;
  cache?: ProbeCache<SmtpObservation>;
}): SmtpProber {
  const cache = deps.cache ?? createProbeCache<SmtpObservation>();
  // The first caller's host name is used for SNI; the certificate's names are recorded, so each domain's
  // checks re-judge the name match for their own MX name (lib/checks/cert-problems/tls-findings.ts).
  return (ip, host) => cache.get(ip, () => deps.gate.run(ip, () => deps.probe(ip, { ...deps.options, host })));
}
