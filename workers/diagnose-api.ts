// The part of lib/diagnose.ts (the integration of the DNS and SMTP probes) that the workers call, as an
// interface: the worker takes it as a parameter (I/O comes in as a parameter, STYLE.md), so the queue
// mechanics can be exercised with a declared fake and production loads the real module.
import type { Config } from '../lib/config.ts';
import type { Diagnosis } from '../lib/diagnosis.ts';
import type { DnsLimiter, IpGate } from './limits.ts';

export interface DiagnoseApi<Deps = unknown> {
  createProbeDeps(config: Config, opts?: { dnsLimiter?: DnsLimiter; ipGate?: IpGate }): Deps;
  collectDomain(domain: string, deps: Deps): Promise<unknown>;
  mxTargets(dns: never): { host: string; ip: string }[];
  observeIp(ip: string, hostNames: string[], deps: Deps): Promise<unknown>;
  judgeScan(domain: string, dns: never, ips: Record<string, never>, observedAt: Date): Diagnosis;
  transientUnknowns(d: Diagnosis): string[];
}

/** The real probes. Loaded lazily: commands that never probe (status, cancel) do not pay for it. */
export async function loadDiagnose(): Promise<DiagnoseApi> {
  const mod = await import('../lib/diagnose.ts');
  return mod as unknown as DiagnoseApi;
}
