// The closed vocabulary of a diagnosis: the criteria of ../shared/CRITERIA.md, their statuses and the two
// sources a diagnosis comes from. Every module that judges or reports imports these names from here.

/** MSchecker's criteria, in the order reports show them. */
export const CRITERIA = [
  'open_relay',
  'spf',
  'dkim',
  'tls_receive',
  'tls_send',
  'reverse_dns',
  'dnssec',
  'dnsbl',
] as const;
export type Criterion = (typeof CRITERIA)[number];

/**
 * `ok` / `ng` are proven; `unknown` could not be measured (never NG); `na` does not apply
 * (e.g. receive TLS of a null-MX domain).
 */
export const STATUSES = ['ok', 'ng', 'unknown', 'na'] as const;
export type Status = (typeof STATUSES)[number];

export const SOURCES = ['scan', 'test-mail'] as const;
export type Source = (typeof SOURCES)[number];

/** What a check concludes about one criterion. `reason` is a stable snake_case code; `detail` is for humans. */
export interface Finding {
  status: Status;
  reason: string;
  detail?: string;
}

export type CriterionFindings = Record<Criterion, Finding>;

export function finding(status: Status, reason: string, detail?: string): Finding {
  return detail === undefined ? { status, reason } : { status, reason, detail };
}

/** The two languages of every page, report and label (MSchecker's audience reads Japanese; English for the rest). */
export type Lang = 'ja' | 'en';
/** A name or sentence in both languages. */
export type Label = Record<Lang, string>;

/** What each criterion is called: the release's own names (Japanese) and their English counterparts. */
export const CRITERION_LABELS: Record<Criterion, Label> = {
  open_relay: { ja: 'メール不正中継', en: 'Open relay' },
  spf: { ja: 'SPFチェック', en: 'SPF' },
  dkim: { ja: 'DKIMチェック', en: 'DKIM' },
  tls_receive: { ja: 'SSL/TLSメール受信', en: 'TLS (receiving)' },
  tls_send: { ja: 'SSL/TLSメール送信', en: 'TLS (sending)' },
  reverse_dns: { ja: '送信元DNS逆引き', en: 'Reverse DNS' },
  dnssec: { ja: 'DNSSEC対応', en: 'DNSSEC' },
  dnsbl: { ja: 'DNSBL登録', en: 'DNSBL listing' },
};

export const STATUS_LABELS: Record<Status, Label> = {
  ok: { ja: 'OK', en: 'OK' },
  ng: { ja: 'NG', en: 'NG' },
  unknown: { ja: '測定不能', en: 'Unknown' },
  na: { ja: '対象外', en: 'N/A' },
};
