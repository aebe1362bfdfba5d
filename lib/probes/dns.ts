// The DNS probe of one domain and of one IP: it only collects observations (plain JSON, every lookup with its
// outcome); judgeDns turns stored observations into findings without any I/O, so they can be re-judged.
import net from 'node:net';
import type { Config } from '../config.ts';
import type { Resolver } from '../dns/resolver.ts';
import { normalizeDomain } from '../dns/names.ts';
import { finding, type Criterion, type Finding, type Source } from '../criteria.ts';
import type { ExtraFindings } from '../diagnosis.ts';
import { collectMx, evaluateMx, mxIps, mxKind, type MxObservation, type MxKind } from '../checks/mx/mx.ts';
import { collectSpf, evaluateSpfScan, type SpfObservation } from '../checks/spf/spf.ts';
import { collectDkim, evaluateDkimScan, type DkimObservation } from '../checks/dkim/dkim.ts';
import { collectDmarc, evaluateDmarc, type DmarcObservation } from '../checks/dmarc/dmarc.ts';
import { collectMtaSts, evaluateMtaSts, type MtaStsObservation } from '../checks/mta-sts/mta-sts.ts';
import { collectTlsRpt, evaluateTlsRpt, type TlsRptObservation } from '../checks/tls-rpt/tls-rpt.ts';
import { collectDnssec, evaluateDnssec, needsCd, dnssecState, type DnssecObservation, type DnssecState } from '../checks/dnssec/dnssec.ts';
import { collectReverseDns, combineIpFindings, evaluateReverseDns, type ReverseDnsObservation } from '../checks/reverse-dns/reverse-dns.ts';
import { collectDnsbl, evaluateDnsbl, type DnsblObservation } from '../checks/dnsbl/dnsbl.ts';

export interface DnsDeps {
  resolver: Resolver;
  config: Pick<Config, 'dkimSelectors' | 'dnsblZones'>;
}

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
      mtaSts: MtaStsObservation;
      tlsRpt: TlsRptObservation;
    };

export type IpDnsObservations =
  | { version: 1; ip: string; valid: false; reason: 'invalid_ip' }
  | { version: 1; ip: string; valid: true; reverseDns: ReverseDnsObservation; dnsbl: DnsblObservation };

export async function collectDnsObservations(input: string, deps: DnsDeps): Promise<DnsObservations> {
  const domain = normalizeDomain(input);
  if (!domain) return { version: 1, input, domain: String(input), valid: false, reason: 'invalid_name' };
  const { resolver, config } = deps;
  // DNSSEC first: a bogus domain's records are then read with CD, so one broken signature does not hide the
  // rest (CRITERIA.md; internet.nl does the same).
  const dnssec = await collectDnssec(domain, resolver);
  const cd = needsCd(dnssec);
  const [mx, spf, dkim, dmarc, mtaSts, tlsRpt] = await Promise.all([
    collectMx(domain, resolver, { cd }),
    collectSpf(domain, resolver, { cd }),
    collectDkim(domain, config.dkimSelectors, resolver, { cd }),
    collectDmarc(domain, resolver, { cd }),
    collectMtaSts(domain, resolver, { cd }),
    collectTlsRpt(domain, resolver, { cd }),
  ]);
  return { version: 1, input, domain, valid: true, cd, dnssec, mx, spf, dkim, dmarc, mtaSts, tlsRpt };
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

export type DnsCriterion = Extract<Criterion, 'spf' | 'dkim' | 'reverse_dns' | 'dnssec' | 'dnsbl'>;

export interface DnsJudgement {
  /** spf and dkim only for the scan source (a test mail judges them from the message). */
  criteria: Partial<Record<DnsCriterion, Finding>>;
  findings: Pick<ExtraFindings, 'dmarcPolicy' | 'mtaSts' | 'tlsRpt' | 'nullMx'>;
  mx: Finding;
  mxKind: MxKind | 'invalid';
  dnssecState: DnssecState;
  /** The per-check findings behind the ExtraFindings values (for display). */
  extra: { dmarc: Finding; mtaSts: Finding; tlsRpt: Finding };
}

function perIp(ips: string[], all: Record<string, IpDnsObservations>, pick: (o: Extract<IpDnsObservations, { valid: true }>) => Finding): Finding {
  return combineIpFindings(
    ips.map((ip) => {
      const o = all[ip];
      if (!o) return { ip, finding: finding('unknown', 'not_measured', `${ip} was not probed`) };
      if (!o.valid) return { ip, finding: finding('unknown', o.reason, `${ip}: ${o.reason}`) };
      return { ip, finding: pick(o) };
    }),
  );
}

/**
 * Pure: the DNS criteria and extra findings of a diagnosis. `ips` holds the IP observations the criteria are
 * judged over: every MX IP for a scan, the client IP for a test mail.
 */
export function judgeDns(obs: DnsObservations, ips: Record<string, IpDnsObservations>, source: Source): DnsJudgement {
  if (!obs.valid) {
    const bad = finding('unknown', 'invalid_name', `not a valid domain name: ${JSON.stringify(obs.input)}`);
    const criteria: DnsJudgement['criteria'] = { reverse_dns: bad, dnssec: bad, dnsbl: bad };
    if (source === 'scan') Object.assign(criteria, { spf: bad, dkim: bad });
    return {
      criteria,
      findings: { dmarcPolicy: 'unknown', mtaSts: 'unknown', tlsRpt: 'unknown', nullMx: false },
      mx: bad,
      mxKind: 'invalid',
      dnssecState: 'unknown',
      extra: { dmarc: bad, mtaSts: bad, tlsRpt: bad },
    };
  }
  const kind = mxKind(obs.mx);
  const mx = evaluateMx(obs.mx);
  const dmarc = evaluateDmarc(obs.dmarc);
  const mtaSts = evaluateMtaSts(obs.mtaSts);
  const tlsRpt = evaluateTlsRpt(obs.tlsRpt);
  const criteria: DnsJudgement['criteria'] = { dnssec: evaluateDnssec(obs.dnssec) };
  if (source === 'scan') {
    criteria.spf = evaluateSpfScan(obs.spf);
    criteria.dkim = evaluateDkimScan(obs.dkim);
  }
  // Scan: judged over the MX hosts. Test mail: over the client IP(s) the caller passed.
  let targetIps: string[];
  let overMx: Finding | null = null;
  if (source === 'scan') {
    if (kind === 'null' || kind === 'none') overMx = finding('na', kind === 'null' ? 'null_mx' : 'no_mx', mx.detail);
    else if (kind === 'unknown') overMx = { ...mx, status: 'unknown' };
    targetIps = mxIps(obs.mx);
    if (!overMx && targetIps.length === 0) {
      overMx = mx.status === 'unknown' ? mx : finding(mx.status === 'ng' ? 'na' : 'unknown', mx.reason, mx.detail ?? 'no MX host has an address');
    }
  } else {
    targetIps = Object.keys(ips);
    if (targetIps.length === 0) overMx = finding('unknown', 'not_measured', 'no client IP given');
  }
  criteria.reverse_dns = overMx ?? perIp(targetIps, ips, (o) => evaluateReverseDns(o.reverseDns));
  criteria.dnsbl = overMx ?? perIp(targetIps, ips, (o) => evaluateDnsbl(o.dnsbl));
  return {
    criteria,
    findings: { dmarcPolicy: dmarc.value, mtaSts: mtaSts.value, tlsRpt: tlsRpt.value, nullMx: kind === 'null' },
    mx,
    mxKind: kind,
    dnssecState: dnssecState(obs.dnssec),
    extra: {
      dmarc: { status: dmarc.status, reason: dmarc.reason, ...(dmarc.detail ? { detail: dmarc.detail } : {}) },
      mtaSts: { status: mtaSts.status, reason: mtaSts.reason, ...(mtaSts.detail ? { detail: mtaSts.detail } : {}) },
      tlsRpt: { status: tlsRpt.status, reason: tlsRpt.reason, ...(tlsRpt.detail ? { detail: tlsRpt.detail } : {}) },
    },
  };
}
