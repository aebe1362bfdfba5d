// Politeness limits shared by every worker on every machine, built on Redis because open-source BullMQ has
// no per-group limits: a per-IP semaphore with spacing (how many SMTP sessions one IP sees at once, and how
// far apart), and a token bucket capping DNS queries per second over all workers.
//
// Both use Redis' own clock (TIME), so machines with skewed clocks agree. A semaphore slot is a lease that
// its holder renews while the session runs: a worker killed with SIGKILL stops renewing and its slot frees
// itself within `leaseMs`, instead of blocking the IP forever.
import { randomUUID } from 'node:crypto';
import type { Redis as IORedis } from 'ioredis';

export interface DnsLimiter {
  acquire(): Promise<void>;
}
export interface IpGate {
  run<T>(ip: string, fn: () => Promise<T>): Promise<T>;
}

export class LimitWaitTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what}: no slot within ${ms} ms`);
    this.name = 'LimitWaitTimeoutError';
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// The Lua scripts' clock: Redis's own (TIME, seconds and microseconds), in ms as `now`, so every worker
// judges buckets and leases by one clock, not by its own.
const NOW_MS = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

// KEYS[1]: bucket hash. ARGV: rate (tokens/s), burst, wanted. Takes up to `wanted` whole tokens (at least 1,
// or none). Returns { taken, ms to wait when none was taken }: the time until `wanted` (at most burst) are
// there, so a bucket drained by several workers is still taken from in batches, not a token per call.
const TAKE_TOKENS = `
${NOW_MS}
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then tokens = burst; ts = now end
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate / 1000) end
local taken = math.min(wanted, math.floor(tokens))
local wait = 0
if taken >= 1 then tokens = tokens - taken else taken = 0; wait = math.ceil((math.min(wanted, burst) - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(math.max(now, ts)))
redis.call('PEXPIRE', KEYS[1], 60000)
return { taken, wait }
`;

// KEYS[1]: lease zset (member = holder token, score = expiry ms); KEYS[2]: earliest next session start.
// ARGV: token, limit, leaseMs, intervalMs. Returns 0 when the slot was taken, else a hint in ms.
const ACQUIRE_SLOT = `
${NOW_MS}
local limit = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local interval = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local nextAt = tonumber(redis.call('GET', KEYS[2]) or '0')
if nextAt > now then return nextAt - now end
if redis.call('ZCARD', KEYS[1]) >= limit then return 100 end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease + 1000)
if interval > 0 then redis.call('SET', KEYS[2], tostring(now + interval), 'PX', interval) end
return 0
`;

// Same keys. ARGV: token, intervalMs. Frees the slot; the next session starts no earlier than interval after.
const RELEASE_SLOT = `
${NOW_MS}
local interval = tonumber(ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[1])
if interval > 0 then
  local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
  if now + interval > cur then redis.call('SET', KEYS[2], tostring(now + interval), 'PX', interval) end
end
return 1
`;

// KEYS[1]: lease zset. ARGV: token, leaseMs. Returns 1 when the lease was still held and is extended.
const RENEW_SLOT = `
${NOW_MS}
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 1000)
return 1
`;

type Scripted = IORedis & {
  mcTakeTokens(key: string, rate: number, burst: number, wanted: number): Promise<[number, number]>;
  mcAcquireSlot(k1: string, k2: string, token: string, limit: number, leaseMs: number, intervalMs: number): Promise<number>;
  mcReleaseSlot(k1: string, k2: string, token: string, intervalMs: number): Promise<number>;
  mcRenewSlot(k1: string, token: string, leaseMs: number): Promise<number>;
};

function scripted(redis: IORedis): Scripted {
  const r = redis as Scripted;
  if (!('mcTakeTokens' in redis)) {
    redis.defineCommand('mcTakeTokens', { numberOfKeys: 1, lua: TAKE_TOKENS });
    redis.defineCommand('mcAcquireSlot', { numberOfKeys: 2, lua: ACQUIRE_SLOT });
    redis.defineCommand('mcReleaseSlot', { numberOfKeys: 2, lua: RELEASE_SLOT });
    redis.defineCommand('mcRenewSlot', { numberOfKeys: 1, lua: RENEW_SLOT });
  }
  return r;
}

export interface DnsLimiterOptions {
  /** Key prefix (the queue prefix), so test runs and installations do not share buckets. */
  prefix: string;
  /** Queries per second over all workers; 0 = unlimited. */
  qps: number;
  /** Give up (throw, so the job is retried) after waiting this long. @defaultValue 120000 */
  maxWaitMs?: number;
}

/** How long a batch of tokens taken from Redis may be spent locally; what is left then lapses. */
export const DNS_TOKEN_HOLD_MS = 100;
/** At most this many tokens per call to Redis. */
export const DNS_TOKEN_BATCH = 50;

/**
 * The shape of the shared bucket for `qps`: tokens per Redis call, and the burst.
 *
 * Without batching a bucket of burst B lets at most B + qps queries out in any second. A token taken in a
 * batch may be spent up to DNS_TOKEN_HOLD_MS later, which would stretch that second by the hold time
 * (B + qps × (1 + hold)); the burst is smaller by exactly qps × hold instead, so the bound stays
 * qps/5 + qps in any second however the tokens are batched (issue 18). Below 20 qps a batch would be a
 * single token: no batching, the bucket as before.
 */
export function dnsBucketShape(qps: number): { batch: number; burst: number; holdMs: number } {
  const unbatchedBurst = Math.max(1, Math.ceil(qps / 5));
  const batch = Math.min(DNS_TOKEN_BATCH, Math.max(1, Math.floor(qps / 10)));
  if (batch === 1) return { batch: 1, burst: unbatchedBurst, holdMs: 0 };
  return { batch, burst: Math.max(batch, unbatchedBurst - Math.ceil((qps * DNS_TOKEN_HOLD_MS) / 1000)), holdMs: DNS_TOKEN_HOLD_MS };
}

/**
 * A token bucket in Redis: every worker's DNS queries together stay under `qps`. The tokens are taken in
 * batches (dnsBucketShape: up to 50 per call, one call serving every query of this process waiting at that
 * moment), so a query costs a Redis round trip only now and then instead of every time.
 */
export function redisDnsLimiter(redis: IORedis, options: DnsLimiterOptions): DnsLimiter {
  if (options.qps <= 0) return { acquire: async () => {} };
  const r = scripted(redis);
  const key = `${options.prefix}:mc:dns-bucket`;
  const { batch, burst, holdMs } = dnsBucketShape(options.qps);
  const maxWaitMs = options.maxWaitMs ?? 120_000;
  // Tokens of the last batch still to spend, and until when (local clock, counted from before the call, so
  // never later than hold after Redis took them).
  let local = 0;
  let spendBefore = 0;
  // Tokens spent from the previous batch: the next batch asks for about twice that, so a process that needs few
  // queries does not take (and let lapse) tokens another worker could use.
  let lastSpent = 0;
  let spent = 0;
  const waiters: { resolve: () => void; reject: (err: Error) => void; since: number }[] = [];
  let pumping = false;
  const spendLocal = (): boolean => {
    if (local <= 0 || performance.now() >= spendBefore) return false;
    local--;
    spent++;
    return true;
  };

  const pump = async () => {
    if (pumping) return;
    pumping = true;
    try {
      while (waiters.length > 0) {
        if (spendLocal()) {
          waiters.shift()!.resolve();
          continue;
        }
        if (spent > 0) lastSpent = spent;
        local = 0;
        spent = 0;
        const wanted = Math.min(batch, Math.max(1, waiters.length, 2 * lastSpent));
        const sentAt = performance.now();
        let reply: [number, number];
        try {
          reply = await r.mcTakeTokens(key, options.qps, burst, wanted);
        } catch (err) {
          // Redis down: every waiting query fails (its job is retried), as each did with a call of its own.
          for (const w of waiters.splice(0)) w.reject(err as Error);
          return;
        }
        const taken = Number(reply[0]);
        if (taken > 0) {
          // Spent at once by those waiting (as an unbatched token would be); the rest until the hold ends.
          local = taken;
          spendBefore = sentAt + holdMs;
          while (local > 0 && waiters.length > 0) {
            local--;
            spent++;
            waiters.shift()!.resolve();
          }
          continue;
        }
        lastSpent = 0;
        const now = Date.now();
        for (let i = waiters.length - 1; i >= 0; i--) {
          if (now - waiters[i].since > maxWaitMs) waiters.splice(i, 1)[0].reject(new LimitWaitTimeoutError('DNS rate limit', maxWaitMs));
        }
        await sleep(Math.min(Number(reply[1]), 1000) + Math.floor(Math.random() * 5));
      }
    } finally {
      pumping = false;
    }
  };

  return {
    acquire() {
      // Waiters are served in arrival order: the fast path only when nobody waits.
      if (waiters.length === 0 && spendLocal()) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        waiters.push({ resolve, reject, since: Date.now() });
        void pump();
      });
    },
  };
}

export interface IpGateOptions {
  prefix: string;
  /** Sessions to one IP at once. @defaultValue 1 */
  concurrency: number;
  /** Minimum ms between two session starts, and between a session's end and the next start. */
  intervalMs: number;
  /** Lease length; renewed every third of it while the session runs. @defaultValue 30000 */
  leaseMs?: number;
  /** Give up (throw, so the job is retried later) after waiting this long. @defaultValue 600000 */
  maxWaitMs?: number;
  onLeaseLost?: (ip: string) => void;
}

/** Runs `fn` holding one of `concurrency` slots of the IP, honouring the spacing between sessions. */
export function redisIpGate(redis: IORedis, options: IpGateOptions): IpGate {
  const r = scripted(redis);
  const leaseMs = options.leaseMs ?? 30_000;
  const maxWaitMs = options.maxWaitMs ?? 600_000;
  const keys = (ip: string) => {
    const tag = `${options.prefix}:mc:ip:{${ip}}`; // hash tag: both keys on one Redis Cluster slot
    return [`${tag}:leases`, `${tag}:next`] as const;
  };
  return {
    async run<T>(ip: string, fn: () => Promise<T>): Promise<T> {
      const [leases, next] = keys(ip);
      const token = randomUUID();
      const started = Date.now();
      for (;;) {
        const wait = Number(await r.mcAcquireSlot(leases, next, token, options.concurrency, leaseMs, options.intervalMs));
        if (wait <= 0) break;
        if (Date.now() - started > maxWaitMs) throw new LimitWaitTimeoutError(`per-IP limit of ${ip}`, maxWaitMs);
        await sleep(Math.min(wait, 500) + Math.floor(Math.random() * 20));
      }
      const renew = setInterval(() => {
        r.mcRenewSlot(leases, token, leaseMs).then(
          (held: unknown) => {
            if (Number(held) !== 1) options.onLeaseLost?.(ip);
          },
          () => {},
        );
      }, Math.max(100, Math.floor(leaseMs / 3)));
      renew.unref();
      try {
        return await fn();
      } finally {
        clearInterval(renew);
        // If Redis is briefly down the lease simply expires; the session already ended.
        await r.mcReleaseSlot(leases, next, token, options.intervalMs).catch(() => {});
      }
    },
  };
}
