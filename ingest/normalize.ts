// Turns one input field into the domain we survey, or a reason it cannot be one. Pure: no DNS, no I/O.
//
// What is accepted: a host name (RFC 1123 §2.1 letters-digits-hyphen labels), an e-mail address (we take the
// domain after the last "@", RFC 5321 §4.1.2), a URL (we take its host, as written: `https://www.example.jp/`
// gives `www.example.jp`; we do not guess that the mail domain is `example.jp`), and internationalized names,
// converted to A-labels with WHATWG/UTS #46 processing (`url.domainToASCII`), so `日本語.jp` is stored as
// `xn--wgv71a119e.jp` and full-width `ＥＸＡＭＰＬＥ．ＪＰ` as `example.jp`.
import { domainToASCII, domainToUnicode } from 'node:url';
import { isIPv4, isIPv6 } from 'node:net';

/** Why a field is not a domain. One code per rejection; the rejects CSV and the summary use these words. */
export type RejectReason =
  | 'empty' // nothing left after trimming (or an e-mail address / URL without a host)
  | 'multiline' // the field spans several lines: a quoted field, usually an unbalanced quote
  | 'ip_literal' // 192.0.2.1, 2001:db8::1, [192.0.2.1], user@[192.0.2.1]: we survey domains, not addresses
  | 'invalid_character' // anything outside letters, digits, hyphen and dot (after IDN conversion)
  | 'invalid_idn' // a non-ASCII name UTS #46 refuses, or an xn-- label that is not valid Punycode
  | 'empty_label' // "example..jp", ".example.jp"
  | 'label_too_long' // RFC 1035 §2.3.4: a label is at most 63 octets
  | 'name_too_long' // RFC 1035 §2.3.4 / RFC 2181 §11: at most 255 octets on the wire, 253 in text
  | 'hyphen' // RFC 952 / RFC 1123 §2.1: a label neither starts nor ends with a hyphen
  | 'single_label' // "localhost", "jp": not a registrable mail domain
  | 'numeric_tld' // RFC 3696 §2: a top-level label is never all-numeric
  | 'invalid_selector'; // the `selectors` column names something that is no DKIM selector (RFC 6376 §3.1)

export const REJECT_REASONS: readonly RejectReason[] = [
  'empty', 'multiline', 'ip_literal', 'invalid_character', 'invalid_idn', 'empty_label',
  'label_too_long', 'name_too_long', 'hyphen', 'single_label', 'numeric_tld', 'invalid_selector',
];

export type Normalized =
  | { ok: true; domain: string }
  | { ok: false; reason: RejectReason; detail: string };

const LDH_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/;
const NON_ASCII = /[^\x00-\x7f]/;
const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;
// Zero-width characters and BOMs that spreadsheets leave at the edges of cells.
const EDGE_JUNK = /^[\s\u200b-\u200d\u2060\ufeff]+|[\s\u200b-\u200d\u2060\ufeff]+$/g;

function reject(reason: RejectReason, detail: string): Normalized {
  return { ok: false, reason, detail };
}

/** The host part of what the user wrote: the domain of an e-mail address, the host of a URL. */
function extractHost(s: string): { host: string } | Normalized {
  // "Name <info@example.jp>" (RFC 5322 §3.4 name-addr)
  const lt = s.lastIndexOf('<');
  if (lt >= 0 && s.endsWith('>')) s = s.slice(lt + 1, -1).trim();
  if (/^mailto:/i.test(s)) s = s.slice(7).split('?')[0];

  if (SCHEME.test(s)) {
    // URL: authority is between "//" and the first "/", "?" or "#" (RFC 3986 §3.2).
    let authority = s.replace(SCHEME, '').split(/[/?#]/)[0];
    authority = authority.slice(authority.lastIndexOf('@') + 1);
    if (authority.startsWith('[')) return reject('ip_literal', 'URL host is an IP literal');
    return { host: authority.replace(/:\d*$/, '') };
  }
  const at = s.lastIndexOf('@');
  if (at >= 0) {
    const host = s.slice(at + 1).trim();
    // RFC 5321 §4.1.3 address literal: user@[192.0.2.1]
    if (host.startsWith('[')) return reject('ip_literal', 'e-mail address with an address literal');
    if (host === '') return reject('empty', 'e-mail address without a domain');
    return { host };
  }
  if (s.startsWith('[')) return reject('ip_literal', 'bracketed IP literal');
  if (s.includes(':') && isIPv6(s)) return reject('ip_literal', 'IPv6 address');
  // A scheme-less URL ("www.example.jp/about") or host:port: the same host rule as for URLs.
  if (!/\s/.test(s) && /^[^/?#:]+(?::\d+)?(?:[/?#].*)?$/.test(s)) {
    return { host: s.split(/[/?#]/)[0].replace(/:\d+$/, '') };
  }
  return { host: s };
}

/** The A-label form of a non-ASCII name, or why there is none. */
function toAscii(host: string): { host: string } | Normalized {
  const a = domainToASCII(host);
  if (a === '') return reject('invalid_idn', 'not a valid internationalized domain name (UTS #46)');
  return { host: a };
}

/** True when an "xn--" label is real Punycode that decodes to a non-ASCII U-label and back (RFC 5891 §5.4). */
function validALabel(label: string): boolean {
  const u = domainToUnicode(label);
  return u !== '' && u !== label && NON_ASCII.test(u) && domainToASCII(u) === label;
}

/** True for the characters trimmed from the edges of a field: white space, zero-width characters, BOM. */
function isEdgeJunk(c: number): boolean {
  return c <= 0x20 || c === 0xa0 || c === 0x3000 || (c >= 0x2000 && c <= 0x200d) || c === 0x2060 || c === 0xfeff ||
    c === 0x1680 || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x85;
}

export function normalizeDomain(raw: string): Normalized {
  let s = raw;
  // Cheap test first: the regex replace costs more than the rest of the fast path.
  if (s.length === 0 || isEdgeJunk(s.charCodeAt(0)) || isEdgeJunk(s.charCodeAt(s.length - 1))) s = s.replace(EDGE_JUNK, '');
  if (s === '') return reject('empty', 'empty field');
  if (/[\r\n]/.test(s)) return reject('multiline', 'the field contains a line break');

  // Fast path: a plain lower-case host name, the overwhelmingly common case in large lists.
  if (LDH_NAME.test(s) && s.length <= 253 && !s.includes('xn--')) {
    const last = s.slice(s.lastIndexOf('.') + 1);
    if (!/^\d+$/.test(last)) return { ok: true, domain: s };
  }

  const ex = extractHost(s);
  if ('ok' in ex) return ex;
  s = ex.host;
  if (s === '') return reject('empty', 'no host name');

  if (NON_ASCII.test(s)) {
    const a = toAscii(s);
    if ('ok' in a) return a;
    s = a.host;
  }
  s = s.toLowerCase();
  if (s.endsWith('.')) s = s.slice(0, -1); // the root label: "example.jp." is "example.jp"
  if (s === '') return reject('empty', 'only a dot');
  if (isIPv4(s)) return reject('ip_literal', 'IPv4 address');
  if (s.includes(':') && isIPv6(s)) return reject('ip_literal', 'IPv6 address');

  const bad = /[^a-z0-9.-]/.exec(s);
  if (bad) return reject('invalid_character', `character ${JSON.stringify(bad[0])} at position ${bad.index + 1}`);

  const labels = s.split('.');
  const emptyAt = labels.indexOf('');
  if (emptyAt >= 0) return reject('empty_label', `label ${emptyAt + 1} is empty`);
  for (const [i, l] of labels.entries()) {
    if (l.length > 63) return reject('label_too_long', `label ${i + 1} is ${l.length} octets (max 63)`);
  }
  if (s.length > 253) return reject('name_too_long', `${s.length} octets (max 253)`);
  for (const [i, l] of labels.entries()) {
    if (l.startsWith('-') || l.endsWith('-')) {
      return reject('hyphen', `label ${i + 1} "${l}" starts or ends with a hyphen`);
    }
    if (l.startsWith('xn--') && !validALabel(l)) return reject('invalid_idn', `"${l}" is not valid Punycode`);
  }
  if (labels.every((l) => /^\d+$/.test(l))) return reject('ip_literal', 'all-numeric name (an IP address?)');
  if (labels.length < 2) return reject('single_label', 'a single label is not a mail domain');
  if (/^\d+$/.test(labels[labels.length - 1])) return reject('numeric_tld', 'the last label is all digits');
  return { ok: true, domain: s };
}

/** Tags of a cell: split on ";" or "|", trimmed, empty ones dropped, first occurrence kept. */
export function splitTags(cell: string | undefined): string[] {
  if (!cell) return [];
  const out: string[] = [];
  for (const t of cell.split(/[;|]/)) {
    const v = t.trim();
    if (v && !out.includes(v)) out.push(v);
  }
  return out;
}

/**
 * DKIM selectors of a cell (the `selectors` column): separated by spaces, commas or semicolons, each an RFC 6376
 * §3.1 selector; `bad` is the first entry that is none (the line goes to the rejects file, reason
 * `invalid_selector`, as a bad domain does).
 */
export { parseSelectorList as splitSelectors } from '../lib/checks/dkim/dkim.ts';
