// The SMTP probe: one session per MX (or sender) IP that records what the server does and judges nothing.
// greeting -> EHLO (HELO fallback) -> STARTTLS (RFC 3207) with the certificate recorded -> EHLO again ->
// the open-relay test (MAIL FROM / RCPT TO to a domain we do not host, RSET between attempts) -> QUIT.
// It never sends DATA or BDAT: the command writer refuses them, so no probe can ever deliver a message.
// Checks (lib/checks/tls-receive/tls-receive.ts, open-relay.ts, tls-findings.ts) judge the observation it returns.
import net from 'node:net';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { createOutboundGate, type OutboundGate } from '../net/outbound.ts';
import type { Config } from '../config.ts';

// ---------------------------------------------------------------------------------------------------------
// Observation types (JSON-serialisable: stored with the diagnosis and re-judged later).

export interface SmtpReply {
  code: number;
  /** The text of every line, without the code and separator. */
  lines: string[];
}

export interface TranscriptEntry {
  /** Milliseconds since the probe started. */
  t: number;
  /** C = client line, S = server line, I = event noted by the probe (connect, TLS, close). */
  dir: 'C' | 'S' | 'I';
  line: string;
}

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

export interface CertObservation {
  subjectCN: string | null;
  /** As Node reports it: "DNS:mx.example, IP Address:192.0.2.1". */
  subjectAltName: string | null;
  issuer: string;
  validFrom: string;
  validTo: string;
  fingerprint256: string;
  /** The leaf is its own issuer and its signature verifies with its own key. */
  selfSigned: boolean;
  /** The chain verifies against the system CAs plus the extra CAs (the lab CA in lab mode). */
  trusted: boolean;
  /** OpenSSL's verification error code when not trusted (CERT_HAS_EXPIRED, DEPTH_ZERO_SELF_SIGNED_CERT, …). */
  trustError: string | null;
  /** The name the certificate was checked against (the MX host name), null when probing by IP only. */
  checkedName: string | null;
  nameMatch: boolean | null;
  /** Time the validity dates were compared with (the connection time, not the lab clock). */
  checkedAt: string;
  expired: boolean;
  notYetValid: boolean;
}

export interface TlsObservation {
  /** STARTTLS was advertised in the EHLO reply. */
  offered: boolean;
  /**
   * `ok`: handshake completed; `failed`: handshake error; `refused`: the STARTTLS command got a non-220 reply;
   * `interrupted`: timeout or reset before the handshake result; `not_attempted`: not offered or not reached.
   */
  handshake: 'ok' | 'failed' | 'refused' | 'interrupted' | 'not_attempted';
  reply: SmtpReply | null;
  error: string | null;
  protocol: string | null;
  cipher: string | null;
  cert: CertObservation | null;
}

export type RelayVariant = 'plain' | 'percent_hack' | 'quoted' | 'source_route' | 'bang_path';
/** Every variant, in the order tried: the plain form first, nmap smtp-open-relay's tricks after it. */
export const RELAY_VARIANTS: readonly RelayVariant[] = ['plain', 'percent_hack', 'quoted', 'source_route', 'bang_path'];

export interface RelayAttempt {
  variant: RelayVariant;
  mailFrom: string;
  rcptTo: string;
  mailReply: SmtpReply | null;
  rcptReply: SmtpReply | null;
  /** accepted = 2xx on RCPT (relays); refused = 5xx; tempfail = 4xx; error = timeout/reset/MAIL refused. */
  outcome: 'accepted' | 'refused' | 'tempfail' | 'error';
  reason: string | null;
}

export interface RelayObservation {
  /** `open`: some foreign RCPT got 2xx; `refused`: every attempt got 5xx; `unknown`: anything else. */
  outcome: 'open' | 'refused' | 'unknown' | 'not_tested';
  reason: string | null;
  /** Whether the attempts ran inside TLS (after STARTTLS) or in clear. */
  overTls: boolean;
  attempts: RelayAttempt[];
}

export interface SmtpObservation {
  ip: string;
  /** The MX host name used for SNI and the name check, or null. */
  host: string | null;
  port: number;
  startedAt: string;
  durationMs: number;
  session: SmtpSessionClass;
  /** Why, as a stable code: connection_refused, connect_timeout, banner_timeout, forbidden_address, … */
  reason: string | null;
  /** For forbidden_address: which special-purpose block the address is in. */
  forbiddenRange?: string;
  greeting: SmtpReply | null;
  helo: { verb: 'EHLO' | 'HELO'; reply: SmtpReply } | null;
  /** EHLO keywords before STARTTLS, upper case (STARTTLS, PIPELINING, SIZE, …). */
  extensions: string[];
  tls: TlsObservation;
  relay: RelayObservation;
  transcript: TranscriptEntry[];
  /** Transcript or reply text was cut (hostile or chatty server). */
  truncated: boolean;
}

// ---------------------------------------------------------------------------------------------------------
// Options

export type ConnectFn = (opts: { host: string; port: number }) => net.Socket;

export interface SmtpProbeOptions {
  /** @defaultValue 25 */
  port?: number;
  /** MX host name: SNI and certificate name check. @defaultValue null (IP only) */
  host?: string | null;
  /** Name announced in EHLO/HELO. @defaultValue 'mailcensus.invalid' */
  ehloName?: string;
  /** @defaultValue 10000 */
  connectTimeoutMs?: number;
  /** RFC 5321 §4.5.3.2.1 suggests 5 minutes for the greeting. @defaultValue 30000 */
  bannerTimeoutMs?: number;
  /** @defaultValue 30000 */
  commandTimeoutMs?: number;
  /** Extra trusted CA certificates (PEM), e.g. the lab CA. @defaultValue [] */
  extraCaPems?: string[];
  /** Lab mode: only loopback may be probed. @defaultValue false */
  lab?: boolean;
  /** The foreign domain used as relay-test recipient. @defaultValue 'relay-test.example' */
  relayTestDomain?: string;
  /** Envelope sender of the relay test (the contact address). @defaultValue `probe@<ehloName>` */
  mailFrom?: string;
  /** @defaultValue RELAY_VARIANTS */
  relayVariants?: readonly RelayVariant[];
  /** Local part of the relay-test recipient. @defaultValue 'relaytest' */
  relayLocalPart?: string;
  /** After a failed handshake, reconnect in clear once to run the relay test. @defaultValue true */
  relayFallbackPlain?: boolean;
  /**
   * The outbound gate (lib/net/outbound.ts): address policy, opt-out list, politeness. Every connection of the
   * probe goes through its `connect`. @defaultValue a gate with the address policy of `lab` and no opt-out
   */
  gate?: OutboundGate;
  /** The whole probe (every reconnect included) ends after this long, however chatty the server. @defaultValue 120000 */
  sessionDeadlineMs?: number;
  /** Clock for timestamps and certificate validity. @defaultValue () => new Date() */
  now?: () => Date;
  /** Longest server line accepted (RFC 5321 §4.5.3.1.5 says 512). @defaultValue 4096 */
  maxLineBytes?: number;
  /** Most lines in one reply. @defaultValue 200 */
  maxReplyLines?: number;
  /** Most bytes read in one session. @defaultValue 262144 */
  maxSessionBytes?: number;
  /** Most transcript entries kept. @defaultValue 400 */
  maxTranscript?: number;
}

/** Probe options from the configuration (reads the extra CA file once). */
export function smtpOptionsFromConfig(cfg: Readonly<Config>, extra: Partial<SmtpProbeOptions> = {}): SmtpProbeOptions {
  return {
    port: cfg.smtpPort,
    ehloName: cfg.ehloName,
    connectTimeoutMs: cfg.smtpConnectTimeoutMs,
    bannerTimeoutMs: cfg.smtpBannerTimeoutMs,
    commandTimeoutMs: cfg.smtpCommandTimeoutMs,
    extraCaPems: cfg.extraCaFile ? [readFileSync(cfg.extraCaFile, 'utf8')] : [],
    lab: cfg.lab,
    relayTestDomain: cfg.relayTestDomain,
    mailFrom: cfg.contact,
    sessionDeadlineMs: cfg.smtpSessionDeadlineMs,
    ...extra,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Wire helpers

/** A failure of the session that the observation records (never thrown out of probeSmtp). */
class ProbeError extends Error {
  constructor(readonly reason: string, message?: string) {
    super(message ?? reason);
  }
}

function reasonOfSocketError(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED': return 'connection_refused';
    case 'ECONNRESET': case 'EPIPE': return 'connection_reset';
    case 'ETIMEDOUT': return 'connect_timeout';
    case 'EHOSTUNREACH': case 'ENETUNREACH': case 'EHOSTDOWN': case 'ENETDOWN': return 'host_unreachable';
    case 'EADDRNOTAVAIL': return 'address_not_available';
    case 'EOUTBOUNDREFUSED': return 'forbidden_address';
    default: return 'network_error';
  }
}

const TRANSCRIPT_LINE_MAX = 512;

class Recorder {
  readonly entries: TranscriptEntry[] = [];
  truncated = false;
  private readonly t0 = performance.now();
  constructor(private readonly max: number) {}
  elapsed(): number {
    return Math.round(performance.now() - this.t0);
  }
  add(dir: TranscriptEntry['dir'], line: string): void {
    if (this.entries.length >= this.max) {
      this.truncated = true;
      return;
    }
    let text = line;
    if (text.length > TRANSCRIPT_LINE_MAX) {
      text = `${text.slice(0, TRANSCRIPT_LINE_MAX)}…`;
      this.truncated = true;
    }
    this.entries.push({ t: this.elapsed(), dir, line: text });
  }
}

interface Limits {
  maxLineBytes: number;
  maxReplyLines: number;
  maxSessionBytes: number;
}

/** Reads SMTP replies (RFC 5321 §4.2: `ddd-text` continuation lines, `ddd text` last line) with byte caps. */
class ReplyReader {
  private buf = '';
  private lines: string[] = [];
  private total = 0;
  private failure: ProbeError | null = null;
  private waiter: (() => void) | null = null;
  private socket: net.Socket | null = null;
  private readonly onData = (chunk: Buffer) => this.feed(chunk);
  private readonly onError = (err: NodeJS.ErrnoException) => this.fail(new ProbeError(reasonOfSocketError(err), err.message));
  private readonly onClose = () => this.fail(new ProbeError('connection_closed'));

  constructor(private readonly limits: Limits, private readonly rec: Recorder) {}

  attach(socket: net.Socket): void {
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  /** Stops reading from the socket; returns what was buffered and not yet consumed. */
  detach(): string {
    if (this.socket) {
      this.socket.off('data', this.onData);
      this.socket.off('error', this.onError);
      this.socket.off('close', this.onClose);
      this.socket = null;
    }
    const left = [...this.lines, this.buf].filter(Boolean).join('\n');
    this.lines = [];
    this.buf = '';
    return left;
  }

  private feed(chunk: Buffer): void {
    if (this.failure) return;
    this.total += chunk.length;
    if (this.total > this.limits.maxSessionBytes) {
      this.fail(new ProbeError('too_much_data'));
      return;
    }
    // latin1 keeps one char per byte, so the caps count bytes; lines are re-decoded as UTF-8 below.
    this.buf += chunk.toString('latin1');
    let i: number;
    while ((i = this.buf.indexOf('\n')) >= 0) {
      const raw = this.buf.slice(0, i).replace(/\r$/, '');
      this.buf = this.buf.slice(i + 1);
      if (raw.length > this.limits.maxLineBytes) {
        this.fail(new ProbeError('reply_line_too_long'));
        return;
      }
      this.lines.push(Buffer.from(raw, 'latin1').toString('utf8'));
    }
    if (this.buf.length > this.limits.maxLineBytes) {
      this.fail(new ProbeError('reply_line_too_long'));
      return;
    }
    this.wake();
  }

  private fail(err: ProbeError): void {
    if (!this.failure) this.failure = err;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** The next complete reply, or a ProbeError (`timeout`, `connection_closed`, `bad_reply`, …). */
  async read(timeoutMs: number, timeoutReason = 'timeout'): Promise<SmtpReply> {
    const deadline = performance.now() + timeoutMs;
    const reply: SmtpReply = { code: 0, lines: [] };
    for (;;) {
      while (this.lines.length > 0) {
        const line = this.lines.shift()!;
        this.rec.add('S', line);
        const m = /^(\d{3})(?:([ -])(.*))?$/.exec(line);
        if (!m || (reply.code !== 0 && Number(m[1]) !== reply.code)) throw new ProbeError('bad_reply', line.slice(0, 80));
        reply.code = Number(m[1]);
        reply.lines.push(m[3] ?? '');
        if (reply.lines.length > this.limits.maxReplyLines) throw new ProbeError('reply_too_long');
        if (m[2] !== '-') return reply;
      }
      if (this.failure) throw this.failure;
      const left = deadline - performance.now();
      if (left <= 0) throw new ProbeError(timeoutReason);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.waiter = null;
          resolve();
        }, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}

/** Commands a probe must never send: DATA/BDAT would start delivering a message (RFC 5321 §4.1.1.4, RFC 3030). */
const FORBIDDEN_COMMAND = /^\s*(DATA|BDAT)\b/i;

class SmtpWire {
  socket: net.Socket;
  readonly reader: ReplyReader;
  constructor(socket: net.Socket, private readonly rec: Recorder, limits: Limits, private readonly commandTimeoutMs: number) {
    this.socket = socket;
    this.reader = new ReplyReader(limits, rec);
    this.reader.attach(socket);
  }

  /** Sends one command line and reads its reply. Refuses DATA/BDAT and embedded line breaks. */
  async command(line: string, timeoutMs = this.commandTimeoutMs): Promise<SmtpReply> {
    assertSafeCommand(line);
    this.rec.add('C', line);
    if (!this.socket.writable) throw new ProbeError('connection_closed');
    this.socket.write(`${line}\r\n`);
    return this.reader.read(timeoutMs);
  }
}

/** Throws (a programming error, not an observation) for DATA, BDAT, or a line that would smuggle a second command. */
export function assertSafeCommand(line: string): void {
  if (FORBIDDEN_COMMAND.test(line)) throw new Error(`refusing to send "${line.slice(0, 20)}": the probe never sends DATA or BDAT`);
  if (/[\r\n\0]/.test(line)) throw new Error('refusing to send a command containing CR, LF or NUL');
}

function connectWithTimeout(connect: ConnectFn, host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    let socket: net.Socket;
    try {
      socket = connect({ host, port });
    } catch (err) {
      reject(new ProbeError(reasonOfSocketError(err as NodeJS.ErrnoException), (err as Error).message));
      return;
    }
    // Errors after the session is over (a late RST) must not crash the process: readers report the live ones.
    socket.on('error', () => {});
    const timer = setTimeout(() => {
      cleanup();
      socket.destroy();
      reject(new ProbeError('connect_timeout'));
    }, timeoutMs);
    const onConnect = () => {
      cleanup();
      resolve(socket);
    };
    const onError = (err: NodeJS.ErrnoException) => {
      cleanup();
      socket.destroy();
      reject(new ProbeError(reasonOfSocketError(err), err.message));
    };
    function cleanup() {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
    }
    socket.once('connect', onConnect);
    socket.once('error', onError);
  });
}

// ---------------------------------------------------------------------------------------------------------
// TLS

interface TlsContext {
  servername: string | null;
  extraCaPems: string[];
  timeoutMs: number;
  now: () => Date;
}

// One secure context per set of trusted CAs, built once per process: building it parses the ~140 system root
// certificates, which took 44% of a survey worker's CPU when it was done for every STARTTLS (issue 9 profile).
const secureContexts = new Map<string, tls.SecureContext>();
function secureContextFor(extraCaPems: string[]): tls.SecureContext {
  const key = extraCaPems.join('\n');
  let sc = secureContexts.get(key);
  if (sc === undefined) {
    sc = tls.createSecureContext({
      // Old servers still speak TLS 1.0; seclevel 0 lets OpenSSL 3 negotiate with them so we can record it.
      minVersion: 'TLSv1',
      ciphers: 'DEFAULT:@SECLEVEL=0',
      // `authorized` then tells whether the chain verifies against the system CAs plus the extra ones.
      ca: [...tls.rootCertificates, ...extraCaPems],
    });
    if (secureContexts.size > 16) secureContexts.clear();
    secureContexts.set(key, sc);
  }
  return sc;
}

function startTls(socket: net.Socket, ctx: TlsContext): Promise<tls.TLSSocket> {
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
    const timer = setTimeout(() => {
      cleanup();
      t.destroy();
      reject(new ProbeError('tls_timeout'));
    }, ctx.timeoutMs);
    const onSecure = () => {
      cleanup();
      resolve(t);
    };
    const onError = (err: NodeJS.ErrnoException) => {
      cleanup();
      t.destroy();
      const code = err.code ?? '';
      const reason = code === 'ECONNRESET' || code === 'EPIPE' ? 'connection_reset' : 'tls_error';
      reject(new ProbeError(reason, `${code ? `${code}: ` : ''}${err.message}`.slice(0, 300)));
    };
    const onClose = () => {
      cleanup();
      reject(new ProbeError('tls_error', 'connection closed during the handshake'));
    };
    function cleanup() {
      clearTimeout(timer);
      t.off('secureConnect', onSecure);
      t.off('error', onError);
      t.off('close', onClose);
    }
    t.once('secureConnect', onSecure);
    t.once('error', onError);
    t.once('close', onClose);
  });
}

function observeCert(t: tls.TLSSocket, ctx: TlsContext): CertObservation | null {
  const peer = t.getPeerCertificate(false);
  const x509 = t.getPeerX509Certificate();
  if (!peer || !x509 || Object.keys(peer).length === 0) return null;
  const now = ctx.now();
  const validFrom = new Date(x509.validFrom);
  const validTo = new Date(x509.validTo);
  // Self-signed: issued by itself and signed by its own key. (checkIssued would also demand keyCertSign,
  // which a self-signed server certificate usually lacks.)
  let selfSigned = false;
  try {
    selfSigned = x509.issuer === x509.subject && x509.verify(x509.publicKey);
  } catch {
    selfSigned = false;
  }
  const checkedName = ctx.servername;
  const cn = peer.subject?.CN;
  return {
    subjectCN: Array.isArray(cn) ? cn.join(', ') : cn ?? null,
    subjectAltName: peer.subjectaltname ?? null,
    issuer: x509.issuer.replace(/\n/g, ', '),
    validFrom: validFrom.toISOString(),
    validTo: validTo.toISOString(),
    fingerprint256: x509.fingerprint256,
    selfSigned,
    trusted: t.authorized,
    trustError: t.authorized ? null : String(t.authorizationError ?? 'unknown'),
    checkedName,
    nameMatch: checkedName ? certNameMatches(checkedName, { subjectCN: cn ?? null, subjectAltName: peer.subjectaltname ?? null }) : null,
    checkedAt: now.toISOString(),
    expired: validTo.getTime() < now.getTime(),
    notYetValid: validFrom.getTime() > now.getTime(),
  };
}

/** Does a certificate with these names cover `host`? RFC 6125 rules, as Node's checkServerIdentity applies them. */
export function certNameMatches(host: string, cert: { subjectCN: string | string[] | null; subjectAltName: string | null }): boolean {
  const fake = {
    subject: cert.subjectCN ? { CN: cert.subjectCN } : {},
    subjectaltname: cert.subjectAltName ?? undefined,
  } as unknown as tls.PeerCertificate;
  return tls.checkServerIdentity(host.replace(/\.$/, ''), fake) === undefined;
}

// ---------------------------------------------------------------------------------------------------------
// The probe

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

/** An observation with nothing seen yet (session `ok` until something says otherwise); also for tests. */
export function emptyObservation(ip: string, host: string | null, port: number, startedAt: Date): SmtpObservation {
  return {
    ip,
    host,
    port,
    startedAt: startedAt.toISOString(),
    durationMs: 0,
    session: 'ok',
    reason: null,
    greeting: null,
    helo: null,
    extensions: [],
    tls: { offered: false, handshake: 'not_attempted', reply: null, error: null, protocol: null, cipher: null, cert: null },
    relay: { outcome: 'not_tested', reason: null, overTls: false, attempts: [] },
    transcript: [],
    truncated: false,
  };
}

interface Resolved {
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

function resolveOptions(o: SmtpProbeOptions): Resolved {
  const ehloName = o.ehloName ?? 'mailcensus.invalid';
  // These go into command lines: a line break would smuggle a second command (say, DATA) onto the wire.
  for (const [name, value] of Object.entries({ ehloName, relayTestDomain: o.relayTestDomain, mailFrom: o.mailFrom, relayLocalPart: o.relayLocalPart })) {
    if (value !== undefined && (/[\r\n\0<>\s]/.test(value) || value === '')) {
      throw new Error(`SMTP probe option ${name} must be a non-empty address or name without spaces, <, > or line breaks, got ${JSON.stringify(value)}`);
    }
  }
  const gate = o.gate ?? createOutboundGate({ lab: o.lab ?? false });
  return {
    port: o.port ?? 25,
    host: o.host ?? null,
    ehloName,
    connectTimeoutMs: o.connectTimeoutMs ?? 10_000,
    bannerTimeoutMs: o.bannerTimeoutMs ?? 30_000,
    commandTimeoutMs: o.commandTimeoutMs ?? 30_000,
    extraCaPems: o.extraCaPems ?? [],
    lab: o.lab ?? false,
    relayTestDomain: o.relayTestDomain ?? 'relay-test.example',
    mailFrom: o.mailFrom ?? `probe@${ehloName}`,
    relayVariants: o.relayVariants ?? RELAY_VARIANTS,
    relayLocalPart: o.relayLocalPart ?? 'relaytest',
    relayFallbackPlain: o.relayFallbackPlain ?? true,
    gate,
    sessionDeadlineMs: o.sessionDeadlineMs ?? 120_000,
    connect: gate.connect,
    now: o.now ?? (() => new Date()),
    limits: {
      maxLineBytes: o.maxLineBytes ?? 4096,
      maxReplyLines: o.maxReplyLines ?? 200,
      maxSessionBytes: o.maxSessionBytes ?? 262_144,
    },
    maxTranscript: o.maxTranscript ?? 400,
  };
}

/**
 * Probes one SMTP server. Never throws for anything the server or the network does: every failure ends in
 * the observation (`session` + `reason`). Throws only on programming errors.
 */
export async function probeSmtp(ip: string, options: SmtpProbeOptions = {}): Promise<SmtpObservation> {
  const o = resolveOptions(options);
  const rec = new Recorder(o.maxTranscript);
  const obs = emptyObservation(ip, o.host, o.port, o.now());
  try {
    // Checked right before connecting, on the address actually used (SSRF guard; see address-policy.ts).
    const policy = o.gate.check(ip);
    if (!policy.allowed) {
      obs.session = 'forbidden_address';
      obs.reason = policy.reason;
      obs.forbiddenRange = policy.range;
      obs.relay.reason = policy.reason;
      rec.add('I', `not connecting: ${ip} is in ${policy.range} (${policy.purpose})`);
      return obs;
    }
    // A total deadline over the whole probe: every reply has its own timeout, but a server answering just in
    // time, line after line, must not hold a job (and its per-IP slot) for hours.
    const sockets: net.Socket[] = [];
    let expired = false;
    const deadline = setTimeout(() => {
      expired = true;
      rec.add('I', `session deadline of ${o.sessionDeadlineMs} ms reached: closing`);
      for (const s of sockets) s.destroy();
    }, o.sessionDeadlineMs);
    const bounded: Resolved = { ...o, connect: (c) => { const s = o.connect(c); sockets.push(s); return s; } };
    try {
      const first = await runSession(ip, bounded, rec, obs, 'full');
      if (first === 'tls_failed' && o.relayFallbackPlain && !expired) {
        // A sender falls back to plain text after a failed handshake; so does the relay test.
        rec.add('I', 'reconnecting in clear for the relay test');
        await runSession(ip, bounded, rec, obs, 'relay_only');
      }
    } finally {
      clearTimeout(deadline);
    }
    if (expired) {
      if (obs.session === 'ok') obs.session = 'session_failed';
      obs.reason = 'session_deadline';
      if (obs.relay.outcome === 'not_tested') obs.relay.reason = 'session_deadline';
    }
    return obs;
  } finally {
    obs.durationMs = rec.elapsed();
    obs.transcript = rec.entries;
    obs.truncated = rec.truncated;
  }
}

type SessionEnd = 'done' | 'tls_failed';

async function runSession(ip: string, o: Resolved, rec: Recorder, obs: SmtpObservation, mode: 'full' | 'relay_only'): Promise<SessionEnd> {
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
