// DKIM judgement over declared observations: key parsing, the scan-source rule and the test-mail results.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { dkimTestMailObservation, evaluateDkimScan, evaluateDkimTestMail, parseDkimKey, type DkimObservation } from '../lib/checks/dkim/dkim.ts';
import { L, txt } from './helpers/lookups.ts';

const rsa = (bits: number) => generateKeyPairSync('rsa', { modulusLength: bits }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
const k1024 = rsa(1024);
const k2048 = rsa(2048);

test('parseDkimKey reads version, key type, revocation and the RSA size', () => {
  assert.deepEqual([parseDkimKey('s', `v=DKIM1; k=rsa; p=${k2048}`)].map((k) => [k.valid, k.bits, k.keyType]), [[true, 2048, 'rsa']]);
  assert.equal(parseDkimKey('s', `p=${k1024}`).bits, 1024);
  assert.equal(parseDkimKey('s', 'v=DKIM1; p=').revoked, true);
  assert.equal(parseDkimKey('s', 'v=DKIM1; p=').valid, false);
  assert.equal(parseDkimKey('s', `v=DKIM2; p=${k2048}`).problem, 'bad_version');
  assert.equal(parseDkimKey('s', `k=rsa; v=DKIM1; p=${k2048}`).problem, 'bad_version');
  assert.equal(parseDkimKey('s', 'v=DKIM1; p=not!base64').problem, 'bad_key');
  assert.equal(parseDkimKey('s', 'v=DKIM1; p=QUJD').problem, 'bad_key');
  assert.equal(parseDkimKey('s', `v=DKIM1; k=ed25519; p=${Buffer.alloc(32, 1).toString('base64')}`).bits, 256);
  assert.equal(parseDkimKey('s', `v=DKIM1; k=dsa; p=${k2048}`).problem, 'unknown_key_type');
  assert.equal(parseDkimKey('s', `v=DKIM1; t=y; p=${k2048}`).testing, true);
});

const obs = (domainkey: ReturnType<typeof L>, selectors: [string, ReturnType<typeof L>][] = []): DkimObservation => ({
  domain: 'd.test',
  domainkey,
  selectors: selectors.map(([selector, t]) => ({ selector, txt: t })),
});

const scanCases: [string, DkimObservation, string, string][] = [
  ['a key under a probed selector', obs(txt('_domainkey.d.test'), [['s1', txt('s1._domainkey.d.test', `v=DKIM1; p=${k2048}`)]]), 'ok', 'key_found'],
  // A key split over several strings (> 255 bytes) is joined before parsing.
  ['a 2048-bit key in several strings', obs(txt('_domainkey.d.test'), [['s1', L('s1._domainkey.d.test', 'TXT', 'answer', [[`v=DKIM1; p=${k2048.slice(0, 200)}`, k2048.slice(200)]])]]), 'ok', 'key_found'],
  ['_domainkey exists (empty non-terminal), no probed selector', obs(txt('_domainkey.d.test'), [['s1', L('s1._domainkey.d.test', 'TXT', 'nxdomain')]]), 'ok', 'domainkey_exists'],
  ['only a revoked key, _domainkey exists', obs(txt('_domainkey.d.test'), [['s1', txt('s1._domainkey.d.test', 'v=DKIM1; p=')]]), 'ok', 'domainkey_exists'],
  ['_domainkey NXDOMAIN', obs(L('_domainkey.d.test', 'TXT', 'nxdomain')), 'ng', 'no_dkim_key'],
  ['_domainkey SERVFAIL', obs(L('_domainkey.d.test', 'TXT', 'servfail')), 'unknown', 'servfail'],
  ['_domainkey timeout', obs(L('_domainkey.d.test', 'TXT', 'timeout')), 'unknown', 'timeout'],
  ['_domainkey REFUSED but a selector has a key', obs(L('_domainkey.d.test', 'TXT', 'refused'), [['s1', txt('s1._domainkey.d.test', `p=${k2048}`)]]), 'ok', 'key_found'],
];
for (const [name, o, status, reason] of scanCases) {
  test(`scan DKIM: ${name} → ${status} (${reason})`, () => {
    const f = evaluateDkimScan(o);
    assert.equal(f.status, status, JSON.stringify(f));
    assert.equal(f.reason, reason);
  });
}

const sig = (d: string, result: string) => ({ signingDomain: d, selector: 's1', status: { result } });
const mailCases: [string, ReturnType<typeof sig>[], string, string][] = [
  ['a passing signature of the domain', [sig('d.test', 'pass')], 'ok', 'pass'],
  ['a passing signature of the parent domain', [sig('d.test', 'pass')], 'ok', 'pass'],
  ['a failing signature', [sig('d.test', 'fail')], 'ng', 'signature_fail'],
  ['a neutral (no key) signature', [sig('d.test', 'neutral')], 'ng', 'signature_not_verified'],
  ['only a third party signs', [sig('esp.test', 'pass')], 'ng', 'no_aligned_signature'],
  ['no signature', [], 'ng', 'no_signature'],
  ['a temperror and no pass', [sig('d.test', 'temperror'), sig('d.test', 'fail')], 'unknown', 'temperror'],
  ['a pass wins over a temperror', [sig('d.test', 'temperror'), sig('d.test', 'pass')], 'ok', 'pass'],
  ['a TLD is no parent', [sig('test', 'pass')], 'ng', 'no_aligned_signature'],
];
for (const [name, results, status, reason] of mailCases) {
  test(`test-mail DKIM: ${name} → ${status} (${reason})`, () => {
    const domain = name.includes('parent') ? 'sub.d.test' : 'd.test';
    const f = evaluateDkimTestMail(dkimTestMailObservation(domain, results));
    assert.equal(f.status, status, JSON.stringify(f));
    assert.equal(f.reason, reason);
  });
}
