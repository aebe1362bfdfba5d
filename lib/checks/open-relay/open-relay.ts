// open_relay (../shared/CRITERIA.md): `ng` if the sending host or any MX host accepts RCPT TO for a foreign
// domain (2xx) from us; `ok` if every one of them refuses (5xx, including 530); else `unknown`. The sending host
// counts only if it answers SMTP at all: outbound-only servers (connection refused, no greeting) are common and
// are skipped, not `unknown`.
import { finding, type Finding } from '../../criteria.ts';
import type { SmtpObservation } from '../../probes/smtp/index.ts';
import { acceptedAttempt, relayOutcome, smtpSession } from '../smtp-session.ts';

export interface RelayProbe {
  ip: string;
  role: 'mx' | 'sender';
  host?: string | null;
  obs: SmtpObservation;
}

/** The sender host did not speak SMTP to us at all: it is an outbound-only server. */
function silentSender(p: RelayProbe): boolean {
  if (p.role !== 'sender') return false;
  const { session } = smtpSession(p.obs);
  return session === 'unreachable' || session === 'no_greeting';
}

function where(p: RelayProbe): string {
  return p.host ? `${p.host} (${p.ip})` : p.ip;
}

export function evaluateOpenRelay(hosts: RelayProbe[], info: { nullMx?: boolean; noMx?: boolean } = {}): Finding {
  // One IP may be both the sender and an MX; judge it once.
  const seen = new Set<string>();
  const counted = hosts.filter((p) => !silentSender(p) && !seen.has(p.ip) && seen.add(p.ip));
  if (counted.length === 0) {
    if (info.nullMx) return finding('na', 'null_mx', 'null MX and no SMTP-speaking sender');
    if (hosts.length > 0) return finding('na', 'no_smtp_host', 'the sender does not accept SMTP connections and there is no MX');
    return finding('na', 'no_mx', 'no MX host to test');
  }
  const judged = counted.map((p) => ({ p, relay: relayOutcome(p.obs) }));
  const open = judged.filter((j) => j.relay.outcome === 'open').map((j) => j.p);
  if (open.length > 0) {
    const describe = (p: RelayProbe) => {
      const a = acceptedAttempt(p.obs.relay);
      return `open relay on ${where(p)}${a && a.variant !== 'plain' ? ` (accepted RCPT TO:<${a.rcptTo}>)` : ''}`;
    };
    return finding('ng', 'open_relay', open.map(describe).join('; '));
  }
  const notRefused = judged.filter((j) => j.relay.outcome !== 'refused');
  if (notRefused.length === 0) {
    return finding('ok', 'relay_refused', `relay refused by ${counted.length === 1 ? where(counted[0]) : `all ${counted.length} hosts`}`);
  }
  const reasonOf = (j: (typeof judged)[number]) => {
    const s = smtpSession(j.p.obs);
    return j.relay.reason ?? s.reason ?? s.session;
  };
  return finding('unknown', reasonOf(notRefused[0]), notRefused.map((j) => `could not test ${where(j.p)}: ${reasonOf(j)}`).join('; '));
}
