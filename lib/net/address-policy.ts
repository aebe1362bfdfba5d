// Which addresses a probe may connect to. A survey follows MX records that anyone can publish, so a hostile
// domain could point us at our own network (SSRF): outside lab mode every special-purpose address of the IANA
// registries (RFC 6890 and its updates) is refused, checked on the resolved address right before connecting.
// In lab mode the opposite holds: only loopback, where the lab lives, is allowed.
import { BlockList, isIP } from 'node:net';

export type AddressVerdict =
  | { allowed: true }
  | { allowed: false; reason: 'forbidden_address'; range: string; purpose: string };

interface Range {
  cidr: string;
  purpose: string;
  list: BlockList;
}

function range(cidr: string, purpose: string): Range {
  const [net, bits] = cidr.split('/');
  const list = new BlockList();
  list.addSubnet(net, Number(bits), net.includes(':') ? 'ipv6' : 'ipv4');
  return { cidr, purpose, list };
}

// IANA IPv4 Special-Purpose Address Registry (RFC 6890 §2.2.2), plus multicast and the class E block.
// Ranges the registry marks globally reachable (AS112, AMT, 192.0.0.9/10) carry no mail servers either,
// so the whole 192.0.0.0/24 is refused.
const V4: Range[] = [
  range('0.0.0.0/8', 'this network (RFC 791)'),
  range('10.0.0.0/8', 'private (RFC 1918)'),
  range('100.64.0.0/10', 'shared address space / CGNAT (RFC 6598)'),
  range('127.0.0.0/8', 'loopback (RFC 1122)'),
  range('169.254.0.0/16', 'link-local (RFC 3927)'),
  range('172.16.0.0/12', 'private (RFC 1918)'),
  range('192.0.0.0/24', 'IETF protocol assignments (RFC 6890)'),
  range('192.0.2.0/24', 'documentation TEST-NET-1 (RFC 5737)'),
  range('192.88.99.0/24', 'deprecated 6to4 relay anycast (RFC 7526)'),
  range('192.168.0.0/16', 'private (RFC 1918)'),
  range('198.18.0.0/15', 'benchmarking (RFC 2544)'),
  range('198.51.100.0/24', 'documentation TEST-NET-2 (RFC 5737)'),
  range('203.0.113.0/24', 'documentation TEST-NET-3 (RFC 5737)'),
  range('224.0.0.0/4', 'multicast (RFC 5771)'),
  range('240.0.0.0/4', 'reserved (RFC 1112), including broadcast 255.255.255.255'),
];

// IPv6: only 2000::/3 is global unicast (RFC 4291 §2.4); inside it, the special-purpose blocks of the IANA
// IPv6 Special-Purpose Address Registry. Mapped, NAT64 and 6to4 addresses embed an IPv4 address and are
// judged by it (see embeddedV4), so ::ffff:10.0.0.1 cannot sneak past the IPv4 rules.
const V6_GLOBAL = range('2000::/3', 'global unicast');
const V6: Range[] = [
  range('::1/128', 'loopback (RFC 4291)'),
  range('::/128', 'unspecified (RFC 4291)'),
  range('64:ff9b:1::/48', 'local-use NAT64 (RFC 8215)'),
  range('100::/64', 'discard-only (RFC 6666)'),
  range('2001::/32', 'Teredo (RFC 4380)'),
  range('2001:2::/48', 'benchmarking (RFC 5180)'),
  range('2001:10::/28', 'ORCHID (RFC 4843)'),
  range('2001:db8::/32', 'documentation (RFC 3849)'),
  range('3fff::/20', 'documentation (RFC 9637)'),
  range('5f00::/16', 'SRv6 SIDs (RFC 9602)'),
  range('fc00::/7', 'unique local (RFC 4193)'),
  range('fe80::/10', 'link-local (RFC 4291)'),
  range('fec0::/10', 'deprecated site-local (RFC 3879)'),
  range('ff00::/8', 'multicast (RFC 4291)'),
];

/** The 16 bytes of an IPv6 address (already validated by isIP), or null. */
function v6Bytes(addr: string): number[] | null {
  let s = addr;
  // A trailing dotted quad (::ffff:1.2.3.4) is two groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (dotted) {
    const p = dotted[1].split('.').map(Number);
    s = s.slice(0, -dotted[1].length) + `${((p[0] << 8) | p[1]).toString(16)}:${((p[2] << 8) | p[3]).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, null];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === null ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  if (groups.length !== 8) return null;
  const bytes: number[] = [];
  for (const g of groups) {
    const n = parseInt(g, 16);
    bytes.push(n >> 8, n & 0xff);
  }
  return bytes;
}

/** The IPv4 address an IPv6 address stands for, if it embeds one: mapped, NAT64 well-known prefix, 6to4. */
function embeddedV4(bytes: number[]): string | null {
  const zero = (from: number, to: number) => bytes.slice(from, to).every((b) => b === 0);
  // ::ffff:a.b.c.d (RFC 4291 §2.5.5.2): the connection goes to the IPv4 host.
  if (zero(0, 10) && bytes[10] === 0xff && bytes[11] === 0xff) return bytes.slice(12).join('.');
  // 64:ff9b::a.b.c.d (RFC 6052 §2.1): a NAT64 forwards to the IPv4 host.
  if (bytes[0] === 0 && bytes[1] === 0x64 && bytes[2] === 0xff && bytes[3] === 0x9b && zero(4, 12)) {
    return bytes.slice(12).join('.');
  }
  // 2002:aabb:ccdd::/48 (RFC 3056 §2): a 6to4 relay forwards to aa.bb.cc.dd.
  if (bytes[0] === 0x20 && bytes[1] === 0x02) return bytes.slice(2, 6).join('.');
  return null;
}

function refused(cidr: string, purpose: string): AddressVerdict {
  return { allowed: false, reason: 'forbidden_address', range: cidr, purpose };
}

function judgeV4(ip: string, lab: boolean, via?: string): AddressVerdict {
  const hit = V4.find((r) => r.list.check(ip, 'ipv4'));
  if (lab) {
    return hit?.cidr === '127.0.0.0/8' ? { allowed: true } : refused('!127.0.0.0/8', 'not loopback (lab mode)');
  }
  if (!hit) return { allowed: true };
  return refused(hit.cidr, via ? `${hit.purpose}, embedded in ${via}` : hit.purpose);
}

/**
 * May a probe connect to `ip`? Outside lab mode: any address outside the special-purpose blocks. In lab mode:
 * only 127.0.0.0/8 and ::1, so a misconfigured lab run can never reach the internet.
 */
export function checkAddress(ip: string, opts: { lab: boolean }): AddressVerdict {
  // A zone index (fe80::1%eth0) names an interface, not part of the address.
  const addr = ip.trim().replace(/%.*$/, '').toLowerCase();
  const family = isIP(addr);
  if (family === 4) return judgeV4(addr, opts.lab);
  if (family !== 6) return refused('invalid', `not an IP address: "${ip}"`);
  const bytes = v6Bytes(addr);
  if (!bytes) return refused('invalid', `not an IP address: "${ip}"`);
  const v4 = embeddedV4(bytes);
  if (v4) return judgeV4(v4, opts.lab, addr);
  const hit = V6.find((r) => r.list.check(addr, 'ipv6'));
  if (opts.lab) {
    return hit?.cidr === '::1/128' ? { allowed: true } : refused('!::1/128', 'not loopback (lab mode)');
  }
  if (hit) return refused(hit.cidr, hit.purpose);
  if (!V6_GLOBAL.list.check(addr, 'ipv6')) return refused('!2000::/3', 'outside global unicast (RFC 4291 §2.4)');
  return { allowed: true };
}
