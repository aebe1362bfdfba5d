// The checker settings for runs against the lab: the lab answers at once, so short SMTP timeouts keep a
// refusing or silent host from stretching a run, and no DNS cap and no per-IP spacing keep it quick while every
// lab host is still judged within the bounds. DNS timeouts and retries stay as shipped; a caller that wants
// them shorter (the tests) adds its own.
export const LAB_CHECKER_ENV = {
  MAILCENSUS_EHLO_NAME: 'checker.mailcensus.lab.test',
  MAILCENSUS_DNS_QPS: '0',
  MAILCENSUS_SMTP_CONNECT_TIMEOUT_MS: '3000',
  MAILCENSUS_SMTP_BANNER_TIMEOUT_MS: '5000',
  MAILCENSUS_SMTP_COMMAND_TIMEOUT_MS: '5000',
  MAILCENSUS_PER_IP_CONCURRENCY: '4',
  MAILCENSUS_PER_IP_INTERVAL_MS: '0',
} as const;
