// The session steps: greeting -> EHLO (HELO fallback) -> STARTTLS (RFC 3207) with the certificate recorded ->
// EHLO again -> the open-relay test (MAIL FROM / RCPT TO to a domain we do not host, RSET between attempts) ->
// QUIT. The replies decide what to send next; what they mean is for lib/checks/.
import net from 'node:net';
import type tls from 'node:tls';
import type { OutboundGate } from '../../net/outbound.ts';
import { ProbeError, SmtpWire, connectWithTimeout, type ConnectFn, type Limits, type Recorder } from './wire.ts';
import { handshakeClosed, handshakeError, observeCert, startTls, type HandshakeSlots, type TlsContext } from './tls.ts';
import { presentedChain } from '../../net/presented-cert.ts';
import type { RelayAttempt, RelayVariant, SmtpConnectionEnd, SmtpObservation, SmtpReply, SmtpStep } from './types.ts';

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
  /** Has the probe's total deadline (sessionDeadlineMs) passed? probeSmtp's own clock. */
  sessionExpired: () => boolean;
  handshakeSlots: HandshakeSlots;
  connect: ConnectFn;
  now: () => Date;
  limits: Limits;
  maxTranscript: number;
  maxTranscriptChars: number;
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

/** Runs one connection's steps, recording where it stopped in `obs.connections`. */
export async function runSession(ip: string, o: Resolved, rec: Recorder, obs: SmtpObservation, mode: 'full' | 'relay_only'): Promise<SessionEnd> {
  const end: SmtpConnectionEnd = { mode, step: 'connect', code: null, error: null };
  (obs.connections ??= []).push(end);
  const stop = (step: SmtpStep, what: { code?: number; error?: string }) => {
    end.step = step;
    end.code = what.code ?? null;
    end.error = what.error ?? null;
  };
  const full = mode === 'full';
  let wire: SmtpWire | null = null;
  let socket: net.Socket;
  try {
    rec.add('I', `connect ${ip} port ${o.port}`);
    socket = await connectWithTimeout(o.connect, ip, o.port, o.connectTimeoutMs);
  } catch (err) {
    if (!(err instanceof ProbeError)) throw err;
    rec.add('I', `connect failed: ${err.reason}`);
    stop('connect', { error: err.reason });
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
      stop('greeting', { error: err.reason });
      return 'done';
    }
    if (full) obs.greeting = greeting;
    if (Math.floor(greeting.code / 100) !== 2) {
      stop('greeting', { code: greeting.code });
      await quit(wire, o);
      return 'done';
    }

    // EHLO, falling back to HELO on 5xx (RFC 5321 §3.2).
    let helo: { verb: 'EHLO' | 'HELO'; reply: SmtpReply };
    try {
      helo = await hello(wire, o.ehloName);
    } catch (err) {
      if (!(err instanceof ProbeError)) throw err;
      stop('ehlo', { error: err.reason });
      return 'done';
    }
    if (full) {
      obs.helo = helo;
      obs.extensions = helo.verb === 'EHLO' ? helo.reply.lines.slice(1).map((l) => l.trim().split(/\s+/)[0].toUpperCase()).filter(Boolean) : [];
      obs.tls.offered = obs.extensions.includes('STARTTLS');
    }
    if (helo.reply.code !== 250) {
      stop(helo.verb === 'HELO' ? 'helo' : 'ehlo', { code: helo.reply.code });
      await quit(wire, o);
      return 'done';
    }

    // STARTTLS (RFC 3207).
    if (full && obs.tls.offered) {
      let reply: SmtpReply;
      try {
        reply = await wire.command('STARTTLS');
      } catch (err) {
        if (!(err instanceof ProbeError)) throw err;
        obs.tls.handshake = 'interrupted';
        obs.tls.error = err.reason;
        stop('starttls', { error: err.reason });
        return 'done';
      }
      obs.tls.reply = reply;
      if (reply.code !== 220) {
        // Not 220: no TLS on this connection; the relay test goes on in clear (what 454 or 5xx means: checks).
        obs.tls.handshake = 'refused';
        obs.tls.error = `starttls_${reply.code}`;
      } else {
        // RFC 3207 §5: discard anything the server sent before the handshake (CVE-2011-0411 style injection).
        const left = wire.reader.detach();
        if (left) rec.add('I', `discarded ${left.length} bytes sent before the TLS handshake`);
        const ctx: TlsContext = { servername: o.host, extraCaPems: o.extraCaPems, timeoutMs: o.commandTimeoutMs, now: o.now };
        let t: tls.TLSSocket;
        let release = o.handshakeSlots.tryTake();
        try {
          if (release === null) {
            // Every handshake slot of this worker is taken (tls.ts, HandshakeSlots). The wait is ours, not the
            // server's: the handshake's own timeout starts after it, and a server that hangs up meanwhile is
            // recorded as if it had hung up during the handshake. The plain socket is paused, so whatever the
            // server sends meanwhile stays buffered and reaches the handshake, as without the wait.
            socket.pause();
            const from = rec.elapsed();
            const got = await o.handshakeSlots.take(socket);
            // Closed while waiting (the server hung up, or the probe's deadline closed it: see the catch below).
            if ('closed' in got) throw got.closed ? handshakeError(got.closed) : handshakeClosed();
            release = got.release;
            rec.add('I', `waited ${rec.elapsed() - from} ms for a TLS handshake slot of this worker`);
          }
          t = await startTls(socket, ctx);
        } catch (err) {
          if (!(err instanceof ProbeError)) throw err;
          rec.add('I', `TLS handshake failed: ${err.message}`);
          // The probe's deadline closing the socket, during the handshake or while it waited for a slot, is our
          // cut, not the server's failure: the handshake was interrupted (tls_receive unknown, never NG;
          // CRITERIA.md), like a timeout.
          const cut = o.sessionExpired();
          obs.tls.error = cut ? 'session_deadline' : err.message;
          obs.tls.handshake = cut || err.reason === 'tls_timeout' || err.reason === 'connection_reset' ? 'interrupted' : 'failed';
          stop('tls', { error: cut ? 'session_deadline' : err.reason });
          return 'tls_failed';
        } finally {
          release?.();
        }
        sockets.push(t);
        obs.tls.handshake = 'ok';
        obs.tls.protocol = t.getProtocol() ?? null;
        obs.tls.cipher = t.getCipher()?.name ?? null;
        // The chain first: on Node 20, getPeerCertificate(true) returns {} once getPeerX509Certificate (in
        // observeCert) has been called.
        obs.tls.chain = presentedChain(t);
        obs.tls.cert = observeCert(t, ctx);
        rec.add('I', `TLS ${obs.tls.protocol} ${obs.tls.cipher}${obs.tls.cert ? ` cert CN=${obs.tls.cert.subjectCN} trusted=${obs.tls.cert.trusted}` : ''}`);
        wire.socket = t;
        wire.reader.attach(t);
        obs.relay.overTls = true;
        // RFC 3207 §4.2: the session starts over; forget everything, greet again.
        try {
          const again = await hello(wire, o.ehloName);
          if (again.reply.code !== 250) {
            stop('ehlo_after_tls', { code: again.reply.code });
            await quit(wire, o);
            return 'done';
          }
        } catch (err) {
          if (!(err instanceof ProbeError)) throw err;
          stop('ehlo_after_tls', { error: err.reason });
          return 'done';
        }
      }
    }

    stop('relay', {});
    await relayTest(wire, ip, o, obs);
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

/** The relay attempts: the replies are recorded; lib/checks/smtp-session.ts says what they mean. */
async function relayTest(wire: SmtpWire, ip: string, o: Resolved, obs: SmtpObservation): Promise<void> {
  const attempts = obs.relay.attempts;
  attempts.length = 0;
  obs.relay.planned = [...o.relayVariants];
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
    const attempt: RelayAttempt = { variant, mailFrom: o.mailFrom, rcptTo, mailReply: null, rcptReply: null, error: null };
    attempts.push(attempt);
    try {
      attempt.mailReply = await wire.command(`MAIL FROM:<${o.mailFrom}>`);
      if (attempt.mailReply.code !== 250) {
        // Without a transaction there is no RCPT to test; a refused sender says nothing about relaying.
        stop = true;
        continue;
      }
      const r = await wire.command(`RCPT TO:<${rcptTo}>`);
      attempt.rcptReply = r;
      // A 2xx proves the relay open: no need to go on. 421: the server is closing the channel (RFC 5321 §3.8).
      if (Math.floor(r.code / 100) === 2 || r.code === 421) stop = true;
    } catch (err) {
      if (!(err instanceof ProbeError)) throw err;
      attempt.error = err.reason;
      stop = true;
    }
  }
}

async function quit(wire: SmtpWire, o: Resolved): Promise<void> {
  try {
    await wire.command('QUIT', Math.min(o.commandTimeoutMs, 5000));
  } catch {
    // The answer to QUIT does not matter; the socket is closed either way.
  }
}
