// The Redis-shared politeness limits: per-IP semaphore with spacing and lease expiry, DNS token bucket.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { redisIpGate, redisDnsLimiter } from '../workers/limits.ts';
import { deleteKeysUnder } from '../workers/queues.ts';

const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const a = new Redis(url);
const b = new Redis(url); // a second "machine"
const prefix = `mctest-${randomBytes(4).toString('hex')}`;
after(async () => {
  await deleteKeysUnder(a, prefix);
  await deleteKeysUnder(a, `${prefix}-dns`);
  a.disconnect();
  b.disconnect();
});

test('the per-IP gate never lets two holders from two connections run sessions to one IP at once', async () => {
  const opts = { prefix, concurrency: 1, intervalMs: 0 };
  const gates = [redisIpGate(a, opts), redisIpGate(b, opts)];
  let active = 0;
  let max = 0;
  await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      gates[i % 2].run('192.0.2.1', async () => {
        active++;
        max = Math.max(max, active);
        await new Promise((r) => setTimeout(r, 20));
        active--;
      }),
    ),
  );
  assert.equal(max, 1);
});

test('the per-IP gate spaces sessions to one IP by the interval', async () => {
  const gate = redisIpGate(a, { prefix, concurrency: 1, intervalMs: 150 });
  const starts: number[] = [];
  await Promise.all(Array.from({ length: 3 }, () => gate.run('192.0.2.2', async () => void starts.push(Date.now()))));
  starts.sort((x, y) => x - y);
  assert.ok(starts[1] - starts[0] >= 140 && starts[2] - starts[1] >= 140, `starts ${starts.map((s) => s - starts[0])}`);
});

test('a slot held by a killed worker frees itself when its lease expires', async () => {
  // A holder that never renews nor releases: what SIGKILL leaves behind.
  await a.zadd(`${prefix}:mc:ip:{192.0.2.3}:leases`, Date.now() + 300, 'dead-worker');
  const gate = redisIpGate(b, { prefix, concurrency: 1, intervalMs: 0 });
  const t0 = Date.now();
  await gate.run('192.0.2.3', async () => {});
  assert.ok(Date.now() - t0 >= 200, 'waited for the stale lease');
});

test('the DNS token bucket caps queries per second over two connections', async () => {
  const opts = { prefix: `${prefix}-dns`, qps: 50 };
  const limiters = [redisDnsLimiter(a, opts), redisDnsLimiter(b, opts)];
  const t0 = Date.now();
  await Promise.all(Array.from({ length: 40 }, (_, i) => limiters[i % 2].acquire()));
  // Burst 10, then 30 more at 50/s: at least 0.6 s (an upper bound would be timing-sensitive).
  assert.ok(Date.now() - t0 >= 550, `40 queries took ${Date.now() - t0} ms`);
});
