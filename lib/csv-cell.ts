// The one CSV cell writer of the project (reports' CSVs and ingest's rejects file): RFC 4180 quoting plus the
// OWASP "CSV Injection" rules, since these files are opened in Excel, where a cell starting with = + - @ (or a
// tab or CR before one) is a formula that can run commands (DDE) or leak data (HYPERLINK).
import { escapeControls } from './clean-text.ts';

// The characters a spreadsheet takes as the start of a formula, with their full-width forms (U+FF1D ＝, U+FF0B
// ＋, U+FF0D －, U+FF20 ＠), which Japanese Excel and LibreOffice normalise to the ASCII ones.
const FORMULA_START = /^[=+\-@\uff1d\uff0b\uff0d\uff20]/;
// Leading characters a spreadsheet skips or treats as the start of a formula too (OWASP: tab, CR; also NUL,
// LF, space and the full-width space U+3000 before a formula character).
const LEADING_JUNK = /^[\u0000\t\r\n \u3000]+/;

/**
 * One CSV field. Numbers are written as numbers; null/undefined as empty; dates as ISO 8601; objects as JSON.
 * Text is neutralised: control characters other than line breaks are escaped (escapeControls), a value that a
 * spreadsheet would read as a formula is prefixed with `'`, and the field is quoted when it holds a comma,
 * quote or line break (RFC 4180 §2.6–2.7).
 */
export function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '';
  if (typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  let s = v instanceof Date ? v.toISOString() : typeof v === 'object' ? JSON.stringify(v) : String(v);
  const stripped = s.replace(LEADING_JUNK, '');
  const dangerous = FORMULA_START.test(stripped) || /^[\u0000\t\r]/.test(s);
  // Line breaks inside a quoted field are data (RFC 4180 §2.6); every other control character is escaped.
  s = s.split(/(\r\n|\n)/).map((part, i) => (i % 2 === 1 ? part : escapeControls(part))).join('');
  if (dangerous) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One CSV record: cells joined with commas, ended with CRLF. */
export function csvRow(cells: unknown[]): string {
  return `${cells.map(csvCell).join(',')}\r\n`;
}

/** A whole CSV file as the project writes them: UTF-8 with a byte-order mark (Excel) and CRLF line ends (RFC 4180). */
export function csvFile(header: string[], rows: unknown[][]): string {
  return '\uFEFF' + [header, ...rows].map(csvRow).join('');
}
