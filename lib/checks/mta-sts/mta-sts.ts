// MTA-STS (RFC 8461), recorded as a finding beyond MSchecker's criteria: the `_mta-sts` TXT record that
// announces a policy. (Fetching the HTTPS policy itself is outside the DNS checks.)
import type { Resolver } from '../../dns/resolver.ts';
import { isFact } from '../../dns/resolver.ts';
import { lookup, txtRecords, unknownFrom, type Lookup } from '../../dns/observation.ts';
import { finding, type Finding } from '../../criteria.ts';

export interface MtaStsObservation {
  domain: string;
  txt: Lookup;
}

export interface MtaStsFinding extends Finding {
  value: 'present' | 'absent' | 'invalid' | 'unknown';
  id?: string;
}

export async function collectMtaSts(domain: string, resolver: Resolver, opts: { cd?: boolean } = {}): Promise<MtaStsObservation> {
  return { domain, txt: await lookup(resolver, `_mta-sts.${domain}`, 'TXT', opts.cd ?? false) };
}

export function evaluateMtaSts(obs: MtaStsObservation): MtaStsFinding {
  if (!isFact(obs.txt.outcome)) return { ...unknownFrom(obs.txt, 'MTA-STS'), value: 'unknown' };
  // RFC 8461 §3.1: records beginning with "v=STSv1;" (other TXT records are ignored).
  const recs = txtRecords(obs.txt).filter((r) => /^v=STSv1\s*(;|$)/.test(r.trim()));
  if (recs.length === 0) return { ...finding('ng', 'no_mta_sts_record', `no v=STSv1 record at _mta-sts.${obs.domain}`), value: 'absent' };
  // RFC 8461 §3.1: more than one such record means MTA-STS is not implemented.
  if (recs.length > 1) return { ...finding('ng', 'multiple_mta_sts_records', `${recs.length} v=STSv1 records`), value: 'invalid' };
  const id = /(?:^|;)\s*id=([A-Za-z0-9]{1,32})\s*(?:;|$)/.exec(recs[0])?.[1];
  if (!id) return { ...finding('ng', 'invalid_mta_sts_record', `missing or invalid id= (1-32 alphanumerics): ${recs[0]}`), value: 'invalid' };
  return { ...finding('ok', 'mta_sts_present', recs[0]), value: 'present', id };
}
