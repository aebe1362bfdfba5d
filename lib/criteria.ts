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
