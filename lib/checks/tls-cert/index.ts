// tls_cert and tls_key, findings beyond MSchecker: the certificate of every MX host that completed STARTTLS.
// tls_cert is multi-valued: a domain counts under every problem one of its MX hosts shows (weak key, expired,
// expiring within 14 days of the observation, incomplete chain, self-signed, wrong name, untrusted), under
// `any` when it has one, `ok` when none, `no_tls` when no handshake completed. tls_key is single-valued: the
// weakest leaf key among the MX hosts. SMTP TLS is opportunistic (RFC 7435): neither changes tls_receive.
// cert_problems (the four problems known before issue 15) stays as it was.
import { finding, type Finding } from '../../criteria.ts';
import { defineFinding, reason, NO_TLS_VALUE_LABEL, type Label, UNKNOWN_VALUE_LABEL } from '../contract.ts';
import { noMxHosts } from '../judge-input.ts';
import { NO_MX_HOST_REASONS, NO_TLS_REASONS } from '../reasons.ts';
import { CERT_PROBLEMS, EXPIRES_SOON_DAYS, KEY_CLASSES, describeHost, describeKey, hostCerts, keyClass, type CertProblem, type KeyClass } from './tls-cert.ts';

/** The certificate problems in words, and `any`: cert_problems counts four of them under the same labels. */
export const CERT_PROBLEM_LABELS: Record<CertProblem | 'any', Label> = {
  weak_key: { ja: '弱い鍵（RSA 2048ビット未満）', en: 'weak key (RSA < 2048 bits)' },
  expired: { ja: '期限切れ', en: 'expired' },
  expires_soon: { ja: `期限まで${EXPIRES_SOON_DAYS}日未満`, en: `expires within ${EXPIRES_SOON_DAYS} days` },
  incomplete_chain: { ja: '中間証明書が送られていない', en: 'incomplete chain (intermediate not sent)' },
  self_signed: { ja: '自己署名', en: 'self-signed' },
  wrong_name: { ja: 'ホスト名不一致', en: 'wrong name' },
  untrusted: { ja: '信頼できない発行者', en: 'untrusted issuer' },
  any: { ja: 'いずれかの問題あり', en: 'any problem' },
};

/** The reason of an `ng` of both certificate findings (tls_cert, cert_problems). */
export const CERT_PROBLEM_REASONS = {
  cert_problems: reason('a certificate problem on an MX host', 'MXの証明書に問題がある'),
} as const;

/** Status of a domain value of tls_cert when none of its MX hosts completed a handshake. */
function noTls(sessions: number): Finding & { value: string[] } {
  return { ...finding('na', sessions === 0 ? 'no_ip' : 'no_tls', sessions === 0 ? 'no MX address was probed' : 'no MX host completed STARTTLS'), value: ['no_tls'] };
}

export const tlsCertCheck = defineFinding({
  id: 'tls_cert',
  label: { ja: 'MXの証明書', en: 'MX certificates' },
  rule: `For every MX host that completed STARTTLS: an RSA key under 2048 bits, a notAfter passed or within ${EXPIRES_SOON_DAYS} days of the observation, a chain that stops at the leaf (the intermediate not sent), self-signed, not valid for the MX name (RFC 6125), or not trusted for another reason. A domain counts under every problem of any of its MX hosts.`,
  scope: 'mx_ip',
  sources: ['scan', 'test-mail'],
  values: [...CERT_PROBLEMS, 'any', 'ok', 'no_tls', 'chain_not_recorded'],
  valueLabels: {
    ...CERT_PROBLEM_LABELS,
    ok: { ja: '問題なし', en: 'no problem' },
    no_tls: NO_TLS_VALUE_LABEL,
    chain_not_recorded: { ja: '証明書チェーン未記録（鍵・チェーンは未判定）', en: 'chain not recorded (key and chain not judged)' },
  },
  // The value is the whole list: the problems, `any` with them, or `ok` / `no_tls` alone (so `any` never counts a domain without a problem).
  multi: { empty: null, any: null },
  reasons: {
    ...CERT_PROBLEM_REASONS,
    cert_ok: reason('every MX certificate is in order', 'MXの証明書に問題はない'),
    chain_not_recorded: reason('the presented chain was not recorded when this was measured: key size and chain not judged', '測定時に証明書チェーンを記録していない（鍵長・チェーンは未判定）'),
    ...NO_TLS_REASONS,
    ...NO_MX_HOST_REASONS,
  },
  judge(input) {
    const none = noMxHosts(input);
    if (none) return { ...none, value: [] };
    const { certs, sessions } = hostCerts(input);
    if (certs.length === 0) return noTls(sessions);
    const seen = new Set(certs.flatMap((c) => c.problems));
    const problems = CERT_PROBLEMS.filter((p) => seen.has(p));
    const unrecorded = certs.some((c) => !c.chainRecorded);
    const detail = certs.map(describeHost).join('; ').slice(0, 800);
    if (problems.length > 0) return { ...finding('ng', 'cert_problems', detail), value: [...problems, 'any', ...(unrecorded ? ['chain_not_recorded'] : [])] };
    if (unrecorded) return { ...finding('unknown', 'chain_not_recorded', detail), value: ['chain_not_recorded'] };
    return { ...finding('ok', 'cert_ok', detail), value: ['ok'] };
  },
});

const RANK: Record<KeyClass, number> = Object.fromEntries(KEY_CLASSES.map((k, i) => [k, i])) as Record<KeyClass, number>;

export const tlsKeyCheck = defineFinding({
  id: 'tls_key',
  label: { ja: 'MXの証明書の鍵', en: 'MX certificate key' },
  rule: 'The weakest leaf key among the MX hosts that completed STARTTLS: RSA under 2048 bits is weak; RSA of 2048 bits or more, ECDSA and EdDSA are counted by type.',
  scope: 'mx_ip',
  sources: ['scan', 'test-mail'],
  values: ['rsa_weak', 'rsa_2048_plus', 'ec', 'ed25519', 'other', 'no_tls', 'unknown'],
  valueLabels: {
    rsa_weak: { ja: 'RSA 2048ビット未満', en: 'RSA < 2048 bits' },
    rsa_2048_plus: { ja: 'RSA 2048ビット以上', en: 'RSA ≥ 2048 bits' },
    ec: { ja: 'ECDSA', en: 'ECDSA' },
    ed25519: { ja: 'EdDSA（Ed25519・Ed448）', en: 'EdDSA (Ed25519, Ed448)' },
    other: { ja: 'その他の鍵', en: 'other key type' },
    no_tls: NO_TLS_VALUE_LABEL,
    unknown: UNKNOWN_VALUE_LABEL,
  },
  reasons: {
    weak_rsa_key: reason('an MX host presents an RSA key under 2048 bits', 'MXが2048ビット未満のRSA鍵を使っている'),
    strong_key: reason('every MX key is RSA ≥ 2048 bits, ECDSA or EdDSA', 'MXの鍵はRSA 2048ビット以上・ECDSA・EdDSA'),
    other_key: reason('an MX key of another type (DSA, …)', 'MXの鍵がその他の種類（DSAなど）'),
    chain_not_recorded: reason('the presented chain was not recorded when this was measured', '測定時に証明書チェーンを記録していない'),
    ...NO_TLS_REASONS,
    ...NO_MX_HOST_REASONS,
  },
  judge(input) {
    const none = noMxHosts(input);
    if (none) return { ...none, value: none.status === 'na' ? 'no_tls' : 'unknown' };
    const { certs, sessions } = hostCerts(input);
    if (certs.length === 0) return { ...noTls(sessions), value: 'no_tls' };
    const keyed = certs.filter((c) => c.leaf !== null);
    const detail = keyed.map((c) => `${c.host} (${c.ip}): ${describeKey(c.leaf!)}`).join('; ').slice(0, 600);
    const weakest = keyed.map((c) => keyClass(c.leaf!)).reduce<KeyClass | null>((a, k) => (a === null || RANK[k] < RANK[a] ? k : a), null);
    if (weakest === 'rsa_weak') return { ...finding('ng', 'weak_rsa_key', detail), value: weakest };
    // A host whose chain was not recorded may hold the weak key.
    if (weakest === null || keyed.length < certs.length) return { ...finding('unknown', 'chain_not_recorded', detail || undefined), value: 'unknown' };
    return { ...finding(weakest === 'other' ? 'ng' : 'ok', weakest === 'other' ? 'other_key' : 'strong_key', detail), value: weakest };
  },
});
