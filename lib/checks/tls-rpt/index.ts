// tls_rpt, a finding beyond MSchecker: the `_smtp._tls` TXT record and its report destinations (RFC 8460 §3).
import { defineFinding, dnsGatherer, reason, RECORD_VALUE_LABELS } from '../contract.ts';
import { judgeRecord } from '../judge-input.ts';
import { DNS_FAILURE_REASONS } from '../reasons.ts';
import { collectTlsRpt, evaluateTlsRpt } from './tls-rpt.ts';

export const tlsRptCheck = defineFinding({
  id: 'tls_rpt',
  label: { ja: 'TLS-RPT', en: 'TLS-RPT' },
  rule: 'Exactly one v=TLSRPTv1 TXT record at _smtp._tls.<domain> whose rua= lists mailto: or https: destinations (RFC 8460 §3).',
  scope: 'domain',
  column: 'tls_rpt',
  values: ['present', 'absent', 'invalid', 'unknown'],
  valueLabels: RECORD_VALUE_LABELS,
  reasons: {
    tls_rpt_present: reason('a valid TLS-RPT record', '正しいTLS-RPTレコードがある'),
    no_tls_rpt_record: reason('no TLS-RPT record', 'TLS-RPTレコードがない'),
    multiple_tls_rpt_records: reason('more than one TLS-RPT record', 'TLS-RPTレコードが複数ある'),
    invalid_tls_rpt_record: reason('a TLS-RPT record without a valid rua=', 'rua=が正しくないTLS-RPTレコード'),
    ...DNS_FAILURE_REASONS,
  },
  gather: dnsGatherer('tlsRpt', collectTlsRpt),
  judge: (input) => judgeRecord(input, (dns) => evaluateTlsRpt(dns.tlsRpt)),
});
