// A queries-per-second cap for DNS. DNSBL operators and public resolvers block clients that flood them, so
// every query a resolver sends first takes a token. The interface is tiny so a cross-worker limiter (Redis)
// can replace the in-process token bucket without touching the resolver.

export interface RateLimiter {
  /** Resolves when one more query may be sent. */
  acquire(): Promise<void>;
}

/** No limit (qps = 0). */
export const unlimited: RateLimiter = { acquire: async () => {} };

/**
 * A token bucket refilled at `qps` tokens per second, holding at most `burst` tokens.
 * Waiters are served in arrival order.
 * @param qps tokens per second; 0 means unlimited
 * @param burst @defaultValue max(1, qps)
 */
export function tokenBucket(qps: number, burst = Math.max(1, qps)): RateLimiter {
  if (!(qps > 0)) return unlimited;
  let tokens = burst;
  let last = performance.now();
  const waiters: (() => void)[] = [];
  let timer: NodeJS.Timeout | null = null;

  const refill = () => {
    const now = performance.now();
    tokens = Math.min(burst, tokens + ((now - last) / 1000) * qps);
    last = now;
  };

  const drain = () => {
    timer = null;
    refill();
    while (waiters.length > 0 && tokens >= 1) {
      tokens -= 1;
      waiters.shift()!();
    }
    if (waiters.length > 0) {
      const waitMs = Math.max(1, Math.ceil(((1 - tokens) / qps) * 1000));
      timer = setTimeout(drain, waitMs);
    }
  };

  return {
    acquire() {
      return new Promise<void>((resolve) => {
        waiters.push(resolve);
        if (timer === null) drain();
      });
    },
  };
}
