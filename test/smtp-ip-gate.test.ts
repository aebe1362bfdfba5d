import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createIpGate } from '../lib/probes/ip-gate.ts';

/** A fake clock: sleep advances it, so interval tests do not depend on the machine's speed. */
function fakeClock() {
  let t = 1_000_000;
  const sleeps: number[] = [];
  return {
    now: () => t,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      t += ms;
    },
    sleeps,
    advance: (ms: number) => (t += ms),
  };
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

test('at most one session per IP runs at a time by default, others wait in order', async () => {
  const clock = fakeClock();
  const gate = createIpGate({ intervalMs: 0, now: clock.now, sleep: clock.sleep });
  const order: string[] = [];
  let active = 0;
  let maxActive = 0;
  const d = [deferred(), deferred(), deferred()];
  const runs = d.map((x, i) =>
    gate.run('192.0.2.1', async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      order.push(`start${i}`);
      await x.promise;
      active--;
      return i;
    }),
  );
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, ['start0']);
  d[0].resolve();
  d[1].resolve();
  d[2].resolve();
  assert.deepEqual(await Promise.all(runs), [0, 1, 2]);
  assert.equal(maxActive, 1);
  assert.deepEqual(order, ['start0', 'start1', 'start2']);
});

test('different IPs do not wait for each other', async () => {
  const gate = createIpGate({ concurrency: 1, intervalMs: 0 });
  const hold = deferred();
  const started: string[] = [];
  const a = gate.run('192.0.2.1', async () => {
    started.push('a');
    await hold.promise;
  });
  const b = gate.run('192.0.2.2', async () => {
    started.push('b');
  });
  await b;
  assert.deepEqual(started.sort(), ['a', 'b']);
  hold.resolve();
  await a;
});

test('with concurrency 2, two sessions overlap and a third waits', async () => {
  const gate = createIpGate({ concurrency: 2, intervalMs: 0 });
  let active = 0;
  let maxActive = 0;
  const holds = [deferred(), deferred(), deferred()];
  const runs = holds.map((h) =>
    gate.run('192.0.2.1', async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      await h.promise;
      active--;
    }),
  );
  await new Promise((r) => setImmediate(r));
  assert.equal(active, 2);
  holds.forEach((h) => h.resolve());
  await Promise.all(runs);
  assert.equal(maxActive, 2);
});

test('session starts to one IP are spaced by the minimum interval', async () => {
  const clock = fakeClock();
  const gate = createIpGate({ concurrency: 1, intervalMs: 1000, now: clock.now, sleep: clock.sleep });
  const starts: number[] = [];
  await Promise.all([1, 2, 3].map(() => gate.run('192.0.2.1', async () => void starts.push(clock.now()))));
  assert.deepEqual(starts.map((s) => s - starts[0]), [0, 1000, 2000]);
  // Once the interval has passed, the next session starts at once.
  clock.advance(5000);
  const before = clock.sleeps.length;
  await gate.run('192.0.2.1', async () => {});
  assert.equal(clock.sleeps.length, before);
});

test('a failing session releases its slot', async () => {
  const gate = createIpGate({ concurrency: 1, intervalMs: 0 });
  await assert.rejects(gate.run('192.0.2.1', async () => { throw new Error('boom'); }), /boom/);
  assert.equal(await gate.run('192.0.2.1', async () => 7), 7);
});
