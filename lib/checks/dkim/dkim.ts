// DKIM (RFC 6376). Scan source: we cannot know a domain's selectors, so we ask whether `_domainkey.<domain>`
// exists (an empty non-terminal answers NOERROR when any selector lives below it; RFC 8020 makes NXDOMAIN
// mean nothing below, which ends the search at once), try the selectors we know of the domain first (the
// survey list's `selectors` column, the selectors its test mails were signed with), then a list of common
// selectors, parsing each key found. When no key turns up, a random label under `_domainkey` tells a real
// `_domainkey` node from a DNS wildcard's artefact (CRITERIA.md "DKIM in scans: wildcards"; internet.nl#1025).
// Test-mail source: mailauth verifies the received message; evaluateDkimTestMail judges its results.
import { createPublicKey, randomBytes } from 'node:crypto';
import { boundedMemo } from '../../bounded-memo.ts';
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
  /**
   * The selectors known for this domain (survey list, earlier test mails), tried before the common ones; when
   * one of them holds a usable key the common list is not asked. Absent: none known (and in old observations).
   */
  given?: string[];
  /**
   * TXT of `<random>._domainkey.<domain>`, asked only when `_domainkey` exists and no probed selector holds a
   * usable key: NXDOMAIN means `_domainkey` is real; an answer means a wildcard makes every name exist.
   * Absent when not needed, and in observations made before the test (they judge as before).
   */
  wildcard?: { label: string; txt: Lookup };
}

/** At most this many known selectors are tried per domain (they come first, before the common list). */
export const MAX_GIVEN_SELECTORS = 10;

// RFC 6376 §3.1: selector = sub-domain *( "." sub-domain ), sub-domain as in RFC 5321 (letters, digits,
// hyphens inside). Each label at most 63 octets (RFC 1035 §2.3.4); the whole selector at most 63 here, so
// `<selector>._domainkey.<domain>` stays a valid name for any domain we survey up to 179 octets.
const SELECTOR = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** A selector as we store and query it (lower case), or null if it is none (RFC 6376 §3.1). */
export function normalizeSelector(raw: string): string | null {
  const s = raw.normalize('NFKC').trim().toLowerCase();
  return s.length > 0 && s.length <= 63 && SELECTOR.test(s) ? s : null;
}

/**
 * A cell (or option) listing selectors: separated by white space, commas or semicolons (full-width ones and
 * the Japanese comma too). `bad`: the first entry that is no selector, for the rejects file.
 */
export function parseSelectorList(cell: string | undefined): { selectors: string[]; bad: string | null } {
  const selectors: string[] = [];
  if (!cell) return { selectors, bad: null };
  for (const part of cell.normalize('NFKC').split(/[\s,;、]+/)) {
    if (part === '') continue;
    const s = normalizeSelector(part);
    if (!s) return { selectors, bad: part };
    if (!selectors.includes(s)) selectors.push(s);
  }
  return { selectors, bad: null };
}

/** The random label of the wildcard test: 16 hex digits from the CSPRNG (unpredictable, so no zone can answer it on purpose). */
export function randomDkimLabel(): string {
  return randomBytes(8).toString('hex');
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
    const key = spkiKey(p, der);
    if (!key) return { ...base, valid: false, problem: 'bad_key' };
    if (key.type !== 'rsa') return { ...base, valid: false, problem: 'bad_key', bits: key.bits };
    return { ...base, valid: true, bits: key.bits };
  } catch {
    return { ...base, valid: false, problem: 'bad_key' };
  }
}

/**
 * The type and size of an SPKI public key, or null when it does not parse, remembered per base64 text: a key
 * is read when collected and again when judged (dkim and dkim_key), and many domains publish the same one, while
 * createPublicKey was about a tenth of a worker's CPU (`npm run bench -- survey --cpu-prof`). Bounded in
 * entries and in key length (a hostile TXT record may be long).
 */
const MAX_CACHED_KEYS = 4096;
const MAX_CACHED_KEY_TEXT = 2048;
type SpkiKey = { type: string | undefined; bits: number | null } | null;
const spkiKeys = boundedMemo<SpkiKey>(MAX_CACHED_KEYS);
function spkiKey(base64: string, der: Buffer): SpkiKey {
  const read = (): SpkiKey => {
    try {
      const k = createPublicKey({ key: der, format: 'der', type: 'spki' });
      return { type: k.asymmetricKeyType, bits: k.asymmetricKeyDetails?.modulusLength ?? null };
    } catch {
      return null;
    }
  };
  return base64.length <= MAX_CACHED_KEY_TEXT ? spkiKeys.get(base64, read) : read();
}

export interface CollectDkimOptions {
  cd?: boolean;
  /** Selectors known for this domain, tried first (invalid ones and repeats dropped, at most MAX_GIVEN_SELECTORS). */
  given?: readonly string[];
  /** The random label's source (tests); @defaultValue randomDkimLabel */
  randomLabel?: () => string;
}

/** The known selectors as they are asked: valid, lower case, each once, bounded in count. */
export function givenSelectors(given: readonly string[] | undefined): string[] {
  const out: string[] = [];
  for (const g of given ?? []) {
    const s = typeof g === 'string' ? normalizeSelector(g) : null;
    if (s && !out.includes(s)) out.push(s);
    if (out.length >= MAX_GIVEN_SELECTORS) break;
  }
  return out;
}

function hasUsableKey(found: DkimSelectorObservation[]): boolean {
  return keysUnder(found).some((k) => k.valid);
}

export async function collectDkim(domain: string, selectors: readonly string[], resolver: Resolver, opts: CollectDkimOptions = {}): Promise<DkimObservation> {
  const cd = opts.cd ?? false;
  const given = givenSelectors(opts.given);
  const domainkey = await lookup(resolver, `_domainkey.${domain}`, 'TXT', cd);
  const obs: DkimObservation = { domain, domainkey, selectors: [], ...(given.length > 0 ? { given } : {}) };
  // RFC 8020: under an NXDOMAIN nothing exists, so no selector (known, common or random) need be asked.
  if (domainkey.outcome === 'nxdomain') return obs;
  const ask = (list: readonly string[]) =>
    Promise.all(list.map(async (selector) => ({ selector, txt: await lookup(resolver, `${selector}._domainkey.${domain}`, 'TXT', cd) })));
  // The known selectors first: a usable key there proves DKIM, and the common list is not asked.
  if (given.length > 0) {
    obs.selectors.push(...(await ask(given)));
    if (hasUsableKey(obs.selectors)) return obs;
  }
  obs.selectors.push(...(await ask(selectors.filter((s) => !given.includes(s.toLowerCase())))));
  // The wildcard test (CRITERIA.md): only when the node's existence is what would decide.
  if ((domainkey.outcome === 'answer' || domainkey.outcome === 'nodata') && !hasUsableKey(obs.selectors)) {
    const label = (opts.randomLabel ?? randomDkimLabel)();
    obs.wildcard = { label, txt: await lookup(resolver, `${label}._domainkey.${domain}`, 'TXT', cd) };
  }
  return obs;
}

/** Every key record found under the probed selectors, parsed. */
export function dkimKeys(obs: DkimObservation): DkimKey[] {
  return keysUnder(obs.selectors);
}

function keysUnder(selectors: DkimSelectorObservation[]): DkimKey[] {
  return selectors.flatMap((s) =>
    txtRecords(s.txt)
      // A TXT under a selector that is no key (a stray SPF or verification record) is not a DKIM key.
      .filter((r) => /(^|;)\s*(v\s*=\s*DKIM1|p\s*=)/i.test(r))
      .map((r) => parseDkimKey(s.selector, r)),
  );
}

/**
 * Scan source (CRITERIA.md): ok if a key is found under a probed selector or `_domainkey` exists (NOERROR)
 * and is no wildcard artefact (a random label under it is NXDOMAIN); ng if `_domainkey` is NXDOMAIN, or
 * exists only through a wildcard, and no probed selector has a key; unknown on DNS failure.
 */
export function evaluateDkimScan(obs: DkimObservation): Finding {
  const keys = dkimKeys(obs);
  const valid = keys.filter((k) => k.valid);
  if (valid.length > 0) {
    const given = new Set(obs.given ?? []);
    const known = valid.some((k) => given.has(k.selector)) ? ' (a known selector of the domain)' : '';
    return finding('ok', 'key_found', valid.map((k) => `${k.selector}: ${k.keyType}${k.bits ? ` ${k.bits} bits` : ''}${k.testing ? ' (t=y)' : ''}`).join(', ') + known);
  }
  const dk = obs.domainkey;
  if (dk.outcome === 'answer' || dk.outcome === 'nodata') {
    const unusable = keys.length > 0 ? `; unusable keys: ${keys.map((k) => `${k.selector} ${k.problem}`).join(', ')}` : '';
    const w = obs.wildcard;
    // Observations made before the wildcard test judge as they did then.
    if (!w || w.txt.outcome === 'nxdomain') {
      const tested = w ? `; ${w.label}._domainkey.${obs.domain} is NXDOMAIN, so no wildcard` : '';
      return finding('ok', 'domainkey_exists', `_domainkey.${obs.domain} exists (selectors not among those probed)${tested}${unusable}`);
    }
    if (w.txt.outcome === 'answer' || w.txt.outcome === 'nodata') {
      return finding(
        'ng',
        'domainkey_wildcard',
        `_domainkey.${obs.domain} exists, but so does the random ${w.label}._domainkey.${obs.domain} (${w.txt.outcome === 'answer' ? 'an answer' : 'NODATA'}): a DNS wildcard, not evidence of DKIM; no key under the probed selectors${unusable}`,
      );
    }
    return unknownFrom(w.txt, 'DKIM wildcard test');
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
