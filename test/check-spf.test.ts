// SPF judgement over declared observations: the scan-source static rules and the test-mail result mapping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analyzeSpf, evaluateSpfScan, evaluateSpfTestMail, parseSpf, type SpfNode, type SpfObservation } from '../lib/checks/spf/spf.ts';
import { L, txt } from './helpers/lookups.ts';

const node = (domain: string, t: ReturnType<typeof txt>, children: SpfNode['children'] = []): SpfNode => ({ domain, txt: t, children });
const obs = (root: SpfNode): SpfObservation => ({ domain: root.domain, root });
const leaf = (d: string, rec = 'v=spf1 ip4:192.0.2.1 -all') => node(d, txt(d, rec));

test('parseSpf accepts RFC 7208 records and rejects malformed ones', () => {
  for (const ok of [
    'v=spf1 -all',
    'v=spf1',
    'v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a mx/24 a:mail.example.com//64 ~all',
    'v=spf1 include:_spf.google.com exists:%{i}._spf.example.com redirect=_spf.example.com',
    'v=spf1 ptr ?all exp=explain.example.com custom-mod=%{d}',
  ]) assert.equal(parseSpf(ok).ok, true, ok);
  for (const bad of [
    'v=spf10 -all',
    'v=spf1 ip4:999.1.1.1 -all',
    'v=spf1 ip4:192.0.2.0/33',
    'v=spf1 include: -all',
    'v=spf1 foo:bar',
    'v=spf1 redirect=a.example redirect=b.example',
    'v=spf1 all:x',
    'v=spf1 include:%{z}.example',
    'v=spf1 a:example.123',
  ]) assert.equal(parseSpf(bad).ok, false, bad);
});

const cases: { name: string; root: SpfNode; status: string; reason: string }[] = [
  { name: 'one valid record', root: leaf('d.test'), status: 'ok', reason: 'spf_valid' },
  { name: 'no record', root: node('d.test', txt('d.test', 'google-site-verification=x')), status: 'ng', reason: 'no_spf_record' },
  { name: 'no TXT at all (NXDOMAIN)', root: node('d.test', L('d.test', 'TXT', 'nxdomain')), status: 'ng', reason: 'no_spf_record' },
  { name: 'two records', root: node('d.test', txt('d.test', 'v=spf1 -all', 'v=spf1 ~all')), status: 'ng', reason: 'multiple_spf_records' },
  { name: '+all', root: node('d.test', txt('d.test', 'v=spf1 +all')), status: 'ng', reason: 'plus_all' },
  { name: 'bare all (qualifier defaults to +)', root: node('d.test', txt('d.test', 'v=spf1 ip4:192.0.2.1 all')), status: 'ng', reason: 'plus_all' },
  { name: 'syntax error', root: node('d.test', txt('d.test', 'v=spf1 ip4:1.2.3 -all')), status: 'ng', reason: 'spf_syntax_error' },
  { name: 'TXT SERVFAIL', root: node('d.test', L('d.test', 'TXT', 'servfail')), status: 'unknown', reason: 'servfail' },
  { name: 'TXT timeout', root: node('d.test', L('d.test', 'TXT', 'timeout')), status: 'unknown', reason: 'timeout' },
  {
    name: 'include target without SPF record (permerror)',
    root: node('d.test', txt('d.test', 'v=spf1 include:x.test -all'), [{ kind: 'include', target: 'x.test', node: node('x.test', txt('x.test')) }]),
    status: 'ng', reason: 'include_without_spf',
  },
  {
    name: 'include target failing is unknown, not ng',
    root: node('d.test', txt('d.test', 'v=spf1 include:x.test -all'), [{ kind: 'include', target: 'x.test', node: node('x.test', L('x.test', 'TXT', 'servfail')) }]),
    status: 'unknown', reason: 'servfail',
  },
  {
    name: 'include loop',
    root: node('d.test', txt('d.test', 'v=spf1 include:x.test -all'), [
      { kind: 'include', target: 'x.test', node: node('x.test', txt('x.test', 'v=spf1 include:d.test -all'), [{ kind: 'include', target: 'd.test', loop: true }]) },
    ]),
    status: 'ng', reason: 'include_loop',
  },
  {
    name: 'redirect to a +all policy',
    root: node('d.test', txt('d.test', 'v=spf1 redirect=x.test'), [{ kind: 'redirect', target: 'x.test', node: leaf('x.test', 'v=spf1 +all') }]),
    status: 'ng', reason: 'plus_all',
  },
  {
    name: 'three void a lookups',
    root: node('d.test', txt('d.test', 'v=spf1 a:n1.test a:n2.test a:n3.test -all'), ['n1.test', 'n2.test', 'n3.test'].map((t) => ({
      kind: 'a' as const, target: t, lookups: [L(t, 'A', 'nxdomain'), L(t, 'AAAA', 'nxdomain')],
    }))),
    status: 'ng', reason: 'too_many_void_lookups',
  },
  {
    name: 'an a term with IPv6 only is not void',
    root: node('d.test', txt('d.test', 'v=spf1 a:n1.test a:n2.test a:n3.test -all'), ['n1.test', 'n2.test', 'n3.test'].map((t) => ({
      kind: 'a' as const, target: t, lookups: [L(t, 'A', 'nodata'), L(t, 'AAAA', 'answer', ['2001:db8::1'])],
    }))),
    status: 'ok', reason: 'spf_valid',
  },
];

const many = Array.from({ length: 11 }, (_, i) => `i${i}.test`);
cases.push({
  name: '11 includes exceed 10 lookups',
  root: node('d.test', txt('d.test', `v=spf1 ${many.map((m) => `include:${m}`).join(' ')} -all`), many.map((m) => ({ kind: 'include' as const, target: m, node: leaf(m) }))),
  status: 'ng', reason: 'too_many_lookups',
});
cases.push({
  name: '10 lookups over the tree is still ok',
  root: node('d.test', txt('d.test', `v=spf1 ${many.slice(0, 5).map((m) => `include:${m}`).join(' ')} -all`), many.slice(0, 5).map((m) => ({
    kind: 'include' as const, target: m, node: node(m, txt(m, 'v=spf1 mx -all'), [{ kind: 'mx', target: m, lookups: [L(m, 'MX', 'answer', [{ preference: 10, exchange: `mx.${m}` }])] }]),
  }))),
  status: 'ok', reason: 'spf_valid',
});

for (const c of cases) {
  test(`scan SPF: ${c.name} → ${c.status} (${c.reason})`, () => {
    const f = evaluateSpfScan(obs(c.root));
    assert.equal(f.status, c.status, JSON.stringify(f));
    assert.equal(f.reason, c.reason);
  });
}

test('scan SPF counts lookups and void lookups over the tree', () => {
  const a = analyzeSpf(cases.find((c) => c.name.startsWith('10 lookups'))!.root);
  assert.equal(a.lookupCount, 10);
  assert.equal(a.voidCount, 0);
  assert.equal(a.all, '-all');
});

for (const [result, status] of [
  ['pass', 'ok'], ['fail', 'ng'], ['softfail', 'ng'], ['neutral', 'ng'], ['none', 'ng'], ['permerror', 'ng'], ['temperror', 'unknown'],
] as const) {
  test(`test-mail SPF ${result} is ${status}`, () => {
    const f = evaluateSpfTestMail({ ip: '192.0.2.1', mailFrom: 'a@d.test', helo: null, result, comment: null, record: null, lookups: null });
    assert.equal(f.status, status);
    assert.equal(f.reason, result);
  });
}
