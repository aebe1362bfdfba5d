// The settings the lab-backed test-mail tests run the checker with: the lab answers at once, so short timeouts,
// no DNS cap and no per-IP spacing keep them quick while every lab host is still judged within the bounds.
export const FAST_LAB_CHECKER_ENV = {
  MAILCENSUS_EHLO_NAME: 'checker.mailcensus.lab.test',
  MAILCENSUS_DNS_TIMEOUT_MS: '1000',
  MAILCENSUS_DNS_RETRIES: '1',
  MAILCENSUS_DNS_QPS: '0',
  MAILCENSUS_SMTP_CONNECT_TIMEOUT_MS: '3000',
  MAILCENSUS_SMTP_BANNER_TIMEOUT_MS: '5000',
  MAILCENSUS_SMTP_COMMAND_TIMEOUT_MS: '5000',
  MAILCENSUS_PER_IP_CONCURRENCY: '4',
  MAILCENSUS_PER_IP_INTERVAL_MS: '0',
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
