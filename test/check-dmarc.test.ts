// DMARC in depth (RFC 7489: p, sp, pct, inheritance, rua/ruf and their §7.1 authorisation) and non-mail
// domains, measured end to end through `mailcensus check --json` on the lab world lab/worlds/test-dmarc.json,
// which exercises every value and reason code the lab can produce; re-judged from the observations the code
// on main stored for the same world (test/fixtures/dmarc-observations-main.json); and counted by a report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { checkLabForFile } from './helpers/lab.ts';
import { runCli } from './helpers/cli.ts';
import { rejudge } from '../lib/checks/judge.ts';
import { checkById } from '../lib/checks/registry.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WORLD = `${ROOT}lab/worlds/test-dmarc.json`;
const DOMAINS: string[] = JSON.parse(readFileSync(WORLD, 'utf8')).domains.map((d: { name: string }) => d.name);
const IDS = ['dmarc_policy', 'dmarc_subdomain_policy', 'dmarc_flags', 'dmarc_reports', 'non_mail'] as const;

interface Out {
  findings: Record<string, { status: string; reason: string; detail?: string; value: string | string[] }>;
  observations: { dns: Record<string, unknown> & { dmarc: unknown }; ips: Record<string, unknown> };
  dnsStats: { queries?: number } & Record<string, unknown>;
}
const lab = checkLabForFile(WORLD, 'mc-dmarc-', checkEveryDomain);
const out = new Map<string, Out>();

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return runCli(args, lab.checkEnv());
}

/** `check --json` of every domain of the world, kept in `out`. */
async function checkEveryDomain(): Promise<void> {
  // Three `check` processes at a time (bounded: the world's 20 domains).
  const queue = [...DOMAINS];
  await Promise.all(
    [0, 1, 2].map(async () => {
      for (let d = queue.shift(); d !== undefined; d = queue.shift()) {
        const r = await run(['check', d, '--json']);
        assert.equal(r.code, 0, `${d}: ${r.stderr}`);
        out.set(d, JSON.parse(r.stdout));
      }
    }),
  );
}

const f = (domain: string, id: string) => out.get(domain)!.findings[id];
/** Asserts finding `id`'s [value, reason] for each domain of `expected`. */
function expectValueAndReason(id: (typeof IDS)[number], expected: Record<string, [string | string[], string]>): void {
  for (const [d, e] of Object.entries(expected)) assert.deepEqual([f(d, id).value, f(d, id).reason], e, d);
}

test('dmarc_policy keeps its meaning: the p= of the applied record', () => {
  expectValueAndReason('dmarc_policy', {
    'p-reject.test': ['reject', 'p_reject'],
    'p-quarantine.test': ['quarantine', 'p_quarantine'],
    'p-none.test': ['none', 'p_none'],
    'sub.inherit.test': ['reject', 'p_reject'],
    'absent.test': ['absent', 'no_dmarc_record'],
    'invalid.test': ['invalid', 'invalid_dmarc_record'],
    'multiple.test': ['invalid', 'multiple_dmarc_records'],
    'sp-invalid.test': ['reject', 'p_reject'],
    'rfail.test': ['unknown', 'servfail'],
  });
});

test('dmarc_subdomain_policy: sp=, or p= when absent; for an inherited record, the sp= that applies to the domain', () => {
  expectValueAndReason('dmarc_subdomain_policy', {
    'p-reject.test': ['quarantine', 'sp_quarantine'],
    'p-quarantine.test': ['quarantine', 'sp_absent'],
    'p-none.test': ['none', 'sp_none'],
    'pct-zero.test': ['reject', 'sp_reject'],
    'sub.inherit.test': ['none', 'sp_none'],
    'sp-invalid.test': ['invalid', 'invalid_sp'],
    'absent.test': ['absent', 'no_dmarc_record'],
    'multiple.test': ['invalid', 'multiple_dmarc_records'],
    'rfail.test': ['unknown', 'servfail'],
  });
  assert.match(f('sub.inherit.test', 'dmarc_subdomain_policy').detail ?? '', /_dmarc\.inherit\.test \(organizational domain/);
});

test('dmarc_flags: pct below 100 and inheritance, each a value of its own', () => {
  expectValueAndReason('dmarc_flags', {
    'p-reject.test': [[], 'own_full'],
    'p-quarantine.test': [['pct_partial'], 'pct_partial'],
    'pct-zero.test': [['pct_partial'], 'pct_partial'],
    'p-none.test': [[], 'own_full'],
    'sub.inherit.test': [['inherited'], 'inherited'],
    'sub.inherit-pct.test': [['pct_partial', 'inherited'], 'inherited_pct_partial'],
    'absent.test': [['absent'], 'no_dmarc_record'],
    'invalid.test': [['invalid'], 'invalid_dmarc_record'],
    'rfail.test': [['unknown'], 'servfail'],
  });
  // pct=150 is no integer 0–100: ignored, the default 100 holds (RFC 7489 §6.3).
  assert.match(f('p-none.test', 'dmarc_flags').detail ?? '', /pct=100 \(pct=150 ignored\)/);
});

test('dmarc_reports: rua and ruf each absent / internal / authorized / unauthorized, authorisation per RFC 7489 §7.1', () => {
  expectValueAndReason('dmarc_reports', {
    'p-reject.test': [['rua:internal', 'ruf:internal'], 'reports_internal'],
    'p-quarantine.test': [['rua:authorized', 'ruf:absent'], 'reports_authorized'],
    'p-none.test': [['rua:unauthorized', 'ruf:authorized'], 'unauthorized_destination'],
    'pct-zero.test': [['rua:authorized', 'ruf:absent'], 'reports_authorized'],
    'sub.inherit.test': [['rua:authorized', 'ruf:absent'], 'reports_authorized'],
    'sp-invalid.test': [['rua:absent', 'ruf:absent'], 'no_rua'],
    'report-fail.test': [['rua:unknown', 'ruf:authorized'], 'servfail'],
    'bad-uri.test': [['rua:invalid', 'ruf:invalid'], 'invalid_report_uri'],
    'many.test': [['rua:authorized', 'ruf:unknown'], 'destinations_not_checked'],
    'absent.test': [['no_policy'], 'no_dmarc_policy'],
    'invalid.test': [['no_policy'], 'no_dmarc_policy'],
    'rfail.test': [['rua:unknown', 'ruf:unknown'], 'servfail'],
  });
  // The authorisation names asked: <policy domain>._report._dmarc.<report domain>, for an inherited record the
  // organizational domain's; at most 4 per diagnosis, the rest listed as not asked.
  const dmarc = (d: string) => out.get(d)!.observations.dns.dmarc as { reports: { reportDomain: string; txt: { name: string } }[]; reportsNotAsked?: string[] };
  assert.deepEqual(dmarc('sub.inherit.test').reports.map((r) => r.txt.name), ['inherit.test._report._dmarc.reports-ok.test']);
  assert.deepEqual(dmarc('p-reject.test').reports, []);
  assert.equal(dmarc('many.test').reports.length, 4);
  assert.deepEqual(dmarc('many.test').reportsNotAsked, ['r5-reports.test']);
  assert.match(f('pct-zero.test', 'dmarc_reports').detail ?? '', /reports-all\.test authorized, pct-zero\.test internal/);
});

test('non_mail: null or no MX and exactly v=spf1 -all', () => {
  expectValueAndReason('non_mail', {
    'nomail-null.test': ['non_mail', 'null_mx_spf_all'],
    'nomail-none.test': ['non_mail', 'no_mx_spf_all'],
    'null-sends.test': ['mail', 'may_send'],
    'mailer.test': ['mail', 'has_mx'],
    'absent.test': ['mail', 'no_spf'],
    'rfail.test': ['unknown', 'servfail'],
  });
});

// That every reason and value of these findings is labelled is the registry's test (criteria-doc.test.ts).
test('the lab reaches every value of the new findings', () => {
  for (const id of IDS) {
    const c = checkById(id)!;
    const seen = new Set([...out.values()].flatMap((o) => [o.findings[id]?.value ?? []].flat()));
    assert.ok(c.kind === 'finding');
    for (const v of c.values) if (!/^ru[af]:/.test(v)) assert.ok(seen.has(v), `${id}: value ${v} not reached by the lab`);
  }
  const reports = new Set([...out.values()].flatMap((o) => [o.findings.dmarc_reports.value].flat()));
  for (const v of ['rua:absent', 'rua:internal', 'rua:authorized', 'rua:unauthorized', 'rua:invalid', 'rua:unknown', 'ruf:absent', 'ruf:internal', 'ruf:authorized', 'ruf:invalid', 'ruf:unknown']) {
    assert.ok(reports.has(v), `dmarc_reports: ${v}`);
  }
});

test('observations stored by the code on main re-judge to the same dmarc_policy', () => {
  const old: Record<string, { dmarc: unknown; dmarc_policy: { value: string; reason: string } }> = JSON.parse(readFileSync(`${ROOT}test/fixtures/dmarc-observations-main.json`, 'utf8'));
  assert.deepEqual(Object.keys(old), DOMAINS);
  for (const [domain, o] of Object.entries(old)) {
    const now = out.get(domain)!.observations;
    const d = rejudge({ source: 'scan', domain, observed_at: new Date('2026-06-01T00:00:00Z'), observations: { version: 1, kind: 'scan', dns: { ...now.dns, dmarc: o.dmarc }, ips: now.ips } });
    const p = d.findings.dmarc_policy!;
    assert.deepEqual([p.value, p.reason], [o.dmarc_policy.value, o.dmarc_policy.reason], domain);
    // Without the §7.1 lookups, an external destination cannot be judged: unknown, not a guess.
    if (domain === 'p-quarantine.test') assert.deepEqual([d.findings.dmarc_reports!.value, d.findings.dmarc_reports!.reason], [['rua:authorized', 'ruf:absent'].map((v) => v.replace('authorized', 'unknown')), 'not_recorded']);
    if (domain === 'p-reject.test') assert.deepEqual(d.findings.dmarc_reports!.value, ['rua:internal', 'ruf:internal']);
  }
});

test('check shows the findings with their labels in both languages', async () => {
  const en = await run(['check', 'p-none.test', '--lang', 'en']);
  assert.equal(en.code, 0, en.stderr);
  assert.match(en.stdout, /^DMARC report addresses\s+NG\s+unauthorized_destination\s+rua: reports-no\.test unauthorized/m);
  assert.match(en.stdout, /^DMARC subdomain policy\s+NG\s+sp_none/m);
  const ja = await run(['check', 'nomail-null.test', '--lang', 'ja']);
  assert.match(ja.stdout, /^メール不使用ドメイン\s+\S+\s+null_mx_spf_all/m);
});

test('a report counts them, and gives the verdict shares over mail domains too (recomputed in SQL)', async () => {
  const { createTestDatabase } = await import('./helpers/db.ts');
  const { judgeScan } = await import('../lib/checks/judge.ts');
  const { scanRun, scanReport2026 } = await import('./report-fixtures.ts');
  const { sql } = await import('kysely');
  const t = await createTestDatabase();
  try {
    const run_ = await scanRun(t.db, 'dmarc', DOMAINS.length);
    for (const domain of DOMAINS) {
      const obs = out.get(domain)!.observations;
      await run_.store(judgeScan(domain, obs.dns as never, obs.ips as never, new Date('2026-06-01T00:00:00Z')));
    }
    const r = await scanReport2026(t.db);
    const n = DOMAINS.length;
    assert.equal(r.domains, n);
    assert.deepEqual([r.findings.non_mail.non_mail.n, r.findings.non_mail.mail.n, r.findings.non_mail.unknown.n, r.findings.non_mail.non_mail.total], [2, 17, 1, n]);
    assert.deepEqual([r.findings.dmarc_flags.pct_partial.n, r.findings.dmarc_flags.inherited.n, r.findings.dmarc_flags.full.n], [4, 2, 9]);
    assert.deepEqual([r.findings.dmarc_reports['rua:authorized'].n, r.findings.dmarc_reports['ruf:absent'].n, r.findings.dmarc_reports.no_policy.n], [5, 9, 5]);
    assert.equal(r.findings.dmarc_subdomain_policy.reject.n, 4);
    // Verdict shares over mail domains: every domain but the non-mail ones, recomputed here in SQL.
    const m = r.verdicts_mail_domains;
    assert.equal(m.domains, n - 2);
    const counted = (
      await sql<{ verdict: string; n: number }>`SELECT verdict::text, count(*)::int AS n FROM diagnoses
          WHERE coalesce(findings -> 'non_mail' ->> 'value', '') <> 'non_mail' GROUP BY 1`.execute(t.db)
    ).rows;
    for (const v of Object.keys(m.verdicts) as (keyof typeof m.verdicts)[]) {
      const e = counted.find((c) => c.verdict === v)?.n ?? 0;
      assert.deepEqual([m.verdicts[v].n, m.verdicts[v].total], [e, n - 2], v);
    }
    assert.ok(counted.reduce((s, c) => s + c.n, 0) === n - 2);
    // HTML: non-mail domains on a line of their own, then the mail-domain verdicts with their denominator; CSV too.
    const { renderHtml } = await import('../reports/html.ts');
    const { aggregateCsvs } = await import('../reports/csv.ts');
    const html = renderHtml(r, null, 'en');
    assert.match(html, /Non-mail domains \(null or no MX and v=spf1 -all\): <b>2<\/b>/);
    assert.match(html, new RegExp(`Verdicts over mail domains \\(denominator: ${n - 2} domains\\)`));
    assert.match(renderHtml(r, null, 'ja'), /メール不使用ドメイン/);
    const csv = aggregateCsvs(r, 'en')['verdicts_mail_domains.csv'];
    assert.match(csv, new RegExp(`^safe,Safe,${m.verdicts.safe.n},${n - 2},`, 'm'));
  } finally {
    await t.drop();
  }
});
