// One DNS lookup as observations store it: plain JSON with the outcome, so a stored diagnosis can be
// re-judged later and a failed lookup is never mistaken for an absent record.
import type { AnswerData, DnsOutcome, DnsResult, ExtendedDnsError, QueryType, Resolver } from './resolver.ts';
import { isFact } from './resolver.ts';
import { finding, type Finding } from '../criteria.ts';
import { DNS_FAILURE_REASONS, type DnsFailureReason } from '../checks/reasons.ts';

export interface Lookup {
  name: string;
  type: string;
  outcome: DnsOutcome;
  reason?: string;
  rcode: string;
  ad: boolean;
  cd: boolean;
  ede: ExtendedDnsError[];
  cnameChain: string[];
  data: AnswerData[];
}

export function lookupOf(r: DnsResult): Lookup {
  const l: Lookup = {
    name: r.name,
    type: r.type,
    outcome: r.outcome,
    rcode: r.rcode,
    ad: r.ad,
    cd: r.cd,
    ede: r.ede,
    cnameChain: r.cnameChain,
    data: r.answers.map((a) => a.data),
  };
  if (r.reason !== undefined && !isFact(r.outcome)) l.reason = r.reason;
  return l;
}

export async function lookup(resolver: Resolver, name: string, type: QueryType, cd = false): Promise<Lookup> {
  return lookupOf(await resolver.query(name, type, { cd }));
}

/** TXT records of a lookup, each joined from its character-strings (RFC 7208 §3.3, RFC 6376 §3.6.2.2). */
export function txtRecords(l: Lookup): string[] {
  return l.outcome === 'answer' ? l.data.map((d) => (Array.isArray(d) ? d.join('') : String(d))) : [];
}

/**
 * The closed reason code of a failed lookup: the outcome, or for `error` the resolver's finer reason (a socket
 * error or an odd RCODE folded into one code each; the raw text stays in the lookup and the detail).
 */
export function failureReason(l: Lookup): DnsFailureReason {
  if (l.outcome !== 'error') return l.outcome in DNS_FAILURE_REASONS ? (l.outcome as DnsFailureReason) : 'dns_error';
  const r = l.reason ?? 'dns_error';
  if (r in DNS_FAILURE_REASONS) return r as DnsFailureReason;
  if (/^(socket|connect|send|tcp)_/.test(r)) return 'dns_network_error';
  if (/^rcode_/.test(r)) return 'dns_rcode_error';
  return 'dns_error';
}

/** `unknown` for a lookup that did not produce a fact. */
export function unknownFrom(l: Lookup, what?: string): Finding {
  const ede = l.ede.length > 0 ? ` (EDE ${l.ede.map((e) => e.code + (e.text ? ` ${e.text}` : '')).join(', ')})` : '';
  return finding('unknown', failureReason(l), `${what ? `${what}: ` : ''}${l.type} ${l.name} ${l.outcome}${l.reason && l.reason !== l.outcome ? ` ${l.reason}` : ''}${ede}`);
}
