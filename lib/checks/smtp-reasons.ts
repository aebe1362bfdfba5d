// What the SMTP probe recorded about a failed step (a socket error, a reply code, a timeout) as one of the
// closed SMTP_FAILURE_REASONS. The probe keeps the raw text (`greeting_554`, `starttls_454`, …) in its
// observation; checks judge with the closed code and keep the raw text in the detail.
import type { Finding } from '../criteria.ts';
import type { SmtpFailureReason } from './reasons.ts';
import { DNS_FAILURE_REASONS, MX_SET_REASONS, NOT_MEASURED_REASONS, SMTP_FAILURE_REASONS } from './reasons.ts';

/**
 * Every reason a criterion judged over the MX hosts' SMTP sessions can leave unknown or n/a with: the MX set's,
 * a host not measured, a session that failed, a DNS failure (tls_receive and open_relay spread it in).
 */
export const MX_SESSION_REASONS = {
  ...MX_SET_REASONS,
  ...NOT_MEASURED_REASONS,
  ...SMTP_FAILURE_REASONS,
  ...DNS_FAILURE_REASONS,
} as const;

/** An unknown from a session carries what the probe recorded; judge it with the closed SMTP code. */
export function closedSmtpUnknown(f: Finding, reasons: object): Finding {
  return f.status === 'unknown' && !Object.hasOwn(reasons, f.reason) ? { ...f, reason: smtpReason(f.reason) } : f;
}

/** RFC 5321 §4.2.1: the first digit is the class: 4 transient negative, 5 permanent negative. */
function byClass(code: string, tempfail: SmtpFailureReason, otherwise: SmtpFailureReason): SmtpFailureReason {
  return code.startsWith('4') ? tempfail : otherwise;
}

export function smtpReason(raw: string | null | undefined): SmtpFailureReason {
  if (!raw) return 'smtp_error';
  if (raw in SMTP_FAILURE_REASONS) return raw as SmtpFailureReason;
  let m: RegExpExecArray | null;
  // RFC 5321 §3.1 / §4.3.2: a 554 greeting refuses us for good; any other 4xx greeting asks us to come back.
  if ((m = /^greeting_(\d{3})$/.exec(raw))) return m[1] === '421' ? 'greets_421' : byClass(m[1], 'greeting_tempfail', 'greeting_rejected');
  if (/^ehlo_after_tls_/.test(raw)) return 'ehlo_after_tls_failed';
  if ((m = /^ehlo_(\d{3})$/.exec(raw))) return byClass(m[1], 'ehlo_tempfail', 'ehlo_failed');
  if ((m = /^ehlo_(.+)$/.exec(raw))) return m[1] in SMTP_FAILURE_REASONS ? (m[1] as SmtpFailureReason) : 'ehlo_failed';
  // RFC 3207 §4: 454 "TLS not available due to temporary reason".
  if ((m = /^starttls_(\d{3})$/.exec(raw))) return byClass(m[1], 'starttls_tempfail', 'starttls_failed');
  if ((m = /^starttls_(.+)$/.exec(raw))) return m[1] in SMTP_FAILURE_REASONS ? (m[1] as SmtpFailureReason) : 'starttls_failed';
  if ((m = /^rcpt_(\d{3})$/.exec(raw))) return byClass(m[1], 'rcpt_tempfail', 'relay_unclear');
  if ((m = /^mail_from_(\d{3})$/.exec(raw))) return byClass(m[1], 'tempfail_4xx', 'mail_refused');
  if (raw === 'timeout') return 'command_timeout';
  if (raw === 'unreachable') return 'host_unreachable';
  if (raw === 'incomplete') return 'relay_unclear';
  return 'smtp_error';
}
