// The SMTP probe's observation types (JSON-serialisable: stored with the diagnosis and re-judged later by
// lib/checks/*). Raw facts only: what the server said and did, never what it means.
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
