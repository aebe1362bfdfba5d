import { LAB_CHECKER_ENV } from '../../lab/checker-env.ts';

// The settings the lab-backed test-mail tests run the checker with: the lab's (lab/checker-env.ts), and DNS
// that gives up after a second and one retry.
export const FAST_LAB_CHECKER_ENV = {
  ...LAB_CHECKER_ENV,
  MAILCENSUS_DNS_TIMEOUT_MS: '1000',
  MAILCENSUS_DNS_RETRIES: '1',
} as const;

/**
 * The settings the survey-worker tests (workers-lab, workers-shared-ip) run their worker processes with: one
 * selector, a second for DNS without retry, two seconds per SMTP step, eight jobs at once, ten seconds to stop.
 */
export const FAST_LAB_WORKER_ENV = {
  MAILCENSUS_DKIM_SELECTORS: 's1',
  MAILCENSUS_DNS_TIMEOUT_MS: '1000',
  MAILCENSUS_DNS_RETRIES: '0',
  MAILCENSUS_SMTP_CONNECT_TIMEOUT_MS: '2000',
  MAILCENSUS_SMTP_BANNER_TIMEOUT_MS: '2000',
  MAILCENSUS_SMTP_COMMAND_TIMEOUT_MS: '2000',
  MAILCENSUS_WORKER_CONCURRENCY: '8',
  MAILCENSUS_SHUTDOWN_TIMEOUT_MS: '10000',
} as const;
