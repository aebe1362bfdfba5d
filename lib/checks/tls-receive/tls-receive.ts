// tls_receive (../shared/CRITERIA.md): over all MX hosts, `ng` if any reachable MX does not offer STARTTLS or
// its handshake fails; else `unknown` if any MX could not be measured; else `ok`. Null MX or no MX: `na`.
// Certificate problems are not judged here (SMTP TLS is opportunistic, RFC 3207 §4.1 / RFC 7435); they are
// findings of their own (tls-findings.ts).
import { finding, type Finding } from '../../criteria.ts';
import type { SmtpObservation } from '../../probes/smtp/index.ts';
import { smtpSession } from '../smtp-session.ts';

export interface MxProbe {
  host: string;
  /** null: the MX name had no address (or it could not be resolved). */
  ip: string | null;
  /** null: not probed; `unmeasured` says why. */
  obs: SmtpObservation | null;
  unmeasured?: string;
}

export interface MxSetInfo {
  /** RFC 7505 null MX. */
  nullMx?: boolean;
  /** No MX record (and no implicit MX). */
  noMx?: boolean;
}

export type HostTls = { status: 'ok' | 'ng' | 'unknown'; reason: string };

/** What one MX session says about receive TLS. */
export function tlsReceiveOfHost(obs: SmtpObservation): HostTls {
  // Not reachable far enough to see the EHLO keywords: not measured (a failure to measure is never NG).
  if (!obs.helo || obs.helo.reply.code !== 250) {
    const s = smtpSession(obs);
    return { status: 'unknown', reason: s.reason ?? s.session };
  }
  if (!obs.tls.offered) return { status: 'ng', reason: 'no_starttls' };
  switch (obs.tls.handshake) {
    case 'ok':
      return { status: 'ok', reason: 'starttls' };
    case 'failed':
      return { status: 'ng', reason: 'handshake_failed' };
    case 'refused': {
      // RFC 3207 §4: 454 is "TLS not available due to temporary reason"; a 5xx refusal is no TLS at all.
      const code = obs.tls.reply?.code ?? 0;
      return code >= 500 ? { status: 'ng', reason: 'starttls_refused' } : { status: 'unknown', reason: `starttls_${code}` };
    }
    case 'interrupted':
      return { status: 'unknown', reason: obs.tls.error ?? 'interrupted' };
    default:
      return { status: 'unknown', reason: 'not_attempted' };
  }
}

const WORDS: Record<string, string> = {
  no_starttls: 'no STARTTLS',
  handshake_failed: 'TLS handshake failed',
  starttls_refused: 'STARTTLS refused',
};

function where(m: MxProbe): string {
  return m.ip ? `${m.host} (${m.ip})` : m.host;
}

export function evaluateTlsReceive(mx: MxProbe[], info: MxSetInfo = {}): Finding {
  if (info.nullMx) return finding('na', 'null_mx', 'null MX (RFC 7505): the domain receives no mail');
  if (info.noMx || mx.length === 0) return finding('na', 'no_mx', 'no MX record: the domain receives no mail');
  const judged = mx.map((m) => ({ m, r: m.obs ? tlsReceiveOfHost(m.obs) : { status: 'unknown' as const, reason: m.unmeasured ?? 'not_probed' } }));
  const ng = judged.filter((j) => j.r.status === 'ng');
  if (ng.length > 0) {
    const reasons = [...new Set(ng.map((j) => j.r.reason))];
    return finding('ng', reasons.length === 1 ? reasons[0] : 'no_starttls_or_handshake_failed',
      ng.map((j) => `${WORDS[j.r.reason] ?? j.r.reason} on ${where(j.m)}`).join('; '));
  }
  const unknown = judged.filter((j) => j.r.status === 'unknown');
  if (unknown.length > 0) {
    return finding('unknown', unknown[0].r.reason, unknown.map((j) => `could not measure ${where(j.m)}: ${j.r.reason}`).join('; '));
  }
  return finding('ok', 'starttls', `STARTTLS on ${judged.length === 1 ? where(judged[0].m) : `all ${judged.length} MX hosts`}`);
}
