// The per-line work of an ingest, on one worker thread: read, decode, split into records, normalise, de-duplicate,
// write the COPY text (as UTF-8 bytes, handed over without a copy) and the rejects CSV rows. The main thread only
// streams those bytes into COPY and the rows into the rejects file, so the two CPUs of a small machine split as
// "this thread" and "Postgres", not "this thread, the main thread, the structured clone between them and Postgres".
//
// Records: a file with no double quote anywhere and one kind of line end (ingest/sniff.ts tells) is split here,
// a line per record and a comma per field, which is exactly what csv-parse gives for such a file (a line longer
// than the record limit goes through csv-parse on its own, for the same error); any other file goes through
// csv-parse as before.
//
// Protocol: workerData = WorkerInput. The worker posts WorkerMessage: 'batch' messages (at most MAX_IN_FLIGHT
// ahead of the main thread's { type: 'credit' } replies), then one 'end' or one 'error'. Batches before an
// error are posted first, so everything before the failing line is accounted for.
import { parentPort, workerData } from 'node:worker_threads';
import { createReadStream } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { pipeline } from 'node:stream/promises';
import { parse, CsvError, type Options as CsvOptions } from 'csv-parse';
import { parse as parseSync } from 'csv-parse/sync';
import iconv from 'iconv-lite';
import { normalizeDomain, splitSelectors, splitTags, type RejectReason } from './normalize.ts';
import { detectLayout, type Layout } from './columns.ts';
import { csvRow } from '../lib/csv-cell.ts';
import { DomainSet } from './domain-set.ts';
import type { Encoding, LineEnding } from './sniff.ts';

export interface WorkerInput {
  file: string;
  encoding: Encoding;
  codec: string;
  lineEnding: LineEnding;
  quoted: boolean;
  maxRecordSize: number;
  surveyId: number;
  /** False for a dry run: no COPY text is made. */
  copy: boolean;
}

export interface WorkerCounts {
  lines: number;
  read: number;
  blank: number;
  accepted: number;
  duplicates: number;
  rejected: number;
  rejectReasons: Partial<Record<RejectReason, number>>;
  headerless: boolean;
  header: string[];
}

export type WorkerMessage =
  | { type: 'batch'; copy: Uint8Array | null; rejects: string; rejectRows: number }
  | { type: 'end'; counts: WorkerCounts }
  | { type: 'error'; input: boolean; message: string; code: string | null };

const MAX_IN_FLIGHT = 4;
const BATCH_ROWS = 8192; // COPY rows per message (~600 KiB of text for a typical list)
const BATCH_REJECTS = 1000;

/** COPY text format (PostgreSQL "COPY", File Formats): backslash escapes, \N for NULL. */
function copyText(v: string | null | undefined): string {
  if (v === null || v === undefined) return '\\N';
  if (!/[\\\t\n\r\0]/.test(v)) return v;
  return v.replace(/\0/g, '').replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

function arrayLiteral(items: string[]): string {
  if (items.length === 0) return '{}';
  return `{${items.map((t) => `"${t.replace(/[\\"]/g, '\\$&')}"`).join(',')}}`;
}

function cell(rec: string[], i: number | undefined): string | null {
  if (i === undefined) return null;
  const v = rec[i]?.trim();
  return v ? v : null;
}

/** A record with nothing but white space in every field (an empty line, or ",,,"). */
function isBlank(rec: string[]): boolean {
  for (const f of rec) if (f.length !== 0 && f.trim() !== '') return false;
  return true;
}

function lineBreaks(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 10) n++;
    else if (c === 13) { n++; if (s.charCodeAt(i + 1) === 10) i++; }
  }
  return n;
}

/** Which domain cell a record uses: the first non-empty of the domain, email and url columns. */
function domainCell(rec: string[], layout: Layout): string {
  for (const i of layout.domain) {
    const v = rec[i];
    if (v !== undefined && v.trim() !== '') return v;
  }
  return rec[layout.domain[0]] ?? '';
}

/** A message for the user (the main thread raises it as InputError). */
class WorkerInputError extends Error {}

function csvErrorMessage(err: CsvError, file: string, line: number, max: number): string {
  if (err.code === 'CSV_MAX_RECORD_SIZE') return `${file} line ${line}: record longer than ${max} characters (is this a CSV list of domains?)`;
  if (err.code === 'CSV_QUOTE_NOT_CLOSED') return `${file} line ${line}: a quoted field opened on this line is never closed`;
  return `${file} line ${line}: ${err.message}`;
}

/** Fates of records, in file order; the same rules as the ingest always had (see ingest/ingest.ts). */
class Records {
  readonly counts: WorkerCounts = {
    lines: 0, read: 0, blank: 0, accepted: 0, duplicates: 0, rejected: 0, rejectReasons: {}, headerless: false, header: [],
  };
  /** Physical line where the next record starts. */
  line = 1;
  private layout: Layout | null = null;
  private readonly seen = new DomainSet();
  private copy: string[] = [];
  private rejects: string[] = [];
  private readonly prefix: string;

  constructor(private readonly input: WorkerInput) {
    this.prefix = `${input.surveyId}\t`;
  }

  get full(): boolean {
    return this.copy.length >= BATCH_ROWS || this.rejects.length >= BATCH_REJECTS;
  }

  /** `plain` records come from a line without quotes: no field holds a line break. */
  add(rec: string[], plain: boolean): void {
    const start = this.line;
    if (plain) this.line = start + 1;
    else {
      let breaks = 0;
      for (const f of rec) if (f.includes('\n') || f.includes('\r')) breaks += lineBreaks(f);
      this.line = start + breaks + 1;
    }
    const c = this.counts;
    const blank = isBlank(rec);
    let layout = this.layout;
    if (layout === null) {
      if (blank) {
        c.blank++; // blank lines before the header
        return;
      }
      const detected = detectLayout(rec);
      if (!detected.ok) throw new WorkerInputError(`${this.input.file}: ${detected.message}`);
      layout = this.layout = detected.layout;
      c.headerless = layout.headerless;
      c.header = layout.header;
      if (!layout.headerless) return;
    }
    if (blank) {
      c.blank++;
      return;
    }
    c.read++;
    const raw = domainCell(rec, layout);
    const n = normalizeDomain(raw);
    if (!n.ok) {
      c.rejected++;
      c.rejectReasons[n.reason] = (c.rejectReasons[n.reason] ?? 0) + 1;
      this.rejects.push(csvRow([start, n.reason, n.detail, raw]));
      return;
    }
    // The optional DKIM selectors column: a value that is no selector rejects the line, as a bad domain does.
    const sel = layout.selectors === undefined ? null : splitSelectors(rec[layout.selectors]);
    if (sel?.bad != null) {
      c.rejected++;
      c.rejectReasons.invalid_selector = (c.rejectReasons.invalid_selector ?? 0) + 1;
      this.rejects.push(csvRow([start, 'invalid_selector', `${JSON.stringify(sel.bad)} is not a DKIM selector (RFC 6376 §3.1)`, rec[layout.selectors!] ?? '']));
      return;
    }
    const first = this.seen.add(n.domain, start);
    if (first !== -1) {
      c.duplicates++;
      this.rejects.push(csvRow([start, 'duplicate', `same domain as line ${first}`, raw]));
      return;
    }
    c.accepted++;
    if (!this.input.copy) return;
    const trimmed = raw.trim();
    const input = trimmed === n.domain ? null : trimmed;
    this.copy.push(
      `${this.prefix}${n.domain}\t${copyText(cell(rec, layout.organization))}\t${copyText(cell(rec, layout.industry))}\t` +
        `${copyText(arrayLiteral(layout.tags === undefined ? [] : splitTags(rec[layout.tags])))}\t${copyText(input)}\t` +
        `${copyText(arrayLiteral(sel?.selectors ?? []))}\n`,
    );
  }

  /** The batch so far, as a message (the COPY bytes in their own ArrayBuffer, transferable). */
  take(): { message: WorkerMessage; transfer: ArrayBuffer[] } | null {
    if (this.copy.length === 0 && this.rejects.length === 0) return null;
    let bytes: Uint8Array | null = null;
    const transfer: ArrayBuffer[] = [];
    if (this.copy.length) {
      const b = Buffer.from(this.copy.join(''), 'utf8');
      // Large strings get an ArrayBuffer of their own; a small one may sit in Node's shared pool: copy it out.
      bytes = b.byteOffset === 0 && b.buffer.byteLength === b.length ? b : new Uint8Array(b);
      transfer.push(bytes.buffer as ArrayBuffer);
    }
    const message: WorkerMessage = { type: 'batch', copy: bytes, rejects: this.rejects.join(''), rejectRows: this.rejects.length };
    this.copy = [];
    this.rejects = [];
    return { message, transfer };
  }

  finish(): WorkerCounts {
    const c = this.counts;
    c.lines = this.line - 1;
    if (this.layout === null) throw new WorkerInputError(`${this.input.file} is empty (no records, only blank space)`);
    if (c.read === 0) {
      throw new WorkerInputError(`${this.input.file} has no domains${this.layout.headerless ? '' : ' after the header (line 1)'}`);
    }
    return c;
  }
}

let credits = MAX_IN_FLIGHT;
let stopped = false;
let wakeCredit: (() => void) | null = null;
parentPort!.on('message', (m: { type?: string }) => {
  if (m?.type === 'credit') credits++;
  else if (m?.type === 'stop') stopped = true;
  else return;
  const w = wakeCredit;
  wakeCredit = null;
  w?.();
});

/** The main thread no longer wants anything (it failed, or COPY did): unwind and exit. */
class Stopped extends Error {}

async function post(records: Records): Promise<void> {
  if (stopped) throw new Stopped();
  const batch = records.take();
  if (!batch) return;
  while (credits === 0 && !stopped) await new Promise<void>((resolve) => (wakeCredit = resolve));
  if (stopped) throw new Stopped();
  credits--;
  parentPort!.postMessage(batch.message, batch.transfer);
}

function csvOptions(input: WorkerInput): CsvOptions {
  return {
    bom: true,
    relax_quotes: true, // a stray quote inside a field is kept as a character, not a fatal error
    relax_column_count: true, // short and long rows are fine: records are read by column index
    // All three line ends, even mixed in one file (lists concatenated from several sources, or Excel's LF
    // inside cells of a CRLF file); the one the whole file uses when the pre-scan found a single kind.
    record_delimiter: input.lineEnding === 'mixed' ? ['\r\n', '\n', '\r'] : input.lineEnding,
    max_record_size: input.maxRecordSize,
  };
}

/** A file with no quotes and one kind of line end: a line is a record, a comma separates fields. */
async function splitPlain(input: WorkerInput, records: Records): Promise<void> {
  const delimiter = input.lineEnding as '\n' | '\r\n' | '\r';
  const step = delimiter.length;
  const source = createReadStream(input.file, { highWaterMark: 1 << 20 });
  const decoder = input.encoding === 'sjis' ? iconv.getDecoder(input.codec) : new StringDecoder('utf8');
  const options = csvOptions(input);
  let carry = '';
  let first = true;
  const lines = (text: string, final: boolean): string => {
    if (first && text.length) {
      first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // csv-parse `bom: true`
    }
    let at = 0;
    for (let nl = text.indexOf(delimiter); nl !== -1; nl = text.indexOf(delimiter, at)) {
      line(text.slice(at, nl));
      at = nl + step;
    }
    const rest = text.slice(at);
    if (final && rest.length) {
      line(rest);
      return '';
    }
    return rest;
  };
  const line = (s: string): void => {
    if (s.length <= input.maxRecordSize) {
      records.add(s.split(','), true);
      return;
    }
    // Too long for the fast split to judge: csv-parse, on this line alone, says what it would have said.
    for (const rec of parseSync(s, options) as string[][]) records.add(rec, true);
  };
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      carry = lines(carry + decoder.write(chunk), false);
      if (records.full || stopped) await post(records);
    }
    lines(carry + (decoder.end() ?? ''), true);
  } finally {
    source.destroy();
  }
}

/** Any other file: csv-parse, as the ingest always did. */
async function splitCsv(input: WorkerInput, records: Records): Promise<void> {
  const parser = parse(csvOptions(input));

  let failure: unknown = null;
  let ended = false;
  let wake: (() => void) | null = null;
  const signal = () => { const w = wake; wake = null; w?.(); };
  parser.on('readable', signal);
  parser.on('end', () => { ended = true; signal(); });
  const source = createReadStream(input.file, { highWaterMark: 1 << 20 });
  const piped = input.encoding === 'sjis' ? pipeline(source, iconv.decodeStream(input.codec), parser) : pipeline(source, parser);
  piped.catch((err) => { failure = err; signal(); });
  for (;;) {
    let rec: string[] | null;
    let any = false;
    while ((rec = parser.read()) !== null) {
      any = true;
      records.add(rec, false);
      if (records.full || stopped) await post(records);
    }
    if (any) continue;
    if (failure) throw failure;
    if (ended) return;
    await new Promise<void>((resolve) => (wake = resolve));
  }
}

async function main(): Promise<void> {
  const input = workerData as WorkerInput;
  const records = new Records(input);
  try {
    if (!input.quoted && input.lineEnding !== 'mixed') await splitPlain(input, records);
    else await splitCsv(input, records);
    const counts = records.finish();
    await post(records);
    parentPort!.postMessage({ type: 'end', counts } satisfies WorkerMessage);
  } catch (err) {
    if (err instanceof Stopped) return;
    // Nothing of a failed ingest is kept (the main thread rolls back and discards the rejects): no last batch.
    let message: WorkerMessage;
    if (err instanceof WorkerInputError) message = { type: 'error', input: true, message: err.message, code: null };
    // csv-parse/sync has a CsvError class of its own: tell them by their codes.
    else if (err instanceof CsvError || (err instanceof Error && /^CSV_/.test(String((err as CsvError).code)))) {
      message = { type: 'error', input: true, message: csvErrorMessage(err as CsvError, input.file, records.line, input.maxRecordSize), code: (err as CsvError).code };
    } else {
      const e = err as NodeJS.ErrnoException;
      message = { type: 'error', input: false, message: e?.message ?? String(err), code: typeof e?.code === 'string' ? e.code : null };
    }
    parentPort!.postMessage(message);
  }
}

/** Runs the thread's work; called by ingest/ingest-worker.mjs, which loads this file. */
export async function run(): Promise<void> {
  await main();
  parentPort!.close();
}
