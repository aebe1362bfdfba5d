// The Redis-shared politeness limits: per-IP semaphore with spacing and lease expiry, DNS token bucket.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { redisIpGate, redisDnsLimiter, dnsBucketShape } from '../workers/limits.ts';
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

test('with tokens taken in batches the DNS bucket still holds qps + qps/5 in any second, over two connections, in a fraction of the Redis calls', async () => {
  const qps = 200;
  const opts = { prefix: `${prefix}-dns`, qps };
  const key = `${opts.prefix}:mc:dns-bucket`;
  await a.del(key);
  assert.ok(dnsBucketShape(qps).batch > 1, 'batching applies at this rate');
  // Count the calls that touch the bucket, from the server's side.
  const monitorClient = new Redis(url);
  const mon = await monitorClient.monitor();
  let calls = 0;
  mon.on('monitor', (_time: string, args: string[]) => {
    if (args.includes(key) && /^eval/i.test(args[0] ?? '')) calls++;
  });
  const limiters = [redisDnsLimiter(a, opts), redisDnsLimiter(b, opts)];
  const grants: number[] = [];
  try {
  // 40 resolvers, each sending its next query as soon as the last one may go (the spending of a batch left
  // over after the first waiters is exercised, not only handing a batch out at once).
  await Promise.all(
    Array.from({ length: 40 }, async (_, i) => {
      for (let n = 0; n < 10; n++) {
        await limiters[i % 2].acquire();
        grants.push(performance.now());
      }
    }),
  );
    await new Promise((r) => setTimeout(r, 100));
  } finally {
    mon.disconnect();
    monitorClient.disconnect();
  }
  grants.sort((x, y) => x - y);
  let worst = 0;
  for (let i = 0, j = 0; i < grants.length; i++) {
    while (grants[j] - grants[i] < 1000 && j < grants.length) j++;
    worst = Math.max(worst, j - i);
  }
  assert.ok(worst <= qps + qps / 5, `${worst} queries in one second at qps ${qps}`);
  // 400 queries at 200/s after a burst of 20: about 1.9 s (the upper bound is loose: the machine is shared).
  const took = grants.at(-1)! - grants[0];
  assert.ok(took >= 1500 && took < 8000, `400 queries took ${Math.round(took)} ms`);
  assert.ok(calls > 0 && calls <= grants.length / 4, `${calls} Redis calls for ${grants.length} queries`);
});
