// docs/criteria.md is the registry written out: it must say exactly what the code does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { renderCriteriaDoc } from '../scripts/criteria-doc.ts';
import { CHECKS, CRITERION_CHECKS, DOMAIN_GATHERERS } from '../lib/checks/registry.ts';
import { CRITERIA } from '../lib/criteria.ts';
import { defineFinding, reason, UndeclaredReasonError } from '../lib/checks/contract.ts';
import { scanInput } from '../lib/checks/judge-input.ts';

test('docs/criteria.md is up to date with the registry (npm run docs:criteria)', () => {
  assert.equal(readFileSync(new URL('../docs/criteria.md', import.meta.url), 'utf8'), renderCriteriaDoc());
});

test('the registry: unique ids, the criteria in lib/criteria.ts order, every reason and every value labelled in ja and en (reasons with a transient flag), one gatherer per key', () => {
  assert.equal(new Set(CHECKS.map((c) => c.id)).size, CHECKS.length);
  assert.deepEqual(CRITERION_CHECKS.map((c) => c.id), [...CRITERIA]);
  assert.equal(new Set(DOMAIN_GATHERERS.map((g) => g.key)).size, DOMAIN_GATHERERS.length);
  for (const c of CHECKS) {
    assert.ok(c.label.ja && c.label.en && c.rule, c.id);
    for (const [code, m] of Object.entries(c.reasons)) {
      assert.match(code, /^[a-z0-9_]+$/, `${c.id}: ${code}`);
      assert.ok(m.ja && m.en && typeof m.transient === 'boolean', `${c.id}: ${code}`);
    }
    if (c.kind === 'finding') for (const v of c.values) assert.ok(c.valueLabels[v]?.ja && c.valueLabels[v]?.en, `${c.id}: value ${v} has no label`);
  }
});

test('a check that returns a reason it does not declare fails loudly', () => {
  const bad = defineFinding({
    id: 'bad', label: { ja: 'x', en: 'x' }, rule: 'x', scope: 'domain', sources: ['scan'], values: ['a'], valueLabels: { a: { ja: 'a', en: 'a' } },
    reasons: { declared: reason('declared', '宣言済み') },
    judge: () => ({ status: 'ok', reason: 'undeclared', value: 'a' }),
  });
  const input = scanInput('x.test', { version: 1, input: 'x y', domain: 'x y', valid: false, reason: 'invalid_name' }, {});
  assert.throws(() => bad.evaluate(input), UndeclaredReasonError);
});
