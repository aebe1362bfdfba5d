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
