// DMARC in depth (RFC 7489), four findings beyond MSchecker over one observation (the `_dmarc` record, its
// organizational domain's, and the §7.1 authorisation record of each external report domain):
// - dmarc_policy: the p= of the applied record (the legacy column keeps this meaning, so old rows count the same);
// - dmarc_subdomain_policy: its sp= (p= when absent), which for an inherited record is what applies to the domain;
// - dmarc_flags: pct below 100 (`pct_partial`) and a record found at the organizational domain (`inherited`);
// - dmarc_reports: rua and ruf, each absent / internal / authorized / unauthorized (a multi-valued finding,
//   one `rua:<value>` and one `ruf:<value>` per domain, so a report table shows both address kinds).
import { finding } from '../../criteria.ts';
import { failureReason } from '../../dns/observation.ts';
import { defineFinding, dnsGatherer, reason, RECORD_VALUE_LABELS, type Label, UNKNOWN_VALUE_LABEL } from '../contract.ts';
import { judgeRecord, type JudgeInput } from '../judge-input.ts';
import { DNS_FAILURE_REASONS } from '../reasons.ts';
import {
  appliedRecord,
  collectDmarc,
  evaluateDmarc,
  judgeReports,
  pctOf,
  REPORT_KINDS,
  REPORT_VALUES,
  subdomainPolicy,
  type Applied,
  type ReportJudgement,
} from './dmarc.ts';

/** The reason codes of a record that gives no policy (shared by the four findings). */
const NO_POLICY_REASONS = {
  no_dmarc_record: reason('no DMARC record', 'DMARCレコードがない'),
  multiple_dmarc_records: reason('more than one DMARC record', 'DMARCレコードが複数ある'),
  invalid_dmarc_record: reason('a DMARC record without a valid p=', 'p=が正しくないDMARCレコード'),
  ...DNS_FAILURE_REASONS,
};

/** The values of a record that gives no policy, labelled as every record finding labels them. */
const NO_POLICY_LABELS = {
  absent: RECORD_VALUE_LABELS.absent,
  invalid: RECORD_VALUE_LABELS.invalid,
  unknown: RECORD_VALUE_LABELS.unknown,
} as const satisfies Record<string, Label>;

/** The values of dmarc_policy and dmarc_subdomain_policy (the p= or sp= that applies, else why none does), as reports list them. */
const POLICY_VALUES = ['reject', 'quarantine', 'none', 'absent', 'invalid', 'unknown'] as const;

const POLICY_LABELS = {
  reject: { ja: 'reject', en: 'reject' },
  quarantine: { ja: 'quarantine', en: 'quarantine' },
  none: { ja: 'none（監視のみ）', en: 'none (monitor only)' },
  ...NO_POLICY_LABELS,
} as const satisfies Record<string, Label>;

function applied(input: JudgeInput): Applied | { kind: 'invalid_name' } {
  return input.dns.valid ? appliedRecord(input.dns.dmarc) : { kind: 'invalid_name' };
}

export const dmarcPolicyCheck = defineFinding({
  id: 'dmarc_policy',
  label: { ja: 'DMARCポリシー', en: 'DMARC policy' },
  rule: 'The p= of the _dmarc TXT record of the domain, or of its organizational domain (RFC 7489 §6.3, §6.6.3); several records or no valid p= is invalid.',
  scope: 'domain',
  column: 'dmarc_policy',
  values: POLICY_VALUES,
  valueLabels: POLICY_LABELS,
  reasons: {
    p_reject: reason('p=reject', 'p=reject'),
    p_quarantine: reason('p=quarantine', 'p=quarantine'),
    p_none: reason('p=none (monitoring only)', 'p=none（監視のみ）'),
    ...NO_POLICY_REASONS,
  },
  gather: dnsGatherer('dmarc', collectDmarc),
  judge: (input) => judgeRecord(input, (dns) => evaluateDmarc(dns.dmarc)),
});

export const dmarcSubdomainPolicyCheck = defineFinding({
  id: 'dmarc_subdomain_policy',
  label: { ja: 'DMARCサブドメインポリシー', en: 'DMARC subdomain policy' },
  rule: 'The sp= of the applied DMARC record, or its p= when it has none (RFC 7489 §6.3); for a record found at the organizational domain this is the policy receivers apply to the domain itself (§6.6.3).',
  scope: 'domain',
  values: POLICY_VALUES,
  valueLabels: POLICY_LABELS,
  reasons: {
    sp_reject: reason('sp=reject', 'sp=reject'),
    sp_quarantine: reason('sp=quarantine', 'sp=quarantine'),
    sp_none: reason('sp=none (monitoring only)', 'sp=none（監視のみ）'),
    sp_absent: reason('no sp=: the p= applies to subdomains', 'sp=がない（p=がサブドメインにも適用される）'),
    invalid_sp: reason('an sp= that is not none, quarantine or reject', 'sp=の値が正しくない'),
    ...NO_POLICY_REASONS,
  },
  judge(input) {
    const a = applied(input);
    if (a.kind === 'invalid_name') return { ...input.invalid!, value: 'unknown' };
    if (a.kind !== 'policy') return { ...a.finding, value: a.kind };
    const sp = subdomainPolicy(a);
    const status = sp.value === 'invalid' || sp.value === 'none' ? 'ng' : 'ok';
    return { ...finding(status, sp.reason, sp.detail), value: sp.value };
  },
});

export const dmarcFlagsCheck = defineFinding({
  id: 'dmarc_flags',
  label: { ja: 'DMARCの適用範囲', en: 'DMARC coverage' },
  rule: 'pct= below 100 applies the policy to only part of the failing mail (RFC 7489 §6.3, pct_partial); inherited: the domain has no record and its organizational domain\'s applies (§6.6.3).',
  scope: 'domain',
  values: ['pct_partial', 'inherited', 'absent', 'invalid', 'unknown'],
  valueLabels: {
    pct_partial: { ja: 'pctが100未満（一部のみ適用）', en: 'pct below 100 (partly applied)' },
    inherited: { ja: '組織ドメインのポリシーを継承', en: 'inherited from the organizational domain' },
    full: { ja: '自ドメインのレコード・pct=100', en: 'own record, pct=100' },
    ...NO_POLICY_LABELS,
  },
  multi: { empty: 'full', any: null },
  reasons: {
    own_full: reason("the domain's own record, applied to all mail (pct=100)", '自ドメインのレコードで、すべてのメールに適用（pct=100）'),
    pct_partial: reason('pct below 100: the policy applies to part of the mail only', 'pctが100未満（一部のメールにのみ適用）'),
    inherited: reason("the organizational domain's record applies", '組織ドメインのレコードが適用される'),
    inherited_pct_partial: reason("the organizational domain's record applies, with pct below 100", '組織ドメインのレコードが適用され、pctが100未満'),
    ...NO_POLICY_REASONS,
  },
  judge(input) {
    const a = applied(input);
    if (a.kind === 'invalid_name') return { ...input.invalid!, value: ['unknown'] };
    if (a.kind !== 'policy') return { ...a.finding, value: [a.kind] };
    const pct = pctOf(a.policy);
    const value = [...(pct < 100 ? ['pct_partial'] : []), ...(a.policy.fromOrgDomain ? ['inherited'] : [])];
    const code = value.length === 0 ? 'own_full' : value.length === 2 ? 'inherited_pct_partial' : value[0];
    const detail = `${a.name}: pct=${pct}${a.policy.pct !== null && a.policy.pct !== pct ? ` (pct=${a.policy.pct} ignored)` : ''}`;
    return { ...finding(pct < 100 ? 'ng' : 'ok', code, detail), value };
  },
});

const REPORT_VALUE_LABELS: Record<string, Label> = {
  absent: { ja: 'なし', en: 'none' },
  internal: { ja: '自組織宛て', en: 'internal' },
  authorized: { ja: '外部宛て（承認済み）', en: 'external, authorized' },
  unauthorized: { ja: '外部宛て（未承認）', en: 'external, not authorized' },
  invalid: { ja: '使えないURIのみ', en: 'no usable URI' },
  unknown: UNKNOWN_VALUE_LABEL,
};
const KIND_LABEL = { rua: { ja: '集計レポート(rua)', en: 'aggregate (rua)' }, ruf: { ja: '失敗レポート(ruf)', en: 'failure (ruf)' } };

export const dmarcReportsCheck = defineFinding({
  id: 'dmarc_reports',
  label: { ja: 'DMARCレポート送付先', en: 'DMARC report addresses' },
  rule: 'rua and ruf of the applied DMARC record, each: absent, internal (same organizational domain), authorized (external, and <domain>._report._dmarc.<report domain> has a v=DMARC1 TXT, RFC 7489 §7.1) or unauthorized; at most 4 external report domains are looked up.',
  scope: 'domain',
  values: [...REPORT_KINDS.flatMap((k) => REPORT_VALUES.map((v) => `${k}:${v}`)), 'no_policy'],
  valueLabels: {
    ...Object.fromEntries(
      REPORT_KINDS.flatMap((k) => REPORT_VALUES.map((v) => [`${k}:${v}`, { ja: `${KIND_LABEL[k].ja}: ${REPORT_VALUE_LABELS[v].ja}`, en: `${KIND_LABEL[k].en}: ${REPORT_VALUE_LABELS[v].en}` }])),
    ),
    no_policy: { ja: '有効なDMARCレコードなし', en: 'no valid DMARC record' },
  },
  multi: { empty: null, any: null },
  reasons: {
    reports_authorized: reason('every report destination is internal or authorized, some external', 'レポート送付先はすべて自組織宛てか承認済みの外部宛て'),
    reports_internal: reason('every report destination is in the same organizational domain', 'レポート送付先はすべて自組織宛て'),
    no_rua: reason('no aggregate report address (rua)', '集計レポートの送付先(rua)がない'),
    unauthorized_destination: reason('an external report domain has not authorized the reports (RFC 7489 §7.1)', '外部の送付先がレポート受信を承認していない（RFC 7489 §7.1）'),
    invalid_report_uri: reason('rua or ruf lists no usable mailto: URI', 'ruaまたはrufに使えるmailto: URIがない'),
    destinations_not_checked: reason('more external report domains than are looked up', '外部の送付先が多く、一部を確認していない'),
    not_recorded: reason('the authorisation lookups were not recorded (observations from before they were made)', '承認レコードの問い合わせが記録されていない'),
    no_dmarc_policy: reason('no valid DMARC record: no report addresses', '有効なDMARCレコードがない'),
    ...DNS_FAILURE_REASONS,
  },
  judge(input) {
    const a = applied(input);
    if (a.kind === 'invalid_name') return { ...input.invalid!, value: ['rua:unknown', 'ruf:unknown'] };
    if (a.kind === 'unknown') return { ...a.finding, value: ['rua:unknown', 'ruf:unknown'] };
    if (a.kind !== 'policy') return { ...finding('na', 'no_dmarc_policy', a.finding.detail), value: ['no_policy'] };
    const dmarc = input.dns.valid ? input.dns.dmarc : null;
    const js: ReportJudgement[] = REPORT_KINDS.map((k) => judgeReports(dmarc!, a, k));
    const value = js.map((j) => `${j.kind}:${j.value}`);
    const detail = js.map((j) => j.detail).join('; ');
    const has = (v: string) => js.some((j) => j.value === v);
    if (has('unauthorized')) return { ...finding('ng', 'unauthorized_destination', detail), value };
    if (has('invalid')) return { ...finding('ng', 'invalid_report_uri', detail), value };
    const u = js.find((j) => j.unknown)?.unknown;
    if (u) {
      const code = u.lookup ? failureReason(u.lookup) : u.notAsked ? 'destinations_not_checked' : 'not_recorded';
      return { ...finding('unknown', code, detail), value };
    }
    if (js[0].value === 'absent') return { ...finding('ng', 'no_rua', detail), value };
    return { ...finding('ok', has('authorized') ? 'reports_authorized' : 'reports_internal', detail), value };
  },
});
