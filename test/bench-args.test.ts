// `npm run bench -- part... --option value`: parts and options are told apart, and sizes are validated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { benchOptions, parseArgv } from '../bench/lib/args.ts';

test('part names and options are separated, flags take no value', () => {
  const { parts, args } = parseArgv(['survey', '--sizes', '2000,10000', '--cpu-prof', '--no-baseline', '--workers=2']);
  assert.deepEqual(parts, ['survey']);
  assert.deepEqual(args, { sizes: '2000,10000', 'cpu-prof': true, 'no-baseline': true, workers: '2' });
});

test("the default plan is the issue's: 100,000 uniform domains read at 10,000 and 50,000, and 10,000 internet-like", () => {
  const o = benchOptions({});
  assert.deepEqual(o.plan, [
    { size: 100_000, world: 'uniform' },
    { size: 10_000, world: 'internet' },
  ]);
  assert.equal(o.defaultPlan, true);
  assert.deepEqual(o.checkpoints, [10_000, 50_000]);
  assert.deepEqual(o.workersFor(100_000), [2]);
  // No uniform world of 10,000: the baseline takes the smallest uniform one.
  assert.equal(o.baselineSize, 100_000);
  assert.deepEqual(benchOptions({ workers: '1,2' }).workersFor(50_000), [1, 2]);
});

test('--sizes and --world replace the plan with every size × world pair', () => {
  const o = benchOptions({ sizes: '2000,10000', world: 'uniform,internet' });
  assert.equal(o.defaultPlan, false);
  assert.deepEqual(o.plan.map((s) => `${s.size}/${s.world}`), ['2000/uniform', '2000/internet', '10000/uniform', '10000/internet']);
  assert.equal(o.baselineSize, 10_000);
  assert.deepEqual(benchOptions({ sizes: '3000' }).plan, [{ size: 3000, world: 'uniform' }]);
  assert.throws(() => benchOptions({ checkpoints: '10k' }), /--checkpoints takes positive integers/);
});

test('a bad size list is refused with a message naming the option', () => {
  assert.throws(() => benchOptions({ sizes: '10k' }), /--sizes takes positive integers/);
});

test('--world picks the uniform world (default), the internet-like one, or both in order', () => {
  const worlds = (args: Parameters<typeof benchOptions>[0]) => benchOptions({ sizes: '1000', ...args }).plan.map((s) => s.world);
  assert.deepEqual(worlds({}), ['uniform']);
  assert.deepEqual(worlds({ world: 'internet' }), ['internet']);
  assert.deepEqual(worlds(parseArgv(['survey', '--world', 'uniform,internet']).args), ['uniform', 'internet']);
  assert.throws(() => benchOptions({ world: 'moon' }), /--world takes uniform, internet/);
  assert.throws(() => benchOptions({ world: true }), /--world takes/);
});
