// What an SMTP session means, judged from what the probe recorded (lib/probes/smtp/): the session class, the
// relay test's outcome, and each relay attempt's outcome. Pure functions over stored observations, so every
// judgement can be re-made without probing. Observations stored before issue 14 carried these judgements
// (`session`, `relay.outcome`, …); they are never read: the same answers are re-derived from the replies, the
// transcript and the errors they recorded (`legacyConnections`), and test/smtp-session-legacy.test.ts checks
// that on observations the old probe produced.
import { RELAY_VARIANTS, type RelayAttempt, type RelayObservation, type SmtpConnectionEnd, type SmtpObservation } from '../probes/smtp/index.ts';

/**
 * How the session went, in internet.nl's terms (plus `forbidden_address`, never connected, and
 * `session_failed`, the server answered the greeting but the session broke before TLS could be judged).
 */
export type SmtpSessionClass =
  | 'forbidden_address'
  | 'unreachable'
  | 'greets_421'
  | 'no_greeting'
  | 'session_failed'
  | 'no_starttls'
  | 'handshake_failed'
  | 'greylisted'
  | 'ok';

export interface SmtpSession {
  session: SmtpSessionClass;
  /** Why, as a stable code: connection_refused, banner_timeout, greeting_421, starttls_454, tls_error, … */
  reason: string | null;
}

/** `open`: some foreign RCPT got 2xx; `refused`: every attempt got 5xx; `unknown`: anything else. */
export type RelayOutcome = 'open' | 'refused' | 'unknown' | 'not_tested';
/** accepted = 2xx on RCPT (relays); refused = 5xx; tempfail = 4xx; error = timeout/reset/MAIL refused. */
export type RelayAttemptOutcome = 'accepted' | 'refused' | 'tempfail' | 'error';

/** RFC 5321 §4.2.1: the first digit of a reply code is its class (2 positive, 4 transient, 5 permanent). */
const replyClass = (code: number) => Math.floor(code / 100);

// ---------------------------------------------------------------------------------------------------------
// Relay attempts

/** The I/O error that cut an attempt. Before issue 14 it was stored in `reason`, where no reply explains it. */
function attemptError(a: RelayAttempt): string | null {
  if (a.error !== undefined) return a.error;
  const explained = a.rcptReply !== null || (a.mailReply !== null && a.mailReply.code !== 250);
  return explained ? null : a.reason ?? null;
}

/** One relay attempt (MAIL FROM, RCPT TO a foreign domain), from its replies (RFC 5321 §4.2 reply classes). */
export function relayAttemptOutcome(a: RelayAttempt): { outcome: RelayAttemptOutcome; reason: string | null } {
  const error = attemptError(a);
  if (error !== null) return { outcome: 'error', reason: error };
  // Without a transaction there is no RCPT to test; a refused sender says nothing about relaying.
  if (a.mailReply && a.mailReply.code !== 250) return { outcome: 'error', reason: `mail_from_${a.mailReply.code}` };
  if (!a.rcptReply) return { outcome: 'error', reason: null };
  const code = a.rcptReply.code;
  switch (replyClass(code)) {
    case 2: return { outcome: 'accepted', reason: null };
    case 5: return { outcome: 'refused', reason: null };
    case 4: return { outcome: 'tempfail', reason: `rcpt_${code}` };
    default: return { outcome: 'error', reason: `rcpt_${code}` };
  }
}

/** Did the relay test try every variant it meant to (the loop also stops on a failed RSET)? */
function relayComplete(obs: SmtpObservation): boolean {
  const { relay } = obs;
  if (relay.planned) return relay.attempts.length === relay.planned.length;
  // Before issue 14 the plan was not stored: RSET is sent only before a next attempt, so an RSET after the
  // last RCPT means the RSET failed and the loop broke off.
  const t = obs.transcript;
  let lastRcpt = -1;
  for (let i = t.length - 1; i >= 0; i--) {
    if (t[i].dir === 'C' && /^RCPT TO:/i.test(t[i].line)) {
      lastRcpt = i;
      break;
    }
  }
  if (lastRcpt < 0) return relay.attempts.length === RELAY_VARIANTS.length;
  return !t.slice(lastRcpt + 1).some((e) => e.dir === 'C' && /^RSET\b/i.test(e.line));
}

/** The outcome of a relay test that ran: open on any 2xx, refused when every planned attempt got 5xx. */
function relayTestResult(obs: SmtpObservation): { outcome: RelayOutcome; reason: string | null } {
  const attempts = obs.relay.attempts;
  const judged = attempts.map((a) => ({ a, ...relayAttemptOutcome(a) }));
  const accepted = judged.find((j) => j.outcome === 'accepted');
  if (accepted) return { outcome: 'open', reason: `accepts_${accepted.a.variant}` };
  if (attempts.length > 0 && relayComplete(obs) && judged.every((j) => j.outcome === 'refused')) {
    return { outcome: 'refused', reason: `rcpt_${attempts[0].rcptReply!.code}` };
  }
  const first = judged.find((j) => j.outcome !== 'refused');
  return { outcome: 'unknown', reason: first?.reason ?? (first?.outcome === 'tempfail' ? 'tempfail_4xx' : 'incomplete') };
}

// ---------------------------------------------------------------------------------------------------------
// Connections

const RECONNECT = 'reconnecting in clear for the relay test';

/** Before issue 14 a session deadline overwrote the recorded error; the sockets were closed under it. */
function legacyError(obs: SmtpObservation): string {
  const r = obs.reason ?? 'connection_closed';
  return r === 'session_deadline' ? 'connection_closed' : r;
}

const codeOf = (line: string) => Number(/^(\d{3})/.exec(line)?.[1] ?? 0);

/** The relay-only reconnect of an old observation, from its part of the transcript (its replies were not kept). */
function legacyRelayOnly(obs: SmtpObservation, part: SmtpObservation['transcript']): SmtpConnectionEnd {
  const end = (step: SmtpConnectionEnd['step'], code: number | null, error: string | null): SmtpConnectionEnd => ({ mode: 'relay_only', step, code, error });
  const failed = part.find((e) => e.dir === 'I' && e.line.startsWith('connect failed: '));
  if (failed) return end('connect', null, failed.line.slice('connect failed: '.length));
  const quitAt = part.findIndex((e) => e.dir === 'C' && e.line === 'QUIT');
  const server = (quitAt < 0 ? part : part.slice(0, quitAt)).filter((e) => e.dir === 'S');
  if (server.length === 0) return end('greeting', null, 'connection_closed');
  const greeting = codeOf(server[0].line);
  if (replyClass(greeting) !== 2) return end('greeting', greeting, null);
  if (obs.relay.attempts.length > 0) return end('relay', null, null);
  const last = codeOf(server[server.length - 1].line);
  const verb = part.some((e) => e.dir === 'C' && /^HELO /.test(e.line)) ? 'helo' : 'ehlo';
  return server.length > 1 && last !== 250 ? end(verb, last, null) : end('ehlo', null, 'connection_closed');
}

/**
 * Where each connection stopped: recorded since issue 14; for older observations rebuilt from the replies,
 * the TLS record, the transcript and the one error they stored (`reason`).
 */
export function legacyConnections(obs: SmtpObservation): SmtpConnectionEnd[] {
  if (obs.connections) return obs.connections;
  const t = obs.transcript;
  const cut = t.findIndex((e) => e.dir === 'I' && e.line === RECONNECT);
  const first = cut < 0 ? t : t.slice(0, cut);
  const full = (step: SmtpConnectionEnd['step'], code: number | null, error: string | null): SmtpConnectionEnd => ({ mode: 'full', step, code, error });
  const out: SmtpConnectionEnd[] = [];
  const failed = first.find((e) => e.dir === 'I' && e.line.startsWith('connect failed: '));
  if (obs.forbiddenRange !== undefined) out.push(full('policy', null, obs.reason ?? 'forbidden_address'));
  else if (failed) out.push(full('connect', null, failed.line.slice('connect failed: '.length)));
  else if (!obs.greeting) {
    const r = legacyError(obs);
    out.push(full('greeting', null, r === 'closed_before_greeting' ? 'connection_closed' : r));
  } else if (replyClass(obs.greeting.code) !== 2) out.push(full('greeting', obs.greeting.code, null));
  else if (!obs.helo) out.push(full('ehlo', null, legacyError(obs).replace(/^ehlo_/, '')));
  else if (obs.helo.reply.code !== 250) out.push(full(obs.helo.verb === 'HELO' ? 'helo' : 'ehlo', obs.helo.reply.code, null));
  else if (obs.tls.offered && obs.tls.handshake === 'interrupted' && !obs.tls.reply) out.push(full('starttls', null, obs.tls.error ?? 'connection_closed'));
  else if (obs.tls.offered && obs.tls.handshake === 'interrupted') out.push(full('tls', null, obs.tls.error === 'tls_timeout' ? 'tls_timeout' : 'connection_reset'));
  else if (obs.tls.offered && obs.tls.handshake === 'failed') out.push(full('tls', null, 'tls_error'));
  else if (obs.tls.offered && obs.tls.handshake === 'ok' && obs.relay.attempts.length === 0) {
    // The EHLO after the handshake failed: its reply is the last server line before QUIT, if any.
    const tlsAt = first.findIndex((e) => e.dir === 'I' && e.line.startsWith('TLS '));
    const after = first.slice(tlsAt + 1);
    const quitAt = after.findIndex((e) => e.dir === 'C' && e.line === 'QUIT');
    const server = (quitAt < 0 ? after : after.slice(0, quitAt)).filter((e) => e.dir === 'S');
    const code = server.length > 0 ? codeOf(server[server.length - 1].line) : 0;
    out.push(code !== 0 && code !== 250 ? full('ehlo_after_tls', code, null) : full('ehlo_after_tls', null, legacyError(obs)));
  } else out.push(full('relay', null, null));
  if (cut >= 0) out.push(legacyRelayOnly(obs, t.slice(cut + 1)));
  return out;
}

function deadlineReached(obs: SmtpObservation): boolean {
  if (obs.deadlineReached !== undefined) return obs.deadlineReached;
  return obs.transcript.some((e) => e.dir === 'I' && e.line.startsWith('session deadline of '));
}

// ---------------------------------------------------------------------------------------------------------
// The session class

/** How the session went (the first connection; the relay-only reconnect does not change it). */
export function smtpSession(obs: SmtpObservation): SmtpSession {
  const s = sessionBeforeDeadline(obs);
  // The whole probe's deadline cut the session: whatever it had reached, it did not finish.
  if (deadlineReached(obs)) return { session: s.session === 'ok' ? 'session_failed' : s.session, reason: 'session_deadline' };
  return s;
}

/** The session class alone. */
export function smtpSessionClass(obs: SmtpObservation): SmtpSessionClass {
  return smtpSession(obs).session;
}

function sessionBeforeDeadline(obs: SmtpObservation): SmtpSession {
  const c = legacyConnections(obs)[0];
  if (!c) return { session: 'ok', reason: null };
  switch (c.step) {
    case 'policy':
      return { session: 'forbidden_address', reason: c.error };
    case 'connect':
      return { session: 'unreachable', reason: c.error };
    case 'greeting':
      if (c.code === null) return { session: 'no_greeting', reason: c.error === 'connection_closed' ? 'closed_before_greeting' : c.error };
      // RFC 5321 §3.1: a 4xx (421) greeting is "come back later"; a 554 greeting refuses all service.
      return { session: replyClass(c.code) === 4 ? 'greets_421' : 'session_failed', reason: `greeting_${c.code}` };
    case 'ehlo':
    case 'helo':
      if (c.code === null) return { session: 'session_failed', reason: `ehlo_${c.error}` };
      // RFC 5321 §3.8: 421 is the server closing the channel, the same as a 421 greeting.
      return { session: c.code === 421 ? 'greets_421' : 'session_failed', reason: `${c.step}_${c.code}` };
    case 'starttls':
      return { session: 'session_failed', reason: `starttls_${c.error}` };
    case 'tls':
      // A timeout or reset mid-handshake is not a failed handshake: nothing was measured.
      if (c.error === 'tls_timeout' || c.error === 'connection_reset') return { session: 'session_failed', reason: c.error };
      return { session: 'handshake_failed', reason: 'tls_error' };
    default:
      break;
  }
  // Past EHLO: the EHLO keywords and the STARTTLS reply say how TLS went.
  if (!obs.tls.offered) return { session: 'no_starttls', reason: obs.helo?.verb === 'HELO' ? 'no_esmtp' : 'starttls_not_offered' };
  if (obs.tls.handshake === 'refused') {
    // RFC 3207 §4: 454 is "TLS not available due to temporary reason" (not measured); a permanent (5xx)
    // refusal is as good as no TLS.
    const code = obs.tls.reply?.code ?? 0;
    return { session: code >= 500 ? 'handshake_failed' : 'session_failed', reason: `starttls_${code}` };
  }
  // RFC 5321 §4.2.2 450/451 to RCPT: the usual greylisting answer.
  if (obs.relay.attempts.some((a) => a.rcptReply && (a.rcptReply.code === 450 || a.rcptReply.code === 451))) {
    return { session: 'greylisted', reason: 'rcpt_tempfail' };
  }
  return { session: 'ok', reason: null };
}

// ---------------------------------------------------------------------------------------------------------
// The relay test

/** The relay test's outcome and why, over every connection in order (the relay-only reconnect last). */
export function relayOutcome(obs: SmtpObservation): { outcome: RelayOutcome; reason: string | null } {
  let outcome: RelayOutcome = 'not_tested';
  let reason: string | null = null;
  for (const c of legacyConnections(obs)) {
    switch (c.step) {
      case 'policy':
      case 'connect':
        reason = c.error;
        break;
      case 'greeting':
        if (c.code === null) reason = c.error === 'banner_timeout' ? 'banner_timeout' : 'no_greeting';
        else {
          reason = `greeting_${c.code}`;
          // RFC 5321 §3.1: after a 554 greeting the server accepts no mail from us, so nobody like us can relay.
          if (replyClass(c.code) === 5) outcome = 'refused';
        }
        break;
      case 'ehlo':
      case 'helo':
        reason = c.code === null ? `ehlo_${c.error}` : `${c.step}_${c.code}`;
        break;
      case 'starttls':
        reason = `starttls_${c.error}`;
        break;
      case 'tls':
        reason = 'tls_failed';
        break;
      case 'ehlo_after_tls':
        reason = `ehlo_after_tls_${c.code ?? c.error}`;
        break;
      case 'relay':
        ({ outcome, reason } = relayTestResult(obs));
        break;
    }
  }
  if (outcome === 'not_tested' && deadlineReached(obs)) reason = 'session_deadline';
  return { outcome, reason };
}

/** The attempt that proved the relay open, if any. */
export function acceptedAttempt(relay: RelayObservation): RelayAttempt | undefined {
  return relay.attempts.find((a) => relayAttemptOutcome(a).outcome === 'accepted');
}
