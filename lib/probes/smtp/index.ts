// The SMTP probe: one session per MX (or sender) IP that records what the server does and judges nothing.
// It never sends DATA or BDAT: the command writer refuses them (wire.ts), so no probe can ever deliver a
// message. Checks (lib/checks/smtp-session.ts, tls-receive/, open-relay/, cert-problems/) judge the
// observation it returns.
//   types.ts    the observation (JSON, stored and re-judged later)
//   wire.ts     reply reading, command writing, limits, the transcript
//   tls.ts      STARTTLS, secure contexts, the certificate
//   session.ts  the steps of one connection
import type net from 'node:net';
import { createOutboundGate, type OutboundGate } from '../../net/outbound.ts';
import { extraCaPemsFromConfig } from '../../net/https-fetch.ts';
import type { Config } from '../../config.ts';
import { Recorder, type ConnectFn } from './wire.ts';
import { runSession, type Resolved } from './session.ts';
import { handshakeSlots, type HandshakeSlots } from './tls.ts';
import { RELAY_VARIANTS, emptyObservation, type RelayVariant, type SmtpObservation } from './types.ts';

export * from './types.ts';
export { assertSafeCommand, type ConnectFn } from './wire.ts';
export { certNameMatches, HandshakeSlots, handshakeSlots } from './tls.ts';



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
  /**
   * The TLS handshakes this probe may run at once with others (tls.ts, HandshakeSlots; issue 18): a session
   * whose STARTTLS got 220 while all are taken waits for one. @defaultValue the process-wide slots of
   * DEFAULT_HANDSHAKE_SLOTS (32)
   */
  handshakeSlots?: HandshakeSlots;
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
  /** Most transcript characters kept, all entries together (each line is also cut at 512). @defaultValue 16384 */
  maxTranscriptChars?: number;
}

/** Probe options from the configuration (reads the extra CA file once). */
export function smtpOptionsFromConfig(cfg: Readonly<Config>, extra: Partial<SmtpProbeOptions> = {}): SmtpProbeOptions {
  return {
    port: cfg.smtpPort,
    ehloName: cfg.ehloName,
    connectTimeoutMs: cfg.smtpConnectTimeoutMs,
    bannerTimeoutMs: cfg.smtpBannerTimeoutMs,
    commandTimeoutMs: cfg.smtpCommandTimeoutMs,
    extraCaPems: extraCaPemsFromConfig(cfg),
    lab: cfg.lab,
    relayTestDomain: cfg.relayTestDomain,
    mailFrom: cfg.contact,
    sessionDeadlineMs: cfg.smtpSessionDeadlineMs,
    handshakeSlots: handshakeSlots(cfg.tlsHandshakeConcurrency),
    ...extra,
  };
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
    sessionExpired: () => false,
    handshakeSlots: o.handshakeSlots ?? handshakeSlots(),
    connect: gate.connect,
    now: o.now ?? (() => new Date()),
    limits: {
      maxLineBytes: o.maxLineBytes ?? 4096,
      maxReplyLines: o.maxReplyLines ?? 200,
      maxSessionBytes: o.maxSessionBytes ?? 262_144,
    },
    maxTranscript: o.maxTranscript ?? 400,
    maxTranscriptChars: o.maxTranscriptChars ?? 16_384,
  };
}

/**
 * Probes one SMTP server. Never throws for anything the server or the network does: every failure ends in
 * the observation (`connections`: where and why each connection stopped). Throws only on programming errors.
 */

export async function probeSmtp(ip: string, options: SmtpProbeOptions = {}): Promise<SmtpObservation> {
  const o = resolveOptions(options);
  const rec = new Recorder(o.maxTranscript, o.maxTranscriptChars);
  const obs = emptyObservation(ip, o.host, o.port, o.now());
  try {
    // Checked right before connecting, on the address actually used (SSRF guard; see address-policy.ts).
    const policy = o.gate.check(ip);
    if (!policy.allowed) {
      obs.forbiddenRange = policy.range;
      obs.connections = [{ mode: 'full', step: 'policy', code: null, error: policy.reason }];
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
    const bounded: Resolved = { ...o, sessionExpired: () => expired, connect: (c) => { const s = o.connect(c); sockets.push(s); return s; } };
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
    obs.deadlineReached = expired;
    return obs;
  } finally {
    obs.durationMs = rec.elapsed();
    obs.transcript = rec.entries;
    obs.truncated = rec.truncated;
  }
}

