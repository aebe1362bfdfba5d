// DANE for SMTP (RFC 7672): the TLSA records at `_25._tcp.<mx>` with their DNSSEC state, and whether one of
// them matches the chain the MX host presented in the session we already make (no extra connection).
// `retrieveTlsa` is the I/O (through our resolver); `matchTlsa` and `evaluateDane` are pure, over plain JSON.
import { createHash } from 'node:crypto';
import type { Resolver } from '../../dns/resolver.ts';
import { isAbsent, isFact } from '../../dns/resolver.ts';
import { lookup, failureReason, type Lookup } from '../../dns/observation.ts';
import type { Status } from '../../criteria.ts';
import type { PresentedCert } from '../../probes/smtp/types.ts';

/** One certificate of a presented chain, as the SMTP probe records it (lib/probes/smtp/types.ts). Hashes hex lower case; chains leaf first. */
export type { PresentedCert };

/** A TLSA record (RFC 6698 §2.1); `data` is the certificate association data, hex lower case. */
export interface TlsaRecord {
  usage: number;
  selector: number;
  matchingType: number;
  data: string;
}

export interface TlsaObservation {
  mxHost: string;
  /** `_25._tcp.<mx>` (RFC 7672 §2.2: port 25). */
  name: string;
  /** The TLSA query as asked (CD clear): outcome, rcode, AD, EDE. */
  lookup: Lookup;
  /** Only after a SERVFAIL: the same query with CD set. An answer there means the data exists but does not validate (bogus). */
  cdLookup: Lookup | null;
  /** The records of `lookup` (at most MAX_TLSA_RECORDS), parsed. */
  records: TlsaRecord[];
  /** Answers that did not parse as TLSA presentation format (counted, not kept). */
  malformed: number;
}

export const MAX_TLSA_RECORDS = 32;
/** RFC 8914 Extended DNS Errors that say DNSSEC validation failed (6 DNSSEC Bogus … 12 NSEC Missing). */
const DNSSEC_EDE = new Set([6, 7, 8, 9, 10, 11, 12]);

/** "3 1 1 ab12…" (our resolver's TLSA presentation, lib/dns/resolver.ts) → record, or null. */
export function parseTlsaData(s: string): TlsaRecord | null {
  const m = /^(\d{1,3}) (\d{1,3}) (\d{1,3}) ([0-9a-f]*)$/.exec(s.trim().toLowerCase());
  if (!m) return null;
  const [usage, selector, matchingType] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (usage > 255 || selector > 255 || matchingType > 255 || m[4].length % 2 !== 0) return null;
  return { usage, selector, matchingType, data: m[4] };
}

/** The TLSA RRset of `mxHost` port 25 through our (validating) resolver; on SERVFAIL, once more with CD. */
export async function retrieveTlsa(mxHost: string, resolver: Resolver): Promise<TlsaObservation> {
  const host = mxHost.toLowerCase().replace(/\.$/, '');
  const name = `_25._tcp.${host}`;
  const l = await lookup(resolver, name, 'TLSA');
  const records: TlsaRecord[] = [];
  let malformed = 0;
  if (l.outcome === 'answer') {
    for (const d of l.data) {
      const r = typeof d === 'string' ? parseTlsaData(d) : null;
      if (!r) malformed++;
      else if (records.length < MAX_TLSA_RECORDS) records.push(r);
    }
    // Keep the stored lookup bounded too: the parsed records carry the data.
    if (l.data.length > MAX_TLSA_RECORDS) l.data = l.data.slice(0, MAX_TLSA_RECORDS);
  }
  const cdLookup = l.outcome === 'servfail' ? await lookup(resolver, name, 'TLSA', true) : null;
  if (cdLookup && cdLookup.data.length > MAX_TLSA_RECORDS) cdLookup.data = cdLookup.data.slice(0, MAX_TLSA_RECORDS);
  return { mxHost: host, name, lookup: l, cdLookup, records, malformed };
}

// ---------------------------------------------------------------------------------------------------------
// Matching (RFC 7672 §3.1, RFC 6698 §2.1)

export type TlsaUnusable =
  | 'pkix_usage' // usages 0 PKIX-TA and 1 PKIX-EE are not for SMTP (RFC 7672 §3.1.3)
  | 'unknown_usage'
  | 'unknown_selector'
  | 'unknown_matching_type'
  | 'bad_digest_length'; // a SHA-256 that is not 32 octets, a SHA-512 not 64, empty full data

export interface TlsaRecordMatch {
  record: TlsaRecord;
  usable: boolean;
  unusable: TlsaUnusable | null;
  /** Depth in the chain (0 = leaf) of the certificate it matched, or null. */
  matchedDepth: number | null;
  /**
   * DANE-TA only: the record's digest is that of a certificate above the leaf, but it does not vouch for the
   * leaf: a signature between them does not verify (`signature`), or the leaf's name is not the MX host's
   * (`name`, RFC 7672 §3.2.2). matchedDepth is null then.
   */
  rejected?: 'signature' | 'name';
}

export interface TlsaMatch {
  /** Some usable record matched. */
  matched: boolean;
  usableCount: number;
  results: TlsaRecordMatch[];
}

function unusableReason(r: TlsaRecord): TlsaUnusable | null {
  if (r.usage === 0 || r.usage === 1) return 'pkix_usage';
  if (r.usage !== 2 && r.usage !== 3) return 'unknown_usage';
  if (r.selector !== 0 && r.selector !== 1) return 'unknown_selector';
  if (r.matchingType === 0) return r.data.length > 0 ? null : 'bad_digest_length';
  if (r.matchingType === 1) return r.data.length === 64 ? null : 'bad_digest_length';
  if (r.matchingType === 2) return r.data.length === 128 ? null : 'bad_digest_length';
  return 'unknown_matching_type';
}

function certMatches(r: TlsaRecord, c: PresentedCert): boolean {
  const full = r.selector === 0;
  switch (r.matchingType) {
    // 0 (Full): the association data is the DER itself; the chain stores digests only, so its SHA-256 is compared.
    case 0: return createHash('sha256').update(Buffer.from(r.data, 'hex')).digest('hex') === (full ? c.certSha256 : c.spkiSha256);
    case 1: return r.data === (full ? c.certSha256 : c.spkiSha256);
    case 2: return r.data === (full ? c.certSha512 : c.spkiSha512);
    default: return false;
  }
}

/**
 * Which TLSA records match the presented chain (leaf first). DANE-EE (3) is compared with the leaf only and
 * ignores names and dates (RFC 7672 §3.1.1). DANE-TA (2) is compared with the certificates above the leaf
 * (§3.1.2: a trust anchor the server sends), and counts only when every signature from the leaf up to the
 * matched certificate verifies (`issuedByNext`, recorded by the probe; chains recorded before it are taken as
 * they were judged then) and the leaf carries the MX host's name (§3.2.2; `leafNameMatches` null: not known).
 */
export function matchTlsa(records: readonly TlsaRecord[], chain: readonly PresentedCert[], leafNameMatches: boolean | null = null): TlsaMatch {
  const results: TlsaRecordMatch[] = records.map((record) => {
    const unusable = unusableReason(record);
    if (unusable) return { record, usable: false, unusable, matchedDepth: null };
    if (record.usage === 3) return { record, usable: true, unusable: null, matchedDepth: chain.length > 0 && certMatches(record, chain[0]) ? 0 : null };
    const depth = chain.findIndex((c, i) => i > 0 && certMatches(record, c));
    if (depth < 0) return { record, usable: true, unusable: null, matchedDepth: null };
    if (chain.slice(0, depth).some((c) => c.issuedByNext === false)) return { record, usable: true, unusable: null, matchedDepth: null, rejected: 'signature' };
    if (leafNameMatches === false) return { record, usable: true, unusable: null, matchedDepth: null, rejected: 'name' };
    return { record, usable: true, unusable: null, matchedDepth: depth };
  });
  return { matched: results.some((r) => r.matchedDepth !== null), usableCount: results.filter((r) => r.usable).length, results };
}

// ---------------------------------------------------------------------------------------------------------
// Evaluation

/** Per-MX DANE value (../shared/CRITERIA.md `dane`, plus `unusable`: a secure RRset with no usable record). */
export type DaneValue = 'valid' | 'mismatch' | 'unusable' | 'none' | 'insecure' | 'bogus' | 'unknown';

export const DANE_REASONS = {
  tlsa_match: { value: 'valid', transient: false },
  tlsa_mismatch: { value: 'mismatch', transient: false },
  tlsa_unusable: { value: 'unusable', transient: false },
  no_tlsa: { value: 'none', transient: false },
  tlsa_insecure: { value: 'insecure', transient: false },
  tlsa_bogus: { value: 'bogus', transient: false },
  dns_failure: { value: 'unknown', transient: true },
  tlsa_malformed: { value: 'unknown', transient: false },
  no_handshake: { value: 'unknown', transient: true },
} as const satisfies Record<string, { value: DaneValue; transient: boolean }>;
export type DaneReason = keyof typeof DANE_REASONS;

export interface DaneEvaluation {
  value: DaneValue;
  status: Status;
  reason: DaneReason;
  detail: string;
  /** Present when records were compared with a chain. */
  match?: TlsaMatch;
}

const STATUS: Record<DaneValue, Status> = { valid: 'ok', mismatch: 'ng', unusable: 'ng', none: 'ng', insecure: 'ng', bogus: 'ng', unknown: 'unknown' };

function result(reason: DaneReason, detail: string, match?: TlsaMatch): DaneEvaluation {
  const value = DANE_REASONS[reason].value;
  const e: DaneEvaluation = { value, status: STATUS[value], reason, detail: detail.slice(0, 500) };
  if (match) e.match = match;
  return e;
}

/**
 * The DANE value of one MX host from its TLSA observation and the chain its STARTTLS presented (null when no
 * handshake completed). RFC 7672 §2.2: only TLSA records the resolver validated (AD) count.
 */
export function evaluateDane(obs: TlsaObservation, chain: readonly PresentedCert[] | null, leafNameMatches: boolean | null = null): DaneEvaluation {
  const l = obs.lookup;
  if (l.outcome === 'servfail') {
    const dnssecEde = l.ede.some((e) => DNSSEC_EDE.has(e.code));
    const cdAnswered = obs.cdLookup !== null && isFact(obs.cdLookup.outcome);
    // SERVFAIL that goes away with CD (or says so in EDE) is a validation failure, not an outage.
    if (dnssecEde || cdAnswered) {
      return result('tlsa_bogus', `TLSA ${obs.name}: SERVFAIL${dnssecEde ? ` (EDE ${l.ede.map((e) => e.code).join(', ')})` : ''}${cdAnswered ? `, ${obs.cdLookup?.outcome} with CD` : ''}`);
    }
    return result('dns_failure', `TLSA ${obs.name}: SERVFAIL`);
  }
  if (!isFact(l.outcome)) return result('dns_failure', `TLSA ${obs.name}: ${failureReason(l)}`);
  if (isAbsent(l.outcome)) return result('no_tlsa', `no TLSA at ${obs.name} (${l.outcome}${l.ad ? ', DNSSEC-secure denial' : ''})`);
  if (!l.ad) return result('tlsa_insecure', `TLSA at ${obs.name} without DNSSEC validation (AD clear): unusable, RFC 7672 §2.2`);
  if (obs.records.length === 0) return result('tlsa_malformed', `${obs.malformed} TLSA answers at ${obs.name} did not parse`);
  const probe = matchTlsa(obs.records, []);
  if (probe.usableCount === 0) {
    const why = [...new Set(probe.results.map((r) => r.unusable))].join(', ');
    return result('tlsa_unusable', `no usable TLSA record at ${obs.name} (${why}): RFC 7672 §3.1.3`, probe);
  }
  if (chain === null || chain.length === 0) return result('no_handshake', `TLSA secure at ${obs.name}, but no certificate chain was presented`);
  const m = matchTlsa(obs.records, chain, leafNameMatches);
  if (m.matched) {
    const hit = m.results.find((r) => r.matchedDepth !== null) as TlsaRecordMatch;
    const rr = hit.record;
    return result('tlsa_match', `${rr.usage} ${rr.selector} ${rr.matchingType} matches the certificate at depth ${hit.matchedDepth}`, m);
  }
  const rejected = m.results.find((r) => r.rejected)?.rejected;
  const why = rejected === 'signature' ? ': a DANE-TA digest matches a certificate that did not sign the chain below it'
    : rejected === 'name' ? ': a DANE-TA digest matches, but the leaf does not carry the MX host name (RFC 7672 §3.2.2)' : '';
  return result('tlsa_mismatch', `none of ${m.usableCount} usable TLSA records at ${obs.name} matches the ${chain.length} presented certificate(s)${why}`, m);
}
