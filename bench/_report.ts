// Shared by bench parts: the machine description and the update of one part's section of BENCHMARKS.md.
import { cpus, totalmem } from 'node:os';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCHMARKS_MD = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'BENCHMARKS.md');

export function machine(): string {
  const c = cpus();
  return `${c.length} cores (${c[0]?.model.trim() ?? 'unknown CPU'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}`;
}

/** Replaces the part's section (between its markers) or appends it; the other sections stay as they are. */
export async function updateSection(part: string, body: string): Promise<void> {
  const begin = `<!-- bench:${part} -->`;
  const end = `<!-- /bench:${part} -->`;
  let text = '';
  try {
    text = await readFile(BENCHMARKS_MD, 'utf8');
  } catch {
    text = '# Benchmarks\n\nWritten by `npm run bench [part...]`; each part rewrites only its own section.\n';
  }
  const section = `${begin}\n${body.trim()}\n${end}`;
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  text = i >= 0 && j > i ? text.slice(0, i) + section + text.slice(j + end.length) : `${text.trimEnd()}\n\n${section}\n`;
  await writeFile(BENCHMARKS_MD, text);
}
