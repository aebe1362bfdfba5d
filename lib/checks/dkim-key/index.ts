// dkim_key, a finding beyond MSchecker: how strong the domain's DKIM keys are (RFC 8301 §3.2: signers
// MUST use RSA keys of at least 1024 bits and SHOULD use at least 2048; verifiers MUST NOT accept shorter
// than 1024; Ed25519, RFC 8463, is strong). A domain counts under its weakest key. Scan: the keys found under
// the probed selectors; test mail: the key of each aligned signature, from the DNS answers mailauth used.
import { finding, type Finding } from '../../criteria.ts';
import { failureReason, txtRecords } from '../../dns/observation.ts';
import { isFact } from '../../dns/resolver.ts';
import { defineFinding, reason, UNKNOWN_VALUE_LABEL } from '../contract.ts';
import type { JudgeInput } from '../judge-input.ts';
import { DNS_FAILURE_REASONS } from '../reasons.ts';
import { dkimKeys, parseDkimKey, type DkimKey } from '../dkim/dkim.ts';

const RANK = { invalid: 0, weak: 1, strong: 2 } as const;
type Strength = keyof typeof RANK;

function strengthOf(k: DkimKey): Strength {
  if (k.keyType === 'ed25519') return 'strong';
  const bits = k.bits ?? 0;
  return bits >= 2048 ? 'strong' : bits >= 1024 ? 'weak' : 'invalid';
}

/** The key, with `t=y` (testing, RFC 6376 §3.6.1) noted. */
function describe(k: DkimKey): string {
  return `${k.selector}: ${k.keyType}${k.bits ? ` ${k.bits} bits` : ''}${k.testing ? ' (t=y testing)' : ''}`;
}

function judgeKeys(keys: DkimKey[], none: Finding): Finding & { value: string } {
  const usable = keys.filter((k) => k.valid);
  const revoked = keys.filter((k) => k.revoked).map((k) => `${k.selector}: revoked (empty p=)`);
  if (usable.length === 0) {
    const detail = [none.detail, ...revoked].filter(Boolean).join('; ');
    return { ...none, ...(detail ? { detail } : {}), value: none.status === 'unknown' ? 'unknown' : 'not_found' };
  }
  const weakest = usable.reduce((a, b) => (RANK[strengthOf(b)] < RANK[strengthOf(a)] ? b : a));
  const value = strengthOf(weakest);
  const detail = [usable.map(describe).join(', '), ...revoked].join('; ');
  if (value === 'strong') return { ...finding('ok', 'strong_key', detail), value };
  return { ...finding('ng', value === 'weak' ? 'weak_rsa_key' : 'rsa_key_too_short', detail), value };
}

/** Test mail: the keys of the signatures aligned with the domain, as the DNS answered mailauth. */
function testMailKeys(input: JudgeInput): DkimKey[] | null {
  const mail = input.mail!;
  if (!mail.authDns) return null;
  const keys: DkimKey[] = [];
  for (const s of mail.dkim.signatures) {
    if (!s.selector || !(input.domain === s.signingDomain || input.domain.endsWith(`.${s.signingDomain}`))) continue;
    const name = `${s.selector}._domainkey.${s.signingDomain}`.toLowerCase();
    const answer = mail.authDns.find((l) => l.type === 'TXT' && l.name.toLowerCase() === name);
    for (const record of answer ? txtRecords(answer) : []) keys.push(parseDkimKey(s.selector, record));
  }
  return keys;
}

export const dkimKeyCheck = defineFinding({
  id: 'dkim_key',
  label: { ja: 'DKIM鍵の強度', en: 'DKIM key strength' },
  rule: 'The weakest DKIM key of the domain: RSA of at least 2048 bits or Ed25519 is strong, 1024–2047 bits weak (RFC 8301 §3.2 SHOULD), under 1024 bits too short (MUST NOT be used).',
  scope: 'domain',
  values: ['strong', 'weak', 'invalid', 'not_found', 'unknown'],
  valueLabels: {
    strong: { ja: '十分（RSA 2048ビット以上・Ed25519）', en: 'strong (RSA ≥ 2048 bits, Ed25519)' },
    weak: { ja: '弱い（RSA 1024〜2047ビット）', en: 'weak (RSA 1024–2047 bits)' },
    invalid: { ja: '不可（RSA 1024ビット未満）', en: 'invalid (RSA < 1024 bits)' },
    not_found: { ja: '鍵を確認できない', en: 'no key found' },
    unknown: UNKNOWN_VALUE_LABEL,
  },
  reasons: {
    strong_key: reason('every key is RSA ≥ 2048 bits or Ed25519', 'すべての鍵がRSA 2048ビット以上かEd25519'),
    weak_rsa_key: reason('an RSA key under 2048 bits (RFC 8301 §3.2)', '2048ビット未満のRSA鍵がある'),
    rsa_key_too_short: reason('an RSA key under 1024 bits, which verifiers reject (RFC 8301 §3.2)', '1024ビット未満のRSA鍵がある（検証されない）'),
    no_key_found: reason('no DKIM key found to measure', '測定できるDKIM鍵がない'),
    not_recorded: reason('the DNS answers behind the test mail were not recorded', 'テストメールのDNS応答が記録されていない'),
    ...DNS_FAILURE_REASONS,
  },
  judge(input) {
    if (input.mail) {
      const keys = testMailKeys(input);
      if (keys === null) return { ...finding('unknown', 'not_recorded'), value: 'unknown' };
      return judgeKeys(keys, finding('na', 'no_key_found', 'no aligned signature with a key in the DNS answers'));
    }
    if (!input.dns.valid) return { ...input.invalid!, value: 'unknown' };
    const dkim = input.dns.dkim;
    // No key seen: unknown if a selector lookup failed (it may hold one), else nothing to measure.
    const failed = dkim.selectors.find((s) => !isFact(s.txt.outcome));
    const none = failed
      ? finding('unknown', failureReason(failed.txt), `${failed.selector}._domainkey.${dkim.domain}: ${failed.txt.outcome}`)
      : finding('na', 'no_key_found', 'no key under the probed selectors');
    return judgeKeys(dkimKeys(dkim), none);
  },
});
