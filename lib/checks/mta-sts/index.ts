// mta_sts, a finding beyond MSchecker (RFC 8461): the `_mta-sts` TXT record that announces a policy (§3.1),
// the policy fetched over HTTPS from `mta-sts.<domain>` through the outbound gate with a valid certificate
// (§3.3), parsed (§3.2), and every MX host of the domain matched against its `mx` patterns (§4.1). The
// gatherer stores the TXT lookup and the fetch under `dns.mtaSts` (plain JSON, bounded), so the value is
// judged again from stored observations alone.
import { finding } from '../../criteria.ts';
import { extraCaPemsFromConfig, httpsPort } from '../../net/https-fetch.ts';
import { defineFinding, labelledReasons, reason, type GatherDeps, type Label, RECORD_VALUE_LABELS } from '../contract.ts';
import type { JudgeInput } from '../judge-input.ts';
import { DNS_FAILURE_REASONS } from '../reasons.ts';
import { collectMtaSts, evaluateMtaSts } from './mta-sts.ts';
import { evaluateMtaStsPolicy, MTA_STS_POLICY_REASONS, retrieveMtaStsPolicy, type MtaStsGathered, type MtaStsPolicyReason } from './policy.ts';

/** The values reports count, in the order they show them (../shared/CRITERIA.md `mta_sts`). */
export const MTA_STS_VALUES = [
  'enforce',
  'enforce_mx_not_covered',
  'testing',
  'testing_mx_not_covered',
  'none',
  'policy_missing',
  'policy_cert_invalid',
  'invalid',
  'absent',
  'unknown',
  // Diagnoses judged before the policy was fetched (issue 15): a valid TXT record, policy not measured.
  'present',
] as const;
export type MtaStsFindingValue = (typeof MTA_STS_VALUES)[number];

const VALUE_LABELS: Record<MtaStsFindingValue, Label> = {
  enforce: { ja: 'enforce（全MXが対象）', en: 'enforce (every MX covered)' },
  enforce_mx_not_covered: { ja: 'enforce（対象外のMXあり）', en: 'enforce, an MX not covered' },
  testing: { ja: 'testing（全MXが対象）', en: 'testing (every MX covered)' },
  testing_mx_not_covered: { ja: 'testing（対象外のMXあり）', en: 'testing, an MX not covered' },
  none: { ja: 'none（ポリシー無効化）', en: 'none (policy withdrawn)' },
  policy_missing: { ja: 'ポリシーを取得できない', en: 'no policy served' },
  policy_cert_invalid: { ja: 'ポリシーホストの証明書が不正', en: 'invalid certificate on the policy host' },
  invalid: { ja: '不正なレコードまたはポリシー', en: 'invalid record or policy' },
  absent: RECORD_VALUE_LABELS.absent,
  unknown: RECORD_VALUE_LABELS.unknown,
  present: { ja: 'レコードのみ確認（ポリシー未測定）', en: 'record only (policy not measured)' },
};

/** ja/en labels of the policy reasons (their value and transient flag are in policy.ts MTA_STS_POLICY_REASONS). */
const POLICY_LABELS: Record<Exclude<MtaStsPolicyReason, 'txt_dns_failure'>, Label> = {
  no_mta_sts_record: { en: 'no MTA-STS record', ja: 'MTA-STSレコードがない' },
  multiple_mta_sts_records: { en: 'more than one MTA-STS record (RFC 8461 §3.1)', ja: 'MTA-STSレコードが複数ある' },
  invalid_mta_sts_record: { en: 'an MTA-STS record without a valid id=', ja: 'id=が正しくないMTA-STSレコード' },
  policy_host_not_found: { en: 'the policy host mta-sts.<domain> has no address', ja: 'ポリシーホスト（mta-sts.<ドメイン>）のアドレスがない' },
  policy_host_dns_failure: { en: 'the address of the policy host could not be resolved', ja: 'ポリシーホストのアドレスを引けなかった' },
  not_fetched: { en: 'the policy was not fetched', ja: 'ポリシーを取得していない' },
  https_unreachable: { en: 'the policy host refused or did not answer the connection', ja: 'ポリシーホストに接続できなかった（拒否・タイムアウト）' },
  https_timeout: { en: 'the policy host did not answer in time', ja: 'ポリシーホストの応答がタイムアウトした' },
  https_tls_error: { en: 'the TLS handshake with the policy host failed', ja: 'ポリシーホストとのTLSハンドシェイクに失敗した' },
  https_refused_by_policy: { en: 'the policy host is not to be contacted (special-purpose address or opt-out)', ja: 'ポリシーホストには接続しない（特殊用途アドレス・オプトアウト）' },
  policy_cert_untrusted: { en: 'the policy host certificate is not trusted (self-signed, unknown issuer)', ja: 'ポリシーホストの証明書が信頼できない（自己署名など）' },
  policy_cert_expired: { en: 'the policy host certificate has expired', ja: 'ポリシーホストの証明書の期限が切れている' },
  policy_cert_wrong_name: { en: 'the policy host certificate does not name mta-sts.<domain>', ja: 'ポリシーホストの証明書の名前が違う' },
  policy_not_found: { en: 'no policy at /.well-known/mta-sts.txt (HTTP 4xx)', ja: 'ポリシーファイルがない（HTTP 4xx）' },
  policy_redirect: { en: 'the policy URL redirects (RFC 8461 §3.3: not followed)', ja: 'ポリシーのURLがリダイレクトする（追わない）' },
  policy_server_error: { en: 'the policy host answered 5xx', ja: 'ポリシーホストが5xxを返した' },
  policy_wrong_content_type: { en: 'the policy is not served as text/plain', ja: 'ポリシーがtext/plainで返されない' },
  policy_bad_response: { en: 'the policy host gave a malformed HTTP answer', ja: 'ポリシーホストのHTTP応答が不正' },
  policy_too_large: { en: 'the policy exceeds 64 KiB', ja: 'ポリシーが64KiBを超える' },
  invalid_version: { en: 'the policy has no version: STSv1', ja: 'ポリシーのversionがSTSv1でない' },
  invalid_mode: { en: 'the policy mode is missing or not enforce/testing/none', ja: 'ポリシーのmodeがない・不正' },
  invalid_max_age: { en: 'the policy max_age is missing or invalid', ja: 'ポリシーのmax_ageがない・不正' },
  missing_mx: { en: 'an enforce or testing policy without mx', ja: 'enforce/testingなのにmxがない' },
  invalid_mx_pattern: { en: 'a policy mx value is not a domain or *.domain', ja: 'ポリシーのmxが不正' },
  policy_enforce: { en: 'policy in enforce mode, every MX covered', ja: 'enforceのポリシー（全MXが対象）' },
  policy_testing: { en: 'policy in testing mode, every MX covered', ja: 'testingのポリシー（全MXが対象）' },
  policy_none: { en: 'policy in none mode', ja: 'modeがnoneのポリシー' },
  mx_not_covered: { en: 'an MX host matches none of the policy mx patterns (RFC 8461 §4.1)', ja: 'ポリシーのmxに一致しないMXがある' },
};


/** The TXT record, then — only when it is a valid v=STSv1 record and an outbound gate is given — the policy. */
export async function gatherMtaSts(domain: string, deps: GatherDeps, opts: { cd: boolean }): Promise<MtaStsGathered> {
  const txt = await collectMtaSts(domain, deps.resolver, { cd: opts.cd });
  if (evaluateMtaSts(txt).value !== 'present') return { ...txt, policy: null };
  if (!deps.outbound) return { ...txt, policy: 'not_measured' };
  const policy = await retrieveMtaStsPolicy(domain, {
    resolver: deps.resolver,
    gate: deps.outbound,
    port: httpsPort({ lab: deps.config.lab ?? false, httpsPort: deps.config.httpsPort ?? 443 }),
    extraCaPems: extraCaPemsFromConfig(deps.config),
    cd: opts.cd,
    ...(deps.https?.deadlineMs ? { deadlineMs: deps.https.deadlineMs } : {}),
    ...(deps.https?.connectTimeoutMs ? { connectTimeoutMs: deps.https.connectTimeoutMs } : {}),
  });
  return { ...txt, policy };
}

/**
 * The MX host names a sender would deliver to (RFC 8461 §4.1 matches these): every MX record's exchange,
 * the domain itself for an implicit MX, none for a null or no MX; null when the MX set could not be read.
 */
export function mxNamesOf(input: JudgeInput): string[] | null {
  if (!input.dns.valid) return null;
  const kind = input.mx.kind;
  if (kind === 'null' || kind === 'none') return [];
  if (kind === 'implicit') return [input.domain];
  if (kind !== 'mx') return null;
  const data = input.dns.mx.mx.outcome === 'answer' ? (input.dns.mx.mx.data as { exchange?: unknown }[]) : [];
  const names = new Set<string>();
  for (const r of data) {
    const n = typeof r?.exchange === 'string' ? r.exchange.toLowerCase().replace(/\.$/, '') : '';
    if (n) names.add(n);
    if (names.size >= 100) break;
  }
  return [...names];
}

export const mtaStsCheck = defineFinding({
  id: 'mta_sts',
  label: { ja: 'MTA-STS', en: 'MTA-STS' },
  rule:
    'A single v=STSv1 TXT record at _mta-sts.<domain> with a valid id= (RFC 8461 §3.1); its policy at https://mta-sts.<domain>/.well-known/mta-sts.txt served as text/plain with a valid certificate and no redirect (§3.3), parsing per §3.2; its mode (enforce, testing, none) is the value, with every MX host matched against the policy mx patterns (§4.1).',
  scope: 'domain',
  column: 'mta_sts',
  values: MTA_STS_VALUES,
  valueLabels: VALUE_LABELS,
  reasons: {
    ...labelledReasons(POLICY_LABELS, MTA_STS_POLICY_REASONS),
    policy_not_recorded: reason('a valid MTA-STS record; the policy was not fetched when this was measured', '正しいMTA-STSレコード（ポリシーは測定時に取得していない）'),
    not_measured: reason('the policy was not fetched (no outbound connection in this run)', 'ポリシーを取得していない（外部接続なしの実行）'),
    ...DNS_FAILURE_REASONS,
  },
  gather: { key: 'mtaSts', retrieve: gatherMtaSts },
  judge(input) {
    if (!input.dns.valid) return { ...input.invalid!, value: 'unknown' };
    const obs = input.dns.mtaSts as MtaStsGathered;
    const t = evaluateMtaSts(obs);
    // The TXT lookup failed: its DNS reason (servfail, timeout… with their transient flags).
    if (t.value === 'unknown') return { ...finding('unknown', t.reason, t.detail), value: 'unknown' };
    if (t.value === 'present' && obs.policy === undefined) return { ...finding('unknown', 'policy_not_recorded', t.detail), value: 'present' };
    if (t.value === 'present' && obs.policy === 'not_measured') return { ...finding('unknown', 'not_measured', `${t.detail}; the policy was not fetched`), value: 'unknown' };
    const policy = obs.policy && obs.policy !== 'not_measured' ? obs.policy : null;
    const mx = mxNamesOf(input);
    const e = evaluateMtaStsPolicy(t, policy, mx ?? []);
    let detail = e.detail;
    let value: MtaStsFindingValue = e.value;
    if (e.reason === 'mx_not_covered') {
      value = e.value === 'enforce' ? 'enforce_mx_not_covered' : 'testing_mx_not_covered';
      detail = `${e.mxNotCovered.length} of ${mx?.length ?? 0} MX hosts not covered: ${e.detail}`;
    } else if (mx === null && (e.value === 'enforce' || e.value === 'testing')) {
      detail = `${detail}; the MX set could not be read, so coverage was not checked`;
    }
    if (e.id) detail = `id=${e.id}; ${detail}`;
    return { status: e.status, reason: e.reason, detail: detail.slice(0, 600), value };
  },
});
