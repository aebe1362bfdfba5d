// cert_problems, a finding beyond MSchecker: certificate problems seen on MX hosts (self-signed, expired, wrong
// name, untrusted). SMTP TLS is opportunistic (RFC 7435), so they never change tls_receive, but reports count them.
import { finding } from '../../criteria.ts';
import { defineFinding, reason } from '../contract.ts';
import { mxSessions, tlsFindings } from './tls-findings.ts';

export const certProblemsCheck = defineFinding({
  id: 'cert_problems',
  label: { ja: '証明書の問題（MX）', en: 'Certificate problems (MX)' },
  rule: 'For every completed TLS handshake with an MX host: self-signed, expired, not valid for the MX name (RFC 6125), or not trusted for another reason.',
  scope: 'mx_ip',
  column: 'cert_problems',
  values: ['self_signed', 'expired', 'wrong_name', 'untrusted'],
  valueLabels: {
    self_signed: { ja: '自己署名', en: 'self-signed' },
    expired: { ja: '期限切れ', en: 'expired' },
    wrong_name: { ja: 'ホスト名不一致', en: 'wrong name' },
    untrusted: { ja: '信頼できない発行者', en: 'untrusted issuer' },
    any: { ja: 'いずれかの問題あり', en: 'any problem' },
  },
  multi: { empty: null, any: 'any' },
  reasons: {
    cert_problems: reason('a certificate problem on an MX host', 'MXの証明書に問題がある'),
    no_cert_problems: reason('no certificate problem seen', '証明書の問題はない'),
    no_tls: reason('no TLS handshake completed', 'TLSハンドシェイクが完了しなかった'),
  },
  judge(input) {
    const sessions = mxSessions(input);
    const value = tlsFindings(sessions).certProblems;
    if (value.length > 0) return { ...finding('ng', 'cert_problems', value.join(', ')), value };
    const handshakes = sessions.some((s) => s.obs.tls.handshake === 'ok');
    return { ...finding(handshakes ? 'ok' : 'na', handshakes ? 'no_cert_problems' : 'no_tls'), value };
  },
});
