// `npm run bench -- part... --option value`: parts and options are told apart, and sizes are validated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { benchOptions, parseArgv } from '../bench/lib/args.ts';

test('part names and options are separated, flags take no value', () => {
  const { parts, args } = parseArgv(['survey', '--sizes', '2000,10000', '--cpu-prof', '--no-baseline', '--workers=2']);
  assert.deepEqual(parts, ['survey']);
  assert.deepEqual(args, { sizes: '2000,10000', 'cpu-prof': true, 'no-baseline': true, workers: '2' });
});

test('default sizes are the issue\'s, with 2 workers only at 50,000', () => {
  const o = benchOptions({});
  assert.deepEqual(o.sizes, [10_000, 50_000]);
  assert.deepEqual(o.workersFor(10_000), [1, 2]);
  assert.deepEqual(o.workersFor(50_000), [2]);
  assert.equal(o.baselineSize, 10_000);
  assert.deepEqual(benchOptions({ workers: '1' }).workersFor(50_000), [1]);
});

test('a bad size list is refused with a message naming the option', () => {
  assert.throws(() => benchOptions({ sizes: '10k' }), /--sizes takes positive integers/);
});

test('--world picks the uniform world (default), the internet-like one, or both in order', () => {
  assert.deepEqual(benchOptions({}).worlds, ['uniform']);
  assert.deepEqual(benchOptions({ world: 'internet' }).worlds, ['internet']);
  assert.deepEqual(benchOptions(parseArgv(['survey', '--world', 'uniform,internet']).args).worlds, ['uniform', 'internet']);
  assert.throws(() => benchOptions({ world: 'moon' }), /--world takes uniform, internet/);
  assert.throws(() => benchOptions({ world: true }), /--world takes/);
});
