// Words shown in reports, Japanese (the release's wording) and English, and the colours of each category.
import type { Criterion, Label, Lang, Status } from '../lib/criteria.ts';
import { VERDICT_LABELS, type Verdict } from '../lib/verdict.ts';
import { checkById } from '../lib/checks/registry.ts';

export type { Lang };

export const VERDICT_ORDER: Verdict[] = ['safe', 'review', 'needs_improvement', 'danger', 'incomplete'];
export const verdictLabel = (v: Verdict, lang: Lang) => VERDICT_LABELS[v][lang];
export const VERDICT_COLORS: Record<Verdict, string> = {
  safe: '#2e7d32',
  review: '#f9a825',
  needs_improvement: '#ef6c00',
  danger: '#c62828',
  incomplete: '#9e9e9e',
};

export { CRITERION_LABELS, STATUS_LABELS } from '../lib/criteria.ts';
export const STATUS_COLORS: Record<Status, string> = { ok: '#2e7d32', ng: '#d84315', unknown: '#9e9e9e', na: '#cfd8dc' };

export const SPF_DKIM_LABELS: Record<string, Label> = {
  both_ok: { ja: '両方OK', en: 'Both OK' },
  spf_only: { ja: 'SPFのみOK', en: 'SPF only' },
  dkim_only: { ja: 'DKIMのみOK', en: 'DKIM only' },
  both_ng: { ja: '両方NG', en: 'Both NG' },
  unknown: { ja: '判定不能', en: 'Unknown' },
};
export const SPF_DKIM_COLORS: Record<string, string> = {
  both_ok: '#2e7d32',
  spf_only: '#7cb342',
  dkim_only: '#9ccc65',
  both_ng: '#d84315',
  unknown: '#9e9e9e',
};

/** A finding's name and its values' names come from its check (lib/checks/<id>/index.ts). */
export function findingLabel(id: string, lang: Lang): string {
  return checkById(id)?.label[lang] ?? id;
}

/** Values every finding may take in a report, whatever its check. */
const REPORT_VALUE_LABELS: Record<string, Label> = {
  not_recorded: { ja: '記録なし', en: 'not recorded' },
};

export function findingValueLabel(id: string, value: string, lang: Lang): string {
  const c = checkById(id);
  return (c?.kind === 'finding' ? c.valueLabels[value]?.[lang] : undefined) ?? REPORT_VALUE_LABELS[value]?.[lang] ?? value;
}

export const SOURCE_LABELS: Record<string, Label> = {
  'test-mail': { ja: 'テストメール', en: 'test mail' },
  scan: { ja: '外部スキャン', en: 'scan' },
};

/** Fixed UI strings. */
export const T = {
  title: { ja: 'メールサーバセキュリティ診断 統計レポート', en: 'Mail server security: statistics report' },
  summary: { ja: '調査結果まとめ', en: 'Key findings' },
  overall: { ja: '総合評価', en: 'Overall verdict' },
  perCriterion: { ja: '項目別の結果', en: 'Results per check' },
  spfDkim: { ja: '送信元ドメイン認証（SPF／DKIM）', en: 'Sender authentication (SPF / DKIM)' },
  tls: { ja: 'メール通信の暗号化（SSL/TLS）', en: 'Mail encryption (TLS)' },
  yoy: { ja: '前期比較', en: 'Comparison with the previous period' },
  findings: { ja: 'MSchecker以外の項目', en: 'Findings beyond MSchecker' },
  coverage: { ja: 'データの範囲と測定状況', en: 'Coverage and data quality' },
  method: { ja: '集計方法', en: 'Method' },
  category: { ja: '区分', en: 'Category' },
  domains: { ja: 'ドメイン数', en: 'Domains' },
  share: { ja: '割合', en: 'Share' },
  ci: { ja: '95%信頼区間', en: '95% CI' },
  change: { ja: '前期比', en: 'Change' },
  previous: { ja: '前期', en: 'Previous' },
  current: { ja: '今期', en: 'Current' },
  denominator: { ja: '分母', en: 'Denominator' },
  roundingNote: {
    ja: '小数点以下を四捨五入しているため、合計は100%にならない場合がある。',
    en: 'Percentages are rounded to whole numbers, so totals may not add up to 100.',
  },
} as const;
