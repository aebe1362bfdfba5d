// The one typed map of job names to payloads (as graphile-worker's `Tasks`), the queue each job runs on, and
// the job ids. Producers and the worker import these names from here and nowhere else.
//
// BullMQ forbids ':' in custom job ids (it is its key separator), so ids use '-' and IPv6 colons become '_'.

/** One domain of a run: DNS, then the MX IPs' probe results (shared, see `probe-ip`), then the diagnosis. */
export interface DomainJob {
  runId: number;
  surveyId: number;
  domain: string;
  /**
   * DKIM selectors to try first (the survey list's `selectors` column, then those seen in the domain's test
   * mails; lib/checks/dkim/remember.ts jobSelectors). Absent: none known.
   */
  dkimSelectors?: string[];
  /** The job's progress, kept in its data (job.updateData) so a job that waits resumes where it was. */
  step?: DomainStep;
}

export interface DomainStep {
  /** `dns`: collect DNS (again); `probes`: wait for the MX IPs' probe results. */
  phase: 'dns' | 'probes';
  /** Transient-retry number: 0 on the first pass, then 1..transientRetries. */
  attempt: number;
  /** DNS observations of this attempt (JSON, from collectDomain). */
  dns?: unknown;
  /** The MX IPs to probe (opted-out IPs removed). */
  targets?: { host: string; ip: string }[];
  /** Probe attempt each MX IP's result must have (absent = 0); raised for IPs whose result was transient. */
  need?: Record<string, number>;
  /** How often the job has re-scheduled itself to wait for probes in this attempt. */
  waits: number;
  /** How often it found a probe gone (failed for good, or finished without a result) and enqueued it again. */
  requeues?: number;
  /** When the job started waiting for probes (ms since epoch). */
  waitingSince?: number;
  /** When a worker first took the job (ms since epoch): the domain's time to diagnosis is measured from here. */
  startedAt?: number;
}

/** One SMTP session (+ PTR/FCrDNS + DNSBL) with one MX IP, shared by every domain of the run that uses it. */
export interface ProbeIpJob {
  runId: number;
  ip: string;
  hostnames: string[];
  /** Probe attempt: 0 first, n for the n-th re-probe of a transient observation. */
  attempt: number;
}

export interface TestMailJob {
  testMailId: string;
  /** Transient-retry number: 0 (or absent) on the first pass, then 1..transientRetries. */
  transientAttempt?: number;
}

export interface ScheduledRunJob {
  survey: string;
}

export interface JobPayloads {
  domain: DomainJob;
  'probe-ip': ProbeIpJob;
  'test-mail': TestMailJob;
  'scheduled-run': ScheduledRunJob;
}
export type JobName = keyof JobPayloads;

/** Queue names. Domains and probes are separate queues so probes never wait behind 10,000 domain jobs. */
export const QUEUES = {
  domains: 'domains',
  probes: 'probes',
  control: 'control',
} as const;
export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];

/** Makes any string safe inside a BullMQ job id (no ':'), without two strings mapping to one id. */
export function idPart(s: string): string {
  // Injective: '%' and ':' are percent-encoded, everything else kept (domains keep their dots).
  return s.replace(/[%:]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);
}

/** `d-<run>-<domain>`: a domain is enqueued once per run, however often the feeder sweeps. */
export function domainJobId(runId: number, domain: string): string {
  return `d-${runId}-${idPart(domain)}`;
}

/** `probe-<run>-<ip>`: an MX IP is probed once per run (a re-probe of a transient result adds `-r<n>`). */
export function probeJobId(runId: number, ip: string, attempt = 0): string {
  const base = `probe-${runId}-${ip.replace(/[.:]/g, '_')}`;
  return attempt === 0 ? base : `${base}-r${attempt}`;
}

export function testMailJobId(testMailId: string): string {
  return `mail-${idPart(testMailId)}`;
}

/** Scheduler ids name the survey: one schedule per survey (re-adding it replaces the cron). */
export function schedulerId(survey: string): string {
  return `survey-${idPart(survey)}`;
}
