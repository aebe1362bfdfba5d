// Redis figures for the benchmarks: memory as INFO reports it, the memory of our own keys (the Redis is
// shared with other users, so the server-wide figure alone would not be honest), command counts from
// INFO commandstats, and the removal of every key a benchmark run created.
import { Redis as IORedis } from 'ioredis';
export { deleteKeysUnder as deletePrefix } from '../../workers/queues.ts';

export function openRedis(url: string): IORedis {
  return new IORedis(url, { maxRetriesPerRequest: 2, lazyConnect: false });
}

export function infoField(info: string, field: string): number {
  const m = new RegExp(`^${field}:(\\d+)`, 'm').exec(info);
  return m ? Number(m[1]) : NaN;
}

/** Keys under `prefix:` and the bytes they take (MEMORY USAGE, which counts a key's whole allocation). */
export async function prefixMemory(redis: IORedis, prefix: string): Promise<{ keys: number; bytes: number }> {
  let cursor = '0';
  let keys = 0;
  let bytes = 0;
  let rounds = 0;
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 2000);
    cursor = next;
    if (batch.length > 0) {
      const p = redis.pipeline();
      for (const k of batch) p.memory('USAGE', k, 'SAMPLES', '0');
      for (const [, v] of (await p.exec()) ?? []) bytes += Number(v ?? 0);
      keys += batch.length;
    }
  } while (cursor !== '0' && ++rounds < 100_000);
  return { keys, bytes };
}


/** Calls per command from INFO commandstats (server-wide; diff two snapshots). */
export async function commandCalls(redis: IORedis): Promise<Map<string, { calls: number; usec: number }>> {
  const out = new Map<string, { calls: number; usec: number }>();
  for (const line of (await redis.info('commandstats')).split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line);
    if (m) out.set(m[1]!, { calls: Number(m[2]), usec: Number(m[3]) });
  }
  return out;
}

/**
 * Samples Redis while a run goes on: server used_memory every second, our keys' memory every `keysEveryMs`.
 * `stop()` returns the peaks.
 */
export function sampleRedis(redis: IORedis, prefix: string, keysEveryMs = 15_000) {
  let peakUsed = 0;
  let baseUsed = NaN;
  let peakKeys = { keys: 0, bytes: 0 };
  let lastKeys = 0;
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      const used = infoField(await redis.info('memory'), 'used_memory');
      if (Number.isNaN(baseUsed)) baseUsed = used;
      peakUsed = Math.max(peakUsed, used);
      if (Date.now() - lastKeys >= keysEveryMs) {
        lastKeys = Date.now();
        const k = await prefixMemory(redis, prefix);
        if (k.bytes > peakKeys.bytes) peakKeys = k;
      }
    } catch {
      // a missed sample is not worth failing the benchmark
    } finally {
      busy = false;
    }
  };
  void tick();
  const timer = setInterval(() => void tick(), 1000);
  return {
    async stop() {
      clearInterval(timer);
      while (busy) await new Promise((r) => setTimeout(r, 20));
      const peak = infoField(await redis.info('memory'), 'used_memory_peak');
      return { baseUsed, peakUsed, serverPeak: peak, ownPeakBytes: peakKeys.bytes, ownPeakKeys: peakKeys.keys };
    },
  };
}
