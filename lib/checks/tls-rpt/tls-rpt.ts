// SMTP TLS Reporting (RFC 8460), recorded as a finding beyond MSchecker's criteria: the `_smtp._tls` TXT
// record and its report destinations.
import type { Resolver } from '../../dns/resolver.ts';
import { isFact } from '../../dns/resolver.ts';
import { lookup, txtRecords, unknownFrom, type Lookup } from '../../dns/observation.ts';
import { finding, type Finding } from '../../criteria.ts';

export interface TlsRptObservation {
  domain: string;
  txt: Lookup;
}

export interface TlsRptFinding extends Finding {
  value: 'present' | 'absent' | 'invalid' | 'unknown';
  rua?: string[];
}

export async function collectTlsRpt(domain: string, resolver: Resolver, opts: { cd?: boolean } = {}): Promise<TlsRptObservation> {
  return { domain, txt: await lookup(resolver, `_smtp._tls.${domain}`, 'TXT', opts.cd ?? false) };
}

export function evaluateTlsRpt(obs: TlsRptObservation): TlsRptFinding {
  if (!isFact(obs.txt.outcome)) return { ...unknownFrom(obs.txt, 'TLS-RPT'), value: 'unknown' };
  // RFC 8460 §3: v=TLSRPTv1 first; records not starting with it are ignored.
  const recs = txtRecords(obs.txt).filter((r) => /^v=TLSRPTv1\s*(;|$)/.test(r.trim()));
  if (recs.length === 0) return { ...finding('ng', 'no_tls_rpt_record', `no v=TLSRPTv1 record at _smtp._tls.${obs.domain}`), value: 'absent' };
  // RFC 8460 §3: multiple records: no reports are sent.
  if (recs.length > 1) return { ...finding('ng', 'multiple_tls_rpt_records', `${recs.length} v=TLSRPTv1 records`), value: 'invalid' };
  const rua = /(?:^|;)\s*rua=([^;]+)/.exec(recs[0])?.[1].split(',').map((s) => s.trim()).filter(Boolean) ?? [];
  // rua is required and each URI is mailto: or https:.
  if (rua.length === 0 || !rua.every((u) => /^(mailto:[^@\s]+@[^@\s]+|https:\/\/\S+)$/i.test(u))) {
    return { ...finding('ng', 'invalid_tls_rpt_record', `missing or invalid rua=: ${recs[0]}`), value: 'invalid' };
  }
  return { ...finding('ok', 'tls_rpt_present', recs[0]), value: 'present', rua };
}
