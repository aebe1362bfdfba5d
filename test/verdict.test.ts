import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CRITERIA, STATUSES, type Criterion, type CriterionFindings, type Status } from '../lib/criteria.ts';
import { judgeVerdict, type Verdict } from '../lib/verdict.ts';

function findings(statuses: Partial<Record<Criterion, Status>>): CriterionFindings {
  const out = {} as CriterionFindings;
  for (const c of CRITERIA) out[c] = { status: statuses[c] ?? 'ok', reason: `r_${c}`, detail: `d_${c}` };
  return out;
}

// An oracle written straight from ../shared/CRITERIA.md, as "could any completion of the unknowns prove a
// worse level than the ng criteria prove": it enumerates every ok/ng completion of the unknowns.
function oracle(s: Record<Criterion, Status>, scan: boolean): Verdict {
  const level = (x: Record<Criterion, Status>): number => {
    const ng = (c: Criterion) => x[c] === 'ng' && !(scan && c === 'tls_send');
    if (ng('open_relay')) return 3;
    if ((ng('spf') && ng('dkim')) || ng('tls_send') || ng('tls_receive') || ng('reverse_dns')) return 2;
    if (ng('dnssec') || ng('dnsbl')) return 1;
    return 0;
  };
  const unknowns = CRITERIA.filter((c) => s[c] === 'unknown' && !(scan && c === 'tls_send'));
  const proven = level(s);
  for (let mask = 0; mask < 1 << unknowns.length; mask++) {
    const x = { ...s };
    unknowns.forEach((c, i) => (x[c] = mask & (1 << i) ? 'ng' : 'ok'));
    if (level(x) > proven) return 'incomplete';
  }
  return (['safe', 'review', 'needs_improvement', 'danger'] as const)[proven];
}

test('the verdict matches the rules of CRITERIA.md over every combination of statuses, both sources', () => {
  let checked = 0;
  const total = STATUSES.length ** CRITERIA.length;
  for (let n = 0; n < total; n++) {
    const s = {} as Record<Criterion, Status>;
    let k = n;
    for (const c of CRITERIA) {
      s[c] = STATUSES[k % STATUSES.length];
      k = Math.floor(k / STATUSES.length);
    }
    for (const source of ['scan', 'test-mail'] as const) {
      const got = judgeVerdict(findings(s), source).verdict;
      const want = oracle(s, source === 'scan');
      if (got !== want) assert.fail(`${source} ${JSON.stringify(s)}: got ${got}, want ${want}`);
      checked++;
    }
  }
  assert.equal(checked, 2 * 65536);
});

test('open relay is danger, and the reason names where', () => {
  const f = findings({ open_relay: 'ng', spf: 'ng', dkim: 'ng' });
  f.open_relay.detail = 'open relay on 127.100.0.9';
  const v = judgeVerdict(f, 'test-mail');
  assert.equal(v.verdict, 'danger');
  assert.deepEqual(v.reasons.map((r) => r.detail), ['open relay on 127.100.0.9']);
});

test('SPF alone NG is still safe; SPF and DKIM both NG need improvement', () => {
  assert.equal(judgeVerdict(findings({ spf: 'ng' }), 'test-mail').verdict, 'safe');
  const v = judgeVerdict(findings({ spf: 'ng', dkim: 'ng' }), 'test-mail');
  assert.equal(v.verdict, 'needs_improvement');
  assert.deepEqual(v.reasons.map((r) => r.criterion), ['spf', 'dkim']);
});

test('an unknown that could raise the verdict makes it incomplete, naming the unknown', () => {
  const v = judgeVerdict(findings({ dnssec: 'ng', open_relay: 'unknown' }), 'test-mail');
  assert.equal(v.verdict, 'incomplete');
  assert.equal(v.proven, 'review');
  assert.deepEqual(v.reasons.map((r) => r.criterion), ['open_relay']);
});

test('an unknown below the proven level does not make it incomplete', () => {
  assert.equal(judgeVerdict(findings({ reverse_dns: 'ng', dnsbl: 'unknown' }), 'test-mail').verdict, 'needs_improvement');
});

test('a scan ignores send TLS, and says so', () => {
  const v = judgeVerdict(findings({ tls_send: 'unknown' }), 'scan');
  assert.equal(v.verdict, 'safe');
  assert.deepEqual(v.ignored, ['tls_send']);
  assert.equal(judgeVerdict(findings({ tls_send: 'unknown' }), 'test-mail').verdict, 'incomplete');
});
