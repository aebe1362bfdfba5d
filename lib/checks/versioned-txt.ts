// A mechanism a domain announces with one TXT record at a fixed name below it, the record beginning with a
// version tag: MTA-STS (`_mta-sts`, `v=STSv1`, RFC 8461 §3.1) and TLS-RPT (`_smtp._tls`, `v=TLSRPTv1`, RFC 8460
// §3). TXT records without the tag are ignored; more than one with it means the mechanism is not in use. The
// gatherer stores the lookup; the judgement finds the one record and lets each check parse it further.
import type { Resolver } from '../dns/resolver.ts';
import { isFact } from '../dns/resolver.ts';
import { lookup, txtRecords, unknownFrom, type Lookup } from '../dns/observation.ts';
import { finding, type Finding } from '../criteria.ts';

export interface VersionedTxtObservation {
  domain: string;
  txt: Lookup;
}

export interface VersionedTxt {
  /** The name below the domain: `_mta-sts`, `_smtp._tls`. */
  prefix: string;
  /** The tag the record begins with: `v=STSv1`. */
  version: string;
  /** The mechanism's name in the detail of an unknown: `MTA-STS`. */
  what: string;
  /** The reason codes: no record begins with the tag, several do, the check's parse rejects the one, it accepts it. */
  reasons: { none: string; multiple: string; invalid: string; present: string };
}

/** The judgement of a versioned record, with what the check's parse read from a valid one. */
export type VersionedTxtFinding<Facts extends object> = (Finding & { value: 'absent' | 'invalid' | 'unknown' }) | (Finding & { value: 'present' } & Facts);

export async function collectVersionedTxt(spec: VersionedTxt, domain: string, resolver: Resolver, opts: { cd?: boolean } = {}): Promise<VersionedTxtObservation> {
  return { domain, txt: await lookup(resolver, `${spec.prefix}.${domain}`, 'TXT', opts.cd ?? false) };
}

/** The one record that begins with the tag, or why there is none to parse: the lookup failed (unknown), none (absent), several (invalid). */
function versionedRecord(spec: VersionedTxt, obs: VersionedTxtObservation): { record: string } | (Finding & { value: 'absent' | 'invalid' | 'unknown' }) {
  if (!isFact(obs.txt.outcome)) return { ...unknownFrom(obs.txt, spec.what), value: 'unknown' };
  const tagged = new RegExp(`^${spec.version.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*(;|$)`);
  const recs = txtRecords(obs.txt).filter((r) => tagged.test(r.trim()));
  if (recs.length === 0) return { ...finding('ng', spec.reasons.none, `no ${spec.version} record at ${spec.prefix}.${obs.domain}`), value: 'absent' };
  if (recs.length > 1) return { ...finding('ng', spec.reasons.multiple, `${recs.length} ${spec.version} records`), value: 'invalid' };
  return { record: recs[0] };
}

/**
 * The one tagged record judged: unknown, absent or invalid as versionedRecord finds it; invalid when `parse`
 * rejects it (`invalid`: what is wrong, the record follows in the detail); else present, with the facts `parse` read.
 */
export function evaluateVersionedTxt<Facts extends object>(
  spec: VersionedTxt,
  obs: VersionedTxtObservation,
  parse: (record: string) => Facts | { invalid: string },
): VersionedTxtFinding<Facts> {
  const one = versionedRecord(spec, obs);
  if (!('record' in one)) return one;
  const facts = parse(one.record);
  if ('invalid' in facts) return { ...finding('ng', spec.reasons.invalid, `${facts.invalid}: ${one.record}`), value: 'invalid' };
  return { ...finding('ok', spec.reasons.present, one.record), value: 'present', ...facts };
}
