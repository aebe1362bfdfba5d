// Looks at a file before we parse it: is it there, is it text, and which encoding is it in. Files from
// Japanese Excel are Shift_JIS (in fact Windows code page 932, which adds NEC/IBM characters such as ㈱ and ①),
// everything else is UTF-8, with or without the BOM Excel writes for "CSV UTF-8".
import { open, stat } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { isAscii, isUtf8 } from 'node:buffer';
import iconv from 'iconv-lite';
import { InputError } from '../lib/errors.ts';

export type Encoding = 'utf8' | 'sjis';
export type EncodingOption = Encoding | 'auto';

/** What `--encoding` accepts, by the names people use for these encodings. */
export function parseEncoding(raw: string): EncodingOption {
  const v = raw.trim().toLowerCase().replace(/[_\s]/g, '-');
  if (v === 'auto') return 'auto';
  if (['utf8', 'utf-8', 'utf8bom', 'utf-8-bom'].includes(v)) return 'utf8';
  if (['sjis', 'shift-jis', 'shiftjis', 'cp932', 'windows-31j', 'ms932', 'x-sjis'].includes(v)) return 'sjis';
  throw new InputError(`--encoding must be utf8, sjis or auto, got "${raw}"`);
}

/** The iconv-lite codec we decode "sjis" with: CP932, the superset Excel actually writes. */
export const SJIS_CODEC = 'cp932';

export interface Sniffed {
  encoding: Encoding;
  /** True when `auto` chose the encoding (the summary says so). */
  detected: boolean;
  size: number;
  /** 'mixed' also when not known (the scan stopped at an invalid byte). */
  lineEnding: LineEnding;
  /**
   * False only when the scan read the whole file and found no double quote (byte 0x22, which is never part of
   * a multi-byte character in UTF-8 or CP932): then every line is one record and fields split at commas.
   */
  quoted: boolean;
  /** Set when the file is not what was asked for but we can still read it, e.g. valid UTF-8 read as sjis. */
  warning?: string;
}

/** Index of the first byte that is not part of a well-formed UTF-8 sequence (RFC 3629 §4), or -1. */
export function firstInvalidUtf8(buf: Uint8Array, end = buf.length): number {
  let i = 0;
  while (i < end) {
    const b = buf[i];
    if (b < 0x80) { i++; continue; }
    let n: number; let min: number;
    if (b >= 0xc2 && b <= 0xdf) { n = 1; min = 0x80; } else if (b >= 0xe0 && b <= 0xef) { n = 2; min = 0x800; } else if (b >= 0xf0 && b <= 0xf4) { n = 3; min = 0x10000; } else return i;
    if (i + n >= end) return i; // truncated sequence
    let cp = b & (0x3f >> n);
    for (let k = 1; k <= n; k++) {
      const c = buf[i + k];
      if ((c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n + 1;
  }
  return -1;
}

/** Number of the line (1-based) holding byte `offset` of the file. */
async function lineAtByte(file: string, offset: number): Promise<number> {
  let line = 1;
  if (offset === 0) return line;
  for await (const chunk of createReadStream(file, { end: offset - 1, highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) line++;
  }
  return line;
}

const MAGIC: [number[], string][] = [
  [[0x50, 0x4b, 0x03, 0x04], 'a ZIP archive (an .xlsx workbook?); save it as CSV'],
  [[0xd0, 0xcf, 0x11, 0xe0], 'an old Excel .xls workbook; save it as CSV'],
  [[0x1f, 0x8b], 'gzip-compressed; decompress it first'],
  [[0x25, 0x50, 0x44, 0x46], 'a PDF'],
];

/** Refuses what is not a text file, from its first KB. */
export function checkText(head: Buffer, file: string): void {
  for (const [magic, what] of MAGIC) {
    if (head.length >= magic.length && magic.every((b, i) => head[i] === b)) {
      throw new InputError(`${file} is not a CSV file: it looks like ${what}`);
    }
  }
  if ((head[0] === 0xff && head[1] === 0xfe) || (head[0] === 0xfe && head[1] === 0xff)) {
    throw new InputError(`${file} is UTF-16 (Excel "Unicode text"); save it as "CSV UTF-8" or pass a UTF-8/Shift_JIS file`);
  }
  const nul = head.indexOf(0);
  if (nul !== -1) throw new InputError(`${file} looks binary: NUL byte at offset ${nul}`);
  let control = 0;
  for (const b of head) if ((b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d && b !== 0x0c && b !== 0x1a) || b === 0x7f) control++;
  if (head.length > 0 && control / head.length > 0.05) {
    throw new InputError(`${file} looks binary: ${control} control characters in its first ${head.length} bytes`);
  }
}

/** The line ends of a file: csv-parse is faster told one than asked to accept any of three. */
export type LineEnding = '\n' | '\r\n' | '\r' | 'mixed';

interface Utf8Scan { valid: boolean; invalidAt: number; nonAscii: boolean; lineEnding: LineEnding; quoted: boolean }

function count(buf: Buffer, byte: number): number {
  let n = 0;
  for (let i = buf.indexOf(byte); i !== -1; i = buf.indexOf(byte, i + 1)) n++;
  return n;
}

async function scanUtf8(file: string): Promise<Utf8Scan> {
  let offset = 0;
  let carry: Buffer = Buffer.alloc(0);
  let nonAscii = false;
  let lf = 0; let cr = 0; let crlf = 0; let lastWasCr = false; let quoted = false;
  const lineEnding = (): LineEnding => (cr === 0 ? '\n' : lf === 0 ? '\r' : cr === crlf && lf === crlf ? '\r\n' : 'mixed');
  for await (const raw of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    const nCr = count(raw, 13);
    lf += count(raw, 10);
    cr += nCr;
    if (nCr > 0 || lastWasCr) {
      if (lastWasCr && raw[0] === 10) crlf++;
      for (let i = raw.indexOf(13); i !== -1; i = raw.indexOf(13, i + 1)) if (raw[i + 1] === 10) crlf++;
    }
    lastWasCr = raw[raw.length - 1] === 13;
    if (!quoted && raw.includes(34)) quoted = true;
    const chunk = carry.length ? Buffer.concat([carry, raw]) : raw;
    // Keep an incomplete trailing sequence for the next chunk.
    let cut = chunk.length;
    for (let k = 1; k <= 3 && k <= chunk.length; k++) {
      const b = chunk[chunk.length - k];
      if ((b & 0xc0) === 0x80) continue; // continuation byte: look further back
      if (b >= 0xc0) {
        const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
        if (k < need) cut = chunk.length - k;
      }
      break;
    }
    const body = chunk.subarray(0, cut);
    if (!nonAscii && !isAscii(body)) nonAscii = true;
    const bad = !nonAscii || isUtf8(body) ? -1 : firstInvalidUtf8(body);
    if (bad !== -1) return { valid: false, invalidAt: offset - carry.length + bad, nonAscii, lineEnding: 'mixed', quoted: true };
    offset += raw.length;
    carry = chunk.subarray(cut);
  }
  if (carry.length) return { valid: false, invalidAt: offset - carry.length, nonAscii, lineEnding: 'mixed', quoted: true };
  return { valid: true, invalidAt: -1, nonAscii, lineEnding: lineEnding(), quoted };
}

/** Line (1-based) of the first character CP932 cannot decode, or -1 when the whole file decodes cleanly. */
async function firstUndecodableSjisLine(file: string): Promise<number> {
  const decoder = iconv.getDecoder(SJIS_CODEC);
  let line = 1;
  const check = (s: string): number => {
    const at = s.indexOf('\ufffd');
    const upto = at === -1 ? s : s.slice(0, at);
    for (let i = upto.indexOf('\n'); i !== -1; i = upto.indexOf('\n', i + 1)) line++;
    return at === -1 ? -1 : line;
  };
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    const r = check(decoder.write(chunk));
    if (r !== -1) return r;
  }
  return check(decoder.end() ?? '');
}

/** Checks that `file` exists, is not empty and looks like text, from its first KB. Throws InputError. */
export async function precheckFile(file: string): Promise<number> {
  let size: number;
  try {
    const st = await stat(file);
    if (st.isDirectory()) throw new InputError(`${file} is a directory, not a CSV file`);
    size = st.size;
  } catch (err) {
    if (err instanceof InputError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new InputError(`${file}: no such file`);
    if (code === 'EACCES') throw new InputError(`${file}: permission denied`);
    throw new InputError(`${file}: cannot read (${(err as Error).message})`);
  }
  if (size === 0) throw new InputError(`${file} is empty (0 bytes)`);
  const fh = await open(file, 'r');
  const head = Buffer.alloc(Math.min(1024, size));
  try {
    await fh.read(head, 0, head.length, 0);
  } catch (err) {
    throw new InputError(`${file}: cannot read (${(err as Error).message})`);
  } finally {
    await fh.close();
  }
  checkText(head, file);
  return size;
}

/** Checks that `file` is a readable, non-empty text file and settles its encoding. Throws InputError. */
export async function sniffFile(file: string, requested: EncodingOption): Promise<Sniffed> {
  const size = await precheckFile(file);
  const utf8 = await scanUtf8(file);
  if (requested === 'sjis') {
    return {
      encoding: 'sjis', detected: false, size, lineEnding: utf8.lineEnding, quoted: utf8.quoted,
      warning: utf8.valid && utf8.nonAscii ? `${file} is valid UTF-8 but was read as Shift_JIS (--encoding sjis); check the names` : undefined,
    };
  }
  if (utf8.valid) return { encoding: 'utf8', detected: requested === 'auto', size, lineEnding: utf8.lineEnding, quoted: utf8.quoted };
  const line = await lineAtByte(file, utf8.invalidAt);
  if (requested === 'utf8') {
    throw new InputError(`${file} line ${line}: not valid UTF-8 (byte ${utf8.invalidAt}); a Shift_JIS file needs --encoding sjis`);
  }
  const sjisBad = await firstUndecodableSjisLine(file);
  if (sjisBad === -1) return { encoding: 'sjis', detected: true, size, lineEnding: 'mixed', quoted: true };
  throw new InputError(
    `${file}: cannot tell its encoding (not UTF-8 at line ${line}, not Shift_JIS at line ${sjisBad}); pass --encoding utf8 or --encoding sjis`,
  );
}
