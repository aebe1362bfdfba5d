// tls_send (CRITERIA.md): the test mail reached us over TLS although we offered STARTTLS. A scan cannot see how
// a domain sends, so it is `unknown` (not_measured) there and the scan verdict ignores it (lib/verdict.ts).
import { finding, type Finding } from '../../criteria.ts';
import type { ReceivedTls } from '../../observations.ts';
import { defineCriterion, reason } from '../contract.ts';

/** ok if the mail arrived over TLS; ng if in clear although we offered STARTTLS. */
export function evaluateTlsSend(tls: ReceivedTls): Finding {
  if (tls.used) return finding('ok', 'tls', `received over ${tls.protocol ?? 'TLS'}${tls.cipher ? ` (${tls.cipher})` : ''}`);
  if (tls.offered) return finding('ng', 'cleartext', 'the test mail arrived in clear although we offered STARTTLS');
  return finding('unknown', 'starttls_not_offered', 'the receiver did not offer STARTTLS, so send TLS was not measured');
}

export const tlsSendCheck = defineCriterion({
  id: 'tls_send',
  level: 'needs_improvement',
  rule: 'Test mail only: the mail arrived over TLS (our receiver offers STARTTLS, RFC 3207); in clear is NG. A scan cannot measure it.',
  scope: 'mail',
  reasons: {
    tls: reason('the mail arrived over TLS', 'TLSで送信された'),
    cleartext: reason('the mail arrived in clear although STARTTLS was offered', 'STARTTLSを提示したのに平文で送信された'),
    starttls_not_offered: reason('our receiver did not offer STARTTLS', '受信側がSTARTTLSを提示しなかった'),
    not_measured: reason('only a received test mail shows whether the domain sends over TLS', 'テストメールでのみ測定できる'),
  },
  judge(input) {
    if (!input.mail) return finding('unknown', 'not_measured', 'only a received test mail shows whether the domain sends over TLS');
    return evaluateTlsSend(input.mail.mail.tls);
  },
});
