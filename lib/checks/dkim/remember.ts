// DKIM discovery across sources: the selectors a domain's test mails were signed with (aligned signatures,
// d= the domain or a parent, that verified: so the key really lives there and a forged mail cannot make us
// query names of its choosing) are remembered per signing domain and tried first in later scans of it, with
// the survey list's own `selectors` column (survey_domains.dkim_selectors). Bounded: at most
// MAX_SEEN_PER_DOMAIN selectors kept per domain (the most recently seen), at most MAX_SEEN_TRIED tried per scan.
import { sql } from 'kysely';
import type { Db } from '../../db.ts';
import type { DkimTestMailObservation } from './dkim.ts';
import { MAX_GIVEN_SELECTORS, givenSelectors, normalizeSelector } from './dkim.ts';

export const MAX_SEEN_PER_DOMAIN = 20;
export const MAX_SEEN_TRIED = 5;
/** At most this many signatures of one mail are looked at (a hostile mail may carry hundreds). */
const MAX_SIGNATURES = 20;

/** (signing domain, selector) of the mail's aligned, verifying signatures; pure. */
export function selectorsToRemember(dkim: DkimTestMailObservation): { domain: string; selector: string }[] {
  const out: { domain: string; selector: string }[] = [];
  for (const s of dkim.signatures.slice(0, MAX_SIGNATURES)) {
    const d = s.signingDomain.toLowerCase();
    if (s.result !== 'pass' || !d.includes('.') || !(dkim.domain === d || dkim.domain.endsWith(`.${d}`))) continue;
    const selector = s.selector === null ? null : normalizeSelector(s.selector);
    if (selector && !out.some((o) => o.domain === d && o.selector === selector)) out.push({ domain: d, selector });
  }
  return out;
}

/** Stores the selectors of one test mail (idempotent: a second sighting only moves last_seen), then prunes. */
export async function rememberDkimSelectors(db: Db, dkim: DkimTestMailObservation, seenAt: Date): Promise<number> {
  const rows = selectorsToRemember(dkim);
  if (rows.length === 0) return 0;
  await db
    .insertInto('dkim_selectors_seen')
    .values(rows.map((r) => ({ ...r, first_seen: seenAt, last_seen: seenAt })))
    .onConflict((oc) => oc.columns(['domain', 'selector']).doUpdateSet({ last_seen: sql`greatest(dkim_selectors_seen.last_seen, excluded.last_seen)` }))
    .execute();
  const domains = [...new Set(rows.map((r) => r.domain))];
  await sql`
    DELETE FROM dkim_selectors_seen s USING (
      SELECT domain, selector, row_number() OVER (PARTITION BY domain ORDER BY last_seen DESC, selector) AS n
        FROM dkim_selectors_seen WHERE domain = ANY(${domains}::text[])) r
     WHERE s.domain = r.domain AND s.selector = r.selector AND r.n > ${MAX_SEEN_PER_DOMAIN}`.execute(db);
  return rows.length;
}

/** The selectors a domain job carries: the list's own first, then the remembered ones; valid, once each, bounded. */
export function jobSelectors(listed: readonly string[] | null | undefined, seen: readonly string[] | null | undefined): string[] | undefined {
  const all = givenSelectors([...(listed ?? []), ...(seen ?? []).slice(0, MAX_SEEN_TRIED)]).slice(0, MAX_GIVEN_SELECTORS);
  return all.length > 0 ? all : undefined;
}
