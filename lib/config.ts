// The one place that reads the environment: every setting is parsed and validated here, once, and a bad
// value names its variable. The lab's `lab up` writes these same variables, so any command run with its
// env file diagnoses the lab instead of the internet.

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface HostPort {
  host: string;
  port: number;
}

export interface Config {
  /** @defaultValue postgres://postgres@127.0.0.1:5432/mailcensus */
  databaseUrl: string;
  /** @defaultValue redis://127.0.0.1:6379 */
  redisUrl: string;
  /** Lab mode: loopback targets are allowed and the lab's resolver/port/CA are used. `MAILCENSUS_LAB=1`. */
  lab: boolean;
  /** The validating resolver to ask. @defaultValue the first nameserver of /etc/resolv.conf */
  resolver: HostPort | null;
  /** TCP port of the SMTP servers probed. @defaultValue 25 */
  smtpPort: number;
  /** TCP port of the HTTPS hosts fetched in lab mode (MTA-STS policy hosts; `lab up --https-port`); outside lab mode HTTPS is 443. @defaultValue 443 */
  httpsPort: number;
  /** DNSBL zones queried (RFC 5782). @defaultValue zen.spamhaus.org */
  dnsblZones: string[];
  /** The lab clock: the time recorded on diagnoses. @defaultValue null (real time) */
  clock: Date | null;
  /** PEM file with extra CAs trusted when judging certificate chains (the lab CA in lab mode). */
  extraCaFile: string | null;
  /** Name we announce in EHLO/HELO (MAILCENSUS_EHLO_NAME). @defaultValue 'mailcensus.invalid' (RFC 2606: set a real name in production) */
  ehloName: string;
  /** Contact address announced to probed operators (in the EHLO-time MAIL FROM of the relay test). */
  contact: string;
  /** Per-query DNS timeout. @defaultValue 2000 */
  dnsTimeoutMs: number;
  /** Retries after a DNS timeout. @defaultValue 2 */
  dnsRetries: number;
  /** Global DNS queries per second (0 = unlimited). @defaultValue 200 */
  dnsQps: number;
  /** Survey runs (issue 6): BullMQ key prefix, so several installations can share one Redis. @defaultValue mailcensus */
  queuePrefix: string;
  /** Domain jobs (DNS collection, judging) one worker process runs at once. @defaultValue 20 */
  workerConcurrency: number;
  /**
   * SMTP probe jobs (one MX IP's session, PTR and DNSBL) one worker process runs at once. Separate from
   * workerConcurrency because a probe mostly waits (a slow greeting, a tarpit: 30 s and more) while a domain
   * job computes; issue 18 measured 2,500 sessions in flight in one worker (BENCHMARKS.md, sessions). Each
   * session holds a socket: the worker's `ulimit -n` must exceed it. @defaultValue 2000
   */
  probeConcurrency: number;
  /**
   * STARTTLS handshakes one worker process runs at once (issue 18): sessions whose STARTTLS was accepted while
   * all are taken wait for one (lib/probes/smtp/tls.ts, HandshakeSlots). Machine-local, like probeConcurrency:
   * it bounds this process's bursts, not what is measured. @defaultValue 32
   */
  tlsHandshakeConcurrency: number;
  /** Global cap on domain and probe jobs started per second, over all workers (0 = unlimited). @defaultValue 0 */
  jobsPerSecond: number;
  /** Retries of a domain whose diagnosis has transient unknowns (timeout, SERVFAIL, 4xx). @defaultValue 2 */
  transientRetries: number;
  /** Delay before the first such retry; doubles each time. @defaultValue 60000 */
  transientRetryDelayMs: number;
  /** Domain jobs kept in Redis at once; the feeder tops up from Postgres. @defaultValue 10000 */
  maxQueued: number;
  /** BullMQ job lock; a killed worker's jobs are retried after about this long. @defaultValue 30000 */
  lockDurationMs: number;
  /** On SIGTERM, how long active jobs may take to finish. @defaultValue 30000 */
  shutdownTimeoutMs: number;
  /** A job step running longer is abandoned and its job retried (the worker's watchdog). */
  jobTimeoutMs: number;
  /** @defaultValue 10000 */
  smtpConnectTimeoutMs: number;
  /** RFC 5321 §4.5.3.2.1 suggests 5 minutes for the greeting; we wait 30 s. @defaultValue 30000 */
  smtpBannerTimeoutMs: number;
  /** Timeout for every other SMTP reply. @defaultValue 30000 */
  smtpCommandTimeoutMs: number;
  /** DKIM selectors probed in scan source. */
  dkimSelectors: string[];
  /** Foreign domains used as relay-test recipients. @defaultValue relay-test.example */
  relayTestDomain: string;
  /** Max concurrent SMTP sessions to one IP. @defaultValue 1 */
  perIpConcurrency: number;
  /** Minimum interval between two sessions to one IP. @defaultValue 1000 */
  perIpIntervalMs: number;
  /** Domains and IPs never probed. @defaultValue [] */
  optOut: string[];
  /** The test-mail receiver (issue 7): our recipient domain, `check[-token]@<it>`. @defaultValue mailcensus.invalid */
  receiverDomain: string;
  /** Name the receiver greets with and writes into Authentication-Results. @defaultValue `ehloName` */
  receiverHostname: string;
  /** Address the receiver listens on. @defaultValue 0.0.0.0:25 */
  receiverListen: HostPort;
  /** Largest test mail accepted, in bytes (advertised with SIZE). @defaultValue 10485760 */
  receiverMaxSize: number;
  /** PEM certificate and key for the receiver's STARTTLS; null = self-signed generated at start. */
  receiverCertFile: string | null;
  receiverKeyFile: string | null;
  /** Send the result mail to the test mail's sender. `MAILCENSUS_RESULT_MAIL=0` turns it off. @defaultValue true */
  resultMail: boolean;
  /** `mailcensus serve` (issue 17): where the web front listens. @defaultValue 127.0.0.1:8080 */
  webListen: HostPort;
  /** The public URL of the web front (behind the TLS proxy); https:// makes cookies Secure. @defaultValue null */
  webPublicUrl: string | null;
  /** Reverse proxies (IPs, CIDRs, or `loopback`) whose X-Forwarded-For/-Proto are believed: per-client limits and Secure cookies. @defaultValue [] */
  webTrustedProxies: string[];
  /** The operator's password; unset = the operator pages and API refuse everyone. @defaultValue null */
  webOperatorPassword: string | null;
  /** API keys for operators (`Authorization: Bearer KEY`), comma-separated. @defaultValue [] */
  webApiKeys: string[];
  /** Lifetime of an operator session. @defaultValue 12 */
  webSessionHours: number;
  /** Public pages and API: requests per minute per client. @defaultValue 120 */
  webRateLimitPerMinute: number;
  /** Diagnosis requests (new test addresses) per hour per client. @defaultValue 20 */
  webRequestsPerHour: number;
  /** Where uploaded CSVs, their rejects and generated reports are kept. @defaultValue ./web-data */
  webDataDir: string;
  /** Largest CSV upload, in bytes. @defaultValue 209715200 */
  webUploadMaxBytes: number;
  // Issue 12: limits of the test-mail service (README "Security").
  /** Result mails sent to one address per 24 h. @defaultValue 3 */
  resultMailPerRecipientDay: number;
  /** Result mails sent to one domain per 24 h. @defaultValue 20 */
  resultMailPerDomainDay: number;
  /** Result mails sent in total per hour. @defaultValue 200 */
  resultMailPerHour: number;
  /** MX addresses tried for one result mail (Postfix smtp_mx_address_limit). @defaultValue 3 */
  resultMailMxAddresses: number;
  /** Deadline of one result-mail delivery, every address included. @defaultValue 60000 */
  resultMailDeadlineMs: number;
  /** Test-mail diagnoses stored per domain per 24 h; further mails are stored but not diagnosed. @defaultValue 10 */
  testMailDiagnosesPerDomainDay: number;
  /** Concurrent SMTP sessions the receiver holds; beyond it new clients get 421. @defaultValue 100 */
  receiverMaxClients: number;
  /** Total deadline of one receiver session, however active (the idle timeout is separate). @defaultValue 600000 */
  receiverSessionTimeoutMs: number;
  /** Largest header section accepted (Postfix header_size_limit is 102400). @defaultValue 102400 */
  receiverMaxHeaderBytes: number;
  /** Bytes of message data held in memory by all sessions together; beyond it DATA gets 452. @defaultValue 134217728 */
  receiverMemoryBytes: number;
  /** Days a received mail's raw bytes are kept (the diagnosis stays); 0 = forever. @defaultValue 30 */
  rawMailRetentionDays: number;
  /** SMTP probes one job runs at once. @defaultValue 4 */
  maxConcurrentProbesPerJob: number;
  /** Deadline of one diagnosis job (a test mail's probes and lookups). @defaultValue 300000 */
  jobDeadlineMs: number;
  /** Deadline of one whole SMTP probe session (every reply timeout is separate). @defaultValue 120000 */
  smtpSessionDeadlineMs: number;
  /** DKIM signatures verified per test mail (the rest ignored, recorded). @defaultValue 5 */
  maxDkimSignatures: number;
}

export const DEFAULT_DKIM_SELECTORS = [
  'default', 'selector1', 'selector2', 'google', 'k1', 'k2', 's1', 's2', 'dkim', 'mail',
  'smtp', 'mx', 'key1', 'key2', 'sig1', 'mandrill', 'everlytickey1', 'mxvault',
];

type Env = Record<string, string | undefined>;

function integer(env: Env, name: string, fallback: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < min) {
    throw new ConfigError(`${name} must be an integer >= ${min}, got "${raw}"`);
  }
  return Number(raw);
}

function list(env: Env, name: string, fallback: string[]): string[] {
  const raw = env[name];
  if (raw === undefined) return fallback;
  return raw.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
}

export function parseHostPort(raw: string, defaultPort: number, name: string): HostPort {
  const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(raw.trim());
  // A bare IPv6 address has colons but no brackets: take it whole.
  if (raw.includes(':') && !raw.includes('[') && raw.split(':').length > 2) {
    return { host: raw.trim(), port: defaultPort };
  }
  if (!m) throw new ConfigError(`${name} must be HOST or HOST:PORT, got "${raw}"`);
  const port = m[2] ? Number(m[2]) : defaultPort;
  if (port < 1 || port > 65535) throw new ConfigError(`${name} has an invalid port in "${raw}"`);
  return { host: m[1], port };
}

function webUrl(raw: string | undefined): string | null {
  if (!raw) return null;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(`MAILCENSUS_WEB_PUBLIC_URL must be an http(s) URL, got "${raw}"`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new ConfigError(`MAILCENSUS_WEB_PUBLIC_URL must be an http(s) URL, got "${raw}"`);
  return u.toString().replace(/\/$/, '');
}

export function loadConfig(env: Env = process.env): Readonly<Config> {
  const lab = env.MAILCENSUS_LAB === '1' || env.MAILCENSUS_LAB === 'true';
  let clock: Date | null = null;
  if (env.MAILCENSUS_CLOCK) {
    clock = new Date(env.MAILCENSUS_CLOCK);
    if (Number.isNaN(clock.getTime())) {
      throw new ConfigError(`MAILCENSUS_CLOCK must be an ISO date-time, got "${env.MAILCENSUS_CLOCK}"`);
    }
  }
  const config: Config = {
    databaseUrl: env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/mailcensus',
    redisUrl: env.REDIS_URL || 'redis://127.0.0.1:6379',
    lab,
    resolver: env.MAILCENSUS_RESOLVER ? parseHostPort(env.MAILCENSUS_RESOLVER, 53, 'MAILCENSUS_RESOLVER') : null,
    smtpPort: integer(env, 'MAILCENSUS_SMTP_PORT', 25, 1),
    httpsPort: integer(env, 'MAILCENSUS_HTTPS_PORT', 443, 1),
    dnsblZones: list(env, 'MAILCENSUS_DNSBL_ZONES', ['zen.spamhaus.org']),
    clock,
    extraCaFile: env.MAILCENSUS_EXTRA_CA || null,
    ehloName: env.MAILCENSUS_EHLO_NAME || 'mailcensus.invalid',
    contact: env.MAILCENSUS_CONTACT || 'postmaster@mailcensus.invalid',
    dnsTimeoutMs: integer(env, 'MAILCENSUS_DNS_TIMEOUT_MS', 2000, 1),
    dnsRetries: integer(env, 'MAILCENSUS_DNS_RETRIES', 2),
    dnsQps: integer(env, 'MAILCENSUS_DNS_QPS', 200),
    queuePrefix: env.MAILCENSUS_QUEUE_PREFIX || 'mailcensus',
    workerConcurrency: integer(env, 'MAILCENSUS_WORKER_CONCURRENCY', 20, 1),
    probeConcurrency: integer(env, 'MAILCENSUS_PROBE_CONCURRENCY', 2000, 1),
    tlsHandshakeConcurrency: integer(env, 'MAILCENSUS_TLS_HANDSHAKES', 32, 1),
    jobsPerSecond: integer(env, 'MAILCENSUS_JOBS_PER_SECOND', 0),
    transientRetries: integer(env, 'MAILCENSUS_TRANSIENT_RETRIES', 2),
    transientRetryDelayMs: integer(env, 'MAILCENSUS_TRANSIENT_RETRY_DELAY_MS', 60000),
    maxQueued: integer(env, 'MAILCENSUS_MAX_QUEUED', 10000, 10),
    lockDurationMs: integer(env, 'MAILCENSUS_LOCK_DURATION_MS', 30000, 1000),
    shutdownTimeoutMs: integer(env, 'MAILCENSUS_SHUTDOWN_TIMEOUT_MS', 30000),
    jobTimeoutMs: integer(env, 'MAILCENSUS_JOB_TIMEOUT_MS', 600000, 1000),
    smtpConnectTimeoutMs: integer(env, 'MAILCENSUS_SMTP_CONNECT_TIMEOUT_MS', 10000, 1),
    smtpBannerTimeoutMs: integer(env, 'MAILCENSUS_SMTP_BANNER_TIMEOUT_MS', 30000, 1),
    smtpCommandTimeoutMs: integer(env, 'MAILCENSUS_SMTP_COMMAND_TIMEOUT_MS', 30000, 1),
    dkimSelectors: list(env, 'MAILCENSUS_DKIM_SELECTORS', DEFAULT_DKIM_SELECTORS),
    relayTestDomain: (env.MAILCENSUS_RELAY_TEST_DOMAIN || 'relay-test.example').toLowerCase(),
    perIpConcurrency: integer(env, 'MAILCENSUS_PER_IP_CONCURRENCY', 1, 1),
    perIpIntervalMs: integer(env, 'MAILCENSUS_PER_IP_INTERVAL_MS', 1000),
    optOut: list(env, 'MAILCENSUS_OPT_OUT', []),
    receiverDomain: (env.MAILCENSUS_RECEIVER_DOMAIN || 'mailcensus.invalid').toLowerCase(),
    receiverHostname: env.MAILCENSUS_RECEIVER_HOSTNAME || env.MAILCENSUS_EHLO_NAME || 'mailcensus.invalid',
    receiverListen: parseHostPort(env.MAILCENSUS_RECEIVER_LISTEN || '0.0.0.0:25', 25, 'MAILCENSUS_RECEIVER_LISTEN'),
    receiverMaxSize: integer(env, 'MAILCENSUS_RECEIVER_MAX_SIZE', 10 * 1024 * 1024, 1024),
    receiverCertFile: env.MAILCENSUS_RECEIVER_CERT || null,
    receiverKeyFile: env.MAILCENSUS_RECEIVER_KEY || null,
    resultMail: !['0', 'false', 'no', 'off'].includes((env.MAILCENSUS_RESULT_MAIL ?? '').toLowerCase()),
    webListen: parseHostPort(env.MAILCENSUS_WEB_LISTEN || '127.0.0.1:8080', 8080, 'MAILCENSUS_WEB_LISTEN'),
    webPublicUrl: webUrl(env.MAILCENSUS_WEB_PUBLIC_URL),
    webTrustedProxies: list(env, 'MAILCENSUS_WEB_TRUSTED_PROXIES', []),
    webOperatorPassword: env.MAILCENSUS_WEB_OPERATOR_PASSWORD || null,
    webApiKeys: (env.MAILCENSUS_WEB_API_KEYS ?? '').split(',').map((k) => k.trim()).filter(Boolean),
    webSessionHours: integer(env, 'MAILCENSUS_WEB_SESSION_HOURS', 12, 1),
    webRateLimitPerMinute: integer(env, 'MAILCENSUS_WEB_RATE_LIMIT_PER_MINUTE', 120, 1),
    webRequestsPerHour: integer(env, 'MAILCENSUS_WEB_REQUESTS_PER_HOUR', 20, 1),
    webDataDir: env.MAILCENSUS_WEB_DATA_DIR || 'web-data',
    webUploadMaxBytes: integer(env, 'MAILCENSUS_WEB_UPLOAD_MAX_BYTES', 200 * 1024 * 1024, 1024),
    resultMailPerRecipientDay: integer(env, 'MAILCENSUS_RESULT_MAIL_PER_RECIPIENT_DAY', 3),
    resultMailPerDomainDay: integer(env, 'MAILCENSUS_RESULT_MAIL_PER_DOMAIN_DAY', 20),
    resultMailPerHour: integer(env, 'MAILCENSUS_RESULT_MAIL_PER_HOUR', 200),
    resultMailMxAddresses: integer(env, 'MAILCENSUS_RESULT_MAIL_MX_ADDRESSES', 3, 1),
    resultMailDeadlineMs: integer(env, 'MAILCENSUS_RESULT_MAIL_DEADLINE_MS', 60_000, 1),
    testMailDiagnosesPerDomainDay: integer(env, 'MAILCENSUS_TEST_MAIL_DIAGNOSES_PER_DOMAIN_DAY', 10, 1),
    receiverMaxClients: integer(env, 'MAILCENSUS_RECEIVER_MAX_CLIENTS', 100, 1),
    receiverSessionTimeoutMs: integer(env, 'MAILCENSUS_RECEIVER_SESSION_TIMEOUT_MS', 600_000, 1000),
    receiverMaxHeaderBytes: integer(env, 'MAILCENSUS_RECEIVER_MAX_HEADER_BYTES', 102_400, 1024),
    receiverMemoryBytes: integer(env, 'MAILCENSUS_RECEIVER_MEMORY_BYTES', 128 * 1024 * 1024, 1024 * 1024),
    rawMailRetentionDays: integer(env, 'MAILCENSUS_RAW_MAIL_RETENTION_DAYS', 30),
    maxConcurrentProbesPerJob: integer(env, 'MAILCENSUS_MAX_PROBES_PER_JOB', 4, 1),
    jobDeadlineMs: integer(env, 'MAILCENSUS_JOB_DEADLINE_MS', 300_000, 1000),
    smtpSessionDeadlineMs: integer(env, 'MAILCENSUS_SMTP_SESSION_DEADLINE_MS', 120_000, 1000),
    maxDkimSignatures: integer(env, 'MAILCENSUS_MAX_DKIM_SIGNATURES', 5, 1),
  };
  if (config.webOperatorPassword !== null && config.webOperatorPassword.length < 12) {
    throw new ConfigError('MAILCENSUS_WEB_OPERATOR_PASSWORD must be at least 12 characters');
  }
  for (const k of config.webApiKeys) {
    if (k.length < 24) throw new ConfigError('MAILCENSUS_WEB_API_KEYS: every key must be at least 24 characters');
  }
  return Object.freeze(config);
}

let cached: Readonly<Config> | undefined;
/** The process-wide configuration, read from the environment on first use. */
export function config(): Readonly<Config> {
  cached ??= loadConfig();
  return cached;
}
