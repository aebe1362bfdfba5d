// `mailcensus check DOMAIN`: diagnoses one domain now, as a scan would (DNS and SMTP), and prints one row per
// check of the registry (lib/checks/registry.ts) with its status, reason and detail, then the verdict and why
// (or the JSON of the observations, statuses and verdict).
import type { Command } from 'commander';
import { action, langOption } from '../run.ts';
import { STATUS_LABELS, type Status } from '../../lib/criteria.ts';
import { checkById } from '../../lib/checks/registry.ts';
import type { Label } from '../../lib/checks/contract.ts';
import { escapeControls } from '../../lib/clean-text.ts';

export type Lang = 'ja' | 'en';

export interface CheckRow {
  /** The id of a check in lib/checks/registry.ts. */
  key: string;
  status: string;
  reason: string;
  detail?: string;
  /** Criteria first, then findings beyond MSchecker. */
  kind: 'criterion' | 'finding';
}

/** Row labels: every check's own (lib/checks/registry.ts). */
function labelOf(key: string): Label | undefined {
  return checkById(key)?.label;
}

/** Display width: East Asian wide characters take two columns. */
function width(s: string): number {
  let w = 0;
  for (const ch of s) w += /[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]/u.test(ch) ? 2 : 1;
  return w;
}
const pad = (s: string, n: number) => s + ' '.repeat(Math.max(0, n - width(s)));

/** A plain-text table of the rows: label, status, reason, detail. */
export function renderCheckTable(rows: CheckRow[], lang: Lang = 'en'): string {
  // Reasons and details carry strings from the network (PTR names, SMTP replies): escape their control
  // characters before they reach a terminal (no escape sequences, no forged lines).
  const cells = rows.map((r) => [
    labelOf(r.key)?.[lang] ?? escapeControls(r.key),
    STATUS_LABELS[r.status as Status]?.[lang] ?? escapeControls(r.status),
    escapeControls(r.reason),
    escapeControls(r.detail ?? ''),
  ]);
  const head = lang === 'ja' ? ['項目', '結果', '理由', '詳細'] : ['check', 'status', 'reason', 'detail'];
  const widths = [0, 1, 2].map((i) => Math.max(width(head[i]), ...cells.map((c) => width(c[i]))));
  const line = (c: string[]) => `${pad(c[0], widths[0])}  ${pad(c[1], widths[1])}  ${pad(c[2], widths[2])}  ${c[3]}`.trimEnd();
  const out = [line(head)];
  let kind: CheckRow['kind'] | null = null;
  rows.forEach((r, i) => {
    if (kind !== null && r.kind !== kind) out.push('');
    kind = r.kind;
    out.push(line(cells[i]));
  });
  return `${out.join('\n')}\n`;
}

export function register(program: Command): void {
  program
    .command('check')
    .description('diagnose one domain now, as a scan would: DNS and SMTP checks, every criterion, the verdict and why')
    .argument('<domain>', 'the domain to check (U-label or A-label)')
    .option('--json', 'print the observations, statuses and verdict as JSON')
    .option('--lang <lang>', 'language of the table: ja or en (default: from LANG)')
    .option('--selectors <list>', 'DKIM selectors of the domain to try first (comma or space separated), as the survey list\'s selectors column')
    .action(
      action(async (domainArg: string, opts: { json?: boolean; lang?: string; selectors?: string }) => {
        const { InputError } = await import('../../lib/errors.ts');
        const lang = langOption(opts.lang, /^ja/i.test(process.env.LC_ALL || process.env.LANG || '') ? 'ja' : 'en');
        const { normalizeDomain } = await import('../../lib/dns/names.ts');
        if (!normalizeDomain(domainArg)) throw new InputError(`not a valid domain name: "${domainArg}"`);
        const { parseSelectorList } = await import('../../lib/checks/dkim/dkim.ts');
        const given = parseSelectorList(opts.selectors);
        if (given.bad !== null) throw new InputError(`--selectors: "${given.bad}" is not a DKIM selector (RFC 6376 §3.1: letters, digits, hyphens, dots)`);
        const { config } = await import('../../lib/config.ts');
        const { VERDICT_LABELS } = await import('../../lib/verdict.ts');
        const { createProbeDeps, diagnoseDomain } = await import('../../lib/diagnose.ts');
        const { CHECKS } = await import('../../lib/checks/registry.ts');
        const { dnssecState } = await import('../../lib/checks/dnssec/dnssec.ts');
        const cfg = config();
        const deps = createProbeDeps(cfg);
        // The opt-out list holds for one-off checks as for surveys and test mails: an opted-out domain is not
        // looked up, and its opted-out IPs are never connected to (the outbound gate).
        if (deps.outbound.domainOptedOut(normalizeDomain(domainArg)!)) {
          process.stderr.write(`mailcensus: ${normalizeDomain(domainArg)} is on the opt-out list (MAILCENSUS_OPT_OUT): not checked\n`);
          return 1;
        }
        const d = await diagnoseDomain(domainArg, deps, undefined, given.selectors.length > 0 ? { dkimSelectors: given.selectors } : {});
        const obs = d.observations as import('../../lib/diagnose.ts').ScanObservations;
        const rows: CheckRow[] = [];
        for (const c of CHECKS) {
          const f = c.kind === 'criterion' ? d.criteria[c.id] : d.findings[c.id];
          if (f) rows.push({ key: c.id, kind: c.kind, status: f.status, reason: f.reason, ...(f.detail ? { detail: f.detail } : {}) });
        }
        if (opts.json) {
          const statuses = Object.fromEntries(rows.map((r) => [r.key, { status: r.status, reason: r.reason, ...(r.detail ? { detail: r.detail } : {}) }]));
          process.stdout.write(`${JSON.stringify({ domain: d.domain, source: d.source, observedAt: d.observedAt, verdict: d.verdict, statuses, findings: d.findings, dnssec: obs.dns.valid ? dnssecState(obs.dns.dnssec) : 'unknown', observations: obs, dnsStats: deps.resolver.stats() }, null, 2)}\n`);
          return 0;
        }
        const v = d.verdict;
        const label = VERDICT_LABELS[v.verdict][lang];
        const why = escapeControls(v.reasons.map((r) => r.detail ?? `${r.criterion}: ${r.reason}`).join('; '));
        const head = lang === 'ja' ? '評価' : 'verdict';
        const extra = [
          v.ignored.length ? (lang === 'ja' ? '送信TLSはテストメールでのみ判定できるため評価に含めていません' : 'send TLS is not part of a scan verdict (only a received test mail shows it)') : null,
        ].filter(Boolean);
        const title = `${escapeControls(d.domain)}${obs.dns.valid && obs.dns.cd ? ' (DNSSEC bogus: records read with CD)' : ''}`;
        process.stdout.write(`${title}\n\n${renderCheckTable(rows, lang)}\n${head}: ${label}${why ? ` (${why})` : ''}\n${extra.map((e) => `${e}\n`).join('')}`);
        return 0;
      }),
    );
}
