// One HTTPS GET to a known address, for the MTA-STS policy (RFC 8461 §3.3) and any later fetch: through the
// outbound gate (address policy and opt-out on the literal IP, per-IP politeness), SNI = the host name, the
// certificate verified against the system CAs plus the configured extra ones (the lab CA in lab mode) and
// recorded (trusted, trust error, name, dates, chain), one total deadline, a capped body, no redirects
// followed. Never throws for anything the network or the server does: every failure is a reason code in the
// observation (plain JSON, bounded). Throws only on programming errors.
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { OutboundRefusedError, type OutboundGate } from './outbound.ts';
import { isSelfSigned, presentedChain, trustedFingerprints } from './presented-cert.ts';
import { boundedMemo } from '../bounded-memo.ts';
import type { PresentedCert } from '../checks/dane/tlsa.ts';
import type { Config } from '../config.ts';

/** Closed set of reasons an HTTPS fetch did not yield a usable response. */
export const HTTPS_FETCH_REASONS = [
  'forbidden_address', // the address policy refused the IP (lib/net/address-policy.ts)
  'opted_out', // the host name or the IP is on the opt-out list
  'connect_timeout', // no TCP handshake within the connect timeout
  'connection_refused', // RST to our SYN
  'network_error', // unreachable network/host, reset before TLS, other socket errors
  'tls_error', // the TLS handshake failed (protocol, alert, closed)
  'untrusted_certificate', // the chain does not verify against the trusted CAs (self-signed, unknown issuer, incomplete)
  'certificate_expired', // the leaf's notAfter is past (or its notBefore ahead)
  'certificate_name_mismatch', // the chain is trusted but the certificate does not name the host (RFC 6125)
  'http_status', // an answer other than 200 (3xx included: redirects are never followed, RFC 8461 §3.3)
  'wrong_content_type', // 200 with another media type than the one expected
  'too_large', // the body exceeds maxBodyBytes
  'bad_response', // not HTTP, malformed headers, or the body ended early
  'timeout', // the total deadline passed after the connection was made
] as const;
export type HttpsFetchReason = (typeof HTTPS_FETCH_REASONS)[number];

export interface HttpsCertFacts {
  /** The chain verifies against the system CAs plus the extra CAs (names not considered). */
  trusted: boolean;
  /** OpenSSL's verification error (`DEPTH_ZERO_SELF_SIGNED_CERT`, `CERT_HAS_EXPIRED`, …), or null. */
  trustError: string | null;
  /** The leaf names the host (SAN dNSName, RFC 6125 as Node applies it). */
  nameMatch: boolean;
  notBefore: string;
  notAfter: string;
  /** notAfter before `now` or notBefore after it. */
  expired: boolean;
  selfSigned: boolean;
  subjectAltName: string | null;
  /** Leaf first, as presented (a trust-store root Node appended is left out). */
  chain: PresentedCert[];
}

export interface HttpsFetchObservation {
  url: string;
  host: string;
  ip: string;
  port: number;
  startedAt: string;
  durationMs: number;
  /** `ok`: TLS valid, status 200, expected content type, body within the cap. */
  ok: boolean;
  reason: HttpsFetchReason | null;
  /** Human detail for the reason (bounded). */
  detail: string | null;
  tls: { protocol: string | null; cipher: string | null; cert: HttpsCertFacts | null } | null;
  http: {
    status: number;
    contentType: string | null;
    /** The Location of a 3xx (not followed), at most 500 characters. */
    location: string | null;
    /** Bytes of body read (at most maxBodyBytes + one chunk; reading stops at the cap). */
    bodyBytes: number;
  } | null;
  /** The body as UTF-8 when the fetch is `ok`, else null. At most maxBodyBytes. */
  body: string | null;
}

export interface HttpsFetchOptions {
  gate: OutboundGate;
  /** Extra trusted CA certificates (PEM), e.g. the lab CA. @defaultValue [] */
  extraCaPems?: readonly string[];
  /** The whole fetch, connect included. @defaultValue 15000 */
  deadlineMs?: number;
  /** @defaultValue 5000 */
  connectTimeoutMs?: number;
  /** RFC 8461 gives no limit; 64 KiB is far above any real policy. @defaultValue 65536 */
  maxBodyBytes?: number;
  /** Media type required of a 200 (parameters such as charset allowed), or null for any. @defaultValue null */
  expectContentType?: string | null;
  /** Clock for the certificate dates. @defaultValue () => new Date() */
  now?: () => Date;
  /** @defaultValue 'mailcensus' */
  userAgent?: string;
}

/** The HTTPS port for a host learned from DNS: the lab's (`MAILCENSUS_HTTPS_PORT`) in lab mode, else 443. */
export function httpsPort(cfg: Pick<Config, 'lab' | 'httpsPort'>): number {
  return cfg.lab ? cfg.httpsPort : 443;
}

const extraCaFiles = boundedMemo<string[]>(9);
/**
 * The extra CAs of the configuration (MAILCENSUS_EXTRA_CA: the lab CA in lab mode), read once per path and
 * process: the MTA-STS gatherer asks for them per domain, the SMTP probe options per run.
 */
export function extraCaPemsFromConfig(cfg: { extraCaFile?: string | null }): string[] {
  const file = cfg.extraCaFile;
  return file ? extraCaFiles.get(file, () => [readFileSync(file, 'utf8')]) : [];
}

const secureContexts = boundedMemo<tls.SecureContext>(17);
function secureContextFor(extraCaPems: readonly string[]): tls.SecureContext {
  // TLS 1.2 and up: a policy host is a web server; anything older is recorded as tls_error.
  return secureContexts.get(extraCaPems.join('\n'), () => tls.createSecureContext({ minVersion: 'TLSv1.2', ca: [...tls.rootCertificates, ...extraCaPems] }));
}

const MAX_HEADER_BYTES = 16 * 1024;

function socketReason(err: NodeJS.ErrnoException): HttpsFetchReason {
  if (err.code === 'ECONNREFUSED') return 'connection_refused';
  if (err.code === 'ETIMEDOUT') return 'connect_timeout';
  return 'network_error';
}

/** Does the certificate name `host`? RFC 6125 rules, as Node's checkServerIdentity applies them. */
function nameMatches(host: string, peer: tls.PeerCertificate): boolean {
  return tls.checkServerIdentity(host, peer) === undefined;
}

function oneLine(s: string, max = 300): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f]+/g, ' ').slice(0, max);
}

/**
 * GET https://`host``path` from `ip`:`port`. `host` is the SNI name, the Host header and the name the
 * certificate must carry; `ip` must be an address (the caller resolved it through our resolver).
 */
export async function httpsFetch(req: { host: string; ip: string; port: number; path: string }, opts: HttpsFetchOptions): Promise<HttpsFetchObservation> {
  const host = req.host.toLowerCase().replace(/\.$/, '');
  if (net.isIP(req.ip) === 0) throw new Error(`httpsFetch: ip must be an IP address, got ${JSON.stringify(req.ip)}`);
  if (!/^\/[\x21-\x7e]*$/.test(req.path)) throw new Error(`httpsFetch: bad path ${JSON.stringify(req.path)}`);
  const now = opts.now ?? (() => new Date());
  const started = Date.now();
  const obs: HttpsFetchObservation = {
    url: `https://${host}${req.port === 443 ? '' : `:${req.port}`}${req.path}`,
    host,
    ip: req.ip,
    port: req.port,
    startedAt: now().toISOString(),
    durationMs: 0,
    ok: false,
    reason: null,
    detail: null,
    tls: null,
    http: null,
    body: null,
  };
  const fail = (reason: HttpsFetchReason, detail: string | null = null): HttpsFetchObservation => {
    obs.ok = false;
    obs.reason = reason;
    obs.detail = detail === null ? null : oneLine(detail);
    obs.durationMs = Date.now() - started;
    return obs;
  };
  if (opts.gate.domainOptedOut(host)) return fail('opted_out', `${host} is on the opt-out list`);
  const verdict = opts.gate.check(req.ip);
  if (!verdict.allowed) return fail(verdict.reason, `${req.ip}: ${verdict.range} (${verdict.purpose})`);
  return opts.gate.run(req.ip, () => fetchInSlot(host, req, opts, obs, fail, started));
}

async function fetchInSlot(
  host: string,
  req: { ip: string; port: number; path: string },
  opts: HttpsFetchOptions,
  obs: HttpsFetchObservation,
  fail: (reason: HttpsFetchReason, detail?: string | null) => HttpsFetchObservation,
  started: number,
): Promise<HttpsFetchObservation> {
  const now = opts.now ?? (() => new Date());
  const deadlineMs = opts.deadlineMs ?? 15_000;
  const maxBody = opts.maxBodyBytes ?? 65_536;
  const extraCaPems = opts.extraCaPems ?? [];
  const sockets: net.Socket[] = [];
  let expired = false;
  // Destroyed top first: destroying the TCP socket under a live TLSSocket made Node 20 segfault (seen with an
  // expired certificate on nginx, the raw socket destroyed first).
  const destroyAll = () => {
    for (const s of [...sockets].reverse()) s.destroy();
  };
  const deadline = setTimeout(() => {
    expired = true;
    destroyAll();
  }, Math.max(1, deadlineMs - (Date.now() - started)));
  try {
    // TCP, through the gate (it checks the literal address again: no window between check and connect).
    let raw: net.Socket;
    try {
      raw = await opts.gate.open(req.ip, req.port, Math.min(opts.connectTimeoutMs ?? 5_000, deadlineMs));
    } catch (err) {
      if (err instanceof OutboundRefusedError) return fail(err.verdict.reason, err.message);
      if (expired) return fail('timeout', `deadline of ${deadlineMs} ms reached while connecting`);
      const e = err as NodeJS.ErrnoException;
      return fail(socketReason(e), `${e.code ?? ''} ${e.message}`);
    }
    sockets.push(raw);

    // TLS: certificate problems are recorded, then end the fetch (RFC 8461 §3.3: the policy host's certificate
    // MUST be valid for it); the name is checked apart from the chain, so the two are told apart.
    let t: tls.TLSSocket;
    try {
      t = await new Promise<tls.TLSSocket>((resolve, reject) => {
        const s = tls.connect({
          socket: raw,
          servername: host,
          secureContext: secureContextFor(extraCaPems),
          rejectUnauthorized: false,
          checkServerIdentity: () => undefined,
          ALPNProtocols: ['http/1.1'],
        });
        sockets.push(s);
        s.once('secureConnect', () => {
          s.removeAllListeners('error');
          s.on('error', () => {});
          resolve(s);
        });
        s.once('error', reject);
        s.once('close', () => reject(Object.assign(new Error('connection closed during the TLS handshake'), { code: 'ECLOSED' })));
      });
    } catch (err) {
      if (expired) return fail('timeout', `deadline of ${deadlineMs} ms reached during the TLS handshake`);
      const e = err as NodeJS.ErrnoException;
      return fail('tls_error', `${e.code ? `${e.code}: ` : ''}${e.message}`);
    }
    // The detailed peer certificate first and only it: in Node 20, getPeerCertificate(true) called after
    // getPeerX509Certificate() comes back without `raw` and without the issuer chain.
    const fps = trustedFingerprints([...tls.rootCertificates, ...extraCaPems]);
    const chain = presentedChain(t, (fp) => fps.has(fp));
    const peer = t.getPeerCertificate(true);
    const cipher = t.getCipher();
    obs.tls = { protocol: t.getProtocol() ?? null, cipher: cipher?.standardName ?? cipher?.name ?? null, cert: null };
    if (!peer || !peer.raw || chain.length === 0) return fail('tls_error', 'no certificate presented');
    const x509 = new X509Certificate(peer.raw);
    const at = now().getTime();
    const notBefore = new Date(x509.validFrom);
    const notAfter = new Date(x509.validTo);
    const cn = peer.subject?.CN ?? null;
    const cert: HttpsCertFacts = {
      trusted: t.authorized,
      trustError: t.authorized ? null : String(t.authorizationError ?? 'unknown').slice(0, 100),
      nameMatch: nameMatches(host, peer),
      notBefore: notBefore.toISOString(),
      notAfter: notAfter.toISOString(),
      expired: notAfter.getTime() < at || notBefore.getTime() > at,
      selfSigned: isSelfSigned(x509),
      subjectAltName: peer.subjectaltname ? peer.subjectaltname.slice(0, 1000) : null,
      chain,
    };
    obs.tls.cert = cert;
    if (cert.expired || cert.trustError === 'CERT_HAS_EXPIRED' || cert.trustError === 'CERT_NOT_YET_VALID') {
      return fail('certificate_expired', `certificate valid ${cert.notBefore} to ${cert.notAfter}`);
    }
    if (!cert.trusted) return fail('untrusted_certificate', cert.trustError);
    if (!cert.nameMatch) return fail('certificate_name_mismatch', `certificate names ${cert.subjectAltName ?? cn ?? 'nothing'}, not ${host}`);

    // HTTP/1.1 over the verified socket: Node's parser (bounded headers), our own body cap.
    return await new Promise<HttpsFetchObservation>((resolve) => {
      // The first outcome wins; later events (the socket torn down after a cap, the deadline) change nothing,
      // not even the observation already returned.
      let settled = false;
      const done = (reason: HttpsFetchReason, detail: string) => {
        if (settled) return;
        settled = true;
        resolve(fail(reason, detail));
      };
      const deadlineDetail = `deadline of ${deadlineMs} ms reached`;
      const request = http.request({
        createConnection: () => t,
        host,
        port: req.port,
        path: req.path,
        method: 'GET',
        // No agent: with one, Node connects through the agent's own net.connect (a system DNS lookup of
        // `host`, around the gate); without, it uses createConnection, the socket verified above. The lookup
        // below only makes sure no name is ever resolved here, whatever Node does.
        lookup: (_h, _o, cb) => cb(new Error('httpsFetch resolves no names'), '', 4),
        maxHeaderSize: MAX_HEADER_BYTES,
        headers: {
          Host: req.port === 443 ? host : `${host}:${req.port}`,
          'User-Agent': opts.userAgent ?? 'mailcensus',
          Accept: 'text/plain',
          Connection: 'close',
        },
      });
      request.on('error', (err: NodeJS.ErrnoException) => {
        if (expired) return done('timeout', deadlineDetail);
        done('bad_response', `${err.code ? `${err.code}: ` : ''}${err.message}`);
      });
      request.on('close', () => {
        if (expired) done('timeout', deadlineDetail);
      });
      request.on('response', (res) => {
        const status = res.statusCode ?? 0;
        const contentType = typeof res.headers['content-type'] === 'string' ? oneLine(res.headers['content-type'], 200) : null;
        const location = typeof res.headers.location === 'string' ? oneLine(res.headers.location, 500) : null;
        obs.http = { status, contentType, location, bodyBytes: 0 };
        const declared = Number(res.headers['content-length']);
        if (status !== 200) {
          res.destroy();
          return done('http_status', `HTTP ${status}${location ? ` → ${location} (not followed)` : ''}`);
        }
        if (Number.isFinite(declared) && declared > maxBody) {
          res.destroy();
          return done('too_large', `Content-Length ${declared} > ${maxBody}`);
        }
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => {
          if (!obs.http || settled) return;
          obs.http.bodyBytes += chunk.length;
          if (obs.http.bodyBytes > maxBody) {
            res.destroy();
            return done('too_large', `body exceeds ${maxBody} bytes`);
          }
          chunks.push(chunk);
        });
        res.on('error', () => done(expired ? 'timeout' : 'bad_response', expired ? deadlineDetail : 'the body ended early'));
        res.on('aborted', () => done(expired ? 'timeout' : 'bad_response', expired ? deadlineDetail : 'the body ended early'));
        res.on('end', () => {
          if (settled) return;
          if (!res.complete) return done('bad_response', 'the body ended early');
          const expect = opts.expectContentType ?? null;
          const mediaType = (contentType ?? '').split(';')[0].trim().toLowerCase();
          if (expect && mediaType !== expect.toLowerCase()) {
            return done('wrong_content_type', `Content-Type ${contentType ?? '(none)'}, expected ${expect}`);
          }
          obs.body = Buffer.concat(chunks).toString('utf8');
          obs.ok = true;
          obs.reason = null;
          obs.detail = null;
          obs.durationMs = Date.now() - started;
          settled = true;
          resolve(obs);
        });
      });
      request.end();
    });
  } finally {
    clearTimeout(deadline);
    destroyAll();
  }
}
