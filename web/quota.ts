// New test addresses per client per hour, one budget for the form and the API (a person cannot get around it
// by switching): a fixed one-hour window per client IP in Redis (INCR, and EXPIRE on the window's first request).
import type { Redis as IORedis } from 'ioredis';

export interface QuotaResult {
  ok: boolean;
  retryAfterSeconds: number;
}

export async function takeRequestQuota(redis: IORedis, prefix: string, clientIp: string, maxPerHour: number): Promise<QuotaResult> {
  const key = `${prefix}:web:new-requests:${clientIp}`;
  const [[, count], [, ttl]] = (await redis.multi().incr(key).ttl(key).exec()) as [[null, number], [null, number]];
  if (ttl < 0) await redis.expire(key, 3600);
  return { ok: count <= maxPerHour, retryAfterSeconds: ttl > 0 ? ttl : 3600 };
}
