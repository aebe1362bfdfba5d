// DKIM discovery in scans (issue 15; CRITERIA.md "DKIM in scans: wildcards" and the dkim criterion): the
// wildcard test under `_domainkey`, the domain's known selectors tried first (`check --selectors`, the survey
// list's `selectors` column), RFC 8020's NXDOMAIN cut for every name under `_domainkey`, and re-judging of
// observations made before the wildcard test. Against the lab world lab/worlds/test-dkim-discovery.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { writeFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { checkLabForFile } from './helpers/lab.ts';
import { cliJson } from './helpers/cli.ts';
import { evaluateDkimScan, parseSelectorList, normalizeSelector, givenSelectors, type DkimObservation } from '../lib/checks/dkim/dkim.ts';
import { selectorsToRemember, jobSelectors } from '../lib/checks/dkim/remember.ts';
import { reasonMeta } from '../lib/checks/registry.ts';
import type { Lookup } from '../lib/dns/observation.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const lab = checkLabForFile(`${ROOT}lab/worlds/test-dkim-discovery.json`, 'mc-dkimdisc-');

interface CheckJson {
  statuses: Record<string, { status: string; reason: string; detail?: string }>;
  findings: Record<string, { value: unknown; reason: string }>;
  observations: { dns: { dkim: DkimObservation } };
  dnsStats: { queries: number };
}

function check(domain: string, extra: string[] = []): Promise<CheckJson> {
  // The shipped common selector list (no MAILCENSUS_DKIM_SELECTORS): what a survey really asks.
  const env = lab.checkEnv();
  delete env.MAILCENSUS_DKIM_SELECTORS;
  return cliJson<CheckJson>(['check', domain, '--json', ...extra], env);
}

/** The DKIM names asked: `_domainkey`, each selector, the random label. */
function dkimNames(k: DkimObservation): string[] {
  return [k.domainkey.name, ...k.selectors.map((s) => s.txt.name), ...(k.wildcard ? [k.wildcard.txt.name] : [])];
}

test('a wildcard under _domainkey or at the apex is no evidence of DKIM (internet.nl#1025); a real _domainkey still is', async () => {
  const [wild, apex, custom] = await Promise.all([check('dk-wild.test'), check('dk-apexwild.test'), check('dk-custom.test')]);
  for (const r of [wild, apex]) {
    assert.equal(r.statuses.dkim.status, 'ng', JSON.stringify(r.statuses.dkim));
    assert.equal(r.statuses.dkim.reason, 'domainkey_wildcard');
    const w = r.observations.dns.dkim.wildcard!;
    assert.match(w.label, /^[0-9a-f]{16}$/, 'the random label: 16 hex digits');
    assert.equal(w.txt.outcome, 'answer', 'the random label answers through the wildcard');
    assert.ok(w.txt.name.startsWith(`${w.label}._domainkey.`));
  }
  assert.notEqual(wild.observations.dns.dkim.wildcard!.label, apex.observations.dns.dkim.wildcard!.label, 'a fresh label per lookup');
  // A real empty non-terminal (the key lives under a selector we do not know): the random label is NXDOMAIN.
  assert.equal(custom.statuses.dkim.status, 'ok');
  assert.equal(custom.statuses.dkim.reason, 'domainkey_exists');
  assert.equal(custom.observations.dns.dkim.wildcard!.txt.outcome, 'nxdomain');
  assert.match(custom.statuses.dkim.detail ?? '', /NXDOMAIN, so no wildcard/);
});

test('known selectors are tried first and a key there ends the search; a custom-selector key behind a wildcard is found only so', async () => {
  const [plain, custom, hidden, hiddenKnown] = await Promise.all([
    check('dk-custom.test', ['--selectors', 'corp2024']),
    check('dk-custom.test', ['--selectors', 'nope, corp2024']),
    check('dk-wild-custom.test'),
    check('dk-wild-custom.test', ['--selectors', 'CORP2024']),
  ]);
  assert.equal(plain.statuses.dkim.reason, 'key_found');
  assert.match(plain.statuses.dkim.detail ?? '', /corp2024: rsa 2048 bits \(a known selector of the domain\)/);
  // `_domainkey` and the one known selector: neither the 18 common selectors nor the random label are asked.
  assert.deepEqual(dkimNames(plain.observations.dns.dkim), ['_domainkey.dk-custom.test', 'corp2024._domainkey.dk-custom.test']);
  assert.deepEqual(plain.observations.dns.dkim.given, ['corp2024']);
  assert.equal(plain.findings.dkim_key.value, 'strong');
  // Known selectors are asked together; a known one without a key does not stop the search.
  assert.deepEqual(custom.observations.dns.dkim.selectors.map((s) => s.selector), ['nope', 'corp2024']);
  assert.equal(custom.statuses.dkim.reason, 'key_found');

  assert.equal(hidden.statuses.dkim.reason, 'domainkey_wildcard', 'the common list meets only the wildcard');
  assert.equal(hiddenKnown.statuses.dkim.status, 'ok');
  assert.equal(hiddenKnown.statuses.dkim.reason, 'key_found');
  assert.match(hiddenKnown.statuses.dkim.detail ?? '', /corp2024: ed25519/);
  assert.equal(hiddenKnown.observations.dns.dkim.wildcard, undefined, 'a key found: no wildcard test needed');
});

test('RFC 8020: an NXDOMAIN _domainkey ends the search at once, known selectors and the wildcard probe included', async () => {
  const none = await check('dk-none.test', ['--selectors', 'corp2024,m2026']);
  assert.equal(none.statuses.dkim.reason, 'no_dkim_key');
  assert.deepEqual(dkimNames(none.observations.dns.dkim), ['_domainkey.dk-none.test'], 'one DKIM query');
  const plain = await check('dk-plain.test');
  assert.equal(plain.statuses.dkim.reason, 'key_found');
  assert.equal(plain.observations.dns.dkim.wildcard, undefined, 'a key under a common selector: no wildcard query');
  assert.equal(plain.observations.dns.dkim.selectors.length, 18, 'the shipped common list, asked once each');
});

test('check --selectors refuses what is no selector', async () => {
  await assert.rejects(check('dk-plain.test', ['--selectors', 'a_b']), /not a DKIM selector/);
});

// --- pure rules -----------------------------------------------------------------------------------------

function lk(name: string, outcome: Lookup['outcome'], data: unknown[] = []): Lookup {
  return { name, type: 'TXT', outcome, rcode: outcome === 'nxdomain' ? 'NXDOMAIN' : outcome === 'servfail' ? 'SERVFAIL' : 'NOERROR', ad: false, cd: false, ede: [], cnameChain: [], data: data as Lookup['data'] };
}

test('the wildcard rule, case by case, and old observations (no wildcard test) judge as before', () => {
  const base: DkimObservation = { domain: 'x.test', domainkey: lk('_domainkey.x.test', 'nodata'), selectors: [{ selector: 's1', txt: lk('s1._domainkey.x.test', 'nxdomain') }] };
  const w = (outcome: Lookup['outcome']) => ({ ...base, wildcard: { label: '0123456789abcdef', txt: lk('0123456789abcdef._domainkey.x.test', outcome, outcome === 'answer' ? [['hello']] : []) } });
  assert.deepEqual([evaluateDkimScan(base).status, evaluateDkimScan(base).reason], ['ok', 'domainkey_exists'], 'an old observation');
  assert.deepEqual([evaluateDkimScan(w('nxdomain')).status, evaluateDkimScan(w('nxdomain')).reason], ['ok', 'domainkey_exists']);
  assert.deepEqual([evaluateDkimScan(w('answer')).status, evaluateDkimScan(w('answer')).reason], ['ng', 'domainkey_wildcard']);
  assert.deepEqual([evaluateDkimScan(w('nodata')).status, evaluateDkimScan(w('nodata')).reason], ['ng', 'domainkey_wildcard']);
  // The probe failed: we cannot tell, and a later attempt may well answer.
  const failed = evaluateDkimScan(w('servfail'));
  assert.deepEqual([failed.status, failed.reason], ['unknown', 'servfail']);
  assert.equal(reasonMeta('dkim', 'servfail')?.transient, true);
  const dw = reasonMeta('dkim', 'domainkey_wildcard')!;
  assert.equal(dw.transient, false);
  assert.ok(dw.ja && dw.en);
});

test('selector syntax (RFC 6376 §3.1), list cells, and what a test mail may make us remember', () => {
  assert.equal(normalizeSelector('Selector1'), 'selector1');
  assert.equal(normalizeSelector('s1.eu'), 's1.eu');
  for (const bad of ['', '-a', 'a-', 'a_b', 'a..b', 'x'.repeat(64), 'a b', 'ü']) assert.equal(normalizeSelector(bad), null, bad);
  assert.deepEqual(parseSelectorList('s1, s2;S1  google、k1'), { selectors: ['s1', 's2', 'google', 'k1'], bad: null });
  assert.deepEqual(parseSelectorList('ｓ１，s2'), { selectors: ['s1', 's2'], bad: null }, 'full-width letters and comma (NFKC)');
  assert.deepEqual(parseSelectorList('s1 bad_one s2'), { selectors: ['s1'], bad: 'bad_one' });
  assert.equal(givenSelectors(Array.from({ length: 50 }, (_, i) => `s${i}`)).length, 10, 'bounded');
  assert.deepEqual(jobSelectors(['a', 'b'], ['b', 'c', 'd', 'e', 'f', 'g', 'h']), ['a', 'b', 'c', 'd', 'e', 'f'], 'listed first, then at most 5 seen');
  assert.equal(jobSelectors([], []), undefined);
  const sig = (signingDomain: string, selector: string | null, result = 'pass') => ({ signingDomain, selector, result, comment: null });
  assert.deepEqual(
    selectorsToRemember({
      domain: 'mail.example.test',
      signatures: [sig('example.test', 'S1'), sig('mail.example.test', 'k2'), sig('other.test', 'x1'), sig('example.test', 'bad', 'fail'), sig('test', 'tld'), sig('example.test', 'a_b'), sig('example.test', null)],
    }),
    [{ domain: 'example.test', selector: 's1' }, { domain: 'mail.example.test', selector: 'k2' }],
    'aligned, verifying, valid selectors only, under the signing domain',
  );
});

// --- re-judging and ingest (real Postgres) ----------------------------------------------------------------

test('re-judging stored scans: an observation with the wildcard test changes under rules version 2, one without does not', async () => {
  const { createTestDatabase } = await import('./helpers/db.ts');
  const { judgeScan } = await import('../lib/checks/judge.ts');
  const { insertDiagnosis } = await import('../lib/diagnosis.ts');
  const { rejudgeDiagnoses } = await import('../workers/rejudge.ts');
  const judge = await import('../lib/checks/judge.ts');
  const { RULES_VERSION } = await import('../lib/verdict.ts');
  const t = await createTestDatabase();
  try {
    const { id: surveyId } = await t.db.insertInto('surveys').values({ name: 'rejudge-dkim' }).returning('id').executeTakeFirstOrThrow();
    const newRun = async () => (await t.db.insertInto('runs').values({ survey_id: surveyId, state: 'done', total: 1, config: '{}' } as never).returning('id').executeTakeFirstOrThrow()).id;
    const [runA, runB] = [await newRun(), await newRun()];
    const wild = await check('dk-wild.test');
    const at = new Date('2026-06-30T00:00:00Z');
    const { dns, ips } = wild.observations as unknown as { dns: never; ips: never };
    // As rules version 1 stored it: the judgement of the time (no wildcard test, so domainkey_exists).
    const oldDns = JSON.parse(JSON.stringify(dns));
    delete oldDns.dkim.wildcard;
    const asStored = judgeScan('dk-wild.test', dns, ips, at);
    asStored.criteria.dkim = { status: 'ok', reason: 'domainkey_exists' };
    asStored.verdict.rulesVersion = 1;
    const a = await insertDiagnosis(t.db, asStored, { source: 'scan', runId: runA, surveyId });
    const b = await insertDiagnosis(t.db, judgeScan('dk-wild.test', oldDns, ips, at), { source: 'scan', runId: runB, surveyId });
    assert.ok(a.inserted && b.inserted);
    const diag = judge;
    const r = (await rejudgeDiagnoses(t.db, diag, { runId: runA })).examined + (await rejudgeDiagnoses(t.db, diag, { runId: runB })).examined;
    assert.equal(r, 2);
    const rows = await t.db.selectFrom('diagnoses').select(['id', 'dkim', 'dkim_reason', 'rules_version']).orderBy('id').execute();
    const byId = new Map(rows.map((x) => [String(x.id), x]));
    assert.deepEqual([byId.get(a.id)!.dkim, byId.get(a.id)!.dkim_reason], ['ng', 'domainkey_wildcard'], 'the stored random-label answer decides now');
    assert.deepEqual([byId.get(b.id)!.dkim, byId.get(b.id)!.dkim_reason], ['ok', 'domainkey_exists'], 'no wildcard test stored: judged as before');
    assert.ok(rows.every((x) => x.rules_version === RULES_VERSION));
  } finally {
    await t.drop();
  }
});

test('ingest: the selectors column (English or Japanese header) is stored per domain; a bad selector rejects its line', async () => {
  const { createTestDatabase } = await import('./helpers/db.ts');
  const { ingestFile } = await import('../ingest/ingest.ts');
  const t = await createTestDatabase();
  try {
    const en = path.join(lab.dir, 'en.csv');
    writeFileSync(en, 'domain,organization,selectors\r\ndk-custom.test,Corp,"corp2024, s2"\r\ndk-plain.test,Plain,\r\nbad-sel.test,Bad,ok1 not_ok\r\ndk-wild-custom.test,W,CORP2024;k1\r\n');
    const s = await ingestFile(t.sql, { file: en, survey: 'sel-en' });
    assert.equal(s.accepted, 3);
    assert.equal(s.rejected, 1);
    assert.deepEqual(s.rejectReasons, { invalid_selector: 1 });
    const rejects = readFileSync(s.rejectsFile!, 'utf8');
    assert.match(rejects, /\r\n4,invalid_selector,"""not_ok"" is not a DKIM selector \(RFC 6376 §3\.1\)",ok1 not_ok\r\n/);
    const rows = await t.db.selectFrom('survey_domains').select(['domain', 'dkim_selectors']).orderBy('domain').execute();
    assert.deepEqual(rows, [
      { domain: 'dk-custom.test', dkim_selectors: ['corp2024', 's2'] },
      { domain: 'dk-plain.test', dkim_selectors: [] },
      { domain: 'dk-wild-custom.test', dkim_selectors: ['corp2024', 'k1'] },
    ]);
    const ja = path.join(lab.dir, 'ja.csv');
    writeFileSync(ja, '\ufeffドメイン,セレクタ\ndk-mailsel.test,m2026\n');
    const s2 = await ingestFile(t.sql, { file: ja, survey: 'sel-ja' });
    assert.equal(s2.accepted, 1);
    const [row] = await t.db.selectFrom('survey_domains').select('dkim_selectors').where('domain', '=', 'dk-mailsel.test').execute();
    assert.deepEqual(row.dkim_selectors, ['m2026']);
  } finally {
    await t.drop();
  }
});
