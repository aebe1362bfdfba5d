// `npm run bench [-- part... --option value...]`: runs the named benchmark parts (every bench/<part>.ts
// exporting `run(args)`), or all of them. Each part prints its numbers and updates its own section of
// BENCHMARKS.md. Options go to every part (see docs/bench.md), e.g. `npm run bench -- survey --sizes 2000`.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgv, setCommandLine } from './lib/args.ts';

const dir = path.dirname(fileURLToPath(import.meta.url));
// The survey part measures the pipeline and, while its 10,000-domain lab is up, the baseline: it runs before
// `baseline`, which then has nothing left to do. Other parts run in name order.
const ORDER = ['ingest', 'survey', 'baseline', 'report', 'receiver', 'sessions', 'faults'];
// Parts that run only when named: faults measures recovery (seven surveys of 300 domains with the shipped
// defaults, about half an hour), not speed, and would double the time of the speed figures.
const ON_REQUEST = new Set(['faults']);
const available = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.startsWith('_'))
  .map((f) => f.slice(0, -3))
  .sort((a, b) => (ORDER.indexOf(a) + 1 || 99) - (ORDER.indexOf(b) + 1 || 99) || a.localeCompare(b));
const argv = process.argv.slice(2);
const { parts: wanted, args } = parseArgv(argv);
setCommandLine(argv);
const unknown = wanted.filter((p) => !available.includes(p));
if (unknown.length) {
  process.stderr.write(`bench: unknown part ${unknown.join(', ')}; available: ${available.join(', ')}\n`);
  process.exit(2);
}
const started = Date.now();
for (const part of wanted.length ? wanted : available.filter((p) => !ON_REQUEST.has(p))) {
  console.log(`== bench ${part}`);
  const t = Date.now();
  const mod = await import(pathToFileURL(path.join(dir, `${part}.ts`)).href);
  try {
    await mod.run(args);
  } catch (err) {
    process.stderr.write(`bench ${part}: ${(err as Error).stack ?? (err as Error).message}\n`);
    process.exitCode = 1;
  }
  console.log(`== bench ${part}: ${((Date.now() - t) / 1000).toFixed(0)} s`);
}
console.log(`== bench: ${((Date.now() - started) / 1000).toFixed(0)} s in all`);
// Parts close what they open; a stray handle (a library's timer) must not keep the bench from exiting.
setTimeout(() => process.exit(process.exitCode ?? 0), 3000).unref();
