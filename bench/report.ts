// Report speed: 1,000,000 scan diagnoses generated in SQL (a survey of 400,000 listed domains diagnosed in
// 2020, again in 2021 and 200,000 of them a third time late in 2021), then `report --survey bench --year 2021`
// computed (latest diagnosis per domain among 600,000, the 2020 comparison, the survey list's coverage) and
// written as report.json + report.html. Target (issue 9): < 5 s for the aggregation.
import { mkdtemp, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir, loadavg } from 'node:os';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import { openDatabase, migrateSchema } from '../lib/db.ts';
import { computeReport, writeFromReport } from '../reports/write.ts';
import { yearPeriod } from '../reports/period.ts';
import { machine, updateSection } from './_report.ts';
import { sql as ksql } from 'kysely';
import { reportSetColumns } from '../reports/queries.ts';
import * as latestMigration from '../migrations/20261202000500_report_latest.ts';
import * as winnersMigration from '../migrations/20261203000100_report_winners.ts';
import type { BenchArgs } from './lib/args.ts';

/** Listed survey domains; each survey run diagnoses about 95% of them. */
const DOMAINS = Number(process.env.BENCH_REPORT_DOMAINS || 1_000_000);
/** Diagnoses stored in all: the survey's runs plus test-mail diagnoses making up the rest. */
const TOTAL = Number(process.env.BENCH_REPORT_DIAGNOSES || 10_000_000);
/** Two survey runs a year (March and September), 2019–2023: the report's year is 2021, compared with 2020. */
const RUN_STARTS = [2019, 2020, 2021, 2022, 2023].flatMap((y) => [`${y}-03-01T00:00:00Z`, `${y}-09-01T00:00:00Z`]);
const REPORT_YEAR = 2021;
const RUNS = Number(process.env.BENCH_REPORT_RUNS || 3);
const SERVER_URL = process.env.TEST_DATABASE_SERVER_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const CRITERIA = ['open_relay', 'spf', 'dkim', 'tls_receive', 'tls_send', 'reverse_dns', 'dnssec', 'dnsbl'];
/** Per mille of NG per criterion (a few unknown on top). */
const NG: Record<string, number> = { open_relay: 10, spf: 200, dkim: 250, tls_receive: 120, tls_send: 150, reverse_dns: 50, dnssec: 550, dnsbl: 60 };

/**
 * A hash of the domain `i` that mostly stays the same from one diagnosis to the next (a domain's
 * configuration changes now and then: 15% of diagnoses draw afresh), 0 to `mod` - 1.
 */
const stable = (salt: number, draw: string, mod: number) =>
  `(abs(hashint4(CASE WHEN abs(hashint4(i * 7 + ${draw})) % 100 < 15 THEN i * 31 + ${salt} + (${draw}) * 1000003 ELSE i * 31 + ${salt} END)) % ${mod})`;

/** A criterion's status in profile `p`; tls_send is unknown for a scan (it cannot see it). */
function statusExpr(c: string, k: number, scan: boolean): string {
  if (c === 'tls_send' && scan) return `'unknown'::criterion_status`;
  const ng = NG[c]!;
  return `(CASE WHEN h${k} < ${ng} THEN 'ng' WHEN h${k} < ${ng + 15} THEN 'unknown' ELSE 'ok' END)::criterion_status`;
}

const PROFILES = 4096;

/**
 * 4,096 profiles of the criteria per source (statuses, reasons, the verdict and its reasons, derived in SQL
 * by the rules of lib/verdict.ts), drawn independently per criterion: each diagnosis picks one, so the
 * expressions run 8,192 times instead of 10,000,000.
 */
async function createProfiles(sql: postgres.Sql): Promise<void> {
  const parts = [true, false].map((scan) => {
    const exprs = CRITERIA.map((c, k) => `${statusExpr(c, k, scan)} AS ${c}`).join(', ');
    const hs = CRITERIA.map((_, k) => `abs(hashint4(p * 8 + ${k} + ${scan ? 0 : 500000})) % 1000 AS h${k}`).join(', ');
    const reasons = CRITERIA.map((c) => `${c}, (CASE ${c} WHEN 'ng' THEN 'failed' WHEN 'unknown' THEN 'timeout' ELSE 'passed' END) AS ${c}_reason`).join(', ');
    const unknownList = `ARRAY[${CRITERIA.filter((c) => (scan ? c !== 'tls_send' : true)).map((c) => `CASE WHEN ${c} = 'unknown' THEN jsonb_build_object('criterion', '${c}', 'reason', 'timeout') END`).join(', ')}]`;
    return `SELECT ${scan ? `'scan'` : `'test-mail'`}::diagnosis_source AS source, p, ${reasons}, verdict,
                   CASE WHEN verdict = 'incomplete' THEN jsonb_build_object('reasons', to_jsonb(array_remove(${unknownList}, NULL))) ELSE '{"reasons":[]}'::jsonb END AS verdict_reasons
              FROM (SELECT g.*, ${verdictExpr(scan)} AS verdict
                      FROM (SELECT p, ${exprs} FROM (SELECT p, ${hs} FROM generate_series(0, ${PROFILES - 1}) AS p) h) g) g`;
  });
  await sql.unsafe(`CREATE TABLE bench_profiles AS ${parts.join(' UNION ALL ')}`);
  await sql.unsafe(`ANALYZE bench_profiles`);
}

/**
 * 1,000 variants of the findings (the jsonb in its current shape, \`{ "<id>": { "status", "reason", "value" } }\`,
 * and the legacy columns with the same values), weighted like a survey: each diagnosis picks one.
 */
async function createVariants(sql: postgres.Sql): Promise<void> {
  const pick = (values: string[], salt: number) => `(ARRAY[${values.map((v) => `'${v}'`).join(',')}])[1 + abs(hashint4(k * 17 + ${salt})) % ${values.length}]`;
  await sql.unsafe(`
    CREATE TABLE bench_variants AS
    SELECT k, dmarc, mta, rpt, vers, cert, dkey,
           jsonb_build_object(
             'mx', jsonb_build_object('status', 'ok', 'reason', 'mx_found', 'value', 'mx'),
             'dmarc_policy', jsonb_build_object('status', CASE WHEN dmarc IN ('reject', 'quarantine') THEN 'ok' ELSE 'ng' END, 'reason', dmarc, 'value', dmarc),
             'mta_sts', jsonb_build_object('status', CASE WHEN mta = 'enforce' THEN 'ok' ELSE 'ng' END, 'reason', mta, 'value', mta),
             'tls_rpt', jsonb_build_object('status', CASE WHEN rpt = 'present' THEN 'ok' ELSE 'ng' END, 'reason', rpt, 'value', rpt),
             'tls_versions', jsonb_build_object('status', 'ok', 'reason', 'measured', 'value', to_jsonb(vers)),
             'cert_problems', jsonb_build_object('status', CASE WHEN cardinality(cert) = 0 THEN 'ok' ELSE 'ng' END, 'reason', 'measured', 'value', to_jsonb(cert)),
             'dkim_key', jsonb_build_object('status', CASE WHEN dkey = 'strong' THEN 'ok' WHEN dkey IN ('weak', 'invalid') THEN 'ng' ELSE 'unknown' END, 'reason', dkey, 'value', dkey)
           ) AS findings
      FROM (SELECT k,
                   ${pick(['none', 'none', 'none', 'none', 'reject', 'quarantine', 'quarantine', 'absent', 'absent', 'absent', 'absent', 'invalid'], 1)} AS dmarc,
                   ${pick(['absent', 'absent', 'absent', 'absent', 'absent', 'absent', 'absent', 'absent', 'enforce', 'testing', 'none', 'policy_missing', 'unknown'], 2)} AS mta,
                   ${pick(['absent', 'absent', 'absent', 'absent', 'absent', 'present', 'invalid'], 3)} AS rpt,
                   string_to_array((ARRAY['TLSv1.2 TLSv1.3', 'TLSv1.2 TLSv1.3', 'TLSv1.3', 'TLSv1 TLSv1.1 TLSv1.2', 'TLSv1.2', ''])[1 + abs(hashint4(k * 17 + 4)) % 6], ' ') AS vers,
                   string_to_array((ARRAY['', '', '', '', '', '', '', '', '', 'self_signed', 'expired', 'wrong_name untrusted'])[1 + abs(hashint4(k * 17 + 5)) % 12], ' ') AS cert,
                   ${pick(['strong', 'strong', 'strong', 'weak', 'invalid', 'not_found', 'not_found', 'unknown'], 6)} AS dkey
              FROM generate_series(0, 999) AS k) v`);
}

/** The verdict by the rules of lib/verdict.ts (a scan ignores tls_send), in SQL for speed. */
function verdictExpr(scan: boolean): string {
  const send = scan ? '' : ` OR tls_send = 'ng'`;
  const sendUnknown = scan ? '' : ` OR tls_send = 'unknown'`;
  return `(CASE WHEN open_relay = 'ng' THEN 'danger'
                WHEN open_relay = 'unknown' THEN 'incomplete'
                WHEN (spf = 'ng' AND dkim = 'ng') OR tls_receive = 'ng'${send} OR reverse_dns = 'ng' THEN 'needs_improvement'
                WHEN (spf = 'unknown' AND dkim <> 'ok') OR (dkim = 'unknown' AND spf <> 'ok') OR tls_receive = 'unknown'${sendUnknown} OR reverse_dns = 'unknown' THEN 'incomplete'
                WHEN dnssec = 'ng' OR dnsbl = 'ng' THEN 'review'
                WHEN dnssec = 'unknown' OR dnsbl = 'unknown' THEN 'incomplete'
                ELSE 'safe' END)::verdict`;
}

/**
 * Inserts diagnoses from \`source\` (a SELECT yielding i: the domain's number, draw: what varies between its
 * diagnoses, observed, and the origin columns) with a criteria profile and a findings variant each.
 */
async function insertDiagnoses(sql: postgres.Sql, source: string): Promise<number> {
  const cols = CRITERIA.map((c) => `${c}, ${c}_reason`).join(', ');
  const rows = await sql.unsafe(`
    INSERT INTO diagnoses (source, domain, survey_id, run_id, test_mail_id, provenance, observed_at, ${cols}, verdict, verdict_reasons,
                           dmarc_policy, mta_sts, tls_rpt, tls_versions, cert_problems, findings, observations, rules_version)
    SELECT s.source, s.domain, s.survey_id, s.run_id, s.test_mail_id, s.provenance, s.observed, ${CRITERIA.map((c) => `p.${c}, p.${c}_reason`).join(', ')},
           p.verdict, p.verdict_reasons, v.dmarc, v.mta, v.rpt, v.vers, v.cert, v.findings, '{}'::jsonb, 1
      FROM (SELECT x.*, ${stable(101, 'draw', PROFILES)} AS pk, ${stable(7, 'draw', 1000)} AS vk FROM (${source}) x) s
      JOIN bench_profiles p ON p.source = s.source AND p.p = s.pk
      JOIN bench_variants v ON v.k = s.vk`);
  return rows.count;
}

/**
 * The bench world: DOMAINS listed survey domains, diagnosed by two runs a year over five years (each run
 * about 95% of the list), and test-mail diagnoses over the same years (70% of them of listed domains, the rest
 * of others) up to TOTAL diagnoses in all, inserted in time order as a live database stores them. The indexes
 * of \`diagnoses\` are built after the load (the same definitions, as a restore does).
 */
export async function generate(sql: postgres.Sql, surveyId: number): Promise<number> {
  await createVariants(sql);
  await createProfiles(sql);
  const indexes = await sql<{ indexname: string; indexdef: string }[]>`
    SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'diagnoses' AND indexname <> 'diagnoses_pkey'`;
  for (const ix of indexes) await sql.unsafe(`DROP INDEX ${ix.indexname}`);
  const scansPerRun = Math.round(DOMAINS * 0.95); // about
  const testMails = Math.max(0, TOTAL - scansPerRun * RUN_STARTS.length);
  const perHalfYear = Math.ceil(testMails / RUN_STARTS.length);
  let stored = 0;
  const oneRun = async (r: number) => {
    const start = RUN_STARTS[r]!;
    const [run] = await sql`INSERT INTO runs (survey_id, state, config, created_at) VALUES (${surveyId}, 'done', '{"bench":true}'::jsonb, ${start}) RETURNING id`;
    // The run's 95% of the list, diagnosed over four weeks.
    const scans = await insertDiagnoses(
      sql,
      `SELECT 'scan'::diagnosis_source AS source, 'd' || i || '.bench.jp' AS domain, ${surveyId} AS survey_id, ${run.id} AS run_id,
              NULL::bigint AS test_mail_id, NULL::text AS provenance, ${r + 1} AS draw, i,
              timestamptz '${start}' + (abs(hashint4(i * 103 + ${r})) % (28 * 86400)) * interval '1 second' AS observed
         FROM generate_series(1, ${DOMAINS}) AS i
        WHERE abs(hashint4(i * 101 + ${r})) % 100 < 95`,
    );
    stored += scans;
    // The half year's test mails (received mail, raw pruned), then their diagnoses.
    const from = r * perHalfYear + 1;
    const to = Math.min(testMails, (r + 1) * perHalfYear);
    if (to < from) return;
    const half = `timestamptz '${start}' + (j - ${from}) * ${(182 * 86400) / perHalfYear} * interval '1 second'`;
    await sql.unsafe(`INSERT INTO test_mails (id, received_at, client_ip, rcpt_to, domain, raw, size)
                      SELECT j, ${half}, '127.0.0.1', ARRAY['check@bench.jp'], NULL, NULL, 0 FROM generate_series(${from}, ${to}) AS j`);
    const mails = await insertDiagnoses(
      sql,
      `SELECT 'test-mail'::diagnosis_source AS source,
              CASE WHEN i <= ${DOMAINS} THEN 'd' || i || '.bench.jp' ELSE 't' || (i - ${DOMAINS}) || '.example.jp' END AS domain,
              NULL::int AS survey_id, NULL::int AS run_id, j::bigint AS test_mail_id,
              (ARRAY['requested', 'authenticated', 'authenticated', 'unverified'])[1 + abs(hashint4(j * 11)) % 4] AS provenance,
              ${100 + r} AS draw, i, ${half} AS observed
         FROM (SELECT j, CASE WHEN abs(hashint4(j)) % 10 < 7 THEN 1 + abs(hashint4(j * 3)) % ${DOMAINS}
                              ELSE ${DOMAINS} + 1 + abs(hashint4(j * 5)) % ${Math.max(1, Math.floor(testMails / 3))} END AS i
                 FROM generate_series(${from}, ${to}) AS j) t`,
    );
    stored += mails;
    console.log(`  generated ${stored.toLocaleString('en')} diagnoses (${start.slice(0, 7)} done)`);
  };
  // Two lanes on the pool's two connections, each a run at a time (the runs' rows stay together on disk).
  const lanes = [0, 1].map(async (lane) => {
    for (let r = lane; r < RUN_STARTS.length; r += 2) await oneRun(r);
  });
  await Promise.all(lanes);
  await sql.unsafe(`SELECT setval(pg_get_serial_sequence('test_mails', 'id'), (SELECT max(id) FROM test_mails))`);
  // The indexes again, two at a time (each in a transaction of its own connection, with room to sort).
  const queue = [...indexes];
  await Promise.all(
    [0, 1].map(async () => {
      for (let ix = queue.shift(); ix; ix = queue.shift()) {
        const def = ix.indexdef;
        await sql.begin(async (t) => {
          await t.unsafe(`SET LOCAL maintenance_work_mem = '512MB'`);
          await t.unsafe(def);
        });
      }
    }),
  );
  await sql.unsafe(`DROP TABLE bench_variants, bench_profiles`);
  return stored;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** utime + stime of these Postgres backends, in ms (null when Postgres is not on this machine). */
function backendCpuMs(pids: number[]): number | null {
  try {
    let ticks = 0;
    for (const pid of pids) {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    }
    return pids.length ? ticks * 10 : null; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

/**
 * What was changed to meet the target and what it gained (issue 9 asks for it next to the figures): measured
 * once, by running the previous and the current reports code alternately, three times each, in one process on
 * one database of this benchmark (2026-11-29, load average 2.5–3.1).
 */
/** The world, in words, for BENCHMARKS.md. */
const WORLD = `${TOTAL.toLocaleString('en')} diagnoses generated in SQL: ${DOMAINS.toLocaleString('en')} listed survey domains, two survey runs a year 2019–2023 each diagnosing about 95% of them, test-mail diagnoses of listed and other domains over the same years for the rest; statuses, verdicts and the registry's findings (jsonb) vary, a domain mostly keeping its configuration from one diagnosis to the next`;

/** What was changed for issue 18 and what it gained (measured as the lines above say). */
const CHANGES = `Issue 18 (what limited the report at 10,000,000 diagnoses and what changed):

- Second round (migration 20261203000100_report_winners, reports/queries.ts, reports/aggregate.ts): the winners' rows are read by id (one primary-key probe each, in id order) instead of the merge join, which read the whole primary key up to the last winner (5,900,000 heap rows for 997,515 winners); the snapshot keeps a multi-valued registry finding as its JSON value and the tally turns it into text[] per group (that conversion, a subquery per row and finding, was 1.5 s of CPU per period); the tally groups the set as stored, then its groups; no parallel workers in the report's transactions (the two connections already take both cores; a parallel hash join built its table for an empty outer side); the helper connection counts the current period's diagnoses and both-sources domains before the previous period; temp_buffers 512 MB (the 1,000,000-domain snapshot is 280 MB: its scans 270 → 180 ms). What remains per period (EXPLAIN ANALYZE, one backend's CPU): the pick ≈1.9 s (index-only scan of 1,900,000 entries, in-memory sort), reading 1,000,000 winners ≈1.5 s, the tally's hash aggregation ≈1.3–1.6 s; the current period also writes the snapshot (≈1 s) and joins the 1,000,000 listed domains (≈1.1 s).

- Before: report_diagnoses() sorted every diagnosis of the period (1,900,000 for the year) with all the snapshot's columns for its DISTINCT ON, for the current period (snapshot) and the previous one (tally) at once; at this size that sort no longer fits the report's work_mem (256 MB) and the bitmap heap scan reads the whole period's heap (see the EXPLAIN below).
- After (migration 20261202000500_report_latest): an index \`diagnoses_period_latest (observed_at) INCLUDE (source, survey_id, provenance, domain, id)\`; report_diagnoses() (both overloads, same filters, same order of preference) takes each domain's latest id from an index-only scan of the period, sorted in memory (narrow rows), and only then joins the winners' rows. Nothing in reports/ changed; the figures of both versions are compared in every run of this part.
- Not done in that first round (both done in the second, above): the join of the winners' rows was a merge join over the primary key from its start (the planner's choice); parallel workers were not tried.`;

const EARLIER = `Earlier, issue 9 (1,000,000 diagnoses: 400,000 domains in 2020 and 2021, 200,000 a third time): before → after (issue 9: what limited the report and what fixing it gained; the two versions alternating 3× in one process on one 1,000,000-diagnosis database, medians; load average 2.5–3.1):

| | figures, wall | Postgres CPU (both connections) |
|---|---:|---:|
| before: a copy of the whole report set per period (\`SELECT *\`), then one scan of it per figure (≈40 scans of 400,000 rows), one after the other | 8.01 s | 7.79 s |
| after: one narrow snapshot + a grouped tally per period, each figure read from the tally; the previous period on a second connection | 2.02 s | 2.71 s |

- The latest-per-domain sort (DISTINCT ON over 600,000 rows) compares domains under \`COLLATE "C"\`: byte order sorts with abbreviated keys, the database's collation goes through strcoll (EXPLAIN ANALYZE: 2.4 s → 1.0 s; the set is the same).
- The snapshot names the columns it keeps instead of \`r.*\`: the planner drops the rest before the sort (width 303 → 233 bytes) and the surveys join altogether.
- Each figure reads the tally (the set grouped by every column a figure reads: 3,700 rows for 400,000 domains) instead of scanning the 400,000-row copy: ≈40 scans of 100–250 ms became queries of 1–20 ms. The previous period is tallied straight from \`report_diagnoses()\`, without a copy.
- Diagnoses in the period: an index-only count over (survey_id, observed_at) instead of a scan of the view; domains with both sources: an EXISTS per test-mail diagnosis instead of a sort of the period by domain.
- The previous period is computed on a second connection at the same time, in a transaction that imports the report's snapshot (\`pg_export_snapshot\` / \`SET TRANSACTION SNAPSHOT\`, as pg_dump's parallel jobs do): the same data, the other core (sequentially: 2.9 s wall, 2.8 s CPU). A pool of one connection falls back to computing it in the same transaction.
- JIT is off in the report's transaction (it compiled each large statement for 25–40 ms and gained nothing).
- The benchmark itself now lists the survey's 400,000 domains (the coverage figure joins them) and runs VACUUM ANALYZE after generating, as autovacuum soon would (BRIN summary, visibility map); the run before these changes (12.59 s at load 6.9) had neither. Both rows of the table above were measured with both.
- Not done: ANALYZE of the temporary tables (the plans were the same without it, and it cost 0.4–0.8 s); Postgres' own parallel query (it does not parallelise this DISTINCT ON, and temporary tables are not read by parallel workers).`;

export async function run(args: BenchArgs = {}): Promise<{ name: string; lines: string[] }> {
  // BENCH_REPORT_DB: an existing bench database to measure again (generated before, kept: not dropped).
  const reuse = process.env.BENCH_REPORT_DB || null;
  const keep = reuse !== null || args.keep === true;
  const name = reuse ?? `mailcensus_bench_${randomBytes(4).toString('hex')}`;
  const admin = postgres(SERVER_URL, { max: 1, onnotice: () => {} });
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  const out = await mkdtemp(path.join(tmpdir(), 'mailcensus-bench-report-'));
  let handle: ReturnType<typeof openDatabase> | null = null;
  const lines: string[] = [];
  try {
    if (!reuse) await admin.unsafe(`CREATE DATABASE ${name}`);
    if (keep) console.log(`bench report: database ${name}${reuse ? '' : ' (kept afterwards)'}`);
    handle = openDatabase(url.toString(), { max: 2 });
    await migrateSchema(handle.db);
    const sql = handle.sql;
    if (!reuse) {
      const t0 = Date.now();
      const [survey] = await sql`INSERT INTO surveys (name) VALUES ('bench') RETURNING id`;
      // The survey's list: the report's coverage figure joins it, and the CSV would read organization from it.
      await sql`INSERT INTO survey_domains (survey_id, domain, organization)
                SELECT ${survey.id}, 'd' || i || '.bench.jp', '株式会社ベンチ' || i FROM generate_series(1, ${DOMAINS}::int) AS i`;
      await generate(sql, survey.id);
      // What autovacuum does on a live database soon after such inserts (autovacuum_vacuum_insert_threshold):
      // statistics, the BRIN summary of observed_at and the visibility map (index-only counts).
      await sql`VACUUM ANALYZE diagnoses, survey_domains, test_mails`;
      const [{ n }] = await sql`SELECT count(*)::int AS n FROM diagnoses`;
      lines.push(`generated ${n.toLocaleString('en')} diagnoses in SQL in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      console.log(lines.at(-1));
    }
    const [{ n }] = await sql`SELECT count(*)::int AS n FROM diagnoses`;
    if (keep) console.log(`bench report: database ${name} kept (BENCH_REPORT_DB=${name} measures it again; drop it when done)`);

    // Both pool connections open before timing, so that their backends' CPU time can be read.
    await Promise.all([sql`SELECT pg_sleep(0.05)`, sql`SELECT pg_sleep(0.05)`]);
    const backends = (await sql<{ pid: number }[]>`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'`).map((r) => r.pid);
    const load = loadavg()[0].toFixed(1);
    const request = { period: yearPeriod(REPORT_YEAR), source: null, survey: 'bench' } as const;
    type Version = 'before' | 'after';
    // The previous report_diagnoses() is measured only when asked (`--report-compare`): at 10,000,000 diagnoses
    // it takes about twice as long as the current one, RUNS times, and its figures are those of BENCHMARKS.md.
    const versions: Version[] = args['report-compare'] === true ? ['before', 'after'] : ['after'];
    // "before": report_diagnoses() as 20261202000500_report_latest made it (the winners joined, a merge join in
    // this benchmark); "after": the current one (20261203000100_report_winners, the winners read by id).
    const setVersion = (v: Version) => (v === 'before' ? latestMigration.createLatestFunctions(handle!.db) : winnersMigration.createWinnersFunctions(handle!.db));
    // The machine is shared: the previous report_diagnoses() ("before", the index left in place: it does not
    // use it) and the current one alternate RUNS times each in this process, and the medians are the figures
    // (the spread and the backend CPU time say how much the other load weighed).
    const walls: Record<Version, number[]> = { before: [], after: [] };
    const cpus: Record<Version, number[]> = { before: [], after: [] };
    const reports: Partial<Record<Version, Awaited<ReturnType<typeof computeReport>>>> = {};
    for (let i = 0; i < RUNS; i++) {
      for (const v of versions) {
        await setVersion(v);
        const cpu0 = backendCpuMs(backends);
        const t = Date.now();
        reports[v] = await computeReport(handle.db, request);
        walls[v].push(Date.now() - t);
        const cpu1 = backendCpuMs(backends);
        if (cpu0 !== null && cpu1 !== null) cpus[v].push(cpu1 - cpu0);
        console.log(`  ${v}: ${((Date.now() - t) / 1000).toFixed(2)} s`);
      }
    }
    const report = reports.after!;
    // Every figure the same either way (the report object but its generation time).
    const strip = (r: typeof report) => JSON.stringify({ ...r, generated_at: null });
    if (reports.before && strip(reports.before) !== strip(report)) throw new Error('bench report: the figures differ between the previous and the current report_diagnoses()');
    // Where the time goes: the current period's snapshot statement, as EXPLAIN (ANALYZE, BUFFERS) shows it, in both versions.
    const scope = { from: `${REPORT_YEAR}-01-01`, toExclusive: `${REPORT_YEAR + 1}-01-01`, timezone: 'Asia/Tokyo', source: null, survey: 'bench' };
    const plans: Record<string, string> = {};
    for (const v of versions) {
      await setVersion(v);
      plans[v] = await handle.db.transaction().execute(async (trx) => {
        await ksql`SET LOCAL work_mem = '256MB'`.execute(trx);
        await ksql`SET LOCAL jit = off`.execute(trx);
        const { rows } = await ksql<{ 'QUERY PLAN': string }>`EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM ${reportSetColumns(scope)} AS s`.execute(trx);
        return rows.map((r) => r['QUERY PLAN']).join('\n');
      });
    }
    await setVersion('after');
    for (const v of versions) console.log(`EXPLAIN ${v}:\n${plans[v]}`);
    const t2 = Date.now();
    await writeFromReport(report, { out, formats: ['json', 'html'], lang: 'ja' });
    const render = Date.now() - t2;
    // What printing adds: the same report as PDF through headless Chromium (start-up included), when it is there.
    const t3 = Date.now();
    const pdf = await writeFromReport(report, { out, formats: ['pdf'], lang: 'ja' }).then(
      () => `${((Date.now() - t3) / 1000).toFixed(2)} s`,
      (err: Error) => `not measured (${err.message.split('\n')[0]})`,
    );
    if (report.domains === 0 || !report.previous || report.coverage.survey_domains?.total !== DOMAINS) {
      throw new Error(`expected domains, a previous period and ${DOMAINS} listed domains; got ${report.domains}`);
    }
    const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
    const figures = median(walls.after);
    const cpu = (v: Version) => (cpus[v].length ? `; Postgres CPU time of the report's two connections ${secs(median(cpus[v]))}` : '');
    lines.push(
      `report --survey bench --year ${REPORT_YEAR} over ${n.toLocaleString('en')} diagnoses (${report.domains.toLocaleString('en')} domains counted, ${report.diagnoses.toLocaleString('en')} diagnoses in the period, ${REPORT_YEAR - 1} compared (${report.previous.domains.toLocaleString('en')} domains), ${DOMAINS.toLocaleString('en')} listed survey domains): ` +
        `**figures ${secs(figures)}** (median of ${RUNS}: ${walls.after.map(secs).join(', ')}${cpu('after')}) + JSON/HTML with charts ${secs(render)} = ${secs(figures + render)}`,
    );
    if (reports.before) lines.push(
      `the same report with the previous report_diagnoses() (20261202000500: the winners of the narrow pick joined to their rows), alternating with the current one in this process: ${secs(median(walls.before))} (median of ${RUNS}: ${walls.before.map(secs).join(', ')}${cpu('before')}): ` +
        `**${(median(walls.before) / figures).toFixed(1)}× faster**, every figure identical (the two report objects compared)`,
    );
    lines.push(`PDF of the same report (charts, HTML and headless Chromium with its start-up): ${pdf}`);
    console.log(lines.slice(-3).join('\n'));
    lines.push(`target < 5 s for the aggregation: ${figures < 5000 ? 'met' : 'NOT met in this run'} (${secs(figures)})`);
    lines.push(`machine: ${machine()}; load average before: ${load}, after: ${loadavg()[0].toFixed(1)} (the figures time is wall-clock on a shared machine: the Postgres CPU time is the part that does not depend on the other load)`);
    console.log(lines.slice(-2).join('\n'));
    const explain = (v: Version) => `<details><summary>EXPLAIN (ANALYZE, BUFFERS) of the current period's snapshot statement, ${v}</summary>\n\n\`\`\`\n${plans[v]}\n\`\`\`\n</details>`;
    await updateSection(
      'report',
      `## Report\n\n\`npm run bench -- report\` (bench/report.ts, ${WORLD}): ${lines.map((l) => `\n- ${l}`).join('')}\n\n${CHANGES}\n\n${versions.map(explain).join('\n\n')}\n\n${EARLIER}\n`,
    );
    return { name: 'report', lines };
  } finally {
    await handle?.close();
    if (!keep) await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
    await admin.end();
    await rm(out, { recursive: true, force: true });
  }
}
