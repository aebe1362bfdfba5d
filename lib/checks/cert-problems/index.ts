// cert_problems, a finding beyond MSchecker: certificate problems seen on MX hosts (self-signed, expired, wrong
// name, untrusted). SMTP TLS is opportunistic (RFC 7435), so they never change tls_receive, but reports count them.
import { finding } from '../../criteria.ts';
import { defineFinding, reason } from '../contract.ts';
import { NO_TLS_REASONS } from '../reasons.ts';
import { CERT_PROBLEM_LABELS, CERT_PROBLEM_REASONS } from '../tls-cert/index.ts';
import { CERT_PROBLEM_VALUES, mxSessions, tlsFindings } from './tls-findings.ts';

export const certProblemsCheck = defineFinding({
  id: 'cert_problems',
  label: { ja: '証明書の問題（MX）', en: 'Certificate problems (MX)' },
  rule: 'For every completed TLS handshake with an MX host: self-signed, expired, not valid for the MX name (RFC 6125), or not trusted for another reason.',
  scope: 'mx_ip',
  column: 'cert_problems',
  values: CERT_PROBLEM_VALUES,
  valueLabels: Object.fromEntries([...CERT_PROBLEM_VALUES, 'any' as const].map((v) => [v, CERT_PROBLEM_LABELS[v]])),
  multi: { empty: null, any: 'any' },
  reasons: {
    ...CERT_PROBLEM_REASONS,
    no_cert_problems: reason('no certificate problem seen', '証明書の問題はない'),
    ...NO_TLS_REASONS,
  },
  judge(input) {
    const sessions = mxSessions(input);
    const value = tlsFindings(sessions).certProblems;
    if (value.length > 0) return { ...finding('ng', 'cert_problems', value.join(', ')), value };
    const handshakes = sessions.some((s) => s.obs.tls.handshake === 'ok');
    return { ...finding(handshakes ? 'ok' : 'na', handshakes ? 'no_cert_problems' : 'no_tls'), value };
  },
});
