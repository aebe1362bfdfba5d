// DMARC (RFC 7489), recorded as findings beyond MSchecker's criteria: the `_dmarc` TXT record of the domain,
// or of its organizational domain when the domain has none (§6.6.3); its policy (p, sp, pct), and where its
// reports go (rua, ruf), with the authorisation record of every external report domain (§7.1).
import { getDomain } from 'tldts'; // mailauth's own Public Suffix List library (a dependency of mailauth)
import type { Resolver } from '../../dns/resolver.ts';
import { isAbsent, isFact } from '../../dns/resolver.ts';
import { normalizeDomain } from '../../dns/names.ts';
import { lookup, txtRecords, unknownFrom, type Lookup } from '../../dns/observation.ts';
import { finding, type Finding } from '../../criteria.ts';

/**
 * At most this many distinct external report domains get an authorisation lookup per diagnosis (rua first,
 * then ruf, in record order); the others are listed in `reportsNotAsked` and judged unknown. RFC 7489 sets no
 * bound; real records name one to three.
 */
export const MAX_REPORT_DOMAINS = 4;
/** At most this many URIs of one tag are read (a hostile record may list thousands). */
export const MAX_REPORT_URIS = 10;

/** The authorisation record of one external report domain: TXT `<policy domain>._report._dmarc.<report domain>`. */
export interface ReportAuthObservation {
  reportDomain: string;
  txt: Lookup;
}

export interface DmarcObservation {
  domain: string;
  txt: Lookup;
  /** The organizational domain's record, asked only when the domain has none. */
  orgDomain?: string;
  orgTxt?: Lookup;
  /** §7.1 lookups, one per external report domain of the applied record (absent before they were made). */
  reports?: ReportAuthObservation[];
  /** External report domains beyond MAX_REPORT_DOMAINS, not asked. */
  reportsNotAsked?: string[];
}

export type PolicyValue = 'none' | 'quarantine' | 'reject';

export interface DmarcPolicy {
  p: string;
  sp: string | null;
  pct: number | null;
  rua: string[];
  ruf: string[];
  record: string;
  fromOrgDomain: boolean;
}

export interface DmarcFinding extends Finding {
  value: 'none' | 'quarantine' | 'reject' | 'absent' | 'invalid' | 'unknown';
  policy?: DmarcPolicy;
}

function isDmarc(txt: string): boolean {
  return /^v\s*=\s*DMARC1\s*(;|$)/i.test(txt.trim());
}

export function organizationalDomain(domain: string): string {
  return getDomain(domain, { allowIcannDomains: true, allowPrivateDomains: true }) ?? domain;
}

/** Parses a DMARC record's tags (pure). */
export function parseDmarc(record: string): Omit<DmarcPolicy, 'fromOrgDomain'> | null {
  const t = new Map<string, string>();
  for (const part of record.split(';')) {
    const i = part.indexOf('=');
    if (i > 0) t.set(part.slice(0, i).trim().toLowerCase(), part.slice(i + 1).trim());
  }
  const p = (t.get('p') ?? '').toLowerCase();
  // RFC 7489 §6.3: p= is required and is one of none, quarantine, reject.
  if (!['none', 'quarantine', 'reject'].includes(p)) return null;
  const sp = t.get('sp')?.toLowerCase() ?? null;
  const pct = t.has('pct') ? Number(t.get('pct')) : null;
  const uris = (tag: string) => (t.has(tag) ? t.get(tag)!.split(',').map((s) => s.trim()).filter(Boolean) : []);
  return { p, sp, pct: Number.isFinite(pct) ? pct : null, rua: uris('rua'), ruf: uris('ruf'), record };
}

/** The record that applies: the domain's own, else its organizational domain's (§6.6.3); null when none decides. */
export type Applied =
  | { kind: 'policy'; name: string; policyDomain: string; record: string; policy: DmarcPolicy }
  | { kind: 'invalid'; finding: Finding }
  | { kind: 'unknown'; finding: Finding }
  | { kind: 'absent'; finding: Finding };

export function appliedRecord(obs: DmarcObservation): Applied {
  const at = (l: Lookup, policyDomain: string, fromOrg: boolean): Applied | null => {
    if (!isFact(l.outcome)) return { kind: 'unknown', finding: unknownFrom(l, 'DMARC') };
    const recs = txtRecords(l).filter(isDmarc);
    if (recs.length === 0) return null;
    // RFC 7489 §6.6.3: more than one record means no policy.
    if (recs.length > 1) return { kind: 'invalid', finding: finding('ng', 'multiple_dmarc_records', `${l.name}: ${recs.length} DMARC records`) };
    const parsed = parseDmarc(recs[0]);
    if (!parsed) return { kind: 'invalid', finding: finding('ng', 'invalid_dmarc_record', `${l.name}: ${recs[0]}`) };
    return { kind: 'policy', name: l.name, policyDomain, record: recs[0], policy: { ...parsed, fromOrgDomain: fromOrg } };
  };
  const own = at(obs.txt, obs.domain, false);
  if (own) return own;
  if (obs.orgTxt && obs.orgDomain) {
    const org = at(obs.orgTxt, obs.orgDomain, true);
    if (org) return org;
  }
  const absent = isAbsent(obs.txt.outcome) || obs.txt.outcome === 'answer';
  return absent
    ? { kind: 'absent', finding: finding('ng', 'no_dmarc_record', `no DMARC record at _dmarc.${obs.domain}`) }
    : { kind: 'unknown', finding: unknownFrom(obs.txt, 'DMARC') };
}

/** One report URI (RFC 7489 §6.2: `mailto:` with an optional `!size`): its domain, or why it is not usable. */
export type ReportUri = { uri: string; domain: string } | { uri: string; domain: null; problem: 'not_mailto' | 'bad_address' };

export function parseReportUri(raw: string): ReportUri {
  const uri = raw.slice(0, 300);
  const m = /^mailto:(.*)$/i.exec(uri.trim());
  if (!m) return { uri, domain: null, problem: 'not_mailto' };
  const address = decodeUriSafe(m[1].replace(/![0-9]+[kmgt]?$/i, '').split('?')[0]);
  const at = address.lastIndexOf('@');
  const domain = at > 0 ? normalizeDomain(address.slice(at + 1)) : null;
  return domain ? { uri, domain } : { uri, domain: null, problem: 'bad_address' };
}

function decodeUriSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export type ReportKind = 'rua' | 'ruf';
export const REPORT_KINDS: readonly ReportKind[] = ['rua', 'ruf'];

/** The URIs of one tag of a policy (at most MAX_REPORT_URIS). */
export function reportUris(policy: DmarcPolicy, kind: ReportKind): ReportUri[] {
  return (policy[kind] ?? []).slice(0, MAX_REPORT_URIS).map(parseReportUri);
}

/** An external report domain (§7.1): its organizational domain differs from the policy domain's. */
export function isExternal(policyDomain: string, reportDomain: string): boolean {
  return organizationalDomain(reportDomain) !== organizationalDomain(policyDomain);
}

/** The external report domains of a policy, distinct, rua first, in record order. */
export function externalReportDomains(policyDomain: string, policy: DmarcPolicy): string[] {
  const out: string[] = [];
  for (const kind of REPORT_KINDS) {
    for (const u of reportUris(policy, kind)) if (u.domain && isExternal(policyDomain, u.domain) && !out.includes(u.domain)) out.push(u.domain);
  }
  return out;
}

export function authorizationName(policyDomain: string, reportDomain: string): string {
  return `${policyDomain}._report._dmarc.${reportDomain}`;
}

export async function collectDmarc(domain: string, resolver: Resolver, opts: { cd?: boolean } = {}): Promise<DmarcObservation> {
  const cd = opts.cd ?? false;
  const obs: DmarcObservation = { domain, txt: await lookup(resolver, `_dmarc.${domain}`, 'TXT', cd) };
  const org = organizationalDomain(domain);
  if (org !== domain && isFact(obs.txt.outcome) && !txtRecords(obs.txt).some(isDmarc)) {
    obs.orgDomain = org;
    obs.orgTxt = await lookup(resolver, `_dmarc.${org}`, 'TXT', cd);
  }
  const applied = appliedRecord(obs);
  obs.reports = [];
  if (applied.kind === 'policy') {
    const external = externalReportDomains(applied.policyDomain, applied.policy);
    const asked = external.slice(0, MAX_REPORT_DOMAINS);
    // The name may exceed 253 octets for long domains: the resolver then answers with an error, recorded as such.
    obs.reports = await Promise.all(asked.map(async (d) => ({ reportDomain: d, txt: await lookup(resolver, authorizationName(applied.policyDomain, d), 'TXT', cd) })));
    if (external.length > asked.length) obs.reportsNotAsked = external.slice(asked.length);
  }
  return obs;
}

/** The `dmarc_policy` value: the p= of the applied record (own or organizational domain). */
export function evaluateDmarc(obs: DmarcObservation): DmarcFinding {
  const a = appliedRecord(obs);
  if (a.kind !== 'policy') return { ...a.finding, value: a.kind };
  const value = a.policy.p as DmarcFinding['value'];
  return { ...finding('ok', `p_${a.policy.p}`, `${a.policy.fromOrgDomain ? `(organizational domain) ` : ''}${a.record}`), value, policy: a.policy };
}

// ---- sp and pct (dmarc_subdomain_policy, dmarc_flags) ----

const POLICIES: readonly string[] = ['none', 'quarantine', 'reject'];

/** The policy for subdomains (RFC 7489 §6.3 sp: absent means p applies); for an inherited record, what applies to the domain itself. */
export function subdomainPolicy(a: Extract<Applied, { kind: 'policy' }>): { value: PolicyValue | 'invalid'; reason: string; detail: string } {
  const where = a.policy.fromOrgDomain ? `${a.name} (organizational domain, whose sp= applies to this domain)` : a.name;
  const sp = a.policy.sp;
  if (sp === null) return { value: a.policy.p as PolicyValue, reason: 'sp_absent', detail: `${where}: no sp=, p=${a.policy.p} applies` };
  if (!POLICIES.includes(sp)) return { value: 'invalid', reason: 'invalid_sp', detail: `${where}: sp=${sp.slice(0, 40)}` };
  return { value: sp as PolicyValue, reason: `sp_${sp}`, detail: `${where}: sp=${sp}` };
}

/** RFC 7489 §6.3 pct: an integer 0–100, default 100. Anything else is ignored (the default holds). */
export function pctOf(policy: DmarcPolicy): number {
  const p = policy.pct;
  return p !== null && Number.isInteger(p) && p >= 0 && p <= 100 ? p : 100;
}

// ---- rua and ruf (dmarc_reports) ----

export type ReportValue = 'absent' | 'internal' | 'authorized' | 'unauthorized' | 'invalid' | 'unknown';
export const REPORT_VALUES: readonly ReportValue[] = ['absent', 'internal', 'authorized', 'unauthorized', 'invalid', 'unknown'];

export interface ReportJudgement {
  kind: ReportKind;
  value: ReportValue;
  /** Why unknown: a DNS failure's lookup, a destination not asked, or observations from before the lookups. */
  unknown?: { lookup?: Lookup; notAsked?: string; notRecorded?: string };
  detail: string;
}

function authorized(l: Lookup): boolean {
  return txtRecords(l).some(isDmarc);
}

/**
 * rua or ruf of the applied policy: absent (no URI), invalid (URIs but none a usable mailto:), else by its
 * destinations: unauthorized if any external one lacks the §7.1 record, else unknown if any could not be
 * checked, else authorized if any is external, else internal.
 */
export function judgeReports(obs: DmarcObservation, a: Extract<Applied, { kind: 'policy' }>, kind: ReportKind): ReportJudgement {
  const uris = reportUris(a.policy, kind);
  if (uris.length === 0) return { kind, value: 'absent', detail: `${kind}: none` };
  const usable = uris.filter((u): u is { uri: string; domain: string } => u.domain !== null);
  if (usable.length === 0) return { kind, value: 'invalid', detail: `${kind}: no usable mailto: URI (${uris.map((u) => u.uri.slice(0, 60)).join(', ')})` };
  const parts: string[] = [];
  let unauthorized = false;
  let external = false;
  let unknown: ReportJudgement['unknown'];
  for (const d of [...new Set(usable.map((u) => u.domain))]) {
    if (!isExternal(a.policyDomain, d)) {
      parts.push(`${d} internal`);
      continue;
    }
    external = true;
    const auth = obs.reports?.find((r) => r.reportDomain === d);
    if (!auth) {
      if (obs.reports === undefined) unknown ??= { notRecorded: d };
      else unknown ??= { notAsked: d };
      parts.push(`${d} not checked`);
    } else if (!isFact(auth.txt.outcome)) {
      unknown ??= { lookup: auth.txt };
      parts.push(`${d} ${auth.txt.outcome}`);
    } else if (authorized(auth.txt)) {
      parts.push(`${d} authorized`);
    } else {
      unauthorized = true;
      parts.push(`${d} unauthorized (no v=DMARC1 at ${auth.txt.name})`);
    }
  }
  const detail = `${kind}: ${parts.join(', ')}`;
  if (unauthorized) return { kind, value: 'unauthorized', detail };
  if (unknown) return { kind, value: 'unknown', unknown, detail };
  return { kind, value: external ? 'authorized' : 'internal', detail };
}
