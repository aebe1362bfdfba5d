// STARTTLS (RFC 3207): the secure contexts, the handshake over the SMTP socket, and what the certificate says.
import net from 'node:net';
import tls from 'node:tls';
import { isSelfSigned } from '../../net/presented-cert.ts';
import { boundedMemo } from '../../bounded-memo.ts';
import { awaitSocketEvent, ProbeError } from './wire.ts';
import type { CertObservation } from './types.ts';

export interface TlsContext {
  servername: string | null;
  extraCaPems: string[];
  timeoutMs: number;
  now: () => Date;
}

// One secure context per set of trusted CAs, built once per process: building it parses the ~140 system root
// certificates, which took 44% of a survey worker's CPU when it was done for every STARTTLS (issue 9 profile).
const secureContexts = boundedMemo<tls.SecureContext>(17);
function secureContextFor(extraCaPems: string[]): tls.SecureContext {
  return secureContexts.get(extraCaPems.join('\n'), () =>
    tls.createSecureContext({
      // Old servers still speak TLS 1.0; seclevel 0 lets OpenSSL 3 negotiate with them so we can record it.
      minVersion: 'TLSv1',
      ciphers: 'DEFAULT:@SECLEVEL=0',
      // `authorized` then tells whether the chain verifies against the system CAs plus the extra ones.
      ca: [...tls.rootCertificates, ...extraCaPems],
    }),
  );
}

/**
 * At most `size` STARTTLS handshakes in progress at once in this process (issue 18). With thousands of sessions
 * in flight, greetings arrive in bursts and so do the handshakes after them: every TLS connection costs about
 * 35-40 KiB of native memory (OpenSSL and Node's TLS wrap, outside the V8 heap), and a burst of hundreds of
 * handshakes on two cores only queues them in the event loop. A session waiting for a slot keeps its plain
 * socket paused (what the server sends meanwhile reaches the handshake as before). FIFO, process-wide.
 *
 * A slot is given back when the handshake ends, or after `holdMs` whichever comes first: a server that stalls
 * its half of the handshake (it has up to the command timeout) must not keep others waiting behind it, so the
 * bound is on bursts of handshakes, not on slow servers.
 */
export class HandshakeSlots {
  private active = 0;
  /** Waiters in arrival order (a Set iterates in insertion order). */
  private readonly waiting = new Set<() => void>();
  constructor(readonly size: number, private readonly holdMs = HANDSHAKE_SLOT_HOLD_MS) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`HandshakeSlots: size must be an integer >= 1, got ${size}`);
  }

  /** Sessions waiting for a slot now. */
  get queued(): number {
    return this.waiting.size;
  }

  /** A slot at once (its release function), or null when all are taken. */
  tryTake(): (() => void) | null {
    if (this.active >= this.size) return null;
    this.active++;
    return this.releaser();
  }

  /**
   * Waits for a slot. Resolves `{ release }` once one is free, or `{ closed }` without one if `socket` closed
   * first (the server hung up, or the session deadline destroyed it), with the error that closed it if any.
   */
  take(socket: net.Socket): Promise<{ release: () => void } | { closed: NodeJS.ErrnoException | null }> {
    const now = this.tryTake();
    if (now) return Promise.resolve({ release: now });
    return new Promise((resolve) => {
      let error: NodeJS.ErrnoException | null = null;
      const grant = () => {
        cleanup();
        this.active++;
        resolve({ release: this.releaser() });
      };
      const onError = (err: NodeJS.ErrnoException) => {
        error ??= err;
      };
      const onClose = () => {
        cleanup();
        resolve({ closed: error });
      };
      const cleanup = () => {
        this.waiting.delete(grant);
        socket.off('error', onError);
        socket.off('close', onClose);
      };
      this.waiting.add(grant);
      socket.on('error', onError);
      socket.once('close', onClose);
    });
  }

  private releaser(): () => void {
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      clearTimeout(timer);
      this.active--;
      const next = this.waiting.values().next();
      if (!next.done) next.value();
    };
    const timer = setTimeout(release, this.holdMs);
    timer.unref();
    return release;
  }
}

/** Longest a handshake keeps its slot (see HandshakeSlots): a normal one takes milliseconds to a second. */
export const HANDSHAKE_SLOT_HOLD_MS = 2000;
/** MAILCENSUS_TLS_HANDSHAKES' default. */
export const DEFAULT_HANDSHAKE_SLOTS = 32;

const sharedSlots = new Map<number, HandshakeSlots>();
/** The process-wide slots of that size: every run's probes in one worker share them. */
export function handshakeSlots(size = DEFAULT_HANDSHAKE_SLOTS): HandshakeSlots {
  let slots = sharedSlots.get(size);
  if (slots === undefined) {
    slots = new HandshakeSlots(size);
    sharedSlots.set(size, slots);
  }
  return slots;
}

/** What a socket error during the handshake (or while waiting for its slot) is recorded as. */
export function handshakeError(err: NodeJS.ErrnoException): ProbeError {
  const code = err.code ?? '';
  const reason = code === 'ECONNRESET' || code === 'EPIPE' ? 'connection_reset' : 'tls_error';
  return new ProbeError(reason, `${code ? `${code}: ` : ''}${err.message}`.slice(0, 300));
}

/** What a close during the handshake (or while waiting for its slot) is recorded as. */
export function handshakeClosed(): ProbeError {
  return new ProbeError('tls_error', 'connection closed during the handshake');
}

export function startTls(socket: net.Socket, ctx: TlsContext): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const options: tls.ConnectionOptions = {
      socket,
      // Certificate problems are recorded, never fatal: SMTP TLS is opportunistic (RFC 3207 §4.1, RFC 7435).
      rejectUnauthorized: false,
      // TLS 1.0 and up, seclevel 0, system CAs plus the extra ones: see secureContextFor.
      secureContext: secureContextFor(ctx.extraCaPems),
      // Keep `authorized` about the chain only; the name is checked separately (observeCert), so a wrong
      // name and an untrusted chain are told apart.
      checkServerIdentity: () => undefined,
    };
    // RFC 6066 §3: SNI carries a host name, never an address literal.
    if (ctx.servername && net.isIP(ctx.servername) === 0) options.servername = ctx.servername;
    const t = tls.connect(options);
    t.on('error', () => {});
    awaitSocketEvent(t, 'secureConnect', ctx.timeoutMs, {
      timeout: () => new ProbeError('tls_timeout'),
      error: handshakeError,
      close: handshakeClosed,
    }).then(() => resolve(t), reject);
  });
}

export function observeCert(t: tls.TLSSocket, ctx: TlsContext): CertObservation | null {
  const peer = t.getPeerCertificate(false);
  const x509 = t.getPeerX509Certificate();
  if (!peer || !x509 || Object.keys(peer).length === 0) return null;
  const now = ctx.now();
  const validFrom = new Date(x509.validFrom);
  const validTo = new Date(x509.validTo);
  const checkedName = ctx.servername;
  const cn = peer.subject?.CN;
  return {
    subjectCN: Array.isArray(cn) ? cn.join(', ') : cn ?? null,
    subjectAltName: peer.subjectaltname ?? null,
    issuer: x509.issuer.replace(/\n/g, ', '),
    validFrom: validFrom.toISOString(),
    validTo: validTo.toISOString(),
    fingerprint256: x509.fingerprint256,
    selfSigned: isSelfSigned(x509),
    trusted: t.authorized,
    trustError: t.authorized ? null : String(t.authorizationError ?? 'unknown'),
    checkedName,
    nameMatch: checkedName ? certNameMatches(checkedName, { subjectCN: cn ?? null, subjectAltName: peer.subjectaltname ?? null }) : null,
    checkedAt: now.toISOString(),
    expired: validTo.getTime() < now.getTime(),
    notYetValid: validFrom.getTime() > now.getTime(),
  };
}

/** What Node's checkServerIdentity reads of a certificate: the subject CN(s) and the subjectAltName string. */
interface IdentityFields {
  subject: { CN?: string | string[] };
  subjectaltname?: string;
}
/** tls.checkServerIdentity over just the fields it reads (its type asks for a whole PeerCertificate). */
const checkIdentity = tls.checkServerIdentity as (hostname: string, cert: IdentityFields) => Error | undefined;

/** Does a certificate with these names cover `host`? RFC 6125 rules, as Node's checkServerIdentity applies them. */
export function certNameMatches(host: string, cert: { subjectCN: string | string[] | null; subjectAltName: string | null }): boolean {
  const fields: IdentityFields = {
    subject: cert.subjectCN ? { CN: cert.subjectCN } : {},
    ...(cert.subjectAltName !== null ? { subjectaltname: cert.subjectAltName } : {}),
  };
  return checkIdentity(host.replace(/\.$/, ''), fields) === undefined;
}

