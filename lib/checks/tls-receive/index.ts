// tls_receive (CRITERIA.md): every reachable MX host offers STARTTLS and completes the handshake (RFC 3207);
// certificate problems do not count here (SMTP TLS is opportunistic, RFC 7435) but are findings of their own.
import { defineCriterion, reason } from '../contract.ts';
import { fromMx } from '../judge-input.ts';
import { evaluateTlsReceive } from './tls-receive.ts';
import { closedSmtpUnknown, MX_SESSION_REASONS } from '../smtp-reasons.ts';

const REASONS = {
  starttls: reason('STARTTLS on every MX host', 'すべてのMXでSTARTTLSが使える'),
  no_starttls: reason('an MX host does not offer STARTTLS', 'STARTTLSに対応していないMXがある'),
  handshake_failed: reason('the TLS handshake failed on an MX host', 'TLSハンドシェイクに失敗するMXがある'),
  starttls_refused: reason('STARTTLS refused with 5xx (as good as no TLS)', 'STARTTLSを5xxで拒否した'),
  no_starttls_or_handshake_failed: reason('no STARTTLS on some MX hosts, failed handshakes on others', 'STARTTLS非対応とハンドシェイク失敗のMXがある'),
  ...MX_SESSION_REASONS,
} as const;

export const tlsReceiveCheck = defineCriterion({
  id: 'tls_receive',
  level: 'needs_improvement',
  rule: 'Every reachable MX host offers STARTTLS and completes the TLS handshake (RFC 3207); a 5xx to STARTTLS counts as no TLS, a 454 as not measured. Null or no MX: n/a.',
  scope: 'mx_ip',
  reasons: REASONS,
  judge(input) {
    const mx = input.mx;
    if (mx.kind === 'unknown' || mx.kind === 'invalid') return fromMx(mx.finding);
    return closedSmtpUnknown(evaluateTlsReceive(mx.probes, { nullMx: mx.nullMx, noMx: mx.noMx }), REASONS);
  },
});
