// Issue 14: product code states its types; a library whose declaration is wrong gets one augmentation in
// types/, with a comment saying what the declaration lacks. `as unknown as` and `as never` turn the checker off
// for a value, so none may appear outside test/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');
const PRODUCT_DIRS = ['bin', 'cli', 'lib', 'workers', 'receiver', 'reports', 'ingest', 'lab', 'web', 'bench', 'scripts', 'migrations', 'types'];
/** A cast may be split over lines (`as unknown\n  as X`). */
const UNSAFE_CAST = /\bas\s+unknown\s+as\b|\bas\s+never\b/g;

function tsFiles(dir: string, out: string[] = []): string[] {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) tsFiles(p, out);
    else if (/\.(c|m)?ts$/.test(e.name)) out.push(p);
  }
  return out;
}

/** `file:line: text` for every unsafe cast in the source. */
function unsafeCasts(file: string, source: string): string[] {
  const hits: string[] = [];
  for (const m of source.matchAll(UNSAFE_CAST)) {
    const line = source.slice(0, m.index).split('\n').length;
    hits.push(`${file}:${line}: ${source.split('\n')[line - 1]!.trim()}`);
  }
  return hits;
}

test('the detector finds both casts, one of them split over two lines, and names file and line', () => {
  const src = "const a = b as never;\nconst c = (d as unknown\n  as string[]);\nconst e = f as unknown; // fine\n";
  assert.deepEqual(unsafeCasts('x.ts', src), ['x.ts:1: const a = b as never;', 'x.ts:2: const c = (d as unknown']);
});

test('no `as unknown as` or `as never` in product code (everything outside test/)', () => {
  const files = PRODUCT_DIRS.flatMap((d) => tsFiles(path.join(ROOT, d)));
  assert.ok(files.length > 100, `only ${files.length} product .ts files found under ${ROOT}: wrong root?`);
  const hits = files.flatMap((f) => unsafeCasts(path.relative(ROOT, f), readFileSync(f, 'utf8')));
  assert.deepEqual(hits, [], `unsafe casts in product code (use the real type, or one typed augmentation in types/):\n${hits.join('\n')}`);
});
