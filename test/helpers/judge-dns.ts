// The DNS criteria and record findings of one domain, judged by the production checks of the registry over
// DNS observations alone (no SMTP session): what the DNS tests assert. The shape is the tests' own.
import type { Finding, Source } from '../../lib/criteria.ts';
import type { DnsObservations, IpDnsObservations } from '../../lib/probes/dns.ts';
import { scanInput, type JudgeInput } from '../../lib/checks/judge-input.ts';
import { checkById } from '../../lib/checks/registry.ts';

export interface DnsJudgement {
  criteria: Partial<Record<'spf' | 'dkim' | 'reverse_dns' | 'dnssec' | 'dnsbl', Finding>>;
  findings: { dmarcPolicy: unknown; mtaSts: unknown; tlsRpt: unknown; nullMx: boolean };
  mx: Finding;
  mxKind: string;
}

export function judgeDns(dns: DnsObservations, ipDns: Record<string, IpDnsObservations>, source: Source): DnsJudgement {
  const base = scanInput(dns.valid ? dns.domain : dns.input, dns, {});
  const input: JudgeInput =
    source === 'scan' ? { ...base, ipDns } : { ...base, source: 'test-mail', judgedIps: Object.keys(ipDns), ipDns };
  const run = (id: string) => checkById(id)!.evaluate(input);
  const ids = source === 'scan' ? (['spf', 'dkim', 'reverse_dns', 'dnssec', 'dnsbl'] as const) : (['reverse_dns', 'dnssec', 'dnsbl'] as const);
  const criteria: DnsJudgement['criteria'] = {};
  for (const id of ids) {
    const r = run(id);
    criteria[id] = r.detail === undefined ? { status: r.status, reason: r.reason } : { status: r.status, reason: r.reason, detail: r.detail };
  }
  return {
    criteria,
    findings: { dmarcPolicy: run('dmarc_policy').value, mtaSts: run('mta_sts').value, tlsRpt: run('tls_rpt').value, nullMx: input.mx.kind === 'null' },
    mx: input.mx.finding,
    mxKind: input.mx.kind,
  };
}
