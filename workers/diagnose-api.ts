// The part of lib/diagnose.ts (the integration of the DNS and SMTP probes) that the workers call, as an
// interface: the worker takes it as a parameter (I/O comes in as a parameter, STYLE.md), so the queue
// mechanics can be exercised with a declared fake and production loads the real module.
import type { Config } from '../lib/config.ts';
import type { Diagnosis } from '../lib/diagnosis.ts';
import type { ProbeDeps } from '../lib/diagnose.ts';
import type { DnsObservations } from '../lib/probes/dns.ts';
import type { IpObservation } from '../lib/observations.ts';
import type { DnsLimiter, IpGate } from './limits.ts';
import type { DomainHints } from '../lib/checks/contract.ts';

/**
 * The probes and the judge, over their dependencies (`Deps`), a domain's DNS observations (`Dns`) and one IP's
 * observations (`IpObs`): by default the real ones of lib/diagnose.ts.
 */
export interface DiagnoseApi<Deps = ProbeDeps, Dns = DnsObservations, IpObs = IpObservation> {
  createProbeDeps(config: Config, opts?: { dnsLimiter?: DnsLimiter; ipGate?: IpGate }): Deps;
  /** `hints.dkimSelectors`: the domain job's known DKIM selectors, tried first. */
  collectDomain(domain: string, deps: Deps, hints?: DomainHints): Promise<Dns>;
  mxTargets(dns: Dns): { host: string; ip: string }[];
  observeIp(ip: string, hostNames: string[], deps: Deps): Promise<IpObs>;
  judgeScan(domain: string, dns: Dns, ips: Record<string, IpObs>, observedAt: Date): Diagnosis;
  transientUnknowns(d: Pick<Diagnosis, 'criteria'>): string[];
}

/**
 * What the worker holds: any DiagnoseApi (the real one or the test fake). The worker only passes values from
 * one method to another (through the job data and probed_ips, as JSON), never looks into them.
 */
export type WorkerDiagnoseApi = DiagnoseApi<unknown, unknown, unknown>;

/** The real probes. Loaded lazily: commands that never probe (status, cancel) do not pay for it. */
export async function loadDiagnose(): Promise<DiagnoseApi> {
  return import('../lib/diagnose.ts');
}
