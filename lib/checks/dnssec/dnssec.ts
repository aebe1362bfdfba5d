// DNSSEC status of the domain as the validating resolver reports it (RFC 4035 §3.2.3 AD bit). Bogus is told
// apart from other SERVFAILs the way internet.nl does: the same query with CD (checking disabled, RFC 4035
// §3.2.2) succeeds. Extended DNS Errors (RFC 8914: 6 DNSSEC Bogus, 7 Signature Expired, …) are recorded but
// not required, because real resolvers vary in sending them.
import type { Resolver } from '../../dns/resolver.ts';
import { isFact } from '../../dns/resolver.ts';
import { lookup, unknownFrom, type Lookup } from '../../dns/observation.ts';
import { finding, type Finding } from '../../criteria.ts';

export interface DnssecObservation {
  domain: string;
  /** SOA of the domain with DO set (NODATA below a zone apex is fine: AD covers the denial too). */
  soa: Lookup;
  /** The same query with CD, asked only when the first one failed with SERVFAIL. */
  soaCd?: Lookup;
}

export type DnssecState = 'secure' | 'insecure' | 'bogus' | 'unknown';

export async function collectDnssec(domain: string, resolver: Resolver): Promise<DnssecObservation> {
  const soa = await lookup(resolver, domain, 'SOA');
  const obs: DnssecObservation = { domain, soa };
  if (soa.outcome === 'servfail') obs.soaCd = await lookup(resolver, domain, 'SOA', true);
  return obs;
}

export function dnssecState(obs: DnssecObservation): DnssecState {
  if (isFact(obs.soa.outcome)) return obs.soa.ad ? 'secure' : 'insecure';
  if (obs.soa.outcome === 'servfail' && obs.soaCd && isFact(obs.soaCd.outcome)) return 'bogus';
  return 'unknown';
}

/** Whether the domain's other records must be read with CD (a bogus domain; as internet.nl does). */
export function needsCd(obs: DnssecObservation): boolean {
  return dnssecState(obs) === 'bogus';
}

export function evaluateDnssec(obs: DnssecObservation): Finding {
  const ede = obs.soa.ede.length > 0 ? ` EDE ${obs.soa.ede.map((e) => `${e.code}${e.text ? ` (${e.text})` : ''}`).join(', ')}` : '';
  switch (dnssecState(obs)) {
    case 'secure':
      return finding('ok', 'secure', `AD set on SOA ${obs.domain}`);
    case 'insecure':
      return finding('ng', 'insecure', `AD clear on SOA ${obs.domain}: not signed, or no chain of trust`);
    case 'bogus':
      return finding('ng', 'bogus', `SERVFAIL, but the query with CD succeeds: signatures do not validate${ede}`);
    default:
      return unknownFrom(obs.soaCd && obs.soa.outcome === 'servfail' ? obs.soaCd : obs.soa, 'DNSSEC');
  }
}
