// The session steps: greeting -> EHLO (HELO fallback) -> STARTTLS (RFC 3207) with the certificate recorded ->
// EHLO again -> the open-relay test (MAIL FROM / RCPT TO to a domain we do not host, RSET between attempts) ->
// QUIT. The replies decide what to send next; what they mean is for lib/checks/.
import net from 'node:net';
import type tls from 'node:tls';
import type { OutboundGate } from '../../net/outbound.ts';
import { ProbeError, SmtpWire, connectWithTimeout, type ConnectFn, type Limits, type Recorder } from './wire.ts';
import { observeCert, startTls, type TlsContext } from './tls.ts';
import type { RelayAttempt, RelayVariant, SmtpObservation, SmtpReply } from './types.ts';

/** The probe options with every default filled in (index.ts resolves them). */
export interface Resolved {
  port: number;
  host: string | null;
  ehloName: string;
  connectTimeoutMs: number;
  bannerTimeoutMs: number;
  commandTimeoutMs: number;
  extraCaPems: string[];
  lab: boolean;
  relayTestDomain: string;
  mailFrom: string;
  relayVariants: readonly RelayVariant[];
  relayLocalPart: string;
  relayFallbackPlain: boolean;
  gate: OutboundGate;
  sessionDeadlineMs: number;
  connect: ConnectFn;
  now: () => Date;
  limits: Limits;
  maxTranscript: number;
}



function addressLiteral(ip: string): string {
  // RFC 5321 §4.1.3: IPv6 address literals carry the "IPv6:" tag.
  return net.isIP(ip) === 6 ? `[IPv6:${ip}]` : `[${ip}]`;
}

function relayRecipient(variant: RelayVariant, local: string, domain: string, ip: string): string {
  const lit = addressLiteral(ip);
  switch (variant) {
    case 'plain': return `${local}@${domain}`;
    // The %-hack: user%foreign@us, which some MTAs rewrite to user@foreign and relay.
    case 'percent_hack': return `${local}%${domain}@${lit}`;
    // A quoted local part holding a foreign address.
    case 'quoted': return `"${local}@${domain}"`;
    // RFC 5321 §4.1.1.3 / Appendix C source route: servers should ignore the route, some follow it.
    case 'source_route': return `@${lit}:${local}@${domain}`;
    // UUCP bang path routed through us.
    case 'bang_path': return `${domain}!${local}@${lit}`;
  }
}


export type SessionEnd = 'done' | 'tls_failed';

export async function runSession(ip: string, o: Resolved, rec: Recorder, obs: SmtpObservation, mode: 'full' | 'relay_only'): Promise<SessionEnd> {
  const full = mode === 'full';
  let wire: SmtpWire | null = null;
  let socket: net.Socket;
  try {
    rec.add('I', `connect ${ip} port ${o.port}`);
    socket = await connectWithTimeout(o.connect, ip, o.port, o.connectTimeoutMs);
  } catch (err) {
    if (!(err instanceof ProbeError)) throw err;
    rec.add('I', `connect failed: ${err.reason}`);
    if (full) {
      obs.session = 'unreachable';
      obs.reason = err.reason;
    }
    obs.relay.reason = err.reason;
    return 'done';
  }
  const sockets: net.Socket[] = [socket];
  try {
    wire = new SmtpWire(socket, rec, o.limits, o.commandTimeoutMs);

    // Greeting (RFC 5321 §4.3.1, §4.5.3.2.1: be patient).
    let greeting: SmtpReply;
    try {
      greeting = await wire.reader.read(o.bannerTimeoutMs, 'banner_timeout');
    } catch (err) {
      if (!(err instanceof ProbeError)) throw err;
      if (full) {
        obs.session = 'no_greeting';
        obs.reason = err.reason === 'connection_closed' ? 'closed_before_greeting' : err.reason;
      }
      obs.relay.reason = err.reason === 'banner_timeout' ? 'banner_timeout' : 'no_greeting';
      return 'done';
    }
    if (full) obs.greeting = greeting;
    if (Math.floor(greeting.code / 100) !== 2) {
      const cls = Math.floor(greeting.code / 100);
      if (full) {
        obs.session = cls === 4 ? 'greets_421' : 'session_failed';
        obs.reason = `greeting_${greeting.code}`;
      }
      // RFC 5321 §3.1: after a 554 greeting the server accepts no mail from us, so nobody like us can relay.
      if (cls === 5) {
        obs.relay.outcome = 'refused';
        obs.relay.reason = `greeting_${greeting.code}`;
      } else {
        obs.relay.reason = `greeting_${greeting.code}`;
      }
      await quit(wire, o);
      return 'done';
    }

    // EHLO, falling back to HELO on 5xx (RFC 5321 §3.2).
    let helo: { verb: 'EHLO' | 'HELO'; reply: SmtpReply };
    try {
      helo = await hello(wire, o.ehloName);
    } catch (err) {
      if (!(err instanceof ProbeError)) throw err;
      if (full) {
        obs.session = 'session_failed';
        obs.reason = `ehlo_${err.reason}`;
      }
      obs.relay.reason = `ehlo_${err.reason}`;
      return 'done';
    }
    if (full) {
      obs.helo = helo;
      obs.extensions = helo.verb === 'EHLO' ? helo.reply.lines.slice(1).map((l) => l.trim().split(/\s+/)[0].toUpperCase()).filter(Boolean) : [];
      obs.tls.offered = obs.extensions.includes('STARTTLS');
    }
    if (helo.reply.code !== 250) {
      if (full) {
        obs.session = helo.reply.code === 421 ? 'greets_421' : 'session_failed';
        obs.reason = `${helo.verb.toLowerCase()}_${helo.reply.code}`;
      }
      obs.relay.reason = `${helo.verb.toLowerCase()}_${helo.reply.code}`;
      await quit(wire, o);
      return 'done';
    }

    // STARTTLS (RFC 3207).
    if (full && !obs.tls.offered) {
      obs.session = 'no_starttls';
      obs.reason = helo.verb === 'HELO' ? 'no_esmtp' : 'starttls_not_offered';
    }
    if (full && obs.tls.offered) {
      let reply: SmtpReply;
      try {
        reply = await wire.command('STARTTLS');
      } catch (err) {
        if (!(err instanceof ProbeError)) throw err;
        obs.tls.handshake = 'interrupted';
        obs.tls.error = err.reason;
        obs.session = 'session_failed';
        obs.reason = `starttls_${err.reason}`;
        obs.relay.reason = obs.reason;
        return 'done';
      }
      obs.tls.reply = reply;
      if (reply.code !== 220) {
        obs.tls.handshake = 'refused';
        obs.tls.error = `starttls_${reply.code}`;
        // 454 (RFC 3207 §4) is temporary: not measured; a permanent refusal is as good as no TLS.
        obs.session = reply.code >= 500 ? 'handshake_failed' : 'session_failed';
        obs.reason = `starttls_${reply.code}`;
      } else {
        // RFC 3207 §5: discard anything the server sent before the handshake (CVE-2011-0411 style injection).
        const left = wire.reader.detach();
        if (left) rec.add('I', `discarded ${left.length} bytes sent before the TLS handshake`);
        const ctx: TlsContext = { servername: o.host, extraCaPems: o.extraCaPems, timeoutMs: o.commandTimeoutMs, now: o.now };
        let t: tls.TLSSocket;
        try {
          t = await startTls(socket, ctx);
        } catch (err) {
          if (!(err instanceof ProbeError)) throw err;
          rec.add('I', `TLS handshake failed: ${err.message}`);
          obs.tls.error = err.message;
          if (err.reason === 'tls_timeout' || err.reason === 'connection_reset') {
            obs.tls.handshake = 'interrupted';
            obs.session = 'session_failed';
            obs.reason = err.reason;
          } else {
            obs.tls.handshake = 'failed';
            obs.session = 'handshake_failed';
            obs.reason = 'tls_error';
          }
          obs.relay.reason = 'tls_failed';
          return 'tls_failed';
        }
        sockets.push(t);
        obs.tls.handshake = 'ok';
        obs.tls.protocol = t.getProtocol() ?? null;
        obs.tls.cipher = t.getCipher()?.name ?? null;
        obs.tls.cert = observeCert(t, ctx);
        rec.add('I', `TLS ${obs.tls.protocol} ${obs.tls.cipher}${obs.tls.cert ? ` cert CN=${obs.tls.cert.subjectCN} trusted=${obs.tls.cert.trusted}` : ''}`);
        wire.socket = t;
        wire.reader.attach(t);
        obs.relay.overTls = true;
        // RFC 3207 §4.2: the session starts over; forget everything, greet again.
        try {
          const again = await hello(wire, o.ehloName);
          if (again.reply.code !== 250) {
            obs.relay.reason = `ehlo_after_tls_${again.reply.code}`;
            await quit(wire, o);
            return 'done';
          }
        } catch (err) {
          if (!(err instanceof ProbeError)) throw err;
          obs.relay.reason = `ehlo_after_tls_${err.reason}`;
          return 'done';
        }
      }
    }

    await relayTest(wire, ip, o, obs);
    if (obs.session === 'ok' && obs.relay.attempts.some((a) => a.rcptReply && (a.rcptReply.code === 450 || a.rcptReply.code === 451))) {
      obs.session = 'greylisted';
      obs.reason = 'rcpt_tempfail';
    }
    await quit(wire, o);
    return 'done';
  } finally {
    wire?.reader.detach();
    for (const s of sockets.reverse()) s.destroy();
    rec.add('I', 'closed');
  }
}

async function hello(wire: SmtpWire, name: string): Promise<{ verb: 'EHLO' | 'HELO'; reply: SmtpReply }> {
  const ehlo = await wire.command(`EHLO ${name}`);
  if (ehlo.code >= 500 && ehlo.code < 600) {
    return { verb: 'HELO', reply: await wire.command(`HELO ${name}`) };
  }
  return { verb: 'EHLO', reply: ehlo };
}

async function relayTest(wire: SmtpWire, ip: string, o: Resolved, obs: SmtpObservation): Promise<void> {
  const attempts = obs.relay.attempts;
  attempts.length = 0;
  let stop = false;
  for (const variant of o.relayVariants) {
    if (stop) break;
    if (attempts.length > 0) {
      // RFC 5321 §4.1.1.5: RSET clears the transaction before the next attempt.
      try {
        const r = await wire.command('RSET');
        if (r.code !== 250) break;
      } catch (err) {
        if (!(err instanceof ProbeError)) throw err;
        break;
      }
    }
    const rcptTo = relayRecipient(variant, o.relayLocalPart, o.relayTestDomain, ip);
    const attempt: RelayAttempt = { variant, mailFrom: o.mailFrom, rcptTo, mailReply: null, rcptReply: null, outcome: 'error', reason: null };
    attempts.push(attempt);
    try {
      attempt.mailReply = await wire.command(`MAIL FROM:<${o.mailFrom}>`);
      if (attempt.mailReply.code !== 250) {
        // Without a transaction there is no RCPT to test; a refused sender says nothing about relaying.
        attempt.reason = `mail_from_${attempt.mailReply.code}`;
        stop = true;
        continue;
      }
      const r = await wire.command(`RCPT TO:<${rcptTo}>`);
      attempt.rcptReply = r;
      const cls = Math.floor(r.code / 100);
      if (cls === 2) {
        attempt.outcome = 'accepted';
        stop = true; // proven open: no need to go on
      } else if (cls === 5) {
        attempt.outcome = 'refused';
      } else if (cls === 4) {
        attempt.outcome = 'tempfail';
        attempt.reason = `rcpt_${r.code}`;
        if (r.code === 421) stop = true; // the server is closing the channel (RFC 5321 §3.8)
      } else {
        attempt.reason = `rcpt_${r.code}`;
      }
    } catch (err) {
      if (!(err instanceof ProbeError)) throw err;
      attempt.reason = err.reason;
      stop = true;
    }
  }
  const accepted = attempts.find((a) => a.outcome === 'accepted');
  if (accepted) {
    obs.relay.outcome = 'open';
    obs.relay.reason = `accepts_${accepted.variant}`;
  } else if (attempts.length > 0 && attempts.length === o.relayVariants.length && attempts.every((a) => a.outcome === 'refused')) {
    obs.relay.outcome = 'refused';
    obs.relay.reason = `rcpt_${attempts[0].rcptReply!.code}`;
  } else {
    obs.relay.outcome = 'unknown';
    const first = attempts.find((a) => a.outcome !== 'refused');
    obs.relay.reason = first?.reason ?? (first?.outcome === 'tempfail' ? 'tempfail_4xx' : 'incomplete');
  }
}

async function quit(wire: SmtpWire, o: Resolved): Promise<void> {
  try {
    await wire.command('QUIT', Math.min(o.commandTimeoutMs, 5000));
  } catch {
    // The answer to QUIT does not matter; the socket is closed either way.
  }
}
