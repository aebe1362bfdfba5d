// A declared fake of lib/diagnose.ts for the queue-mechanics tests (the real probes are exercised against the
// lab in workers-lab.test.ts). It goes through the real Redis limits handed to createProbeDeps, and records
// every "session" so tests can count them. Domains name their MX IPs: `d7.shared-2.test` -> 127.200.0.2,
// anything else -> an IP of its own; a name containing "flaky" gets a transient result on its first probe.
import { CRITERIA, finding, type CriterionFindings } from '../lib/criteria.ts';
import { judgeVerdict } from '../lib/verdict.ts';
import type { Diagnosis } from '../lib/diagnosis.ts';
import type { DiagnoseApi } from '../workers/diagnose-api.ts';
import type { Services } from '../workers/setup.ts';
import { startWorker, type RunningWorker, type StartOptions } from '../workers/worker.ts';
import type { DnsLimiter, IpGate } from '../workers/limits.ts';
import { findingResults } from './report-fixtures.ts';
import { transientUnknowns } from '../lib/checks/judge.ts';

interface FakeDeps {
  dnsLimiter: DnsLimiter;
  ipGate: IpGate;
}
interface Dns {
  domain: string;
  mx: { host: string; ip: string }[];
  dnsFail: boolean;
}
interface IpObs {
  ip: string;
  transient: boolean;
  n: number;
}

export interface FakeDiagnose extends DiagnoseApi<FakeDeps, Dns, IpObs> {
  sessions: Map<string, number>;
  maxConcurrent: Map<string, number>;
  domainsCollected: Map<string, number>;
  /** Throws an infrastructure error on the first collectDomain of these domains. */
  failOnceOn: Set<string>;
  /**
   * The first diagnosis of these domains carries a NUL character in its observations, which Postgres refuses
   * in jsonb: the write of the batch it is in fails.
   */
  unwritableOnce: Set<string>;
  sessionMs: number;
}

function ipOf(domain: string): string {
  const shared = /shared-(\d+)/.exec(domain);
  if (shared) return `127.200.0.${Number(shared[1])}`;
  let h = 0;
  for (const c of domain) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `127.201.${(h >> 8) & 255}.${h & 255}`;
}

export function fakeDiagnose(): FakeDiagnose {
  const active = new Map<string, number>();
  const fake: FakeDiagnose = {
    sessions: new Map(),
    maxConcurrent: new Map(),
    domainsCollected: new Map(),
    failOnceOn: new Set(),
    unwritableOnce: new Set(),
    sessionMs: 30,
    createProbeDeps(_config, opts) {
      return { dnsLimiter: opts!.dnsLimiter!, ipGate: opts!.ipGate! };
    },
    async collectDomain(domain, deps) {
      await deps.dnsLimiter.acquire();
      fake.domainsCollected.set(domain, (fake.domainsCollected.get(domain) ?? 0) + 1);
      if (fake.failOnceOn.has(domain)) {
        fake.failOnceOn.delete(domain);
        throw new Error('connection terminated unexpectedly (simulated Postgres outage)');
      }
      const ip = ipOf(domain);
      return { domain, mx: [{ host: `mx.${domain}`, ip }], dnsFail: false } satisfies Dns;
    },
    mxTargets(dns) {
      return dns.mx;
    },
    async observeIp(ip, _hosts, deps) {
      return deps.ipGate.run(ip, async () => {
        const n = (fake.sessions.get(ip) ?? 0) + 1;
        fake.sessions.set(ip, n);
        const now = (active.get(ip) ?? 0) + 1;
        active.set(ip, now);
        fake.maxConcurrent.set(ip, Math.max(fake.maxConcurrent.get(ip) ?? 0, now));
        await new Promise((r) => setTimeout(r, fake.sessionMs));
        active.set(ip, (active.get(ip) ?? 1) - 1);
        return { ip, transient: false, n } satisfies IpObs;
      });
    },
    judgeScan(domain, dns, ips, observedAt) {
      const d = dns;
      const obs = ips;
      const criteria = Object.fromEntries(CRITERIA.map((c) => [c, finding('ok', 'ok')])) as CriterionFindings;
      const ip = d.mx[0]?.ip;
      const o = ip ? obs[ip] : undefined;
      if (!o) criteria.tls_receive = finding('unknown', 'not_measured');
      // The first probe of a flaky domain's IP answered 4xx.
      else if (domain.includes('flaky') && o.n === 1) criteria.tls_receive = finding('unknown', 'tempfail_4xx');
      const verdict = judgeVerdict(criteria, 'scan');
      return {
        source: 'scan',
        domain,
        observedAt,
        criteria,
        verdict,
        findings: findingResults({ dmarcPolicy: 'absent', mtaSts: 'absent', tlsRpt: 'absent', tlsVersions: [], certProblems: [], nullMx: false }),
        observations: fake.unwritableOnce.delete(domain) ? { dns: d, ips: obs, bad: 'nul \u0000' } : { dns: d, ips: obs },
        mx: d.mx.map((m) => ({ preference: 10, host: m.host, ip: m.ip })),
      } satisfies Diagnosis;
    },
    // The production rule: each reason code's `transient` flag in its check's table (lib/checks/registry.ts).
    transientUnknowns,
  };
  return fake;
}

/** A worker in the test process on `s`, probing through `diag` (no real probe dependencies). */
export function startFakeWorker(s: Services, diag: FakeDiagnose, options: StartOptions): RunningWorker {
  return startWorker({ db: s.db, config: s.config, redis: s.redis, logger: s.logger, deps: {} as never, queues: s.queues, diag }, options);
}
