// Reverse DNS with forward confirmation (FCrDNS; the `iprev` method of RFC 8601 §3): the IP has a
// PTR whose name resolves back to that same IP. Receivers (and MSchecker) distrust senders without it.
import net from 'node:net';
import type { Resolver } from '../../dns/resolver.ts';
import { isAbsent, isFact } from '../../dns/resolver.ts';
import { canonicalIp, ptrName } from '../../dns/names.ts';
import { lookup, unknownFrom, type Lookup } from '../../dns/observation.ts';
import { finding, type Finding } from '../../criteria.ts';

/** At most this many PTR names are forward-checked (as RFC 7208 §5.5 bounds the ptr mechanism). */
export const MAX_PTR_NAMES = 10;

export interface ReverseDnsObservation {
  ip: string;
  ptr: Lookup;
  /** Forward lookups (A for IPv4, AAAA for IPv6) of each PTR name. */
  forward: { name: string; lookup: Lookup }[];
}

/**
 * A SERVFAIL may be a DNSSEC-bogus zone (the PTR zone, or the zone of the PTR name): read it again with CD, as
 * CRITERIA.md asks for bogus domains, so a broken signature elsewhere does not hide the reverse-DNS facts. The
 * stored lookup then says `cd: true`; a SERVFAIL that persists with CD stays unknown.
 */
async function lookupThroughBogus(resolver: Resolver, name: string, type: 'PTR' | 'A' | 'AAAA'): Promise<Lookup> {
  const first = await lookup(resolver, name, type);
  if (first.outcome !== 'servfail') return first;
  const withCd = await lookup(resolver, name, type, true);
  return isFact(withCd.outcome) ? withCd : first;
}

export async function collectReverseDns(ip: string, resolver: Resolver): Promise<ReverseDnsObservation> {
  const ptr = await lookupThroughBogus(resolver, ptrName(ip)!, 'PTR');
  const names = ptr.outcome === 'answer' ? [...new Set(ptr.data.map(String))].slice(0, MAX_PTR_NAMES) : [];
  const type = net.isIPv6(ip) ? 'AAAA' : 'A';
  const forward = await Promise.all(names.map(async (name) => ({ name, lookup: await lookupThroughBogus(resolver, name, type) })));
  return { ip, ptr, forward };
}

/** One IP: ok if some PTR name resolves back to it; ng if no PTR or none matches; unknown on failure. */
export function evaluateReverseDns(obs: ReverseDnsObservation): Finding {
  if (!isFact(obs.ptr.outcome)) return unknownFrom(obs.ptr, `PTR of ${obs.ip}`);
  if (isAbsent(obs.ptr.outcome) || obs.ptr.data.length === 0) return finding('ng', 'no_ptr', `${obs.ip} has no PTR record`);
  const want = canonicalIp(obs.ip);
  const match = obs.forward.find((f) => f.lookup.outcome === 'answer' && f.lookup.data.some((d) => canonicalIp(String(d)) === want));
  if (match) return finding('ok', 'fcrdns', `${obs.ip} → ${match.name} → ${obs.ip}`);
  const failed = obs.forward.find((f) => !isFact(f.lookup.outcome));
  if (failed) return unknownFrom(failed.lookup, `forward lookup of ${failed.name}`);
  const names = obs.forward.map((f) => `${f.name} → ${f.lookup.outcome === 'answer' ? f.lookup.data.join(',') : f.lookup.outcome}`).join('; ');
  return finding('ng', 'ptr_mismatch', `${obs.ip}: PTR name does not resolve back (${names})`);
}

/**
 * Over several IPs (every MX IP in a scan): ng if any IP fails, else unknown if any could not be measured,
 * else ok. No IPs: na.
 */
export function combineIpFindings(perIp: { ip: string; finding: Finding }[]): Finding {
  if (perIp.length === 0) return finding('na', 'no_ip');
  const ng = perIp.filter((p) => p.finding.status === 'ng');
  if (ng.length > 0) return finding('ng', ng[0].finding.reason, ng.map((p) => p.finding.detail ?? `${p.ip}: ${p.finding.reason}`).join('; '));
  const unknown = perIp.filter((p) => p.finding.status === 'unknown');
  if (unknown.length > 0) return finding('unknown', unknown[0].finding.reason, unknown.map((p) => p.finding.detail ?? `${p.ip}: ${p.finding.reason}`).join('; '));
  const ok = perIp.filter((p) => p.finding.status === 'ok');
  if (ok.length === 0) return finding('na', perIp[0].finding.reason);
  return finding('ok', ok[0].finding.reason, perIp.map((p) => p.finding.detail ?? p.ip).join('; '));
}
