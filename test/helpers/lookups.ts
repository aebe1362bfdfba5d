// Declared DNS lookups for the pure evaluate tests: what a probe would have recorded, written by hand.
import type { Lookup } from '../../lib/dns/observation.ts';
import type { AnswerData, DnsOutcome } from '../../lib/dns/resolver.ts';

export function L(name: string, type: string, outcome: DnsOutcome, data: AnswerData[] = [], extra: Partial<Lookup> = {}): Lookup {
  const l: Lookup = { name, type, outcome, rcode: outcome === 'nxdomain' ? 'NXDOMAIN' : outcome === 'servfail' ? 'SERVFAIL' : 'NOERROR', ad: false, cd: false, ede: [], cnameChain: [], data, ...extra };
  if (!['answer', 'nodata', 'nxdomain'].includes(outcome) && l.reason === undefined) l.reason = outcome;
  return l;
}

/** TXT answer data from whole record strings (one character-string each). */
export const txt = (name: string, ...records: string[]): Lookup =>
  records.length === 0 ? L(name, 'TXT', 'nodata') : L(name, 'TXT', 'answer', records.map((r) => [r]));
