// TLS facts that are findings of their own (ExtraFindings in lib/diagnosis.ts): the protocol versions
// negotiated and the certificate problems seen. They never change tls_receive (../shared/CRITERIA.md), but
// reports count them.
import { certNameMatches, type SmtpObservation } from '../../probes/smtp/index.ts';
import type { JudgeInput } from '../judge-input.ts';

/** The four problems cert_problems counts, in the order reports list them. */
export const CERT_PROBLEM_VALUES = ['self_signed', 'expired', 'wrong_name', 'untrusted'] as const;
export type CertProblem = (typeof CERT_PROBLEM_VALUES)[number];

export interface TlsFindings {
  tlsVersions: string[];
  certProblems: CertProblem[];
}

/** Certificate problems of one session; `host` (the MX name this domain uses) re-judges the name match. */
export function certProblemsOf(obs: SmtpObservation, host?: string | null): CertProblem[] {
  const cert = obs.tls.handshake === 'ok' ? obs.tls.cert : null;
  if (!cert) return [];
  const out: CertProblem[] = [];
  if (cert.selfSigned) out.push('self_signed');
  if (cert.expired || cert.trustError === 'CERT_HAS_EXPIRED') out.push('expired');
  // A shared MX IP is probed once, with the first domain's MX name; the recorded names let every domain
  // judge its own name (RFC 6125 via Node's checkServerIdentity).
  const nameMatch = host ? certNameMatches(host, cert) : cert.nameMatch;
  if (nameMatch === false) out.push('wrong_name');
  // Untrusted for another reason than the two above (unknown issuer, incomplete chain, bad signature).
  const explained = cert.selfSigned || cert.trustError === 'CERT_HAS_EXPIRED' || cert.trustError === 'CERT_NOT_YET_VALID';
  if (!cert.trusted && !explained) out.push('untrusted');
  return out;
}

export function tlsFindings(observations: (SmtpObservation | { host?: string | null; obs: SmtpObservation })[]): TlsFindings {
  const versions = new Set<string>();
  const problems = new Set<CertProblem>();
  for (const item of observations) {
    const { obs, host } = 'obs' in item ? item : { obs: item, host: undefined };
    if (obs.tls.handshake !== 'ok') continue;
    if (obs.tls.protocol) versions.add(obs.tls.protocol);
    for (const p of certProblemsOf(obs, host)) problems.add(p);
  }
  return { tlsVersions: [...versions].sort(), certProblems: CERT_PROBLEM_VALUES.filter((p) => problems.has(p)) };
}

/** The SMTP session of every MX row that was probed, with the MX name that row uses. */
export function mxSessions(input: JudgeInput): { host: string; obs: SmtpObservation }[] {
  return input.mx.probes.filter((p): p is typeof p & { obs: SmtpObservation } => !!p.ip && !!p.obs).map((p) => ({ host: p.host, obs: p.obs }));
}
