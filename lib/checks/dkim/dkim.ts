// DKIM (RFC 6376). Scan source: we cannot know a domain's selectors, so we ask whether `_domainkey.<domain>`
// exists (an empty non-terminal answers NOERROR when any selector lives below it; RFC 8020 makes NXDOMAIN
// mean nothing below) and probe a list of common selectors, parsing each key found. Test-mail source:
// mailauth verifies the received message; evaluateDkimTestMail judges its results.
import { createPublicKey } from 'node:crypto';
import type { Resolver } from '../../dns/resolver.ts';
import { isFact } from '../../dns/resolver.ts';
import { lookup, txtRecords, unknownFrom, type Lookup } from '../../dns/observation.ts';
import { finding, type Finding } from '../../criteria.ts';

export interface DkimSelectorObservation {
  selector: string;
  txt: Lookup;
}

export interface DkimObservation {
  domain: string;
  /** TXT of `_domainkey.<domain>`: NOERROR (answer or NODATA) means the node exists. */
  domainkey: Lookup;
  selectors: DkimSelectorObservation[];
}

export interface DkimKey {
  selector: string;
  record: string;
  valid: boolean;
  /** Why the key is not usable: bad_version, revoked, bad_key, unknown_key_type. */
  problem?: string;
  keyType: string;
  bits: number | null;
  revoked: boolean;
  testing: boolean;
}

/** RFC 6376 §3.6.1 tag=value list. */
function tags(record: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const part of record.split(';')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    const k = part.slice(0, i).trim().toLowerCase();
    if (!m.has(k)) m.set(k, part.slice(i + 1).replace(/\s+/g, ''));
  }
  return m;
}

/** Parses one key record (pure): version, key type, revocation (empty p=), key size from the SPKI. */
export function parseDkimKey(selector: string, record: string): DkimKey {
  const t = tags(record);
  const keyType = (t.get('k') || 'rsa').toLowerCase();
  const p = t.get('p');
  const base = { selector, record, keyType, bits: null, revoked: false, testing: (t.get('t') ?? '').split(':').includes('y') };
  // RFC 6376 §3.6.1: v= is optional, but if present it must be first and exactly DKIM1.
  if (t.has('v') && (t.get('v') !== 'DKIM1' || !/^\s*v\s*=/.test(record))) return { ...base, valid: false, problem: 'bad_version' };
  if (p === undefined) return { ...base, valid: false, problem: 'no_key' };
  if (p === '') return { ...base, valid: false, revoked: true, problem: 'revoked' };
  if (!/^[A-Za-z0-9+/]+=*$/.test(p)) return { ...base, valid: false, problem: 'bad_key' };
  const der = Buffer.from(p, 'base64');
  try {
    if (keyType === 'ed25519') {
      // RFC 8463 §4.2: the raw 32-octet public key, not an SPKI.
      if (der.length !== 32) return { ...base, valid: false, problem: 'bad_key' };
      return { ...base, valid: true, bits: 256 };
    }
    if (keyType !== 'rsa') return { ...base, valid: false, problem: 'unknown_key_type' };
    const key = createPublicKey({ key: der, format: 'der', type: 'spki' });
    const bits = key.asymmetricKeyDetails?.modulusLength ?? null;
    if (key.asymmetricKeyType !== 'rsa') return { ...base, valid: false, problem: 'bad_key', bits };
    return { ...base, valid: true, bits };
  } catch {
    return { ...base, valid: false, problem: 'bad_key' };
  }
}

export async function collectDkim(domain: string, selectors: readonly string[], resolver: Resolver, opts: { cd?: boolean } = {}): Promise<DkimObservation> {
  const cd = opts.cd ?? false;
  const domainkey = await lookup(resolver, `_domainkey.${domain}`, 'TXT', cd);
  // RFC 8020: under an NXDOMAIN nothing exists, so the selectors need not be asked.
  const probe = domainkey.outcome === 'nxdomain' ? [] : selectors;
  const found = await Promise.all(
    probe.map(async (selector) => ({ selector, txt: await lookup(resolver, `${selector}._domainkey.${domain}`, 'TXT', cd) })),
  );
  return { domain, domainkey, selectors: found };
}

/** Every key record found under the probed selectors, parsed. */
export function dkimKeys(obs: DkimObservation): DkimKey[] {
  return obs.selectors.flatMap((s) =>
    txtRecords(s.txt)
      // A TXT under a selector that is no key (a stray SPF or verification record) is not a DKIM key.
      .filter((r) => /(^|;)\s*(v\s*=\s*DKIM1|p\s*=)/i.test(r))
      .map((r) => parseDkimKey(s.selector, r)),
  );
}

/**
 * Scan source (CRITERIA.md): ok if a key is found under a probed selector or `_domainkey` exists (NOERROR);
 * ng if `_domainkey` is NXDOMAIN and no probed selector has a key; unknown on DNS failure.
 */
export function evaluateDkimScan(obs: DkimObservation): Finding {
  const keys = dkimKeys(obs);
  const valid = keys.filter((k) => k.valid);
  if (valid.length > 0) {
    return finding('ok', 'key_found', valid.map((k) => `${k.selector}: ${k.keyType}${k.bits ? ` ${k.bits} bits` : ''}${k.testing ? ' (t=y)' : ''}`).join(', '));
  }
  const dk = obs.domainkey;
  if (dk.outcome === 'answer' || dk.outcome === 'nodata') {
    const unusable = keys.length > 0 ? `; unusable keys: ${keys.map((k) => `${k.selector} ${k.problem}`).join(', ')}` : '';
    return finding('ok', 'domainkey_exists', `_domainkey.${obs.domain} exists (selectors not among those probed)${unusable}`);
  }
  const failed = obs.selectors.find((s) => !isFact(s.txt.outcome));
  if (dk.outcome === 'nxdomain') {
    // RFC 8020 makes selectors under an NXDOMAIN absent; a failed selector query can no longer hide a key.
    return finding('ng', 'no_dkim_key', `_domainkey.${obs.domain} does not exist (NXDOMAIN)`);
  }
  return unknownFrom(isFact(dk.outcome) && failed ? failed.txt : dk, 'DKIM');
}

/** One DKIM signature's verification, as mailauth's `dkim.results[]` reports it (plain JSON). */
export interface DkimSignatureResult {
  signingDomain: string;
  selector: string | null;
  /** pass, fail, neutral, policy, temperror, permerror, none. */
  result: string;
  comment: string | null;
}

export interface DkimTestMailObservation {
  /** The domain being diagnosed (A-label). */
  domain: string;
  signatures: DkimSignatureResult[];
}

/** Converts mailauth's `authenticate()` (or `dkimVerify()`) DKIM results to the stored observation. */
export function dkimTestMailObservation(
  domain: string,
  results: { signingDomain?: string; selector?: string; status?: { result?: string; comment?: string } }[] | undefined,
): DkimTestMailObservation {
  return {
    domain: domain.toLowerCase(),
    signatures: (results ?? []).map((r) => ({
      signingDomain: String(r.signingDomain ?? '').toLowerCase(),
      selector: r.selector ?? null,
      result: String(r.status?.result ?? 'none'),
      comment: r.status?.comment ?? null,
    })),
  };
}

/** d= is the domain or one of its parents (CRITERIA.md); a bare TLD never counts. */
function aligned(domain: string, d: string): boolean {
  return d.includes('.') && (domain === d || domain.endsWith(`.${d}`));
}

/**
 * Test-mail source (CRITERIA.md): ok if a signature with d= the domain (or its parent) passes; ng if none
 * passes; unknown if none passes and a relevant signature hit a temporary DNS error.
 */
export function evaluateDkimTestMail(obs: DkimTestMailObservation): Finding {
  const relevant = obs.signatures.filter((s) => aligned(obs.domain, s.signingDomain));
  const pass = relevant.find((s) => s.result === 'pass');
  if (pass) return finding('ok', 'pass', `d=${pass.signingDomain} s=${pass.selector ?? '?'} verified`);
  const temp = relevant.find((s) => s.result === 'temperror' || s.result === 'temperr');
  if (temp) return finding('unknown', 'temperror', `d=${temp.signingDomain} s=${temp.selector ?? '?'}: ${temp.comment ?? 'temporary DNS error'}`);
  if (obs.signatures.length === 0) return finding('ng', 'no_signature', 'the mail carries no DKIM signature');
  if (relevant.length === 0) {
    return finding('ng', 'no_aligned_signature', `signatures only from ${[...new Set(obs.signatures.map((s) => s.signingDomain))].join(', ')}`);
  }
  const r = relevant[0];
  return finding('ng', r.result === 'fail' ? 'signature_fail' : 'signature_not_verified', `d=${r.signingDomain} s=${r.selector ?? '?'}: ${r.result}${r.comment ? ` (${r.comment})` : ''}`);
}
