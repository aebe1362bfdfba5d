// tls_versions, a finding beyond MSchecker: the TLS versions negotiated with the MX hosts (and with the sender,
// for a test mail). A domain counts under every version seen; `no_tls` when none was negotiated.
import { finding } from '../../criteria.ts';
import { defineFinding, NO_TLS_VALUE_LABEL, reason } from '../contract.ts';
import { NO_TLS_REASONS } from '../reasons.ts';
import { mxSessions, tlsFindings } from '../cert-problems/tls-findings.ts';

export const tlsVersionsCheck = defineFinding({
  id: 'tls_versions',
  label: { ja: 'TLSバージョン（MX）', en: 'TLS versions (MX)' },
  rule: 'The protocol versions of every completed TLS handshake with an MX host (RFC 8446, RFC 5246), and for a test mail the version it arrived with.',
  scope: 'mx_ip',
  column: 'tls_versions',
  values: [],
  valueLabels: { no_tls: NO_TLS_VALUE_LABEL },
  multi: { empty: 'no_tls', any: null, sort: 'desc' },
  reasons: {
    tls_seen: reason('TLS was negotiated', 'TLSで通信できた'),
    ...NO_TLS_REASONS,
  },
  judge(input) {
    const versions = new Set(tlsFindings(mxSessions(input)).tlsVersions);
    const tls = input.mail?.mail.tls;
    if (tls?.used && tls.protocol) versions.add(tls.protocol);
    const value = [...versions].sort();
    return value.length > 0 ? { ...finding('ok', 'tls_seen', value.join(', ')), value } : { ...finding('na', 'no_tls'), value };
  },
});
