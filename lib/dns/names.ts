// Name handling shared by the resolver and the checks: what counts as a name we may query, and the reverse
// names of RFC 1035 §3.5 (in-addr.arpa), RFC 3596 §2.5 (ip6.arpa) and RFC 5782 §2.1/§2.4 (DNSBL).
import { domainToASCII } from 'node:url';
import net from 'node:net';

/**
 * A name we are willing to put on the wire: ≤ 253 octets, labels of 1–63 octets of letters, digits, hyphen
 * and underscore (underscore for `_dmarc`, `_domainkey`, … RFC 8552). Lower-cased, trailing dot removed.
 * Returns null for anything else, so garbage never reaches a resolver.
 */
export function normalizeQueryName(name: string): string | null {
  if (typeof name !== 'string') return null;
  let n = name.trim().toLowerCase();
  // RFC 8616 §4: an internationalised name is looked up as A-labels, whichever identity it came from (HELO,
  // MAIL FROM, header From, DKIM d=, a domain list).
  if (!/^[\x00-\x7f]*$/.test(n)) n = toALabels(n) ?? '';
  if (n.endsWith('.')) n = n.slice(0, -1);
  if (n.length === 0 || n.length > 253) return null;
  for (const label of n.split('.')) {
    if (label.length === 0 || label.length > 63) return null;
    if (!/^[a-z0-9_-]+$/.test(label)) return null;
  }
  return n;
}

/** A name with U-labels as A-labels (UTS #46 via WHATWG URL), or null when it cannot be converted. */
export function toALabels(name: string): string | null {
  const ascii = domainToASCII(name.trim());
  return ascii ? ascii.toLowerCase() : null;
}

/** `local@domain` with the domain as A-labels (RFC 8616 §4); the local part is left as it is. */
export function addressToALabels(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0 || /^[\x00-\x7f]*$/.test(address.slice(at + 1))) return address;
  const domain = toALabels(address.slice(at + 1));
  return domain ? `${address.slice(0, at + 1)}${domain}` : address;
}

/**
 * A mail domain as a user types it: a host name (RFC 1123 §2.1 LDH labels, at least two labels, not an IP
 * address), U-labels converted to A-labels. Returns the A-label form or null.
 */
export function normalizeDomain(input: string): string | null {
  if (typeof input !== 'string') return null;
  let raw = input.trim();
  if (raw.endsWith('.')) raw = raw.slice(0, -1);
  if (raw.length === 0 || raw.length > 253 || net.isIP(raw)) return null;
  if (/[\s/@:]/.test(raw)) return null;
  const ascii = /^[\x00-\x7f]*$/.test(raw) ? raw.toLowerCase() : domainToASCII(raw);
  if (!ascii) return null;
  const labels = ascii.split('.');
  if (labels.length < 2 || ascii.length > 253) return null;
  for (const label of labels) {
    if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(label)) return null;
  }
  // RFC 3696 §2: a top-level domain is never all-numeric.
  if (/^\d+$/.test(labels[labels.length - 1])) return null;
  return ascii;
}

/** Expands an IPv6 address to its 32 nibbles. */
function ipv6Nibbles(ip: string): string[] {
  let [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  // An embedded IPv4 tail (::ffff:192.0.2.1) becomes two groups.
  const toGroups = (s: string | undefined): string[] => {
    if (!s) return [];
    const parts = s.split(':');
    const last = parts[parts.length - 1];
    if (net.isIPv4(last)) {
      const o = last.split('.').map(Number);
      parts.splice(parts.length - 1, 1, ((o[0] << 8) | o[1]).toString(16), ((o[2] << 8) | o[3]).toString(16));
    }
    return parts;
  };
  const h = toGroups(head);
  const t = toGroups(tail);
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.flatMap((g) => g.padStart(4, '0').split(''));
}

/** The labels that precede the zone for an IP: reversed octets (IPv4) or reversed nibbles (IPv6). */
export function reversedIpLabels(ip: string): string | null {
  if (net.isIPv4(ip)) return ip.split('.').reverse().join('.');
  if (net.isIPv6(ip)) return ipv6Nibbles(ip.toLowerCase()).reverse().join('.');
  return null;
}

/** The PTR owner name of an IP (RFC 1035 §3.5, RFC 3596 §2.5). */
export function ptrName(ip: string): string | null {
  const rev = reversedIpLabels(ip);
  if (!rev) return null;
  return `${rev}.${net.isIPv4(ip) ? 'in-addr.arpa' : 'ip6.arpa'}`;
}

/** Canonical text of an IP, so `::1` and `0:0::1` compare equal. */
export function canonicalIp(ip: string): string {
  if (net.isIPv6(ip)) {
    return ipv6Nibbles(ip.toLowerCase()).join('').replace(/(.{4})(?!$)/g, '$1:');
  }
  return ip;
}
