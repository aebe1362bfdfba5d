// The facts of a presented certificate chain as observations store them (PresentedCert, declared with the DANE
// check in lib/checks/dane/tlsa.ts): digests of the certificate and of its SubjectPublicKeyInfo, the key, the
// names of subject and issuer, the dates. Plain JSON, so DANE (RFC 7672 §3.1) and certificate findings can be
// re-judged from storage without the DER.
import { createHash, X509Certificate } from 'node:crypto';
import type tls from 'node:tls';
import type { PresentedCert } from '../checks/dane/tlsa.ts';

/** Most certificates kept from one chain: real chains have 2-4; a hostile server may send hundreds. */
export const MAX_CHAIN = 10;

const hex = (alg: 'sha256' | 'sha512', data: Buffer) => createHash(alg).update(data).digest('hex');

/** RFC 5280 names as one line: `CN=mx.example, O=Example` (newlines of Node's format joined, bounded). */
function dn(s: string): string {
  return s.replace(/\n/g, ', ').slice(0, 500);
}

export function presentedCert(cert: X509Certificate): PresentedCert {
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  const details = cert.publicKey.asymmetricKeyDetails ?? {};
  const keyType = cert.publicKey.asymmetricKeyType ?? null;
  return {
    certSha256: hex('sha256', cert.raw),
    certSha512: hex('sha512', cert.raw),
    spkiSha256: hex('sha256', spki),
    spkiSha512: hex('sha512', spki),
    subject: dn(cert.subject),
    issuer: dn(cert.issuer),
    keyType,
    bits: typeof details.modulusLength === 'number' ? details.modulusLength : keyType === 'ec' ? curveBits(details.namedCurve) : null,
    curve: details.namedCurve ?? null,
    notBefore: new Date(cert.validFrom).toISOString(),
    notAfter: new Date(cert.validTo).toISOString(),
    selfIssued: cert.subject === cert.issuer,
  };
}

function curveBits(curve: string | undefined): number | null {
  switch (curve) {
    case 'prime256v1': return 256;
    case 'secp384r1': return 384;
    case 'secp521r1': return 521;
    default: return null;
  }
}

/** PresentedCert of a PEM or DER certificate. */
export function presentedCertFrom(pemOrDer: string | Buffer): PresentedCert {
  return presentedCert(new X509Certificate(pemOrDer));
}

/**
 * The chain a TLS peer presented, leaf first, at most MAX_CHAIN. Node's detailed peer certificate links each
 * certificate to its issuer and, when the server left an issuer out, completes the chain from the trust store:
 * a trailing self-issued certificate for which `fromTrustStore(certSha256)` says yes is taken to be that
 * completion and dropped (servers rarely send their root; see trustedFingerprints).
 * Call it before any getPeerX509Certificate() on the socket: in Node 20, getPeerCertificate(true) after that
 * call returns an object without `raw` and without issuers.
 */
export function presentedChain(t: tls.TLSSocket, fromTrustStore: (certSha256: string) => boolean = () => false): PresentedCert[] {
  const out: PresentedCert[] = [];
  let c = t.getPeerCertificate(true) as tls.DetailedPeerCertificate | null;
  const seen = new Set<string>();
  while (c && c.raw && out.length < MAX_CHAIN) {
    const p = presentedCert(new X509Certificate(c.raw));
    if (seen.has(p.certSha256)) break;
    seen.add(p.certSha256);
    out.push(p);
    if (!c.issuerCertificate || c.issuerCertificate === c) break;
    c = c.issuerCertificate;
  }
  const last = out[out.length - 1];
  if (out.length > 1 && last.selfIssued && fromTrustStore(last.certSha256)) out.pop();
  return out;
}

const fingerprintSets = new Map<string, Set<string>>();
/** SHA-256 fingerprints of the certificates in PEM bundles, computed once per bundle set (the system store has ~140). */
export function trustedFingerprints(pems: readonly string[]): Set<string> {
  const key = `${pems.length}:${pems.map((p) => p.length).join(',')}:${pems.map((p) => p.slice(-80)).join('')}`;
  let set = fingerprintSets.get(key);
  if (!set) {
    set = new Set();
    for (const pem of pems.flatMap((b) => b.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [])) {
      try {
        set.add(hex('sha256', new X509Certificate(pem).raw));
      } catch {
        // not a certificate: ignore
      }
    }
    if (fingerprintSets.size > 16) fingerprintSets.clear();
    fingerprintSets.set(key, set);
  }
  return set;
}
