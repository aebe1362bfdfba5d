// A scan diagnosis of one domain, in three steps that the survey workers run apart (so a provider's MX IP is
// probed once per run and reused by every domain behind it):
//   1. collectDomain: the domain's DNS (MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, DNSSEC);
//   2. observeIp: per MX IP, one SMTP session plus its PTR/FCrDNS and DNSBL listings;
//   3. judgeScan: pure, from the stored observations of 1 and 2 (re-judging runs only this): a loop over the
//      check registry (lib/checks/judge.ts).
import type { Config } from './config.ts';
import type { Diagnosis } from './diagnosis.ts';
import { createResolver, diagnosisResolver, type Resolver } from './dns/resolver.ts';
import type { RateLimiter } from './dns/rate-limit.ts';
import { collectDnsObservations, collectIpDnsObservations, type DnsObservations } from './probes/dns.ts';
import { mxRows } from './checks/mx/mx.ts';
import { probeSmtp, smtpOptionsFromConfig, type SmtpObservation, type SmtpProbeOptions } from './probes/smtp/index.ts';
import { createIpGate, type IpGate } from './probes/ip-gate.ts';
import { createOutboundGate, type OutboundGate } from './net/outbound.ts';
import type { IpObservation, ScanObservations } from './observations.ts';
import { judgeScan } from './checks/judge.ts';
import type { DomainHints } from './checks/contract.ts';

export { judgeScan, rejudge, transientUnknowns } from './checks/judge.ts';
export type { IpObservation, ScanObservations };
export type DomainDnsObservations = DnsObservations;

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

/** `opts.dkimSelectors`: the domain's known DKIM selectors (survey list, earlier test mails), tried first. */
export async function collectDomain(domain: string, deps: ProbeDeps, opts: DomainHints = {}): Promise<DomainDnsObservations> {
  return collectDnsObservations(domain, deps, opts);
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

/** Convenience for `mailcensus check` and the sequential baseline: one domain, start to finish, in-process. */
export async function diagnoseDomain(domain: string, shared: ProbeDeps, observedAt: Date = shared.config.clock ?? new Date(), hints: DomainHints = {}): Promise<Diagnosis> {
  // In one process the domain and its MX IPs share one resolver scope: the PTR name's forward lookup is
  // usually the MX host name the domain's DNS asked already.
  const deps: ProbeDeps = { ...shared, resolver: diagnosisResolver(shared.resolver) };
  const dns = await collectDomain(domain, deps, hints);
  const targets = mxTargets(dns);
  const byIp = new Map<string, string[]>();
  for (const t of targets) byIp.set(t.ip, [...(byIp.get(t.ip) ?? []), t.host]);
  const entries = await Promise.all([...byIp].map(async ([ip, names]) => [ip, await observeIp(ip, names, deps)] as const));
  return judgeScan(domain, dns, Object.fromEntries(entries), observedAt);
}
