// The domain's receiving hosts: MX set, null MX (RFC 7505), no MX (with the implicit MX of RFC 5321 §5.1),
// and every MX host's addresses. Other checks (reverse DNS, DNSBL, the SMTP probes) run over these hosts.
import net from 'node:net';
import type { MxData, Resolver } from '../../dns/resolver.ts';
import { isAbsent, isFact } from '../../dns/resolver.ts';
import { lookup, unknownFrom, type Lookup } from '../../dns/observation.ts';
import { finding, type Finding } from '../../criteria.ts';

/** At most this many MX hosts are probed; the rest are recorded as truncated. */
export const MAX_MX_HOSTS = 10;

export interface MxHostObservation {
  exchange: string;
  preference: number;
  /** True for the implicit MX of RFC 5321 §5.1 (the domain itself). */
  implicit?: boolean;
  a: Lookup;
  aaaa: Lookup;
}

export interface MxObservation {
  mx: Lookup;
  /** A/AAAA of the domain itself, asked only when it has no MX (implicit MX). */
  implicitA?: Lookup;
  implicitAaaa?: Lookup;
  hosts: MxHostObservation[];
  truncated: boolean;
}

export type MxKind = 'mx' | 'implicit' | 'null' | 'none' | 'unknown';

function records(l: Lookup): MxData[] {
  return l.outcome === 'answer' ? (l.data as MxData[]) : [];
}

/** RFC 7505 §3: a null MX is a single record `0 .`. */
function isNullRecord(r: MxData): boolean {
  return r.exchange === '.' || r.exchange === '';
}

export async function collectMx(domain: string, resolver: Resolver, opts: { cd?: boolean } = {}): Promise<MxObservation> {
  const cd = opts.cd ?? false;
  const mx = await lookup(resolver, domain, 'MX', cd);
  const obs: MxObservation = { mx, hosts: [], truncated: false };
  let targets: { exchange: string; preference: number; implicit?: boolean }[] = [];
  if (mx.outcome === 'answer') {
    const recs = records(mx).filter((r) => !isNullRecord(r));
    // Lowest preference first (RFC 5321 §5.1); ties keep their order. Duplicates are asked once.
    const seen = new Set<string>();
    targets = [...recs].sort((a, b) => a.preference - b.preference).filter((r) => !seen.has(r.exchange) && seen.add(r.exchange));
  } else if (mx.outcome === 'nodata') {
    obs.implicitA = await lookup(resolver, domain, 'A', cd);
    obs.implicitAaaa = await lookup(resolver, domain, 'AAAA', cd);
    if (obs.implicitA.outcome === 'answer' || obs.implicitAaaa.outcome === 'answer') {
      targets = [{ exchange: domain, preference: 0, implicit: true }];
    }
  }
  if (targets.length > MAX_MX_HOSTS) {
    obs.truncated = true;
    targets = targets.slice(0, MAX_MX_HOSTS);
  }
  obs.hosts = await Promise.all(
    targets.map(async (t) => {
      if (t.implicit) return { ...t, a: obs.implicitA!, aaaa: obs.implicitAaaa! };
      // An IP literal in MX is invalid (RFC 7505 §3 / RFC 5321 §5.1 requires a name); do not query it.
      const [a, aaaa] = await Promise.all([lookup(resolver, t.exchange, 'A', cd), lookup(resolver, t.exchange, 'AAAA', cd)]);
      return { ...t, a, aaaa };
    }),
  );
  return obs;
}

export function mxKind(obs: MxObservation): MxKind {
  const mx = obs.mx;
  if (mx.outcome === 'answer') {
    const recs = records(mx);
    if (recs.length > 0 && recs.every(isNullRecord)) return 'null';
    return 'mx';
  }
  if (mx.outcome === 'nxdomain') return 'none';
  if (mx.outcome === 'nodata') {
    const a = obs.implicitA;
    const aaaa = obs.implicitAaaa;
    if (!a || !aaaa) return 'none';
    if (a.outcome === 'answer' || aaaa.outcome === 'answer') return 'implicit';
    if (isAbsent(a.outcome) && isAbsent(aaaa.outcome)) return 'none';
    return 'unknown';
  }
  return 'unknown';
}

/** Every distinct address of the (probed) MX hosts, IPv4 first. */
export function mxIps(obs: MxObservation): string[] {
  const v4 = new Set<string>();
  const v6 = new Set<string>();
  for (const h of obs.hosts) {
    if (h.a.outcome === 'answer') for (const d of h.a.data) if (net.isIPv4(String(d))) v4.add(String(d));
    if (h.aaaa.outcome === 'answer') for (const d of h.aaaa.data) if (net.isIPv6(String(d))) v6.add(String(d));
  }
  return [...v4, ...v6];
}

/** MX rows as lib/diagnosis.ts stores them. */
/**
 * Addresses used per MX host and per domain. Anyone can publish 3,000 A records for each of 10 MX names; a
 * sender MTA would try a few (Postfix smtp_mx_address_limit = 5), and so do we. The rest are recorded as
 * truncated (mxAddressTruncation, evaluateMx's `mx_truncated`), never probed.
 */
export const MAX_ADDRESSES_PER_MX = 4;
export const MAX_ADDRESSES_PER_DOMAIN = 16;

/** The MX rows (host, address) we use: every MX host, at most the capped number of addresses. */
export function mxRows(obs: MxObservation): { preference: number; host: string; ip: string | null }[] {
  const rows: { preference: number; host: string; ip: string | null }[] = [];
  let total = 0;
  for (const h of obs.hosts) {
    const ips = [...(h.a.outcome === 'answer' ? h.a.data : []), ...(h.aaaa.outcome === 'answer' ? h.aaaa.data : [])].map(String);
    if (ips.length === 0) rows.push({ preference: h.preference, host: h.exchange, ip: null });
    for (const ip of ips.slice(0, MAX_ADDRESSES_PER_MX)) {
      if (total >= MAX_ADDRESSES_PER_DOMAIN) break;
      rows.push({ preference: h.preference, host: h.exchange, ip });
      total++;
    }
  }
  return rows;
}

/** How many MX addresses the domain published and how many mxRows keeps. */
export function mxAddressTruncation(obs: MxObservation): { published: number; used: number; truncated: boolean } {
  let published = 0;
  for (const h of obs.hosts) published += (h.a.outcome === 'answer' ? h.a.data.length : 0) + (h.aaaa.outcome === 'answer' ? h.aaaa.data.length : 0);
  const used = mxRows(obs).filter((r) => r.ip).length;
  return { published, used, truncated: used < published };
}

/**
 * Judges the MX set itself (a finding beyond MSchecker's criteria): `ok` for usable MX hosts, `na` for null
 * or no MX (the domain receives no mail), `ng` for a broken set, `unknown` when DNS failed.
 */
export function evaluateMx(obs: MxObservation): Finding {
  const kind = mxKind(obs);
  if (kind === 'unknown') {
    if (!isFact(obs.mx.outcome)) return unknownFrom(obs.mx, 'MX');
    return unknownFrom(obs.implicitA && !isFact(obs.implicitA.outcome) ? obs.implicitA : obs.implicitAaaa!, 'implicit MX');
  }
  if (kind === 'none') return finding('na', 'no_mx', obs.mx.outcome === 'nxdomain' ? 'the domain does not exist' : 'no MX and no address record');
  const recs = records(obs.mx);
  if (kind === 'null') return finding('na', 'null_mx', 'RFC 7505 null MX: the domain accepts no mail');
  // RFC 7505 §3: a null MX must be the only MX record.
  if (recs.some(isNullRecord)) return finding('ng', 'null_mx_mixed', 'a null MX ("0 .") next to other MX records (RFC 7505 §3)');
  const literal = obs.hosts.filter((h) => net.isIP(h.exchange));
  if (literal.length > 0) return finding('ng', 'mx_is_ip', `MX target is an IP address: ${literal.map((h) => h.exchange).join(', ')}`);
  const failed = obs.hosts.filter((h) => !isFact(h.a.outcome) && !isFact(h.aaaa.outcome));
  const noAddress = obs.hosts.filter((h) => isAbsent(h.a.outcome) && isAbsent(h.aaaa.outcome));
  const usable = obs.hosts.length - failed.length - noAddress.length;
  if (usable === 0 && failed.length > 0) return unknownFrom(failed[0].a, `MX host ${failed[0].exchange}`);
  if (noAddress.length > 0) {
    const names = noAddress.map((h) => h.exchange).join(', ');
    return finding(usable > 0 ? 'ok' : 'ng', usable > 0 ? 'some_mx_without_address' : 'mx_without_address', `MX host without A/AAAA: ${names}`);
  }
  const addr = mxAddressTruncation(obs);
  const detail = `${obs.hosts.length} MX host(s)${obs.truncated ? `, first ${MAX_MX_HOSTS} of ${recs.length} probed` : ''}${
    addr.truncated ? `, ${addr.used} of ${addr.published} addresses probed (at most ${MAX_ADDRESSES_PER_MX} per host, ${MAX_ADDRESSES_PER_DOMAIN} per domain)` : ''}`;
  if (kind === 'implicit') return finding('ok', 'implicit_mx', 'no MX: the domain\'s own address receives mail (RFC 5321 §5.1)');
  return finding('ok', obs.truncated || addr.truncated ? 'mx_truncated' : 'mx_present', detail);
}
