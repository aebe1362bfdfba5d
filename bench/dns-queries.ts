// DNS queries per domain (issues 15 and 18): every domain of a lab world diagnosed as a scan does
// (diagnoseDomain: the domain's DNS, one SMTP session per MX IP, the IPs' PTR/FCrDNS and DNSBL), one domain at
// a time, each with a fresh resolver (no answer shared between domains), and the queries the lab DNS server
// received while it ran counted: retries and TCP fallbacks included, counted where they arrive, so the same
// file measures any commit that has startLab and diagnoseDomain (copy it into that tree's bench/).
//
//   npm run bench -- dns-queries [--worlds msc-2021,test-v2] [--golden out.json] [--by-type]
//
// Prints median, mean and p90 per world. --golden writes every domain's verdict, criteria and findings (for a
// before/after comparison of the judgements); --by-type adds what the domains asked, by query type, and every
// question asked more than once within one domain's diagnosis (the resolver's own view: a question answered
// from its per-diagnosis cache is not sent). The figures go into BENCHMARKS.md's `dns-queries` section.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLab } from '../lab/index.ts';
import { LAB_CHECKER_ENV } from '../lab/checker-env.ts';
import { loadConfig } from '../lib/config.ts';
import { createProbeDeps, diagnoseDomain } from '../lib/diagnose.ts';
import type { Resolver } from '../lib/dns/resolver.ts';
import type { BenchArgs } from './lib/args.ts';
import { machine, updateSection } from './_report.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface QueryStats {
  domains: number;
  median: number;
  mean: number;
  p90: number;
  max: number;
}

/** Median (the mean of the two middle values for an even count), mean and p90 (nearest rank). */
export function summarize(counts: readonly number[]): QueryStats {
  const s = [...counts].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return { domains: 0, median: 0, mean: 0, p90: 0, max: 0 };
  const median = n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
  return { domains: n, median, mean: s.reduce((a, b) => a + b, 0) / n, p90: s[Math.ceil(0.9 * n) - 1]!, max: s[n - 1]! };
}

/** Records every question the checks ask (before the resolver's cache), for --by-type. */
function recording(resolver: Resolver, asked: string[]): Resolver {
  return {
    query: (name, type, opts) => {
      asked.push(`${String(name).toLowerCase().replace(/\.$/, '')} ${type}${opts?.cd ? ' +cd' : ''}`);
      return resolver.query(name, type, opts);
    },
    stats: () => resolver.stats(),
  };
}

export async function measureWorld(world: string, opts: { golden?: Record<string, unknown>; byType?: boolean } = {}): Promise<{ stats: QueryStats; perDomain: Record<string, number> }> {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'mc-dnsq-'));
  const lab = await startLab(path.join(ROOT, 'lab', 'worlds', `${world}.json`), { dnsPort: 0, smtpPort: 0, httpsPort: 0, stateDir });
  const perDomain: Record<string, number> = {};
  const types = new Map<string, number>();
  const repeated = new Map<string, number>();
  try {
    const config = loadConfig({ ...process.env, ...lab.env, ...LAB_CHECKER_ENV });
    for (const d of lab.world.domains) {
      const deps = createProbeDeps(config);
      const asked: string[] = [];
      if (opts.byType) deps.resolver = recording(deps.resolver, asked);
      const before = lab.dns.queries;
      const diagnosis = await diagnoseDomain(d.name, deps);
      perDomain[d.name] = lab.dns.queries - before;
      if (opts.golden) {
        opts.golden[d.name] = { verdict: diagnosis.verdict, criteria: diagnosis.criteria, findings: diagnosis.findings, mx: diagnosis.mx };
      }
      if (opts.byType) {
        const seen = new Map<string, number>();
        for (const q of asked) seen.set(q, (seen.get(q) ?? 0) + 1);
        for (const [q, n] of seen) {
          const type = q.split(' ')[1]!;
          types.set(type, (types.get(type) ?? 0) + n);
          const pattern = q.split(d.name).join('<domain>');
          if (n > 1) repeated.set(pattern, (repeated.get(pattern) ?? 0) + 1);
        }
      }
    }
  } finally {
    await lab.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
  const stats = summarize(Object.values(perDomain));
  if (opts.byType) {
    const n = stats.domains || 1;
    console.log(`  ${world}: questions asked per domain by type: ${[...types].sort((a, b) => b[1] - a[1]).map(([t, c]) => `${t} ${(c / n).toFixed(2)}`).join(', ')}`);
    const top = [...repeated].sort((a, b) => b[1] - a[1]).slice(0, 10);
    console.log(`  ${world}: asked more than once within a domain: ${top.length ? top.map(([q, c]) => `${q} (${c} domains)`).join('; ') : 'none'}`);
  }
  return { stats, perDomain };
}

export async function run(args: BenchArgs = {}): Promise<void> {
  const worlds = typeof args.worlds === 'string' ? args.worlds.split(',').map((w) => w.trim()).filter(Boolean) : ['msc-2021', 'test-v2'];
  const golden: Record<string, Record<string, unknown>> = {};
  const rows: string[] = [];
  const loadBefore = os.loadavg()[0].toFixed(1);
  for (const world of worlds) {
    golden[world] = {};
    const { stats, perDomain } = await measureWorld(world, { golden: golden[world], byType: Boolean(args['by-type']) });
    rows.push(`| ${world} | ${stats.domains} | **${stats.median}** | ${stats.mean.toFixed(2)} | ${stats.p90} | ${stats.max} |`);
    console.log(
      `dns-queries ${world}: ${stats.domains} domains, DNS queries per domain median ${stats.median}, mean ${stats.mean.toFixed(2)}, p90 ${stats.p90}, max ${stats.max} (load ${os.loadavg()[0].toFixed(1)})`,
    );
    if (args.verbose) for (const [d, n] of Object.entries(perDomain)) console.log(`  ${d} ${n}`);
  }
  if (typeof args.golden === 'string') writeFileSync(args.golden, `${JSON.stringify(golden, null, 1)}\n`);
  await updateSection(
    'dns-queries',
    `## DNS queries per domain\n\n` +
      `\`npm run bench -- dns-queries\` (${new Date().toISOString().slice(0, 10)}; ${machine()}; load average ${loadBefore} → ${os.loadavg()[0].toFixed(1)}; the counts do not depend on it)\n\n` +
      `Every domain of the world diagnosed as a scan does (\`diagnoseDomain\`: the domain's DNS, one SMTP session per MX IP, the IPs' PTR/FCrDNS and DNSBL), one after the other, each with a fresh resolver: no answer is shared between domains, so this is the cost of one domain alone (a survey shares the answers of shared MX hosts on top). Counted where the lab DNS server receives the queries, retries and TCP fallbacks included.\n\n` +
      `| world | domains | median | mean | p90 | max |\n|---|---:|---:|---:|---:|---:|\n${rows.join('\n')}\n`,
  );
}
