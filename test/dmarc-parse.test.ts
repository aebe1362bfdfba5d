// The pure parts of DMARC in depth and non_mail, on hand-written lookups: report URIs (RFC 7489 §6.2), external
// destinations by organizational domain, the §7.1 authorisation judgement with every failure, the bounds on
// hostile records, pct, and the non-mail classification where the lab cannot make the case (SPF failing alone).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  appliedRecord,
  collectDmarc,
  externalReportDomains,
  isExternal,
  MAX_REPORT_DOMAINS,
  MAX_REPORT_URIS,
  parseDmarc,
  parseReportUri,
  pctOf,
  type DmarcObservation,
} from '../lib/checks/dmarc/dmarc.ts';
import { dmarcFlagsCheck, dmarcReportsCheck, dmarcSubdomainPolicyCheck } from '../lib/checks/dmarc/index.ts';
import { isRejectAllSpf, nonMailCheck } from '../lib/checks/non-mail/index.ts';
import { reasonMeta } from '../lib/checks/registry.ts';
import type { JudgeInput } from '../lib/checks/judge-input.ts';
import type { Resolver } from '../lib/dns/resolver.ts';
import { L, txt } from './helpers/lookups.ts';

const input = (dmarc: DmarcObservation) => ({ dns: { valid: true, dmarc }, invalid: null }) as unknown as JudgeInput;
const own = (record: string, reports?: DmarcObservation['reports'], extra: Partial<DmarcObservation> = {}): DmarcObservation => ({
  domain: 'd.test',
  txt: txt('_dmarc.d.test', record),
  ...(reports ? { reports } : {}),
  ...extra,
});

test('report URIs: mailto with an optional size, percent-encoding; anything else is not usable', () => {
  assert.deepEqual(parseReportUri('mailto:dmarc@Reports.Example.COM!10m'), { uri: 'mailto:dmarc@Reports.Example.COM!10m', domain: 'reports.example.com' });
  assert.equal(parseReportUri('MAILTO:a%40b@x.example').domain, 'x.example');
  assert.deepEqual(parseReportUri('https://x.example/r'), { uri: 'https://x.example/r', domain: null, problem: 'not_mailto' });
  assert.equal(parseReportUri('mailto:').domain, null);
  assert.equal(parseReportUri('mailto:a@b@not a domain').domain, null);
  assert.equal(parseReportUri('mailto:a@192.0.2.1').domain, null);
  assert.equal(parseReportUri(`mailto:a@${'x'.repeat(5000)}.test`).uri.length, 300);
});

test('internal or external: by organizational domain (Public Suffix List)', () => {
  assert.equal(isExternal('example.co.jp', 'mail.example.co.jp'), false);
  assert.equal(isExternal('sub.example.co.jp', 'example.co.jp'), false);
  assert.equal(isExternal('example.co.jp', 'other.co.jp'), true);
  assert.equal(isExternal('a.test', 'b.test'), true);
});

test('a hostile record: at most 10 URIs per tag are read, at most 4 report domains asked', async () => {
  const many = Array.from({ length: 5000 }, (_, i) => `mailto:r@r${i}.example`).join(',');
  const p = parseDmarc(`v=DMARC1; p=none; rua=${many}; ruf=${many}`)!;
  assert.equal(externalReportDomains('d.test', { ...p, fromOrgDomain: false }).length, MAX_REPORT_URIS);
  const asked: string[] = [];
  const resolver = {
    query: async (name: string, type: string) => {
      asked.push(`${type} ${name}`);
      const answers = name === '_dmarc.d.test' ? [{ data: [`v=DMARC1; p=none; rua=${many}`] }] : [];
      return { name, type, outcome: answers.length ? 'answer' : 'nxdomain', rcode: 'NOERROR', ad: false, cd: false, ede: [], cnameChain: [], answers };
    },
  } as unknown as Resolver;
  const obs = await collectDmarc('d.test', resolver);
  assert.equal(obs.reports!.length, MAX_REPORT_DOMAINS);
  assert.deepEqual(obs.reportsNotAsked, ['r4.example', 'r5.example', 'r6.example', 'r7.example', 'r8.example', 'r9.example']);
  assert.deepEqual(asked, ['TXT _dmarc.d.test', ...[0, 1, 2, 3].map((i) => `TXT d.test._report._dmarc.r${i}.example`)]);
  const f = dmarcReportsCheck.evaluate(input(obs));
  assert.deepEqual([f.value, f.reason], [['rua:unauthorized', 'ruf:absent'], 'unauthorized_destination']);
});

test('authorisation lookups that fail give unknown with the DNS reason (transient ones retried)', () => {
  const rec = 'v=DMARC1; p=reject; rua=mailto:a@r.example';
  for (const [outcome, code, transient] of [['timeout', 'timeout', true], ['servfail', 'servfail', true], ['refused', 'refused', false]] as const) {
    const f = dmarcReportsCheck.evaluate(input(own(rec, [{ reportDomain: 'r.example', txt: L('d.test._report._dmarc.r.example', 'TXT', outcome) }])));
    assert.deepEqual([f.status, f.reason, f.value], ['unknown', code, ['rua:unknown', 'ruf:absent']]);
    assert.equal(reasonMeta('dmarc_reports', code)?.transient, transient);
  }
  // An answer without v=DMARC1 (or NXDOMAIN) is no authorisation; one v=DMARC1 among other TXT is.
  const no = dmarcReportsCheck.evaluate(input(own(rec, [{ reportDomain: 'r.example', txt: L('d.test._report._dmarc.r.example', 'TXT', 'nxdomain') }])));
  assert.deepEqual([no.status, no.reason], ['ng', 'unauthorized_destination']);
  const yes = dmarcReportsCheck.evaluate(input(own(rec, [{ reportDomain: 'r.example', txt: txt('d.test._report._dmarc.r.example', 'other', 'v=DMARC1; rua=mailto:x@y.example') }])));
  assert.deepEqual([yes.status, yes.reason, yes.value], ['ok', 'reports_authorized', ['rua:authorized', 'ruf:absent']]);
  // An authorisation name beyond 253 octets is never sent: the resolver records invalid_name, judged unknown.
  const long = dmarcReportsCheck.evaluate(input(own(rec, [{ reportDomain: 'r.example', txt: L('x._report._dmarc.r.example', 'TXT', 'error', [], { reason: 'invalid_name' }) }])));
  assert.deepEqual([long.status, long.reason], ['unknown', 'invalid_name']);
  // Observations from before the lookups: external destinations are not guessed.
  const old = dmarcReportsCheck.evaluate(input(own(`${rec}; ruf=mailto:f@d.test`)));
  assert.deepEqual([old.reason, old.value], ['not_recorded', ['rua:unknown', 'ruf:internal']]);
});

test('pct: an integer 0–100, anything else ignored (default 100); sp judged on its own', () => {
  const pol = (r: string) => ({ ...parseDmarc(r)!, fromOrgDomain: false });
  assert.equal(pctOf(pol('v=DMARC1; p=none; pct=0')), 0);
  assert.equal(pctOf(pol('v=DMARC1; p=none; pct=99')), 99);
  assert.equal(pctOf(pol('v=DMARC1; p=none; pct=12.5')), 100);
  assert.equal(pctOf(pol('v=DMARC1; p=none; pct=abc')), 100);
  assert.equal(pctOf(pol('v=DMARC1; p=none')), 100);
  const flags = dmarcFlagsCheck.evaluate(input(own('v=DMARC1; p=reject; pct=10')));
  assert.deepEqual([flags.status, flags.reason, flags.value], ['ng', 'pct_partial', ['pct_partial']]);
  const sp = dmarcSubdomainPolicyCheck.evaluate(input(own('v=DMARC1; p=none; sp=REJECT')));
  assert.deepEqual([sp.reason, sp.value], ['sp_reject', 'reject']);
});

test('the organizational domain: its record applies when the domain has none; a failure there is unknown', () => {
  const base = { domain: 'a.d.test', txt: L('_dmarc.a.d.test', 'TXT', 'nxdomain'), orgDomain: 'd.test' };
  const a = appliedRecord({ ...base, orgTxt: txt('_dmarc.d.test', 'v=DMARC1; p=quarantine; sp=reject') });
  assert.equal(a.kind === 'policy' && a.policyDomain, 'd.test');
  assert.deepEqual(dmarcSubdomainPolicyCheck.evaluate(input({ ...base, orgTxt: txt('_dmarc.d.test', 'v=DMARC1; p=quarantine; sp=reject') })).value, 'reject');
  const f = dmarcFlagsCheck.evaluate(input({ ...base, orgTxt: L('_dmarc.d.test', 'TXT', 'timeout') }));
  assert.deepEqual([f.status, f.reason, f.value], ['unknown', 'timeout', ['unknown']]);
});

test('non_mail: exactly v=spf1 -all; unknown when the SPF lookup of a null-MX domain fails', () => {
  assert.equal(isRejectAllSpf('v=spf1 -all'), true);
  assert.equal(isRejectAllSpf('  V=SPF1   -ALL '), true);
  assert.equal(isRejectAllSpf('v=spf1 ~all'), false);
  assert.equal(isRejectAllSpf('v=spf1 -all exp=x.test'), false);
  assert.equal(isRejectAllSpf('v=spf1 ip4:192.0.2.1 -all'), false);
  const nullMx = { kind: 'null', finding: { status: 'na', reason: 'null_mx' } };
  const mk = (spfTxt: ReturnType<typeof L>) =>
    ({ dns: { valid: true, mx: { mx: L('d.test', 'MX', 'answer', [{ preference: 0, exchange: '.' }]) }, spf: { root: { txt: spfTxt } } }, mx: nullMx, invalid: null }) as unknown as JudgeInput;
  const failed = nonMailCheck.evaluate(mk(L('d.test', 'TXT', 'timeout')));
  assert.deepEqual([failed.status, failed.reason, failed.value], ['unknown', 'timeout', 'unknown']);
  // Two SPF records, one of them -all, declare nothing (RFC 7208 §4.5: permerror).
  const two = nonMailCheck.evaluate(mk(txt('d.test', 'v=spf1 -all', 'v=spf1 mx -all')));
  assert.deepEqual([two.reason, two.value], ['may_send', 'mail']);
  const ok = nonMailCheck.evaluate(mk(txt('d.test', 'google-site-verification=x', 'v=spf1 -all')));
  assert.deepEqual([ok.reason, ok.value], ['null_mx_spf_all', 'non_mail']);
});
