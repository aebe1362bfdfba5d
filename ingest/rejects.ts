// The rejects CSV: one row per input line that did not become a new domain of the list (rejected lines and
// repeats within the file), so every line's fate can be read back. UTF-8 with a BOM and CRLF line ends
// (RFC 4180 §2), which is what Excel, Japanese Excel included, opens without asking.
import { createWriteStream, type WriteStream } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import { once } from 'node:events';
import { InputError } from '../lib/errors.ts';
import { csvRow } from '../lib/csv-cell.ts';

export const REJECTS_HEADER = ['line', 'reason', 'detail', 'value'] as const;

export function rejectsPathFor(file: string): string {
  return `${file}.rejects.csv`;
}

/** Writes to a temporary file, renamed into place only when the ingest succeeds. */
export class RejectsWriter {
  readonly path: string;
  private readonly tmp: string;
  private readonly out: WriteStream;
  private buffer: string[] = [];
  private failed: Error | null = null;
  rows = 0;

  /** Rows queued and not yet written. */
  get pending(): number {
    return this.buffer.length;
  }

  private constructor(path: string) {
    this.path = path;
    this.tmp = `${path}.${process.pid}.tmp`;
    this.out = createWriteStream(this.tmp);
    this.out.on('error', (err) => {
      this.failed = err;
    });
  }

  static async open(path: string): Promise<RejectsWriter> {
    const w = new RejectsWriter(path);
    try {
      await once(w.out, 'open');
    } catch (err) {
      throw new InputError(`cannot write the rejects file ${path}: ${(err as Error).message} (choose another place with --rejects)`);
    }
    w.out.write(`\ufeff${REJECTS_HEADER.join(',')}\r\n`);
    return w;
  }

  /** Queues one row; call flush() now and then to bound memory. */
  add(line: number, reason: string, detail: string, value: string): void {
    this.rows++;
    this.buffer.push(csvRow([line, reason, detail, value]));
  }

  /** Queues rows already written as CSV text (`count` of them, each ending in CRLF), e.g. by the ingest thread. */
  addRows(text: string, count: number): void {
    this.rows += count;
    this.buffer.push(text);
  }

  async flush(): Promise<void> {
    if (this.failed) throw new InputError(`cannot write the rejects file ${this.path}: ${this.failed.message}`);
    if (this.buffer.length === 0) return;
    const ok = this.out.write(this.buffer.join(''));
    this.buffer = [];
    if (!ok) await once(this.out, 'drain');
  }

  private async close(): Promise<void> {
    await this.flush();
    await new Promise<void>((resolve, reject) => this.out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    if (this.failed) throw new InputError(`cannot write the rejects file ${this.path}: ${this.failed.message}`);
  }

  /**
   * Puts the file in place. With no rows and `keepEmpty` false, writes nothing and removes a stale rejects
   * file of an earlier ingest at the same path, so an old list of rejects never describes a new ingest.
   */
  async commit(keepEmpty: boolean): Promise<string | null> {
    await this.close();
    if (this.rows === 0 && !keepEmpty) {
      await unlink(this.tmp).catch(() => {});
      await unlink(this.path).catch(() => {});
      return null;
    }
    await rename(this.tmp, this.path);
    return this.path;
  }

  async discard(): Promise<void> {
    this.out.destroy();
    await unlink(this.tmp).catch(() => {});
  }
}
