// SMTP TLS Reporting (RFC 8460), recorded as a finding beyond MSchecker's criteria: the `_smtp._tls` TXT
// record and its report destinations.
import type { Resolver } from '../../dns/resolver.ts';
import { finding, type Finding } from '../../criteria.ts';
import { collectVersionedTxt, versionedRecord, type VersionedTxt, type VersionedTxtObservation } from '../versioned-txt.ts';

export type TlsRptObservation = VersionedTxtObservation;

export interface TlsRptFinding extends Finding {
  value: 'present' | 'absent' | 'invalid' | 'unknown';
  rua?: string[];
}

/** RFC 8460 §3: v=TLSRPTv1 first, records not starting with it ignored; with several, no reports are sent. */
const TLS_RPT_RECORD: VersionedTxt = { prefix: '_smtp._tls', version: 'v=TLSRPTv1', what: 'TLS-RPT', reasons: { none: 'no_tls_rpt_record', multiple: 'multiple_tls_rpt_records' } };

export function collectTlsRpt(domain: string, resolver: Resolver, opts: { cd?: boolean } = {}): Promise<TlsRptObservation> {
  return collectVersionedTxt(TLS_RPT_RECORD, domain, resolver, opts);
}

export function evaluateTlsRpt(obs: TlsRptObservation): TlsRptFinding {
  const one = versionedRecord(TLS_RPT_RECORD, obs);
  if (!('record' in one)) return one;
  const rua = /(?:^|;)\s*rua=([^;]+)/.exec(one.record)?.[1].split(',').map((s) => s.trim()).filter(Boolean) ?? [];
  // rua is required and each URI is mailto: or https:.
  if (rua.length === 0 || !rua.every((u) => /^(mailto:[^@\s]+@[^@\s]+|https:\/\/\S+)$/i.test(u))) {
    return { ...finding('ng', 'invalid_tls_rpt_record', `missing or invalid rua=: ${one.record}`), value: 'invalid' };
  }
  return { ...finding('ok', 'tls_rpt_present', one.record), value: 'present', rua };
}
