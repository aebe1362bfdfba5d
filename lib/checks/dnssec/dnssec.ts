// DNSSEC status of the domain as the validating resolver reports it (RFC 4035 §3.2.3 AD bit) on the domain's
// MX answer or denial, the question the MX check asks anyway. Bogus is told
// apart from other SERVFAILs the way internet.nl does: the same query with CD (checking disabled, RFC 4035
// §3.2.2) succeeds. Extended DNS Errors (RFC 8914: 6 DNSSEC Bogus, 7 Signature Expired, …) are recorded but
// not required, because real resolvers vary in sending them.
import type { Resolver } from '../../dns/resolver.ts';
import { isFact } from '../../dns/resolver.ts';
import { lookup, unknownFrom, type Lookup } from '../../dns/observation.ts';
import { finding, type Finding } from '../../criteria.ts';

export interface DnssecObservation {
  domain: string;
  /**
   * The domain's MX with DO set: its AD bit covers the answer or its denial (NODATA, NXDOMAIN) alike, and the
   * MX check reads the same answer, so the state costs no query of its own (issue 18). Absent in observations
   * made before, which asked the SOA (`soa`).
   */
  mx?: Lookup;
  /** The same query with CD, asked only when the first one failed with SERVFAIL. */
  mxCd?: Lookup;
  /** Before issue 18: the SOA of the domain (NODATA below a zone apex is fine: AD covers the denial too). */
  soa?: Lookup;
  soaCd?: Lookup;
}

export type DnssecState = 'secure' | 'insecure' | 'bogus' | 'unknown';

export async function collectDnssec(domain: string, resolver: Resolver): Promise<DnssecObservation> {
  const mx = await lookup(resolver, domain, 'MX');
  const obs: DnssecObservation = { domain, mx };
  if (mx.outcome === 'servfail') obs.mxCd = await lookup(resolver, domain, 'MX', true);
  return obs;
}

/** The lookup judged and its CD retry: the MX, or in older observations the SOA. */
function judged(obs: DnssecObservation): { l: Lookup; cd: Lookup | undefined } {
  return obs.mx ? { l: obs.mx, cd: obs.mxCd } : { l: obs.soa as Lookup, cd: obs.soaCd };
}

export function dnssecState(obs: DnssecObservation): DnssecState {
  const { l, cd } = judged(obs);
  if (isFact(l.outcome)) return l.ad ? 'secure' : 'insecure';
  if (l.outcome === 'servfail' && cd && isFact(cd.outcome)) return 'bogus';
  return 'unknown';
}

/** Whether the domain's other records must be read with CD (a bogus domain; as internet.nl does). */
export function needsCd(obs: DnssecObservation): boolean {
  return dnssecState(obs) === 'bogus';
}

export function evaluateDnssec(obs: DnssecObservation): Finding {
  const { l, cd } = judged(obs);
  const ede = l.ede.length > 0 ? ` EDE ${l.ede.map((e) => `${e.code}${e.text ? ` (${e.text})` : ''}`).join(', ')}` : '';
  switch (dnssecState(obs)) {
    case 'secure':
      return finding('ok', 'secure', `AD set on ${l.type} ${obs.domain}`);
    case 'insecure':
      return finding('ng', 'insecure', `AD clear on ${l.type} ${obs.domain}: not signed, or no chain of trust`);
    case 'bogus':
      return finding('ng', 'bogus', `SERVFAIL, but the query with CD succeeds: signatures do not validate${ede}`);
    default:
      return unknownFrom(cd && l.outcome === 'servfail' ? cd : l, 'DNSSEC');
  }
}
