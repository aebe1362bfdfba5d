// DNS blocklists (RFC 5782): the IP's reversed octets (IPv6: nibbles) under each configured zone. An A record
// in 127.0.0.0/24 means listed (the TXT record says why); 127.255.255.0/24 is how operators such as Spamhaus
// signal an error or a refused query (public resolver, over quota), so it is unknown, never "listed".
import net from 'node:net';
import type { Resolver } from '../../dns/resolver.ts';
import { isAbsent, isFact } from '../../dns/resolver.ts';
import { reversedIpLabels } from '../../dns/names.ts';
import { lookup, txtRecords, unknownFrom, type Lookup } from '../../dns/observation.ts';
import { finding, type Finding } from '../../criteria.ts';

export interface DnsblZoneObservation {
  zone: string;
  a: Lookup;
  /** The reason text, asked only when listed. */
  txt?: Lookup;
}

export interface DnsblObservation {
  ip: string;
  zones: DnsblZoneObservation[];
}

export async function collectDnsbl(ip: string, zones: readonly string[], resolver: Resolver): Promise<DnsblObservation> {
  const rev = reversedIpLabels(ip);
  if (!rev) return { ip, zones: [] };
  const out = await Promise.all(
    zones.map(async (zone) => {
      const name = `${rev}.${zone}`;
      const a = await lookup(resolver, name, 'A');
      const z: DnsblZoneObservation = { zone, a };
      if (a.outcome === 'answer' && a.data.some((d) => String(d).startsWith('127.0.0.'))) z.txt = await lookup(resolver, name, 'TXT');
      return z;
    }),
  );
  return { ip, zones: out };
}

type ZoneState = { state: 'listed'; codes: string[]; reason: string | null } | { state: 'clean' } | { state: 'unknown'; finding: Finding };

export function zoneState(z: DnsblZoneObservation): ZoneState {
  if (isAbsent(z.a.outcome)) return { state: 'clean' };
  if (!isFact(z.a.outcome)) return { state: 'unknown', finding: unknownFrom(z.a, `DNSBL ${z.zone}`) };
  const codes = z.a.data.map(String);
  const errors = codes.filter((c) => c.startsWith('127.255.255.'));
  if (errors.length > 0) return { state: 'unknown', finding: finding('unknown', 'dnsbl_error', `${z.zone} answered ${errors.join(',')} (operator error or refused query)`) };
  const listed = codes.filter((c) => c.startsWith('127.0.0.') && net.isIPv4(c));
  if (listed.length > 0) return { state: 'listed', codes: listed, reason: z.txt ? txtRecords(z.txt).join(' ') || null : null };
  // Anything else (a wildcard or a hijacking resolver's address) proves nothing.
  return { state: 'unknown', finding: finding('unknown', 'unexpected_answer', `${z.zone} answered ${codes.join(',')}`) };
}

/** One IP: ng if any zone lists it; ok if every zone says not listed; else unknown. */
export function evaluateDnsbl(obs: DnsblObservation): Finding {
  if (!net.isIP(obs.ip)) return finding('unknown', 'invalid_ip', `not an IP address: ${obs.ip}`);
  if (obs.zones.length === 0) return finding('unknown', 'no_zones', 'no DNSBL zone configured');
  const states = obs.zones.map((z) => ({ zone: z.zone, s: zoneState(z) }));
  const listed = states.filter((x) => x.s.state === 'listed');
  if (listed.length > 0) {
    return finding('ng', 'listed', listed.map((x) => {
      const s = x.s as Extract<ZoneState, { state: 'listed' }>;
      return `${obs.ip} listed in ${x.zone} (${s.codes.join(',')})${s.reason ? `: ${s.reason}` : ''}`;
    }).join('; '));
  }
  const unknown = states.find((x) => x.s.state === 'unknown');
  if (unknown) {
    const f = (unknown.s as Extract<ZoneState, { state: 'unknown' }>).finding;
    return { ...f, detail: `${obs.ip}: ${f.detail ?? f.reason}` };
  }
  return finding('ok', 'not_listed', `${obs.ip} not listed in ${obs.zones.map((z) => z.zone).join(', ')}`);
}
