// DMARC (RFC 7489), recorded as a finding beyond MSchecker's criteria: the `_dmarc` TXT record of the domain,
// or of its organizational domain when the domain has none (§6.6.3), and its policy.
import { getDomain } from 'tldts'; // mailauth's own Public Suffix List library (a dependency of mailauth)
import type { Resolver } from '../../dns/resolver.ts';
import { isAbsent, isFact } from '../../dns/resolver.ts';
import { lookup, txtRecords, unknownFrom, type Lookup } from '../../dns/observation.ts';
import { finding, type Finding } from '../../criteria.ts';

export interface DmarcObservation {
  domain: string;
  txt: Lookup;
  /** The organizational domain's record, asked only when the domain has none. */
  orgDomain?: string;
  orgTxt?: Lookup;
}

export interface DmarcPolicy {
  p: string;
  sp: string | null;
  pct: number | null;
  rua: string[];
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

export async function collectDmarc(domain: string, resolver: Resolver, opts: { cd?: boolean } = {}): Promise<DmarcObservation> {
  const cd = opts.cd ?? false;
  const obs: DmarcObservation = { domain, txt: await lookup(resolver, `_dmarc.${domain}`, 'TXT', cd) };
  const org = organizationalDomain(domain);
  if (org !== domain && isFact(obs.txt.outcome) && !txtRecords(obs.txt).some(isDmarc)) {
    obs.orgDomain = org;
    obs.orgTxt = await lookup(resolver, `_dmarc.${org}`, 'TXT', cd);
  }
  return obs;
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
  const rua = (t.get('rua') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  return { p, sp, pct: Number.isFinite(pct) ? pct : null, rua, record };
}

export function evaluateDmarc(obs: DmarcObservation): DmarcFinding {
  const judge = (l: Lookup, fromOrg: boolean): DmarcFinding | null => {
    if (!isFact(l.outcome)) return { ...unknownFrom(l, 'DMARC'), value: 'unknown' };
    const recs = txtRecords(l).filter(isDmarc);
    if (recs.length === 0) return null;
    // RFC 7489 §6.6.3: more than one record means no policy.
    if (recs.length > 1) return { ...finding('ng', 'multiple_dmarc_records', `${l.name}: ${recs.length} DMARC records`), value: 'invalid' };
    const parsed = parseDmarc(recs[0]);
    if (!parsed) return { ...finding('ng', 'invalid_dmarc_record', `${l.name}: ${recs[0]}`), value: 'invalid' };
    const policy = { ...parsed, fromOrgDomain: fromOrg };
    const value = parsed.p as DmarcFinding['value'];
    return { ...finding('ok', `p_${parsed.p}`, `${fromOrg ? `(organizational domain) ` : ''}${recs[0]}`), value, policy };
  };
  const own = judge(obs.txt, false);
  if (own) return own;
  if (obs.orgTxt) {
    const org = judge(obs.orgTxt, true);
    if (org) return org;
  }
  const absent = isAbsent(obs.txt.outcome) || obs.txt.outcome === 'answer';
  return absent ? { ...finding('ng', 'no_dmarc_record', `no DMARC record at _dmarc.${obs.domain}`), value: 'absent' } : { ...unknownFrom(obs.txt, 'DMARC'), value: 'unknown' };
}
