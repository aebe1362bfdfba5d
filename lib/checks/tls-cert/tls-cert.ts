// What the certificate of each MX host that completed STARTTLS says, judged from the stored session: the leaf
// (CertObservation: trust, name, self-signed) and the chain as presented (PresentedCert[]: key, dates, how far
// it reaches). Pure; the time is the diagnosis's observation time, never the wall clock.
import { certNameMatches, type PresentedCert, type SmtpObservation } from '../../probes/smtp/index.ts';
import { MAX_CHAIN } from '../../net/presented-cert.ts';
import type { JudgeInput } from '../judge-input.ts';

/** A certificate problem of one MX host, in the order reports list them. */
export const CERT_PROBLEMS = ['weak_key', 'expired', 'expires_soon', 'incomplete_chain', 'self_signed', 'wrong_name', 'untrusted'] as const;
export type CertProblem = (typeof CERT_PROBLEMS)[number];

/** notAfter within this many days of the observation: `expires_soon`. */
export const EXPIRES_SOON_DAYS = 14;
/** RSA keys below this many bits: `weak_key` (NIST SP 800-57, and what every public CA has required since 2014). */
export const MIN_RSA_BITS = 2048;

/** The class of a leaf key (`tls_key`), from the weakest to the strongest as ranked for a domain. */
export const KEY_CLASSES = ['rsa_weak', 'other', 'rsa_2048_plus', 'ec', 'ed25519'] as const;
export type KeyClass = (typeof KEY_CLASSES)[number];

export function keyClass(c: Pick<PresentedCert, 'keyType' | 'bits'>): KeyClass {
  if (c.keyType === 'rsa' || c.keyType === 'rsa-pss') return (c.bits ?? 0) >= MIN_RSA_BITS ? 'rsa_2048_plus' : 'rsa_weak';
  if (c.keyType === 'ec') return 'ec';
  if (c.keyType === 'ed25519' || c.keyType === 'ed448') return 'ed25519';
  return 'other';
}

/** The leaf key as one phrase: `rsa 2048`, `ec 256 prime256v1`. */
export function describeKey(c: Pick<PresentedCert, 'keyType' | 'bits' | 'curve'>): string {
  return [c.keyType ?? 'unknown key', c.bits ?? '', c.curve ?? ''].filter((x) => x !== '').join(' ');
}

export interface HostCert {
  host: string;
  ip: string;
  problems: CertProblem[];
  /** The presented chain was recorded (observations before issue 15 have the leaf's CertObservation only). */
  chainRecorded: boolean;
  leaf: PresentedCert | null;
  /** Whole days from the observation to notAfter (negative: expired), null when the date does not parse. */
  daysLeft: number | null;
}

const DAY_MS = 86_400_000;

/**
 * The recorded chain stops at the leaf although the leaf is not self-issued: its issuer (the intermediate)
 * was not sent, and Node could not complete the chain from the trust store either. A complete chain reads
 * leaf, intermediate(s), then the root Node appends from the trust store; a leaf issued straight by a trusted
 * root reads leaf, root. Not told apart here: a leaf issued by a private CA the server does not send.
 */
export function incompleteChain(chain: readonly PresentedCert[]): boolean {
  return chain.length === 1 && chain.length < MAX_CHAIN && !chain[0].selfIssued;
}

/** The certificate findings of one completed STARTTLS session, for the MX name `host` this domain uses. */
export function hostCert(host: string, obs: SmtpObservation, observedAt: Date): HostCert | null {
  const cert = obs.tls.handshake === 'ok' ? obs.tls.cert : null;
  if (!cert) return null;
  const chain = Array.isArray(obs.tls.chain) ? obs.tls.chain : null;
  const leaf = chain && chain.length > 0 ? chain[0] : null;
  const problems = new Set<CertProblem>();
  if (leaf && keyClass(leaf) === 'rsa_weak') problems.add('weak_key');
  const notAfter = Date.parse(leaf?.notAfter ?? cert.validTo);
  const now = observedAt.getTime();
  const daysLeft = Number.isNaN(notAfter) || Number.isNaN(now) ? null : Math.floor((notAfter - now) / DAY_MS);
  // Against the observation time; the handshake's own verdict only when the date cannot be read.
  if (Number.isNaN(notAfter) || Number.isNaN(now) ? cert.trustError === 'CERT_HAS_EXPIRED' : notAfter < now) problems.add('expired');
  else if (!Number.isNaN(notAfter) && notAfter - now < EXPIRES_SOON_DAYS * DAY_MS) problems.add('expires_soon');
  const incomplete = chain !== null && !cert.selfSigned && incompleteChain(chain);
  if (incomplete) problems.add('incomplete_chain');
  if (cert.selfSigned) problems.add('self_signed');
  // A shared MX IP is probed once, with the first domain's MX name; every domain judges its own name.
  if (!certNameMatches(host, cert)) problems.add('wrong_name');
  // Untrusted for another reason than those above (unknown issuer, bad signature, not yet valid).
  const explained = cert.selfSigned || incomplete || problems.has('expired') || cert.trustError === 'CERT_HAS_EXPIRED';
  if (!cert.trusted && !explained) problems.add('untrusted');
  return { host, ip: obs.ip, problems: CERT_PROBLEMS.filter((p) => problems.has(p)), chainRecorded: chain !== null, leaf, daysLeft };
}

/** Every MX (host, IP) row of the domain whose session completed STARTTLS, and whether any row had a session at all. */
export function hostCerts(input: JudgeInput): { certs: HostCert[]; sessions: number } {
  const certs: HostCert[] = [];
  let sessions = 0;
  for (const p of input.mx.probes) {
    if (!p.ip || !p.obs) continue;
    sessions++;
    const c = hostCert(p.host, p.obs, input.observedAt);
    if (c) certs.push(c);
  }
  return { certs, sessions };
}

/** One host as the detail shows it: `mx.example (192.0.2.1): rsa 2048, 200 days left: weak_key`. */
export function describeHost(c: HostCert): string {
  const facts = [c.leaf ? describeKey(c.leaf) : 'chain not recorded', c.daysLeft === null ? null : c.daysLeft < 0 ? `expired ${-c.daysLeft} days ago` : `${c.daysLeft} days left`];
  const problems = c.problems.length ? `: ${c.problems.join(', ')}` : '';
  return `${c.host} (${c.ip}): ${facts.filter(Boolean).join(', ')}${problems}`;
}
