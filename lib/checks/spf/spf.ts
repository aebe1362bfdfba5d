// SPF (RFC 7208). Test-mail source: mailauth evaluates check_host() for the client IP and MAIL FROM with our
// resolver. Scan source: no IP to test, so the published policy is judged statically, as checkdmarc does:
// exactly one well-formed `v=spf1` record, ≤ 10 DNS-querying terms over it and its includes/redirect,
// ≤ 2 void lookups, and not `+all`.
import type { Resolver } from '../../dns/resolver.ts';
import { isAbsent, isFact } from '../../dns/resolver.ts';
import { lookup, txtRecords, unknownFrom, failureReason, type Lookup } from '../../dns/observation.ts';
import { finding, type Finding } from '../../criteria.ts';

// RFC 7208 §4.6.4.
export const SPF_MAX_LOOKUPS = 10;
export const SPF_MAX_VOID = 2;
/** Bounds of the static expansion: no SPF tree is fetched beyond these, whatever it contains. */
const MAX_NODES = 25;
const MAX_DEPTH = 12;

export type SpfTermKind = 'all' | 'include' | 'a' | 'mx' | 'ptr' | 'ip4' | 'ip6' | 'exists' | 'redirect' | 'exp' | 'unknown-modifier';
export interface SpfTerm {
  raw: string;
  qualifier: '+' | '-' | '~' | '?';
  kind: SpfTermKind;
  /** The domain-spec or network after `:` / `=` (without CIDR). */
  value: string | null;
}
export type SpfParse = { ok: true; terms: SpfTerm[] } | { ok: false; error: string };

/** RFC 7208 §4.5: a record is an SPF record when it starts with "v=spf1" followed by a space or its end. */
export function isSpfRecord(txt: string): boolean {
  return /^v=spf1( |$)/i.test(txt);
}

const MACRO = /%(?:\{[slodiphcrtv]\d*r?[.\-+,/_=]*\}|[%_-])/gi;
function validDomainSpec(spec: string): boolean {
  if (!spec || /[^\x21-\x7e]/.test(spec)) return false;
  // Every % must start a valid macro (RFC 7208 §7.1).
  if (spec.replace(MACRO, '').includes('%')) return false;
  if (spec.includes('%')) return true;
  const d = spec.replace(/\.$/, '');
  // domain-end: the last label is a toplabel (not all digits, RFC 7208 §7.1 / RFC 3696).
  return d.split('.').length >= 2 && d.split('.').every((l) => l.length > 0 && l.length <= 63) && !/^\d+$/.test(d.split('.').pop()!);
}
function hasMacro(spec: string): boolean {
  return spec.includes('%');
}

/** Parses one record syntactically (no I/O). */
export function parseSpf(record: string): SpfParse {
  if (!isSpfRecord(record)) return { ok: false, error: 'not a v=spf1 record' };
  if (/[^\x20-\x7e]/.test(record)) return { ok: false, error: 'non-ASCII character in record' };
  const terms: SpfTerm[] = [];
  const seenModifiers = new Set<string>();
  for (const raw of record.split(' ').slice(1).filter(Boolean)) {
    const mod = /^([a-z][a-z0-9_.-]*)=(.*)$/i.exec(raw);
    if (mod) {
      const name = mod[1].toLowerCase();
      const value = mod[2];
      if (name === 'redirect' || name === 'exp') {
        // RFC 7208 §6: redirect and exp may each appear at most once.
        if (seenModifiers.has(name)) return { ok: false, error: `${name}= appears more than once` };
        seenModifiers.add(name);
        if (!validDomainSpec(value)) return { ok: false, error: `invalid domain-spec in ${raw}` };
        terms.push({ raw, qualifier: '+', kind: name, value: value.toLowerCase().replace(/\.$/, '') });
      } else {
        if (value.replace(MACRO, '').includes('%')) return { ok: false, error: `invalid macro in ${raw}` };
        terms.push({ raw, qualifier: '+', kind: 'unknown-modifier', value });
      }
      continue;
    }
    const m = /^([+\-~?]?)([a-z0-9]+)(?:([:/])(.*))?$/i.exec(raw);
    if (!m) return { ok: false, error: `invalid term ${raw}` };
    const qualifier = (m[1] || '+') as SpfTerm['qualifier'];
    const kind = m[2].toLowerCase();
    const sep = m[3];
    const arg = m[4] ?? '';
    const withCidr = (s: string) => /^(.*?)(\/(\d{1,3}))?(\/\/(\d{1,3}))?$/.exec(s)!;
    switch (kind) {
      case 'all':
        if (sep) return { ok: false, error: `unexpected argument in ${raw}` };
        terms.push({ raw, qualifier, kind, value: null });
        break;
      case 'include':
      case 'exists':
        if (sep !== ':' || !validDomainSpec(arg)) return { ok: false, error: `invalid domain-spec in ${raw}` };
        terms.push({ raw, qualifier, kind, value: arg.toLowerCase().replace(/\.$/, '') });
        break;
      case 'a':
      case 'mx': {
        const c = withCidr(sep === '/' ? `/${arg}` : arg);
        const spec = sep === ':' ? c[1] : '';
        if (sep === ':' && !validDomainSpec(spec)) return { ok: false, error: `invalid domain-spec in ${raw}` };
        if ((c[3] && Number(c[3]) > 32) || (c[5] && Number(c[5]) > 128)) return { ok: false, error: `invalid CIDR length in ${raw}` };
        terms.push({ raw, qualifier, kind, value: spec ? spec.toLowerCase().replace(/\.$/, '') : null });
        break;
      }
      case 'ptr':
        if (sep === '/') return { ok: false, error: `invalid term ${raw}` };
        if (sep === ':' && !validDomainSpec(arg)) return { ok: false, error: `invalid domain-spec in ${raw}` };
        terms.push({ raw, qualifier, kind, value: sep ? arg.toLowerCase() : null });
        break;
      case 'ip4': {
        const c = /^(\d{1,3}(?:\.\d{1,3}){3})(?:\/(\d{1,2}))?$/.exec(arg);
        if (sep !== ':' || !c || c[1].split('.').some((o) => Number(o) > 255) || (c[2] && Number(c[2]) > 32)) {
          return { ok: false, error: `invalid ip4 network in ${raw}` };
        }
        terms.push({ raw, qualifier, kind, value: c[1] });
        break;
      }
      case 'ip6': {
        const c = /^([0-9a-f:.]+?)(?:\/(\d{1,3}))?$/i.exec(arg);
        if (sep !== ':' || !c || !c[1].includes(':') || (c[2] && Number(c[2]) > 128)) return { ok: false, error: `invalid ip6 network in ${raw}` };
        terms.push({ raw, qualifier, kind, value: c[1].toLowerCase() });
        break;
      }
      default:
        return { ok: false, error: `unknown mechanism ${raw}` };
    }
  }
  return { ok: true, terms };
}

/** One SPF record fetched during the static expansion. */
export interface SpfNode {
  domain: string;
  txt: Lookup;
  children: SpfChild[];
}
export interface SpfChild {
  kind: 'include' | 'redirect' | 'a' | 'mx' | 'exists';
  target: string;
  /** include/redirect: the target's record. */
  node?: SpfNode;
  /** a: A and AAAA of the target; mx: its MX; exists: its A. */
  lookups?: Lookup[];
  /** The target is already being expanded higher up this branch. */
  loop?: boolean;
  /** Not fetched: the expansion bounds were reached. */
  notFetched?: boolean;
}

export interface SpfObservation {
  domain: string;
  root: SpfNode;
}

function firstSpf(node: SpfNode): string | null {
  const recs = txtRecords(node.txt).filter(isSpfRecord);
  return recs.length === 1 ? recs[0] : null;
}

/** Fetches the apex record and, recursively, its include/redirect targets (bounded, loops cut). */
export async function collectSpf(domain: string, resolver: Resolver, opts: { cd?: boolean } = {}): Promise<SpfObservation> {
  const cd = opts.cd ?? false;
  let nodes = 0;
  // RFC 7208 §4.6.4: once more than 10 DNS-querying terms or more than 2 void lookups are reached the result
  // is permerror, so nothing beyond that point is fetched (one record with 2,000 `a:` terms costs 11 lookups,
  // not 4,000). analyzeSpf counts the terms themselves, fetched or not, so the verdict is unchanged.
  let terms = 0;
  let voids = 0;
  const overLimit = () => terms > SPF_MAX_LOOKUPS || voids > SPF_MAX_VOID;
  const noteVoid = (ls: Lookup[]) => {
    if (ls.length > 0 && ls.every((l) => isAbsent(l.outcome))) voids++;
  };
  const expand = async (name: string, ancestors: string[]): Promise<SpfNode> => {
    nodes++;
    const node: SpfNode = { domain: name, txt: await lookup(resolver, name, 'TXT', cd), children: [] };
    if (ancestors.length > 0) noteVoid([node.txt]);
    const rec = firstSpf(node);
    const parsed = rec ? parseSpf(rec) : null;
    if (!parsed?.ok) return node;
    const hasAll = parsed.terms.some((t) => t.kind === 'all');
    for (const t of parsed.terms) {
      if (['include', 'a', 'mx', 'ptr', 'exists'].includes(t.kind) || (t.kind === 'redirect' && !hasAll)) terms++;
      if (t.kind === 'include' || (t.kind === 'redirect' && !hasAll)) {
        const child: SpfChild = { kind: t.kind, target: t.value! };
        if (overLimit()) {
          child.notFetched = true;
        } else if (hasMacro(t.value!)) {
          child.notFetched = true;
        } else if (ancestors.includes(t.value!) || t.value === name) {
          child.loop = true;
        } else if (nodes >= MAX_NODES || ancestors.length >= MAX_DEPTH) {
          child.notFetched = true;
        } else {
          child.node = await expand(t.value!, [...ancestors, name]);
        }
        node.children.push(child);
      } else if (t.kind === 'a' || t.kind === 'mx' || t.kind === 'exists') {
        const target = t.value ?? name;
        const child: SpfChild = { kind: t.kind, target };
        if (hasMacro(target) || overLimit()) child.notFetched = true;
        else if (t.kind === 'a') child.lookups = await Promise.all([lookup(resolver, target, 'A', cd), lookup(resolver, target, 'AAAA', cd)]);
        else if (t.kind === 'mx') child.lookups = [await lookup(resolver, target, 'MX', cd)];
        else child.lookups = [await lookup(resolver, target, 'A', cd)];
        if (child.lookups) noteVoid(child.lookups);
        node.children.push(child);
      }
    }
    return node;
  };
  const root = await expand(domain, []);
  // Only what the DNS said: the analysis is the check's (analyzeSpf at judging time), never stored as raw.
  return { domain, root };
}

export interface SpfAnalysis {
  /** The apex `v=spf1` records. */
  records: string[];
  /** DNS-querying terms (include, a, mx, ptr, exists, redirect) over the tree, RFC 7208 §4.6.4. */
  lookupCount: number;
  voidCount: number;
  /** The `all` that ends evaluation of the apex policy (after redirect), e.g. "-all"; null if none. */
  all: string | null;
  /** Proven problems (permerror-class or policy), as reason codes with details. */
  problems: { reason: string; detail: string }[];
  /** Lookups that failed (temperror-class). */
  failures: Lookup[];
}

/** Pure: walks the collected tree and counts. */
export function analyzeSpf(root: SpfNode): SpfAnalysis {
  const out: SpfAnalysis = { records: txtRecords(root.txt).filter(isSpfRecord), lookupCount: 0, voidCount: 0, all: null, problems: [], failures: [] };
  const problem = (reason: string, detail: string) => out.problems.push({ reason, detail });
  const walk = (node: SpfNode, isRoot: boolean, via: string): string | null => {
    if (!isFact(node.txt.outcome)) {
      out.failures.push(node.txt);
      return null;
    }
    const recs = txtRecords(node.txt).filter(isSpfRecord);
    if (recs.length === 0) {
      // RFC 7208 §5.2: an include whose target has no record is a permerror; so is a redirect (§6.1).
      if (!isRoot) problem('include_without_spf', `${via} ${node.domain} has no SPF record`);
      if (!isRoot && isAbsent(node.txt.outcome)) out.voidCount++;
      return null;
    }
    if (recs.length > 1) {
      problem(isRoot ? 'multiple_spf_records' : 'include_multiple_spf_records', `${node.domain} publishes ${recs.length} v=spf1 records (RFC 7208 §4.5)`);
      return null;
    }
    const parsed = parseSpf(recs[0]);
    if (!parsed.ok) {
      problem('spf_syntax_error', `${node.domain}: ${parsed.error}`);
      return null;
    }
    const hasAll = parsed.terms.some((t) => t.kind === 'all');
    let all: string | null = null;
    const children = [...node.children];
    for (const t of parsed.terms) {
      if (['include', 'a', 'mx', 'ptr', 'exists'].includes(t.kind) || (t.kind === 'redirect' && !hasAll)) out.lookupCount++;
      if (t.kind === 'all' && all === null) all = `${t.qualifier === '+' ? '+' : t.qualifier}all`;
      if (t.kind === 'ptr') problem('ptr_mechanism', `${node.domain}: "ptr" SHOULD NOT be used (RFC 7208 §5.5)`);
      if (!['include', 'redirect', 'a', 'mx', 'exists'].includes(t.kind) || (t.kind === 'redirect' && hasAll)) continue;
      const child = children.shift();
      if (!child) continue;
      if (child.loop) {
        problem('include_loop', `${node.domain} ${child.kind} ${child.target} loops back`);
        // A loop never ends before the limit: count it as exceeding.
        out.lookupCount += SPF_MAX_LOOKUPS;
        continue;
      }
      if (child.notFetched) continue;
      if (child.node) {
        const sub = walk(child.node, false, child.kind);
        if (child.kind === 'redirect' && all === null) all = sub;
      } else if (child.lookups) {
        const failed = child.lookups.filter((l) => !isFact(l.outcome));
        // An `a` is void only when both A and AAAA are empty (as mailauth's dual-stack count does).
        if (failed.length > 0 && (child.kind !== 'a' || failed.length === 2)) out.failures.push(...failed);
        else if (child.lookups.every((l) => isAbsent(l.outcome))) out.voidCount++;
        if (child.kind === 'mx' && child.lookups[0].outcome === 'answer' && child.lookups[0].data.length > 10) {
          problem('too_many_mx', `${child.target} has ${child.lookups[0].data.length} MX records; more than 10 is a permerror (RFC 7208 §4.6.4)`);
        }
      }
    }
    return all;
  };
  out.all = walk(root, true, '');
  if (out.lookupCount > SPF_MAX_LOOKUPS) problem('too_many_lookups', `${out.lookupCount} DNS-querying terms (limit ${SPF_MAX_LOOKUPS}, RFC 7208 §4.6.4)`);
  if (out.voidCount > SPF_MAX_VOID) problem('too_many_void_lookups', `${out.voidCount} void lookups (limit ${SPF_MAX_VOID}, RFC 7208 §4.6.4)`);
  if (out.all === '+all') problem('plus_all', '"+all" lets every host on the internet pass');
  return out;
}

/** Scan source (CRITERIA.md): one well-formed record, ≤ 10 lookups, ≤ 2 void, not +all; DNS failure = unknown. */
export function evaluateSpfScan(obs: SpfObservation): Finding {
  const root = obs.root;
  if (!isFact(root.txt.outcome)) return unknownFrom(root.txt, 'SPF');
  const a = analyzeSpf(root);
  if (a.records.length === 0) return finding('ng', 'no_spf_record', `no v=spf1 TXT record at ${obs.domain}`);
  // ptr is advice, not a failure of the criterion.
  const proven = a.problems.filter((p) => p.reason !== 'ptr_mechanism');
  if (proven.length > 0) return finding('ng', proven[0].reason, proven.map((p) => p.detail).join('; '));
  if (a.failures.length > 0) return { ...unknownFrom(a.failures[0], 'SPF include/lookup'), reason: failureReason(a.failures[0]) };
  return finding('ok', 'spf_valid', `${a.records[0]} (${a.lookupCount} lookups, ${a.voidCount} void)`);
}

/** What a received test mail's SPF evaluation recorded. */
export interface SpfTestMailObservation {
  ip: string;
  mailFrom: string;
  helo: string | null;
  /** mailauth's status.result: pass, fail, softfail, neutral, none, permerror, temperror. */
  result: string;
  comment: string | null;
  record: string | null;
  lookups: { count: number; void: number } | null;
}

/** Test-mail source (CRITERIA.md): pass → ok; fail/softfail/neutral/none/permerror → ng; temperror → unknown. */
export function evaluateSpfTestMail(obs: SpfTestMailObservation): Finding {
  const detail = `${obs.result} for ${obs.ip} / ${obs.mailFrom}${obs.comment ? `: ${obs.comment}` : ''}`;
  switch (obs.result) {
    case 'pass':
      return finding('ok', 'pass', detail);
    case 'fail':
    case 'softfail':
    case 'neutral':
    case 'none':
    case 'permerror':
      return finding('ng', obs.result, detail);
    case 'temperror':
    case 'temperr':
      return finding('unknown', 'temperror', detail);
    default:
      return finding('unknown', 'unexpected_result', detail);
  }
}

