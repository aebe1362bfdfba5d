// STARTTLS (RFC 3207): the secure contexts, the handshake over the SMTP socket, and what the certificate says.
import net from 'node:net';
import tls from 'node:tls';
import { isSelfSigned } from '../../net/presented-cert.ts';
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
      error: (err) => {
        const code = err.code ?? '';
        const reason = code === 'ECONNRESET' || code === 'EPIPE' ? 'connection_reset' : 'tls_error';
        return new ProbeError(reason, `${code ? `${code}: ` : ''}${err.message}`.slice(0, 300));
      },
      close: () => new ProbeError('tls_error', 'connection closed during the handshake'),
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

