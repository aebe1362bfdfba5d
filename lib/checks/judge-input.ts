// What every check's `evaluate` reads: the stored observations of one diagnosis, scan or test mail, in one
// shape, with the MX set read once (so no check re-derives it and both sources judge it the same way).
import type { Finding, Source } from '../criteria.ts';
import { finding } from '../criteria.ts';
import type { IpDnsObservations, IpObservation, TestMailObservations, DnsObservations } from '../observations.ts';
import type { MxRow } from '../diagnosis.ts';
import type { SmtpObservation } from '../probes/smtp/index.ts';
import { evaluateMx, mxIps, mxKind, mxRows, type MxKind } from './mx/mx.ts';
import { combineIpFindings } from './reverse-dns/reverse-dns.ts';

/** One MX (host, address) row and its SMTP session; `unmeasured` says why there is none. */
export interface MxProbe {
  host: string;
  /** null: the MX name had no address (or it could not be resolved). */
  ip: string | null;
  obs: SmtpObservation | null;
  unmeasured?: 'not_probed' | 'no_address';
}

export interface MxSet {
  kind: MxKind | 'invalid';
  /** The MX set judged (the `mx` finding). */
  finding: Finding;
  rows: MxRow[];
  probes: MxProbe[];
  nullMx: boolean;
  noMx: boolean;
}

export interface JudgeInput {
  source: Source;
  /** A-label of the diagnosed domain (the input as given when it is no valid name). */
  domain: string;
  dns: DnsObservations;
  /** Set when the domain is no valid name: what every domain-scope check answers. */
  invalid: Finding | null;
  mx: MxSet;
  /** The SMTP session and PTR/DNSBL of every MX IP. */
  ips: Record<string, IpObservation>;
  /** The IPs reverse DNS and DNSBL are judged over: every MX IP (scan), the client IP (test mail). */
  judgedIps: string[];
  /** Their PTR/FCrDNS and DNSBL observations (an IP missing here was not probed). */
  ipDns: Record<string, IpDnsObservations>;
  /** The received test mail; null for a scan. */
  mail: TestMailObservations | null;
  /**
   * When the diagnosis observed (the scan's clock, the test mail's arrival): what time-dependent rules
   * (a certificate that expires soon) judge against, never the wall clock, so a re-judge gives the same answer.
   */
  observedAt: Date;
}

function mxSet(dns: DnsObservations, ips: Record<string, IpObservation>, invalid: Finding | null): MxSet {
  if (!dns.valid) return { kind: 'invalid', finding: invalid!, rows: [], probes: [], nullMx: false, noMx: false };
  const kind = mxKind(dns.mx);
  const rows = mxRows(dns.mx);
  const probes: MxProbe[] = rows.map((r) => ({
    host: r.host,
    ip: r.ip,
    obs: r.ip ? ips[r.ip]?.smtp ?? null : null,
    ...(r.ip ? (ips[r.ip] ? {} : { unmeasured: 'not_probed' as const }) : { unmeasured: 'no_address' as const }),
  }));
  return { kind, finding: evaluateMx(dns.mx), rows, probes, nullMx: kind === 'null', noMx: kind === 'none' };
}

function invalidOf(dns: DnsObservations): Finding | null {
  return dns.valid ? null : finding('unknown', 'invalid_name', `not a valid domain name: ${JSON.stringify(dns.input)}`);
}

/** The latest SMTP session start among the observations: the observation time when none is given. */
function latestSession(ips: Record<string, IpObservation>): Date {
  let t = Number.NaN;
  for (const o of Object.values(ips)) {
    const s = o.smtp ? Date.parse(o.smtp.startedAt) : Number.NaN;
    if (!Number.isNaN(s) && !(s <= t)) t = s;
  }
  return new Date(t);
}

export function scanInput(domain: string, dns: DnsObservations, ips: Record<string, IpObservation>, observedAt: Date = latestSession(ips)): JudgeInput {
  const invalid = invalidOf(dns);
  const ipDns: Record<string, IpDnsObservations> = {};
  for (const [ip, o] of Object.entries(ips)) ipDns[ip] = o.dns;
  const judgedIps = dns.valid ? mxIps(dns.mx) : [];
  return { source: 'scan', domain: dns.valid ? dns.domain : domain, dns, invalid, mx: mxSet(dns, ips, invalid), ips, judgedIps, ipDns, mail: null, observedAt };
}

export function testMailInput(obs: TestMailObservations, observedAt: Date = new Date(obs.receivedAt)): JudgeInput {
  if (obs?.kind !== 'test-mail' || obs.version !== 1) throw new Error("stored observations are not a version-1 test mail's");
  const invalid = invalidOf(obs.dns);
  return {
    source: 'test-mail',
    domain: obs.domain,
    dns: obs.dns,
    invalid,
    mx: mxSet(obs.dns, obs.ips, invalid),
    ips: obs.ips,
    judgedIps: [obs.mail.clientIp],
    ipDns: { [obs.mail.clientIp]: obs.client },
    mail: obs,
    observedAt,
  };
}


/** The MX-judged criteria when the MX set itself could not be read (DNS failure, invalid name): same reason, never ok/ng. */
export function fromMx(mx: Finding): Finding {
  return { ...mx, status: mx.status === 'ok' || mx.status === 'ng' ? 'unknown' : mx.status };
}

/**
 * Why a finding judged over the MX hosts (tls_cert, tls_key) has no host to look at: the name is invalid, the
 * domain has a null MX or none (n/a), or the MX set could not be read; null when there are hosts.
 */
export function noMxHosts(input: JudgeInput): Finding | null {
  if (input.invalid) return input.invalid;
  const mx = input.mx;
  if (mx.kind === 'null' || mx.kind === 'none') return finding('na', mx.kind === 'null' ? 'null_mx' : 'no_mx', mx.finding.detail);
  if (mx.kind === 'unknown') return fromMx(mx.finding);
  return null;
}

/**
 * A finding read from one record of the domain's DNS (DMARC, TLS-RPT): an invalid name is unknown, else the
 * record's own judgement and value, without what its parser adds for other uses (the parsed policy, the rua list).
 */
export function judgeRecord<V extends string>(input: JudgeInput, evaluate: (dns: Extract<DnsObservations, { valid: true }>) => Finding & { value: V }): Finding & { value: V | 'unknown' } {
  if (!input.dns.valid) return { ...input.invalid!, value: 'unknown' };
  const f = evaluate(input.dns);
  return { status: f.status, reason: f.reason, ...(f.detail ? { detail: f.detail } : {}), value: f.value };
}

/**
 * A criterion judged per IP (reverse DNS, DNSBL) over the IPs the source names: every MX IP for a scan (n/a
 * for a null or no MX, the MX set's own reason when it has no address), the client IP for a test mail.
 * ng if any IP fails, else unknown if any could not be measured, else ok.
 */
export function overJudgedIps(input: JudgeInput, pick: (o: Extract<IpDnsObservations, { valid: true }>) => Finding): Finding {
  if (input.invalid) return input.invalid;
  const mx = input.mx;
  if (input.source === 'scan') {
    if (mx.kind === 'null' || mx.kind === 'none') return finding('na', mx.kind === 'null' ? 'null_mx' : 'no_mx', mx.finding.detail);
    if (mx.kind === 'unknown') return { ...mx.finding, status: 'unknown' };
    if (input.judgedIps.length === 0) {
      const f = mx.finding;
      return f.status === 'unknown' ? f : finding(f.status === 'ng' ? 'na' : 'unknown', f.reason, f.detail ?? 'no MX host has an address');
    }
  } else if (input.judgedIps.length === 0) {
    return finding('unknown', 'not_measured', 'no client IP given');
  }
  return combineIpFindings(
    input.judgedIps.map((ip) => {
      const o = input.ipDns[ip];
      if (!o) return { ip, finding: finding('unknown', 'not_measured', `${ip} was not probed`) };
      if (!o.valid) return { ip, finding: finding('unknown', o.reason, `${ip}: ${o.reason}`) };
      return { ip, finding: pick(o) };
    }),
  );
}
