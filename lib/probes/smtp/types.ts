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

/** The steps of one connection, in order (session.ts). `helo` is the HELO fallback after a 5xx to EHLO. */
export type SmtpStep = 'policy' | 'connect' | 'greeting' | 'ehlo' | 'helo' | 'starttls' | 'tls' | 'ehlo_after_tls' | 'relay';

/**
 * Where one connection stopped, as recorded: the step in progress and either the reply code that ended it
 * (a 421 greeting, a 5xx to HELO) or the I/O error (connection_refused, banner_timeout, connection_closed,
 * timeout, tls_timeout, tls_error, …). A connection that ran the relay test to its end stops at `relay` with
 * neither. lib/checks/smtp-session.ts says what it means.
 */
export interface SmtpConnectionEnd {
  /** `full`: the first connection; `relay_only`: the reconnect in clear after a failed TLS handshake. */
  mode: 'full' | 'relay_only';
  step: SmtpStep;
  code: number | null;
  error: string | null;
}

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

/** One certificate of the chain the server presented (for DANE, RFC 6698/7672, and certificate details). */
export interface PresentedCert {
  /** SHA-256 / SHA-512 of the whole certificate (DER), hex lower case. */
  certSha256: string; certSha512: string;
  /** SHA-256 / SHA-512 of the SubjectPublicKeyInfo (DER), hex lower case. */
  spkiSha256: string; spkiSha512: string;
  subject: string; issuer: string;
  /** 'rsa' | 'ec' | 'ed25519' | 'ed448' | 'dsa' | … as node:crypto KeyObject.asymmetricKeyType reports it. */
  keyType: string | null;
  /** RSA/DSA modulus bits; EC: the curve's field size (256 for prime256v1). */
  bits: number | null;
  /** EC curve name (prime256v1, secp384r1), else null. */
  curve: string | null;
  /** ISO 8601. */
  notBefore: string; notAfter: string;
  selfIssued: boolean;
  /**
   * The next certificate of the chain is this one's issuer and its key verifies this one's signature (RFC 5280
   * §6.1.3). Absent on the last certificate, and on chains recorded before DANE-TA checked signatures.
   */
  issuedByNext?: boolean;
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
  /**
   * The chain as the handshake gave it, leaf first, at most 10 (lib/net/presented-cert.ts presentedChain). Absent before issue 15
   * and when the handshake did not complete.
   */
  chain?: PresentedCert[];
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
  /** The I/O error (timeout, connection_reset, …) that cut the attempt, null when the server replied. */
  error?: string | null;
  /**
   * @deprecated Only in observations stored before issue 14 (with `outcome`, a judgement no longer stored):
   * read solely as the I/O error where no reply explains the attempt (lib/checks/smtp-session.ts).
   */
  reason?: string | null;
}

export interface RelayObservation {
  /** The variants the probe meant to try, in order (absent before issue 14: all five of RELAY_VARIANTS). */
  planned?: RelayVariant[];
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
  /**
   * Where each connection stopped, in order (the first, then the plain-text reconnect if any). Absent in
   * observations stored before issue 14; lib/checks/smtp-session.ts rebuilds it from their other fields.
   */
  connections?: SmtpConnectionEnd[];
  /** The probe's total deadline (sessionDeadlineMs) cut the session. Absent before issue 14. */
  deadlineReached?: boolean;
  /**
   * @deprecated Only in observations stored before issue 14 (with `session`, a judgement no longer stored):
   * the only record there of an I/O error, read solely as that (lib/checks/smtp-session.ts).
   */
  reason?: string | null;
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

/** An observation with nothing seen yet; also for tests. */
export function emptyObservation(ip: string, host: string | null, port: number, startedAt: Date): SmtpObservation {
  return {
    ip,
    host,
    port,
    startedAt: startedAt.toISOString(),
    durationMs: 0,
    connections: [],
    deadlineReached: false,
    greeting: null,
    helo: null,
    extensions: [],
    tls: { offered: false, handshake: 'not_attempted', reply: null, error: null, protocol: null, cipher: null, cert: null },
    relay: { planned: [], overTls: false, attempts: [] },
    transcript: [],
    truncated: false,
  };
}
