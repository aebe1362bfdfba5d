// `run --dry-run`: what a run would probe (the survey's domains after the opt-out list) and how long it would
// take at the configured limits, without creating a run or sending a packet.
import { sql } from 'kysely';
import type { Db } from '../lib/db.ts';
import type { Config } from '../lib/config.ts';
import { countSurvey, optOutSets, surveyIdOf } from './run.ts';
import { formatDuration } from './progress.ts';

export interface DryRunPlan {
  survey: string;
  domains: number;
  optedOut: number;
  optOutIps: string[];
  /** Estimated DNS queries per domain (MX, A/AAAA, SPF, DMARC, MTA-STS, TLS-RPT, DKIM selectors, PTR, DNSBL). */
  queriesPerDomain: number;
  /** Lower bounds in seconds, one per limit, and the binding one. */
  bounds: { dnsQps: number | null; jobsPerSecond: number | null; smtp: number };
  estimateSeconds: number;
  assumptions: string[];
}

/** Seconds an SMTP session takes when nothing times out: greeting, EHLO, STARTTLS, MAIL, RCPT, QUIT. */
const TYPICAL_SESSION_S = 3;

export async function planRun(db: Db, config: Readonly<Config>, survey: string, workers = 1): Promise<DryRunPlan> {
  const surveyId = await surveyIdOf(db, survey);
  const { total, optedOut } = await countSurvey(db, surveyId, config.optOut);
  const q = 8 + config.dkimSelectors.length + config.dnsblZones.length;
  const dnsBound = config.dnsQps > 0 ? (total * q) / config.dnsQps : null;
  const jobsBound = config.jobsPerSecond > 0 ? total / config.jobsPerSecond : null;
  // Worst case: no shared MX, one session per domain; the per-IP limits only slow down shared MX IPs.
  const smtpBound = (total * TYPICAL_SESSION_S) / (Math.max(1, workers) * config.probeConcurrency);
  const estimate = Math.max(dnsBound ?? 0, jobsBound ?? 0, smtpBound);
  return {
    survey,
    domains: total,
    optedOut,
    optOutIps: [...optOutSets(config.optOut).ips],
    queriesPerDomain: q,
    bounds: { dnsQps: dnsBound, jobsPerSecond: jobsBound, smtp: smtpBound },
    estimateSeconds: estimate,
    assumptions: [
      `${q} DNS queries per domain (${config.dkimSelectors.length} DKIM selectors, ${config.dnsblZones.length} DNSBL zones)`,
      `${workers} worker process(es) x ${config.probeConcurrency} concurrent probes, ~${TYPICAL_SESSION_S} s per SMTP session`,
      'every domain with its own MX IP (shared MX IPs are probed once, so real runs are faster)',
    ],
  };
}

export function formatPlan(p: DryRunPlan, config: Readonly<Config>): string {
  const lines = [
    `dry run of survey ${p.survey}: would probe ${p.domains} domains` +
      (p.optedOut ? ` (${p.optedOut} more are on the opt-out list and skipped)` : ''),
    p.optOutIps.length ? `never connecting to opted-out IPs: ${p.optOutIps.join(', ')}` : null,
    `EHLO ${config.ehloName}, contact ${config.contact}`,
    `limits: DNS ${config.dnsQps || 'unlimited'} qps; ${config.perIpConcurrency} session(s) per IP, ${config.perIpIntervalMs} ms apart; ` +
      `${config.jobsPerSecond || 'unlimited'} jobs/s`,
    `time at these limits: about ${formatDuration(p.estimateSeconds)}` +
      ` (DNS ${p.bounds.dnsQps === null ? 'unlimited' : formatDuration(p.bounds.dnsQps)}, ` +
      `job rate ${p.bounds.jobsPerSecond === null ? 'unlimited' : formatDuration(p.bounds.jobsPerSecond)}, ` +
      `SMTP ${formatDuration(p.bounds.smtp)})`,
    ...p.assumptions.map((a) => `  assuming ${a}`),
  ];
  return lines.filter((l) => l !== null).join('\n');
}

/** The domains a run would probe, in the order the feeder enqueues them (pages of 10,000). */
export async function* plannedDomains(db: Db, config: Readonly<Config>, survey: string): AsyncGenerator<string> {
  const surveyId = await surveyIdOf(db, survey);
  const { domains } = optOutSets(config.optOut);
  const isOut = (d: string) => domains.some((o) => d === o || d.endsWith(`.${o}`));
  let cursor = '';
  for (let page = 0; page < 100_000; page++) {
    const res = await sql<{ domain: string }>`
      SELECT domain FROM survey_domains WHERE survey_id = ${surveyId} AND domain > ${cursor} ORDER BY domain LIMIT 10000`.execute(db);
    if (res.rows.length === 0) return;
    for (const r of res.rows) if (!isOut(r.domain)) yield r.domain;
    cursor = res.rows[res.rows.length - 1].domain;
  }
}
