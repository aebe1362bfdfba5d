// A scan diagnosis of one domain, in three steps that the survey workers run apart (so a provider's MX IP is
// probed once per run and reused by every domain behind it):
//   1. collectDomain: the domain's DNS (MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, DNSSEC);
//   2. observeIp: per MX IP, one SMTP session plus its PTR/FCrDNS and DNSBL listings;
//   3. judgeScan: pure, from the stored observations of 1 and 2 (re-judging runs only this).
import type { Config } from './config.ts';
import { finding, type CriterionFindings, type Finding } from './criteria.ts';
import { judgeVerdict } from './verdict.ts';
import type { Diagnosis } from './diagnosis.ts';
import { createResolver, type Resolver } from './dns/resolver.ts';
import type { RateLimiter } from './dns/rate-limit.ts';
import {
  collectDnsObservations,
  collectIpDnsObservations,
  judgeDns,
  type DnsObservations,
  type IpDnsObservations,
} from './probes/dns.ts';
import { mxRows } from './checks/mx/mx.ts';
import { probeSmtp, smtpOptionsFromConfig, type SmtpObservation, type SmtpProbeOptions } from './probes/smtp.ts';
import { createIpGate, type IpGate } from './probes/ip-gate.ts';
import { createOutboundGate, type OutboundGate } from './net/outbound.ts';
import { evaluateTlsReceive, type MxProbe } from './checks/tls-receive/tls-receive.ts';
import { evaluateOpenRelay } from './checks/open-relay/open-relay.ts';
import { tlsFindings } from './checks/cert-problems/tls-findings.ts';
import { judgeTestMail } from './test-mail.ts';

export type DomainDnsObservations = DnsObservations;

/** Everything one MX IP told us: its SMTP session and its reverse DNS and DNSBL listings. */
export interface IpObservation {
  ip: string;
  hostNames: string[];
  smtp: SmtpObservation;
  dns: IpDnsObservations;
}

/** What a scan stores as a diagnosis's observations: enough to judge it again without probing. */
export interface ScanObservations {
  version: 1;
  kind: 'scan';
  dns: DomainDnsObservations;
  ips: Record<string, IpObservation>;
}

/** The I/O a probe needs, built once per process (or per worker) and passed in (STYLE.md: I/O as parameters). */
export interface ProbeDeps {
  resolver: Resolver;
  config: Readonly<Config>;
  smtpOptions: SmtpProbeOptions;
  /** Per-IP politeness: concurrent sessions and spacing. In-process by default; workers pass a Redis one. */
  ipGate: Pick<IpGate, 'run'>;
  probe: (ip: string, opts: SmtpProbeOptions) => Promise<SmtpObservation>;
  /**
   * The one outbound gate (lib/net/outbound.ts) every connection goes through: probes (via smtpOptions.gate)
   * and the result mail. Its `run` is the per-IP politeness above.
   */
  outbound: OutboundGate;
}

export function createProbeDeps(
  config: Readonly<Config>,
  opts: { dnsLimiter?: RateLimiter; ipGate?: Pick<IpGate, 'run'>; resolver?: Resolver } = {},
): ProbeDeps {
  const resolver =
    opts.resolver ??
    createResolver({
      ...(config.resolver ? { server: config.resolver } : {}),
      timeoutMs: config.dnsTimeoutMs,
      retries: config.dnsRetries,
      ...(opts.dnsLimiter ? { limiter: opts.dnsLimiter } : { qps: config.dnsQps }),
    });
  const ipGate = opts.ipGate ?? createIpGate({ concurrency: config.perIpConcurrency, intervalMs: config.perIpIntervalMs });
  const outbound = createOutboundGate({ lab: config.lab, optOut: config.optOut, politeness: ipGate });
  return {
    resolver,
    config,
    smtpOptions: smtpOptionsFromConfig(config, { gate: outbound }),
    ipGate: outbound,
    probe: probeSmtp,
    outbound,
  };
}

export async function collectDomain(domain: string, deps: ProbeDeps): Promise<DomainDnsObservations> {
  return collectDnsObservations(domain, deps);
}

/** The distinct MX IPs of a domain with the MX names that point at each, in preference order. */
export function mxTargets(dns: DomainDnsObservations): { host: string; ip: string }[] {
  if (!dns.valid) return [];
  const seen = new Map<string, string>();
  for (const row of mxRows(dns.mx)) if (row.ip && !seen.has(row.ip)) seen.set(row.ip, row.host);
  return [...seen].map(([ip, host]) => ({ host, ip }));
}

/** Probes one IP once: an SMTP session (behind the per-IP gate) and its PTR/FCrDNS and DNSBL listings. */
export async function observeIp(ip: string, hostNames: string[], deps: ProbeDeps): Promise<IpObservation> {
  const host = hostNames[0] ?? null;
  const [smtp, dns] = await Promise.all([
    deps.ipGate.run(ip, () => deps.probe(ip, { ...deps.smtpOptions, host })),
    collectIpDnsObservations(ip, deps),
  ]);
  return { ip, hostNames, smtp, dns };
}

const NOT_MEASURED_SEND = finding('unknown', 'not_measured', 'only a received test mail shows whether the domain sends over TLS');

/** The MX-judged SMTP criteria when the MX set itself could not be read (DNS failure, invalid name). */
function fromMx(mx: Finding): Finding {
  return { ...mx, status: mx.status === 'ok' || mx.status === 'ng' ? 'unknown' : mx.status };
}

/** Pure: a scan diagnosis from its observations, judged with the current rules. */
export function judgeScan(domain: string, dns: DomainDnsObservations, ips: Record<string, IpObservation>, observedAt: Date): Diagnosis {
  const ipDns: Record<string, IpDnsObservations> = {};
  for (const [ip, o] of Object.entries(ips)) ipDns[ip] = o.dns;
  const j = judgeDns(dns, ipDns, 'scan');
  const rows = dns.valid ? mxRows(dns.mx) : [];
  const nullMx = j.mxKind === 'null';
  const noMx = j.mxKind === 'none';

  let tlsReceive: Finding;
  let openRelay: Finding;
  if (j.mxKind === 'unknown' || j.mxKind === 'invalid') {
    tlsReceive = fromMx(j.mx);
    openRelay = fromMx(j.mx);
  } else {
    const probes: MxProbe[] = rows.map((r) => ({
      host: r.host,
      ip: r.ip,
      obs: r.ip ? ips[r.ip]?.smtp ?? null : null,
      ...(r.ip ? (ips[r.ip] ? {} : { unmeasured: 'not_probed' }) : { unmeasured: 'no_address' }),
    }));
    tlsReceive = evaluateTlsReceive(probes, { nullMx, noMx });
    const relayHosts = probes.filter((p): p is MxProbe & { ip: string; obs: SmtpObservation } => !!p.ip && !!p.obs);
    openRelay =
      relayHosts.length === 0 && !nullMx && !noMx
        ? finding('unknown', probes[0]?.unmeasured ?? 'not_probed', 'no MX host could be probed')
        : evaluateOpenRelay(relayHosts.map((p) => ({ ip: p.ip, role: 'mx' as const, host: p.host, obs: p.obs })), { nullMx, noMx });
  }

  const criteria: CriterionFindings = {
    open_relay: openRelay,
    spf: j.criteria.spf!,
    dkim: j.criteria.dkim!,
    tls_receive: tlsReceive,
    tls_send: NOT_MEASURED_SEND,
    reverse_dns: j.criteria.reverse_dns!,
    dnssec: j.criteria.dnssec!,
    dnsbl: j.criteria.dnsbl!,
  };
  const tls = tlsFindings(rows.filter((r) => r.ip && ips[r.ip]).map((r) => ({ host: r.host, obs: ips[r.ip!].smtp })));
  const observations: ScanObservations = { version: 1, kind: 'scan', dns, ips };
  return {
    source: 'scan',
    domain: dns.valid ? dns.domain : domain,
    observedAt,
    criteria,
    verdict: judgeVerdict(criteria, 'scan'),
    findings: { ...j.findings, tlsVersions: tls.tlsVersions, certProblems: tls.certProblems },
    observations,
    mx: rows,
  };
}

/** Pure: a stored diagnosis judged again with the current rules (no probing). */
export function rejudge(stored: { source: 'scan' | 'test-mail'; domain: string; observations: unknown; observed_at: Date }): Diagnosis {
  const obs = stored.observations as { kind?: string };
  if (stored.source === 'scan') {
    if (obs?.kind !== 'scan') throw new Error(`diagnosis of ${stored.domain}: stored observations are not a scan's`);
    const s = obs as ScanObservations;
    return judgeScan(stored.domain, s.dns, s.ips, new Date(stored.observed_at));
  }
  return judgeTestMail(stored.observations as Parameters<typeof judgeTestMail>[0], new Date(stored.observed_at));
}

/**
 * Reasons in a diagnosis that a later attempt may well not repeat (a timeout, SERVFAIL, a 4xx, an unreachable
 * host): the workers retry such a domain, spaced out, before the unknown is final. [] when nothing is transient.
 */
const TRANSIENT = /timeout|servfail|tempfail|greylist|greets_421|421|450|451|452|4\d\d|unreachable|connection_(refused|reset|closed)|econnreset|tcp_closed|not_probed|interrupted|tls_error|session_failed|dns_error|truncated|malformed/i;
export function transientUnknowns(d: Diagnosis): string[] {
  const out: string[] = [];
  for (const [criterion, f] of Object.entries(d.criteria)) {
    if (f.status !== 'unknown' || f.reason === 'not_measured') continue;
    if (TRANSIENT.test(f.reason)) out.push(`${criterion}:${f.reason}`);
  }
  return out;
}

/** Convenience for `mailcensus check` and the sequential baseline: one domain, start to finish, in-process. */
export async function diagnoseDomain(domain: string, deps: ProbeDeps, observedAt: Date = deps.config.clock ?? new Date()): Promise<Diagnosis> {
  const dns = await collectDomain(domain, deps);
  const targets = mxTargets(dns);
  const byIp = new Map<string, string[]>();
  for (const t of targets) byIp.set(t.ip, [...(byIp.get(t.ip) ?? []), t.host]);
  const entries = await Promise.all([...byIp].map(async ([ip, names]) => [ip, await observeIp(ip, names, deps)] as const));
  return judgeScan(domain, dns, Object.fromEntries(entries), observedAt);
}
