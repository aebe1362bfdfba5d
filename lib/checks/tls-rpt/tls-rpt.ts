// SMTP TLS Reporting (RFC 8460), recorded as a finding beyond MSchecker's criteria: the `_smtp._tls` TXT
// record and its report destinations.
import type { Resolver } from '../../dns/resolver.ts';
import type { Finding } from '../../criteria.ts';
import { collectVersionedTxt, evaluateVersionedTxt, type VersionedTxt, type VersionedTxtObservation } from '../versioned-txt.ts';

export type TlsRptObservation = VersionedTxtObservation;

export interface TlsRptFinding extends Finding {
  value: 'present' | 'absent' | 'invalid' | 'unknown';
  rua?: string[];
}

/** RFC 8460 §3: v=TLSRPTv1 first, records not starting with it ignored; with several, no reports are sent. */
const TLS_RPT_RECORD: VersionedTxt = { prefix: '_smtp._tls', version: 'v=TLSRPTv1', what: 'TLS-RPT', reasons: { none: 'no_tls_rpt_record', multiple: 'multiple_tls_rpt_records', invalid: 'invalid_tls_rpt_record', present: 'tls_rpt_present' } };

export function collectTlsRpt(domain: string, resolver: Resolver, opts: { cd?: boolean } = {}): Promise<TlsRptObservation> {
  return collectVersionedTxt(TLS_RPT_RECORD, domain, resolver, opts);
}

export function evaluateTlsRpt(obs: TlsRptObservation): TlsRptFinding {
  return evaluateVersionedTxt(TLS_RPT_RECORD, obs, (record) => {
    const rua = /(?:^|;)\s*rua=([^;]+)/.exec(record)?.[1].split(',').map((s) => s.trim()).filter(Boolean) ?? [];
    // rua is required and each URI is mailto: or https:.
    const valid = rua.length > 0 && rua.every((u) => /^(mailto:[^@\s]+@[^@\s]+|https:\/\/\S+)$/i.test(u));
    return valid ? { rua } : { invalid: 'missing or invalid rua=' };
  });
}
