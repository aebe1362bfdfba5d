// Diagnoses for report tests, built like the producers build them (judgeVerdict + insertDiagnosis), in numbers
// that reproduce the seed release: 2021 (n=202): safe 12, review 102, needs improvement 87, danger 1; SPF and
// DKIM both NG 32; reverse DNS NG 8; send or receive TLS NG 50. 2020 (n=190): safe 11, needs improvement 101,
// reverse DNS NG 13, both NG 30. Plus traps for the latest-diagnosis rule and a small scan survey.
import { sql } from 'kysely';
import type { Db } from '../lib/db.ts';
import { CRITERIA, finding, type Criterion, type CriterionFindings, type Source, type Status } from '../lib/criteria.ts';
import { judgeVerdict } from '../lib/verdict.ts';
import { insertDiagnosis, type Diagnosis, type FindingResults } from '../lib/diagnosis.ts';
import { buildReport } from '../reports/aggregate.ts';
import { yearPeriod } from '../reports/period.ts';
import { createSnapshot, domainRows } from '../reports/queries.ts';

/** The record findings as the fixtures write them (one key per reported finding, as before the registry). */
export interface LegacyFindings {
  dmarcPolicy: string;
  mtaSts: string;
  tlsRpt: string;
  tlsVersions: string[];
  certProblems: string[];
  nullMx: boolean;
}

/** The stored `findings` of a diagnosis with these values (status and reason do not matter to reports). */
export function findingResults(f: Partial<LegacyFindings>): FindingResults {
  const r = (value: string | string[] | undefined) => ({ status: 'ok' as const, reason: 'fixture', value: value ?? 'unknown' });
  return {
    mx: r(f.nullMx ? 'null' : 'mx'),
    dmarc_policy: r(f.dmarcPolicy),
    mta_sts: r(f.mtaSts),
    tls_rpt: r(f.tlsRpt),
    tls_versions: r(f.tlsVersions ?? []),
    cert_problems: r(f.certProblems ?? []),
  };
}

type Overrides = Partial<Record<Criterion, Status | [Status, string]>>;

export function criteria(over: Overrides = {}, source: Source = 'test-mail'): CriterionFindings {
  const out = {} as CriterionFindings;
  for (const c of CRITERIA) {
    const o = over[c];
    const [status, reason] = Array.isArray(o) ? o : [o ?? 'ok', o === 'ng' ? 'failed' : o === 'unknown' ? 'timeout' : 'passed'];
    out[c] = finding(status, reason);
  }
  if (source === 'scan' && !over.tls_send) out.tls_send = finding('unknown', 'not_measured');
  return out;
}

let mailSeq = 0;

export async function addTestMailDiagnosis(
  db: Db,
  domain: string,
  observedAt: string,
  over: Overrides,
  extra: Partial<LegacyFindings> = {},
): Promise<string> {
  const [row] = (
    await sql<{ id: string }>`INSERT INTO test_mails (received_at, client_ip, rcpt_to, domain, raw, size)
      VALUES (${observedAt}, '127.100.0.1', ${['t@receiver.test']}, ${domain}, ${Buffer.from(`mail ${++mailSeq}`)}, 6) RETURNING id`.execute(db)
  ).rows;
  const c = criteria(over);
  const { id } = await insertDiagnosis(
    db,
    {
      source: 'test-mail',
      domain,
      observedAt: new Date(observedAt),
      criteria: c,
      verdict: judgeVerdict(c, 'test-mail'),
      findings: findingResults({
        dmarcPolicy: 'none', mtaSts: 'absent', tlsRpt: 'absent', tlsVersions: ['TLSv1.3'], certProblems: [], nullMx: false, ...extra,
      }),
      observations: {},
      mx: [{ preference: 10, host: `mx.${domain}`, ip: '127.100.0.1' }],
    },
    { source: 'test-mail', testMailId: row.id },
  );
  return id;
}

/** The composition of one year's diagnoses: each group is [count, criterion overrides]. */
type Group = [number, Overrides, Partial<LegacyFindings>?];

export const YEAR_2021: Group[] = [
  [1, { open_relay: 'ng', reverse_dns: 'ng' }], // danger (also reverse DNS NG)
  [30, { spf: 'ng', dkim: 'ng' }, { dmarcPolicy: 'absent' }], // needs improvement: both NG
  [2, { spf: 'ng', dkim: 'ng', tls_receive: 'ng' }, { dmarcPolicy: 'absent', tlsVersions: [] }],
  [24, { tls_send: 'ng' }],
  [24, { tls_receive: 'ng', dnssec: 'ng' }, { certProblems: ['self_signed'], tlsVersions: [] }],
  [7, { reverse_dns: 'ng' }],
  [90, { dnssec: 'ng' }, { dmarcPolicy: 'reject', tlsRpt: 'present' }], // review
  [12, { dnsbl: 'ng' }, { dmarcPolicy: 'quarantine', tlsVersions: ['TLSv1.2', 'TLSv1.3'] }],
  [9, {}, { dmarcPolicy: 'reject', mtaSts: 'present', tlsRpt: 'present' }], // safe
  [3, { dkim: 'ng' }, { dmarcPolicy: 'reject', certProblems: ['expired', 'wrong_name'] }], // safe: SPF only
];

export const YEAR_2020: Group[] = [
  [1, { open_relay: 'ng' }],
  [28, { spf: 'ng', dkim: 'ng' }],
  [2, { spf: 'ng', dkim: 'ng', tls_send: 'ng' }],
  [58, { tls_receive: 'ng' }],
  [13, { reverse_dns: 'ng' }],
  [77, { dnssec: 'ng' }],
  [11, {}],
];

/** Bulk-inserts one year of test-mail diagnoses, spread over the year; returns the domains in order. */
export async function addYear(db: Db, year: number, groups: Group[], prefix: string): Promise<string[]> {
  const domains: string[] = [];
  let i = 0;
  for (const [count, over, extra] of groups) {
    for (let k = 0; k < count; k++) {
      const domain = `${prefix}${String(++i).padStart(3, '0')}.example.jp`;
      const month = String((i % 12) + 1).padStart(2, '0');
      await addTestMailDiagnosis(db, domain, `${year}-${month}-15T03:00:00Z`, over, extra ?? {});
      domains.push(domain);
    }
  }
  return domains;
}

/** A survey with one run (its config recorded) and scan diagnoses. */
export async function addScanSurvey(db: Db, name: string, observedAt: string, list: [string, Overrides][]): Promise<number> {
  const survey = await db.insertInto('surveys').values({ name }).returning('id').executeTakeFirstOrThrow();
  for (const [domain] of list) await db.insertInto('survey_domains').values({ survey_id: survey.id, domain, organization: `株式会社${domain.split('.')[0]}` }).execute();
  await db.insertInto('survey_domains').values({ survey_id: survey.id, domain: `never-diagnosed.${name}.jp` }).execute();
  const run = await db
    .insertInto('runs')
    .values({ survey_id: survey.id, state: 'done', total: list.length, config: { dnsTimeoutMs: 2000, resolver: '127.0.0.53:53', dnsblZones: ['bl.lab.test'] } })
    .returning('id')
    .executeTakeFirstOrThrow();
  for (const [domain, over] of list) {
    const c = criteria(over, 'scan');
    await insertDiagnosis(
      db,
      {
        source: 'scan', domain, observedAt: new Date(observedAt), criteria: c, verdict: judgeVerdict(c, 'scan'),
        findings: findingResults({ dmarcPolicy: 'unknown', mtaSts: 'unknown', tlsRpt: 'unknown', tlsVersions: [], certProblems: [], nullMx: false }),
        observations: {}, mx: [],
      },
      { source: 'scan', runId: run.id, surveyId: survey.id },
    );
  }
  return run.id;
}

/**
 * A survey with one finished scan run of `total` domains, for the tests that count a check in a report:
 * `store` inserts a judged diagnosis into it as the workers do.
 */
export async function scanRun(db: Db, name: string, total: number): Promise<{ runId: number; surveyId: number; store(d: Diagnosis): Promise<void> }> {
  const [survey] = (await sql<{ id: number }>`INSERT INTO surveys (name) VALUES (${name}) RETURNING id`.execute(db)).rows;
  const [run] = (await sql<{ id: number }>`INSERT INTO runs (survey_id, state, total, config) VALUES (${survey.id}, 'done', ${total}, '{}') RETURNING id`.execute(db)).rows;
  return {
    runId: run.id,
    surveyId: survey.id,
    store: async (d) => void (await insertDiagnosis(db, d, { source: 'scan', runId: run.id, surveyId: survey.id })),
  };
}

/** The report the check tests read: 2026's scans, every survey. */
export function scanReport2026(db: Db) {
  return buildReport(db, { period: yearPeriod(2026), source: 'scan', survey: null });
}

/** The per-domain rows (domains.csv) of 2026's scans, through a snapshot named `snapshot`. */
export function scanDomainRows2026(db: Db, snapshot: string) {
  return db.transaction().execute(async (trx) => domainRows(trx, await createSnapshot(trx, snapshot, { from: '2026-01-01', toExclusive: '2027-01-01', timezone: 'UTC', source: 'scan', survey: null })));
}
