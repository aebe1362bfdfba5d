// open_relay (CRITERIA.md): no MX host, and for a test mail no SMTP-speaking sending host, accepts RCPT TO for a
// foreign domain from us (RFC 5321 §3.6 / RFC 2505). The probe never sends DATA.
import { finding } from '../../criteria.ts';
import { defineCriterion, reason } from '../contract.ts';
import { fromMx, type MxProbe } from '../judge-input.ts';
import type { SmtpObservation } from '../../probes/smtp/index.ts';
import { evaluateOpenRelay, type RelayProbe } from './open-relay.ts';
import { closedSmtpUnknown, MX_SESSION_REASONS } from '../smtp-reasons.ts';

const REASONS = {
  open_relay: reason('accepts mail for a foreign domain from us', '外部ドメイン宛てのメールを中継する'),
  relay_refused: reason('every host refuses to relay', 'すべてのホストが中継を拒否した'),
  no_smtp_host: reason('the sender does not accept SMTP connections and there is no MX', '送信元がSMTPを受け付けず、MXもない'),
  ...MX_SESSION_REASONS,
} as const;

export const openRelayCheck = defineCriterion({
  id: 'open_relay',
  level: 'danger',
  rule: 'NG if the sending host or any MX host accepts RCPT TO for a domain it does not serve (2xx) from us, in any of five address forms; OK if every one refuses (5xx). An outbound-only sender (no SMTP) is skipped.',
  scope: 'mx_ip',
  reasons: REASONS,
  judge(input) {
    const mx = input.mx;
    const mail = input.mail;
    const sender: RelayProbe | null = mail ? { ip: mail.mail.clientIp, role: 'sender', host: mail.mail.helo, obs: mail.sender.smtp } : null;
    const senderNg = () => (sender ? evaluateOpenRelay([sender]) : null);
    if (mx.kind === 'unknown' || mx.kind === 'invalid') {
      const s = senderNg();
      return s?.status === 'ng' ? s : fromMx(mx.finding);
    }
    const probed = mx.probes.filter((p): p is MxProbe & { ip: string; obs: SmtpObservation } => !!p.ip && !!p.obs);
    const mxRelay: RelayProbe[] = probed.map((p) => ({ ip: p.ip, role: 'mx', host: p.host, obs: p.obs }));
    if (mxRelay.length === 0 && !mx.nullMx && !mx.noMx) {
      const s = senderNg();
      return s?.status === 'ng' ? s : finding('unknown', mx.probes[0]?.unmeasured ?? 'not_probed', 'no MX host could be probed');
    }
    // An MX IP that is also the sender is judged as an MX (it must answer SMTP).
    const hosts = !sender || mxRelay.some((p) => p.ip === sender.ip) ? mxRelay : [...mxRelay, sender];
    return closedSmtpUnknown(evaluateOpenRelay(hosts, { nullMx: mx.nullMx, noMx: mx.noMx }), REASONS);
  },
});
