// MTA-STS (RFC 8461), recorded as a finding beyond MSchecker's criteria: the `_mta-sts` TXT record that
// announces a policy. (Fetching the HTTPS policy itself is outside the DNS checks.)
import type { Resolver } from '../../dns/resolver.ts';
import type { Finding } from '../../criteria.ts';
import { collectVersionedTxt, evaluateVersionedTxt, type VersionedTxt, type VersionedTxtObservation } from '../versioned-txt.ts';

export type MtaStsObservation = VersionedTxtObservation;

export interface MtaStsFinding extends Finding {
  value: 'present' | 'absent' | 'invalid' | 'unknown';
  id?: string;
}

/** RFC 8461 §3.1: records beginning with "v=STSv1;" (other TXT records are ignored); more than one means MTA-STS is not implemented. */
const MTA_STS_RECORD: VersionedTxt = { prefix: '_mta-sts', version: 'v=STSv1', what: 'MTA-STS', reasons: { none: 'no_mta_sts_record', multiple: 'multiple_mta_sts_records', invalid: 'invalid_mta_sts_record', present: 'mta_sts_present' } };

export function collectMtaSts(domain: string, resolver: Resolver, opts: { cd?: boolean } = {}): Promise<MtaStsObservation> {
  return collectVersionedTxt(MTA_STS_RECORD, domain, resolver, opts);
}

export function evaluateMtaSts(obs: MtaStsObservation): MtaStsFinding {
  return evaluateVersionedTxt(MTA_STS_RECORD, obs, (record) => {
    const id = /(?:^|;)\s*id=([A-Za-z0-9]{1,32})\s*(?:;|$)/.exec(record)?.[1];
    return id ? { id } : { invalid: 'missing or invalid id= (1-32 alphanumerics)' };
  });
}
