// MTA-STS (RFC 8461), recorded as a finding beyond MSchecker's criteria: the `_mta-sts` TXT record that
// announces a policy. (Fetching the HTTPS policy itself is outside the DNS checks.)
import type { Resolver } from '../../dns/resolver.ts';
import { finding, type Finding } from '../../criteria.ts';
import { collectVersionedTxt, versionedRecord, type VersionedTxt, type VersionedTxtObservation } from '../versioned-txt.ts';

export type MtaStsObservation = VersionedTxtObservation;

export interface MtaStsFinding extends Finding {
  value: 'present' | 'absent' | 'invalid' | 'unknown';
  id?: string;
}

/** RFC 8461 §3.1: records beginning with "v=STSv1;" (other TXT records are ignored); more than one means MTA-STS is not implemented. */
const MTA_STS_RECORD: VersionedTxt = { prefix: '_mta-sts', version: 'v=STSv1', what: 'MTA-STS', reasons: { none: 'no_mta_sts_record', multiple: 'multiple_mta_sts_records' } };

export function collectMtaSts(domain: string, resolver: Resolver, opts: { cd?: boolean } = {}): Promise<MtaStsObservation> {
  return collectVersionedTxt(MTA_STS_RECORD, domain, resolver, opts);
}

export function evaluateMtaSts(obs: MtaStsObservation): MtaStsFinding {
  const one = versionedRecord(MTA_STS_RECORD, obs);
  if (!('record' in one)) return one;
  const id = /(?:^|;)\s*id=([A-Za-z0-9]{1,32})\s*(?:;|$)/.exec(one.record)?.[1];
  if (!id) return { ...finding('ng', 'invalid_mta_sts_record', `missing or invalid id= (1-32 alphanumerics): ${one.record}`), value: 'invalid' };
  return { ...finding('ok', 'mta_sts_present', one.record), value: 'present', id };
}
