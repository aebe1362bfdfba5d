// The facts of a presented certificate chain as observations store them (PresentedCert, lib/probes/smtp/types.ts):
// digests of the certificate and of its SubjectPublicKeyInfo, the key, the names of subject and issuer, the
// dates, and whether the next certificate of the chain really issued it. Plain JSON, so DANE (RFC 7672 §3.1)
// and the certificate findings can be re-judged from storage without the DER. One implementation for the SMTP
// probe (STARTTLS) and the HTTPS fetch (MTA-STS policy hosts).
import { createHash, X509Certificate } from 'node:crypto';
import type tls from 'node:tls';
import type { PresentedCert } from '../probes/smtp/types.ts';
import { boundedMemo } from '../bounded-memo.ts';

/** Most certificates recorded from one chain: real chains have 2-4; a hostile server may send hundreds. */
export const MAX_CHAIN = 10;
/** Longest subject / issuer kept (a DN can be made arbitrarily long). */
const MAX_DN = 512;
// C0/C1 controls and the bidi/line-separator characters clean-text.ts escapes: stripped from stored DNs.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** A DN from a certificate, as one line: RDNs joined with ", ", control characters removed, length capped. */
function cleanDn(dn: string): string {
  const line = dn.split('\n').join(', ').replace(CONTROL, '');
  return line.length > MAX_DN ? `${line.slice(0, MAX_DN)}…` : line;
}

// An EC key's size is its curve's field size; Node gives only the curve's name.
const CURVE_BITS: Record<string, number> = {
  prime256v1: 256, secp256k1: 256, secp384r1: 384, secp521r1: 521, secp224r1: 224, prime192v1: 192,
  brainpoolP256r1: 256, brainpoolP384r1: 384, brainpoolP512r1: 512,
};

const hex = (alg: 'sha256' | 'sha512', der: Buffer) => createHash(alg).update(der).digest('hex');

function isoDate(text: string): string {
  const d = new Date(text);
  return Number.isNaN(d.getTime()) ? text.replace(CONTROL, '').slice(0, 64) : d.toISOString();
}

function parse(pemOrDer: string | Buffer): X509Certificate | null {
  try {
    return new X509Certificate(pemOrDer);
  } catch {
    return null;
  }
}

/**
 * What is learnt from one certificate, by the SHA-256 of its DER: the facts, and the signature checks against an
 * issuer. A survey meets the same intermediates, roots and provider leaves at thousands of MX IPs, and parsing a
 * certificate with its key (X509Certificate, createPublicKey, the SPKI export) took about a fifth of a worker's
 * CPU (`npm run bench -- survey --cpu-prof`). The facts depend on the DER alone, so a cached copy is the same
 * answer. Bounded: emptied when full (a survey's distinct certificates come and go with its MX hosts).
 */
const MAX_CACHED = 4096;
const factsByCert = boundedMemo<Readonly<PresentedCert>>(MAX_CACHED);
const signatureChecks = boundedMemo<boolean>(MAX_CACHED);

/** The facts of a certificate, computed once per DER (`sha256`: of that DER), as a copy of their own. */
function cachedFacts(sha256: string, x509: () => X509Certificate): PresentedCert {
  return { ...factsByCert.get(sha256, () => factsOf(x509())) };
}

/** A signature check of the certificate with DER digest `certSha` against `issuerSha`, made once per pair. */
function cachedCheck(kind: 'issued' | 'self', certSha: string, issuerSha: string, check: () => boolean): boolean {
  return signatureChecks.get(`${kind}:${certSha}:${issuerSha}`, check);
}

function factsOf(x509: X509Certificate): PresentedCert {
  const key = x509.publicKey;
  const spki = key.export({ type: 'spki', format: 'der' });
  const details = key.asymmetricKeyDetails ?? {};
  const curve = details.namedCurve ?? null;
  const bits = curve ? CURVE_BITS[curve] ?? null : details.modulusLength ?? null;
  return {
    certSha256: hex('sha256', x509.raw),
    certSha512: hex('sha512', x509.raw),
    spkiSha256: hex('sha256', spki),
    spkiSha512: hex('sha512', spki),
    subject: cleanDn(x509.subject),
    issuer: cleanDn(x509.issuer),
    keyType: key.asymmetricKeyType ?? null,
    bits,
    curve,
    notBefore: isoDate(x509.validFrom),
    notAfter: isoDate(x509.validTo),
    // RFC 5280 §3.2 / §6.1: self-issued means subject and issuer are the same name (signature not implied).
    selfIssued: x509.subject === x509.issuer,
  };
}

/**
 * Did `issuer` issue `cert`? Its subject is the certificate's issuer name and its key verifies the certificate's
 * signature (RFC 5280 §6.1.3 (a)(1)). What DANE-TA needs (RFC 7672 §3.1.2): a trust anchor only vouches for
 * the leaf through a chain of real signatures, not by being sent next to it.
 */
export function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/**
 * Self-signed: issued by itself and signed by its own key. (checkIssued would also demand keyCertSign, which a
 * self-signed server certificate usually lacks.) A key that cannot verify is not self-signed.
 */
export function isSelfSigned(x509: X509Certificate): boolean {
  if (x509.issuer !== x509.subject) return false;
  const sha = x509.fingerprint256;
  return cachedCheck('self', sha, sha, () => {
    try {
      return x509.verify(x509.publicKey);
    } catch {
      return false;
    }
  });
}

/** One certificate of a chain: the digest of its DER, and the parsed certificate, parsed only when needed. */
interface ChainLink {
  sha256: string;
  x509(): X509Certificate;
}

function linkOf(x509: X509Certificate): ChainLink {
  return { sha256: hex('sha256', x509.raw), x509: () => x509 };
}

/** PresentedCerts of a chain, leaf first, each but the last with `issuedByNext`. */
function factsOfChain(links: readonly ChainLink[]): PresentedCert[] {
  return links.map((link, i) => {
    const facts = cachedFacts(link.sha256, link.x509);
    const next = links[i + 1];
    return next ? { ...facts, issuedByNext: cachedCheck('issued', link.sha256, next.sha256, () => issuedBy(link.x509(), next.x509())) } : facts;
  });
}

/**
 * PresentedCerts of a chain given leaf first (PEM or DER), each but the last with `issuedByNext`. At most MAX_CHAIN;
 * stops at the first certificate that does not parse or repeats one before it.
 */
export function chainFacts(certs: readonly (string | Buffer)[]): PresentedCert[] {
  const links: ChainLink[] = [];
  for (const c of certs.slice(0, MAX_CHAIN)) {
    const x = parse(c);
    if (!x) break;
    const link = linkOf(x);
    if (links.some((l) => l.sha256 === link.sha256)) break;
    links.push(link);
  }
  return factsOfChain(links);
}

/**
 * The chain a TLS peer presented, leaf first, walking getPeerCertificate(true)'s issuerCertificate links: at
 * most MAX_CHAIN, ending on a self-issued certificate, a loop or one that does not parse. When the server left
 * an issuer out, Node completes the chain from the trust store, so the last element may be a root the server
 * did not send; with `fromTrustStore`, a trailing self-issued certificate it says yes to is taken to be that
 * completion and dropped (the HTTPS fetch reports what was sent; the SMTP probe keeps it, and tls_cert reads a
 * leaf issued straight by a known root as a complete chain).
 * Call it before any getPeerX509Certificate() on the socket: in Node 20, getPeerCertificate(true) after that
 * call returns an object without `raw` and without issuers.
 */
export function presentedChain(t: tls.TLSSocket, fromTrustStore?: (certSha256: string) => boolean): PresentedCert[] {
  const links: (ChainLink & { selfIssued: boolean })[] = [];
  let c: tls.DetailedPeerCertificate | undefined = t.getPeerCertificate(true);
  while (c && c.raw && links.length < MAX_CHAIN) {
    const raw = c.raw;
    const sha256 = hex('sha256', raw);
    const known = factsByCert.peek(sha256);
    // A certificate seen before parsed then (the digest is of the same DER); else parse it now, once.
    let parsed: X509Certificate | null = null;
    if (!known) {
      parsed = parse(raw);
      if (!parsed) break;
    }
    if (links.some((l) => l.sha256 === sha256)) break;
    const selfIssued = known ? known.selfIssued : parsed!.subject === parsed!.issuer;
    links.push({ sha256, selfIssued, x509: () => (parsed ??= new X509Certificate(raw)) });
    if (selfIssued || !c.issuerCertificate || c.issuerCertificate === c) break;
    c = c.issuerCertificate;
  }
  const last = links[links.length - 1];
  if (fromTrustStore && links.length > 1 && last!.selfIssued && fromTrustStore(last!.sha256)) links.pop();
  return factsOfChain(links);
}

const fingerprintSets = boundedMemo<Set<string>>(17);
/** SHA-256 fingerprints of the certificates in PEM bundles, computed once per bundle set (the system store has ~140). */
export function trustedFingerprints(pems: readonly string[]): Set<string> {
  const key = `${pems.length}:${pems.map((p) => p.length).join(',')}:${pems.map((p) => p.slice(-80)).join('')}`;
  return fingerprintSets.get(key, () => {
    const set = new Set<string>();
    for (const pem of pems.flatMap((b) => b.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [])) {
      const x = parse(Buffer.from(pem));
      if (x) set.add(hex('sha256', x.raw));
    }
    return set;
  });
}
