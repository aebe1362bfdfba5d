// Every migration, by its timestamped name. Kysely runs them in name order; add new ones here.
import type { Migration } from 'kysely';
import * as initial from './20261129000000_initial.ts';

export const migrations: Record<string, Migration> = {
  '20261129000000_initial': initial,
  '20261129000100_views': await import('./20261129000100_views.ts'),
  '20261129000200_ingest': await import('./20261129000200_ingest.ts'),
  '20261129000600_runs_workers': await import('./20261129000600_runs_workers.ts'),
  '20261129000700_test_mail_requests': await import('./20261129000700_test_mail_requests.ts'),
  '20261201000100_test_mail_security': await import('./20261201000100_test_mail_security.ts'),
  '20261202000100_check_registry': await import('./20261202000100_check_registry.ts'),
  '20261202000300_dkim_selectors': await import('./20261202000300_dkim_selectors.ts'),
  '20261202000500_report_latest': await import('./20261202000500_report_latest.ts'),
  '20261202000600_domain_collation_c': await import('./20261202000600_domain_collation_c.ts'),
  '20261203000100_report_winners': await import('./20261203000100_report_winners.ts'),
};
