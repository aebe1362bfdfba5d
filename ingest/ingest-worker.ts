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
// Bytes, not strings, for the common line (issue 18): in a UTF-8 file split here, a line whose domain is already
// a plain lower-case host name and whose other cells need no escaping is read straight from the file's bytes
// (Records.addBytes): no string, no array, no per-row garbage; its COPY row is copied byte for byte. Any other
// line is decoded and takes the string path, so every fate, row and rejects row is what that path gives (the
// byte path only takes lines it can prove the string path would accept with the same row; the CSV-path test
// in test/ingest-file.test.ts compares the two on hostile lines).
//
// Protocol: the main thread starts the worker early and sends { type: 'input', input: WorkerInput } when it
// knows the file's encoding and survey (or { type: 'stop' } instead). The worker posts WorkerMessage: 'batch' messages (at most MAX_IN_FLIGHT
// ahead of the main thread's { type: 'credit' } replies), then one 'end' or one 'error'. Batches before an
// error are posted first, so everything before the failing line is accounted for.
import { parentPort } from 'node:worker_threads';
import { createReadStream } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { isUtf8 } from 'node:buffer';
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
  /** Physical lines of the file, header included. */
  lines: number;
  /** Data records: every record after the header that is not blank. */
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
const BATCH_BYTES = 1 << 20; // COPY text per message (~13,000 rows of a typical list)
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

/** Most fields a line may have for the byte path (more go through the string path). */
const MAX_FAST_FIELDS = 64;
/** Bytes that COPY text (\\ \t \n \r NUL) or an array literal (" \\) would escape: such a line takes the string path. */
const SPECIAL = new Uint8Array(256);
for (const b of [0x00, 0x09, 0x0a, 0x0d, 0x22, 0x5c]) SPECIAL[b] = 1;
/** The code points below U+10000 that String.prototype.trim removes, taken from trim itself. */
const TRIMMED = new Uint8Array(0x10000);
for (let cp = 0; cp < 0x10000; cp++) if (String.fromCharCode(cp).trim() === '') TRIMMED[cp] = 1;
const NULL_TEXT = Buffer.from('\\N', 'latin1');
const EMPTY_ARRAY = Buffer.from('{}', 'latin1');

function put(o: Buffer, p: number, bytes: Buffer): number {
  for (let i = 0; i < bytes.length; i++) o[p++] = bytes[i];
  return p;
}

function isAlnum(b: number): boolean {
  return (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39);
}

/**
 * True when buf[s, e) is a name normalizeDomain returns unchanged on its fast path: lower-case LDH labels of
 * 1-63 octets that start and end with a letter or digit (RFC 1123 §2.1), at least two of them, at most 253
 * octets, no "xn--" anywhere, a last label not all digits. Anything else (false) goes through normalizeDomain.
 */
function plainHostName(buf: Buffer, s: number, e: number): boolean {
  if (e - s < 3 || e - s > 253) return false;
  let label = s;
  let labels = 0;
  let digitsOnly = true;
  for (let i = s; i < e; i++) {
    const b = buf[i];
    if (b === 0x2e) {
      if (i - label < 1 || i - label > 63 || !isAlnum(buf[label]) || !isAlnum(buf[i - 1])) return false;
      labels++;
      label = i + 1;
      digitsOnly = true;
    } else if (b >= 0x61 && b <= 0x7a) digitsOnly = false;
    else if (b === 0x2d) {
      digitsOnly = false;
      if (i - s >= 3 && buf[i - 1] === 0x2d && buf[i - 2] === 0x6e && buf[i - 3] === 0x78) return false; // "xn--"
    } else if (b < 0x30 || b > 0x39) return false;
  }
  if (e - label < 1 || e - label > 63 || !isAlnum(buf[label]) || !isAlnum(buf[e - 1])) return false;
  return labels >= 1 && !digitsOnly;
}

/** The code point of the (valid UTF-8) character starting at buf[i], or -1 past U+FFFF. */
function codePointAt(buf: Buffer, i: number): number {
  const b = buf[i];
  if (b < 0x80) return b;
  if (b < 0xe0) return ((b & 0x1f) << 6) | (buf[i + 1] & 0x3f);
  if (b < 0xf0) return ((b & 0x0f) << 12) | ((buf[i + 1] & 0x3f) << 6) | (buf[i + 2] & 0x3f);
  return -1;
}

/** True when the character at the start of [s, e) is one trim() would remove (or may: past U+FFFF). */
function trimmedAtStart(buf: Buffer, s: number): boolean {
  const cp = codePointAt(buf, s);
  return cp === -1 || TRIMMED[cp] === 1;
}

function trimmedAtEnd(buf: Buffer, e: number): boolean {
  let k = e - 1;
  while ((buf[k] & 0xc0) === 0x80) k--; // back to the first byte of the last character
  const cp = codePointAt(buf, k);
  return cp === -1 || TRIMMED[cp] === 1;
}

/**
 * Narrows field i to what trim() leaves, when that is found on the bytes (ASCII white space at the edges);
 * false, changing nothing, when a character trim() removes is not ASCII.
 */
function trimBytes(buf: Buffer, starts: Int32Array, ends: Int32Array, i: number): boolean {
  let s = starts[i];
  let e = ends[i];
  while (s < e && buf[s] < 0x80 && TRIMMED[buf[s]] === 1) s++;
  while (e > s && buf[e - 1] < 0x80 && TRIMMED[buf[e - 1]] === 1) e--;
  if (s < e && (trimmedAtStart(buf, s) || trimmedAtEnd(buf, e))) return false;
  starts[i] = s;
  ends[i] = e;
  return true;
}

const tagStarts = new Int32Array(MAX_FAST_FIELDS);
const tagEnds = new Int32Array(MAX_FAST_FIELDS);

/**
 * Splits the tags cell buf[s, e) as splitTags does (";" or "|", each trimmed) into tagStarts/tagEnds; returns
 * the number of parts, or -1 when the bytes cannot tell (a trimmed character that is not ASCII, too many parts).
 */
function tagParts(buf: Buffer, s: number, e: number): number {
  let n = 0;
  let from = s;
  for (let i = s; i <= e; i++) {
    if (i < e && buf[i] !== 0x3b && buf[i] !== 0x7c) continue;
    if (n === MAX_FAST_FIELDS) return -1;
    tagStarts[n] = from;
    tagEnds[n] = i;
    if (!trimBytes(buf, tagStarts, tagEnds, n)) return -1;
    n++;
    from = i + 1;
  }
  return n;
}

function tagsFast(buf: Buffer, s: number, e: number): boolean {
  return s === e || tagParts(buf, s, e) !== -1;
}

function sameBytes(buf: Buffer, a: number, b: number): boolean {
  const n = tagEnds[a] - tagStarts[a];
  if (tagEnds[b] - tagStarts[b] !== n) return false;
  for (let i = 0, x = tagStarts[a], y = tagStarts[b]; i < n; i++) if (buf[x + i] !== buf[y + i]) return false;
  return true;
}

/** The COPY text of arrayLiteral(splitTags(cell)), for a cell tagsFast accepted (no byte needs escaping). */
function tagsBytes(buf: Buffer, s: number, e: number, o: Buffer, p: number): number {
  const n = s === e ? 0 : tagParts(buf, s, e);
  o[p++] = 0x7b;
  let kept = 0;
  for (let t = 0; t < n; t++) {
    if (tagEnds[t] === tagStarts[t]) continue; // empty after trimming
    let repeat = false;
    for (let u = 0; u < t && !repeat; u++) if (tagEnds[u] !== tagStarts[u] && sameBytes(buf, u, t)) repeat = true;
    if (repeat) continue; // first occurrence kept
    if (kept++) o[p++] = 0x2c;
    o[p++] = 0x22;
    for (let i = tagStarts[t]; i < tagEnds[t]; i++) o[p++] = buf[i];
    o[p++] = 0x22;
  }
  o[p++] = 0x7d;
  return p;
}

/** The COPY text of copyText(cell(rec, i)) for a field trimBytes narrowed. */
function cellBytes(buf: Buffer, starts: Int32Array, ends: Int32Array, i: number | undefined, nf: number, o: Buffer, p: number): number {
  if (i === undefined || i >= nf || starts[i] === ends[i]) return put(o, p, NULL_TEXT);
  for (let k = starts[i]; k < ends[i]; k++) o[p++] = buf[k];
  return p;
}

/** COPY text being written for the next batch, in an ArrayBuffer of its own (it is transferred, not copied). */
class CopyOut {
  buf = Buffer.allocUnsafeSlow(2 * BATCH_BYTES);
  pos = 0;

  /** Room for n more bytes. */
  reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafeSlow(Math.max(2 * this.buf.length, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  text(row: string): void {
    this.reserve(3 * row.length); // UTF-8: at most 3 bytes per UTF-16 unit
    this.pos += this.buf.write(row, this.pos, 'utf8');
  }

  take(): Buffer | null {
    if (this.pos === 0) return null;
    const bytes = this.buf.subarray(0, this.pos);
    this.buf = Buffer.allocUnsafeSlow(2 * BATCH_BYTES);
    this.pos = 0;
    return bytes;
  }
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
  private out = new CopyOut();
  private rejects: string[] = [];
  private readonly prefix: string;
  private readonly prefixBytes: Buffer;
  /** Field boundaries of the line addBytes looks at: field i is [starts[i], ends[i]). */
  private readonly starts = new Int32Array(MAX_FAST_FIELDS);
  private readonly ends = new Int32Array(MAX_FAST_FIELDS);

  constructor(private readonly input: WorkerInput) {
    this.prefix = `${input.surveyId}\t`;
    this.prefixBytes = Buffer.from(this.prefix, 'latin1');
  }

  get full(): boolean {
    return this.out.pos >= BATCH_BYTES || this.rejects.length >= BATCH_REJECTS;
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
    this.out.text(
      `${this.prefix}${n.domain}\t${copyText(cell(rec, layout.organization))}\t${copyText(cell(rec, layout.industry))}\t` +
        `${copyText(arrayLiteral(layout.tags === undefined ? [] : splitTags(rec[layout.tags])))}\t${copyText(input)}\t` +
        `${copyText(arrayLiteral(sel?.selectors ?? []))}\n`,
    );
  }

  /**
   * The line buf[from, to) (valid UTF-8, no line end), when it can be taken without decoding it: returns false,
   * having changed nothing, when it cannot (then the caller decodes it and calls add). What it takes, it takes
   * exactly as add would: the same fate, the same COPY row, the same rejects row.
   */
  addBytes(buf: Buffer, from: number, to: number): boolean {
    const layout = this.layout;
    // The header, a DKIM selectors column (parsed by lib/checks/dkim) and over-long lines: the string path.
    if (layout === null || layout.selectors !== undefined || to - from > this.input.maxRecordSize) return false;
    const starts = this.starts;
    const ends = this.ends;
    let nf = 0;
    starts[0] = from;
    for (let i = from; i < to; i++) {
      const b = buf[i];
      if (b === 0x2c) {
        ends[nf++] = i;
        if (nf === MAX_FAST_FIELDS) return false;
        starts[nf] = i + 1;
      } else if (SPECIAL[b] === 1) return false; // a byte COPY text or an array literal escapes
    }
    ends[nf++] = to;
    // The first domain column holds a name the normaliser's fast path returns as it is (so it is not blank, it
    // is the domain cell, and input is NULL).
    const d = layout.domain[0];
    if (d >= nf || !plainHostName(buf, starts[d], ends[d])) return false;
    // Every other cell written must be one whose trim() is found on the bytes (white space at an edge that is
    // not ASCII sends the line to the string path).
    const org = layout.organization;
    const ind = layout.industry;
    const tags = layout.tags;
    if (org !== undefined && org < nf && !trimBytes(buf, starts, ends, org)) return false;
    if (ind !== undefined && ind < nf && !trimBytes(buf, starts, ends, ind)) return false;
    if (tags !== undefined && tags < nf && !tagsFast(buf, starts[tags], ends[tags])) return false;

    const start = this.line;
    this.line = start + 1;
    const c = this.counts;
    c.read++;
    const ds = starts[d];
    const de = ends[d];
    const first = this.seen.addBytes(buf, ds, de, start);
    if (first !== -1) {
      c.duplicates++;
      this.rejects.push(csvRow([start, 'duplicate', `same domain as line ${first}`, buf.toString('latin1', ds, de)]));
      return true;
    }
    c.accepted++;
    if (!this.input.copy) return true;
    const out = this.out;
    out.reserve(this.prefixBytes.length + 3 * (to - from) + 32);
    const o = out.buf;
    let p = out.pos;
    const pre = this.prefixBytes;
    for (let i = 0; i < pre.length; i++) o[p++] = pre[i];
    for (let i = ds; i < de; i++) o[p++] = buf[i];
    o[p++] = 0x09;
    p = cellBytes(buf, starts, ends, org, nf, o, p);
    o[p++] = 0x09;
    p = cellBytes(buf, starts, ends, ind, nf, o, p);
    o[p++] = 0x09;
    if (tags === undefined || tags >= nf) p = put(o, p, EMPTY_ARRAY);
    else p = tagsBytes(buf, starts[tags], ends[tags], o, p);
    o[p++] = 0x09;
    p = put(o, p, NULL_TEXT); // input: the name was written as it is stored
    o[p++] = 0x09;
    p = put(o, p, EMPTY_ARRAY); // dkim_selectors: no such column
    o[p++] = 0x0a;
    out.pos = p;
    return true;
  }

  /** The batch so far, as a message (the COPY bytes in their own ArrayBuffer, transferable). */
  take(): { message: WorkerMessage; transfer: ArrayBuffer[] } | null {
    if (this.out.pos === 0 && this.rejects.length === 0) return null;
    const bytes = this.out.take();
    const transfer: ArrayBuffer[] = bytes ? [bytes.buffer as ArrayBuffer] : [];
    const message: WorkerMessage = { type: 'batch', copy: bytes, rejects: this.rejects.join(''), rejectRows: this.rejects.length };
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
let given: WorkerInput | null = null;
parentPort!.on('message', (m: { type?: string; input?: WorkerInput }) => {
  if (m?.type === 'credit') credits++;
  else if (m?.type === 'stop') stopped = true;
  else if (m?.type === 'input' && m.input) given = m.input;
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

/** Lines of decoded text, a line per record: the string path of splitPlain. */
class TextLines {
  private readonly delimiter: string;
  private readonly decoder: { write(b: Buffer): string; end(): string | undefined };
  private readonly options: CsvOptions;
  private carry = '';
  /** Until the first text: a BOM there is dropped (csv-parse `bom: true`). */
  first = true;

  constructor(private readonly input: WorkerInput, private readonly records: Records) {
    this.delimiter = input.lineEnding;
    this.decoder = input.encoding === 'sjis' ? iconv.getDecoder(input.codec) : new StringDecoder('utf8');
    this.options = csvOptions(input);
  }

  write(chunk: Buffer): void {
    this.carry = this.lines(this.carry + this.decoder.write(chunk), false);
  }

  end(): void {
    this.lines(this.carry + (this.decoder.end() ?? ''), true);
  }

  private lines(text: string, final: boolean): string {
    if (this.first && text.length) {
      this.first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    const delimiter = this.delimiter;
    let at = 0;
    for (let nl = text.indexOf(delimiter); nl !== -1; nl = text.indexOf(delimiter, at)) {
      this.line(text.slice(at, nl));
      at = nl + delimiter.length;
    }
    const rest = text.slice(at);
    if (final && rest.length) {
      this.line(rest);
      return '';
    }
    return rest;
  }

  line(s: string): void {
    if (s.length <= this.input.maxRecordSize) {
      this.records.add(s.split(','), true);
      return;
    }
    // Too long for the fast split to judge: csv-parse, on this line alone, says what it would have said.
    for (const rec of parseSync(s, this.options) as string[][]) this.records.add(rec, true);
  }
}

/**
 * A file with no quotes and one kind of line end: a line is a record, a comma separates fields. A UTF-8 file
 * with LF or CRLF line ends is cut into lines on its bytes, and each line offered to Records.addBytes first;
 * the lines it does not take are decoded (the bytes of whole lines of valid UTF-8 decode exactly as the stream
 * decoder would) and go to TextLines.line. A chunk that is not valid UTF-8, or a CRLF file with a bare LF, is
 * left to TextLines from there on (from a line start, where the stream decoder has nothing pending).
 */
async function splitPlain(input: WorkerInput, records: Records): Promise<void> {
  const text = new TextLines(input, records);
  const crlf = input.lineEnding === '\r\n';
  let bytes = input.encoding === 'utf8' && (crlf || input.lineEnding === '\n');
  let carry: Buffer | null = null;
  let bomChecked = false;
  /** Takes the whole lines of buf (and the last one too when `final`); returns what is left for the next chunk. */
  const byteLines = (buf: Buffer, final: boolean): Buffer | null => {
    const end = final ? buf.length : buf.lastIndexOf(0x0a) + 1;
    if (end === 0) return buf;
    if (!isUtf8(buf.subarray(0, end))) {
      bytes = false;
      text.write(buf);
      return null;
    }
    let at = 0;
    while (at < end) {
      let nl = buf.indexOf(0x0a, at);
      if (nl === -1 || nl >= end) nl = end; // the last line of the file, without a line end
      let stop = nl;
      if (crlf && nl < end) {
        if (nl === at || buf[nl - 1] !== 0x0d) {
          bytes = false; // an LF alone: not a line end in this file; the string path splits on CRLF only
          text.write(buf.subarray(at));
          return null;
        }
        stop = nl - 1;
      }
      if (!records.addBytes(buf, at, stop)) text.line(buf.toString('utf8', at, stop));
      at = nl + 1;
    }
    return end < buf.length ? buf.subarray(end) : null;
  };
  const source = createReadStream(input.file, { highWaterMark: 1 << 20 });
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      if (!bytes) text.write(chunk);
      else {
        let buf: Buffer = carry ? Buffer.concat([carry, chunk]) : chunk;
        carry = null;
        if (!bomChecked) {
          if (buf.length < 3) {
            carry = buf;
            continue;
          }
          bomChecked = true;
          text.first = false;
          if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) buf = buf.subarray(3); // csv-parse `bom: true`
        }
        carry = byteLines(buf, false);
        if (carry) carry = Buffer.from(carry); // not a view keeping the whole chunk alive
      }
      if (records.full || stopped) await post(records);
    }
    if (bytes && carry) {
      if (!bomChecked) text.write(carry); // a file of fewer than 3 bytes
      else byteLines(carry, true);
    }
    if (!bytes || !bomChecked) text.end();
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
  while (given === null && !stopped) await new Promise<void>((resolve) => (wakeCredit = resolve));
  if (given === null) return; // stopped before it was given a file
  const input: WorkerInput = given;
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
