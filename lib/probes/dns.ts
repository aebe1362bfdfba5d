// The DNS probe of one domain and of one IP: it only collects observations (plain JSON, every lookup with its
// outcome), running the gatherer of every check in the registry; the checks judge them (lib/checks/judge.ts).
import net from 'node:net';
import { normalizeDomain } from '../dns/names.ts';
import { diagnosisResolver } from '../dns/resolver.ts';
import type { MxObservation } from '../checks/mx/mx.ts';
import { mxIps } from '../checks/mx/mx.ts';
import type { SpfObservation } from '../checks/spf/spf.ts';
import type { DkimObservation } from '../checks/dkim/dkim.ts';
import type { DmarcObservation } from '../checks/dmarc/dmarc.ts';
import type { MtaStsGathered } from '../checks/mta-sts/policy.ts';
import type { GatherDeps } from '../checks/contract.ts';
import type { TlsRptObservation } from '../checks/tls-rpt/tls-rpt.ts';
import { needsCd, type DnssecObservation } from '../checks/dnssec/dnssec.ts';
import { collectReverseDns, type ReverseDnsObservation } from '../checks/reverse-dns/reverse-dns.ts';
import { collectDnsbl, type DnsblObservation } from '../checks/dnsbl/dnsbl.ts';
import { DNSSEC_GATHERER, DOMAIN_GATHERERS } from '../checks/registry.ts';
import type { DomainHints } from '../checks/contract.ts';

/** What the gatherers need (lib/checks/contract.ts GatherDeps), passed through to each of them unchanged. */
export type DnsDeps = GatherDeps;

export type DnsObservations =
  | { version: 1; input: string; domain: string; valid: false; reason: 'invalid_name' }
  | {
      version: 1;
      input: string;
      /** A-label, lower case. */
      domain: string;
      valid: true;
      /** The domain is DNSSEC-bogus, so every other lookup was made with CD. */
      cd: boolean;
      dnssec: DnssecObservation;
      mx: MxObservation;
      spf: SpfObservation;
      dkim: DkimObservation;
      dmarc: DmarcObservation;
      mtaSts: MtaStsGathered;
      tlsRpt: TlsRptObservation;
      /** What the gatherers of checks added later retrieved, under their keys (lib/checks/registry.ts). */
      [gathered: string]: unknown;
    };

export type IpDnsObservations =
  | { version: 1; ip: string; valid: false; reason: 'invalid_ip' }
  | { version: 1; ip: string; valid: true; reverseDns: ReverseDnsObservation; dnsbl: DnsblObservation };

export async function collectDnsObservations(input: string, shared: DnsDeps, hints: DomainHints = {}): Promise<DnsObservations> {
  const domain = normalizeDomain(input);
  if (!domain) return { version: 1, input, domain: String(input), valid: false, reason: 'invalid_name' };
  // One resolver scope for the domain's gatherers: a name two checks read is asked once, and nothing below a
  // name that does not exist is asked (lib/dns/resolver.ts diagnosisResolver).
  const deps: DnsDeps = { ...shared, resolver: diagnosisResolver(shared.resolver) };
  // DNSSEC first: a bogus domain's records are then read with CD, so one broken signature does not hide the
  // rest (CRITERIA.md; internet.nl does the same).
  const dnssec = (await DNSSEC_GATHERER.retrieve(domain, deps, { ...hints, cd: false })) as DnssecObservation;
  const cd = needsCd(dnssec);
  const gatherers = DOMAIN_GATHERERS.filter((g) => g !== DNSSEC_GATHERER);
  // All at once, except that a gatherer with `after` waits for the ones it reads (the registry checks that
  // they come before it, so this cannot wait on itself).
  const running = new Map<string, Promise<unknown>>([['dnssec', Promise.resolve(dnssec)]]);
  for (const g of gatherers) {
    const needs = g.after ?? [];
    running.set(
      g.key,
      needs.length === 0
        ? g.retrieve(domain, deps, { ...hints, cd })
        : Promise.all(needs.map((k) => running.get(k))).then((values) =>
            g.retrieve(domain, deps, { ...hints, cd, gathered: Object.fromEntries(needs.map((k, i) => [k, values[i]])) }),
          ),
    );
  }
  const gathered = await Promise.all(gatherers.map((g) => running.get(g.key)));
  const obs: Record<string, unknown> = {};
  gatherers.forEach((g, i) => (obs[g.key] = gathered[i]));
  return { version: 1, input, domain, valid: true, cd, dnssec, ...obs } as Extract<DnsObservations, { valid: true }>;
}

/** PTR/FCrDNS and DNSBL of one IP (every MX IP of a scan; the client IP of a test mail). */
export async function collectIpDnsObservations(ip: string, deps: DnsDeps): Promise<IpDnsObservations> {
  if (!net.isIP(ip)) return { version: 1, ip: String(ip), valid: false, reason: 'invalid_ip' };
  const [reverseDns, dnsbl] = await Promise.all([
    collectReverseDns(ip, deps.resolver),
    collectDnsbl(ip, deps.config.dnsblZones, deps.resolver),
  ]);
  return { version: 1, ip, valid: true, reverseDns, dnsbl };
}

/** The IPs whose PTR and DNSBL a scan must collect: every MX IP (empty for null/no MX or an invalid name). */
export function ipsToProbe(obs: DnsObservations): string[] {
  return obs.valid ? mxIps(obs.mx) : [];
}

