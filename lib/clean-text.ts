// Strings that came from the network (SMTP replies, PTR names, TXT records, header fields, a sender's HELO)
// may carry CR/LF, terminal escape sequences (ESC [ …), NUL or bidirectional overrides. Before any such string
// is shown (terminal, result mail, HTML, CSV) its control characters are written out as visible escapes, so
// it can neither start a new line in a mail or log, nor recolour or move a terminal's cursor, nor reorder text.

// C0 controls, DEL, C1 controls (U+0080–U+009F: 8-bit CSI U+009B and friends), and the Unicode bidi controls
// (U+061C, U+200E/F, U+202A–U+202E, U+2066–U+2069) and line/paragraph separators (U+2028/9).
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function escape(ch: string): string {
  const c = ch.codePointAt(0)!;
  return c <= 0xff ? `\\x${c.toString(16).padStart(2, '0')}` : `\\u${c.toString(16).padStart(4, '0')}`;
}

/** Every control character of `s` as a visible `\xNN` / `\uNNNN` escape; other text unchanged. */
export function escapeControls(s: string): string {
  return s.replace(CONTROL, escape);
}

/** The same, keeping line breaks and tabs (multi-line text we wrote ourselves, with network parts inside). */
export function escapeControlsKeepLines(s: string): string {
  return s.replace(CONTROL, (ch) => (ch === '\n' || ch === '\t' ? ch : ch === '\r' ? '' : escape(ch)));
}
