// `mailcensus report`: the press-release statistics of a period as HTML, PDF, JSON and CSV (issue 8).
import type { Command } from 'commander';
import { action, langOption, withDatabase } from '../run.ts';

interface Opts {
  survey?: string;
  source?: string;
  year?: string;
  fiscalYear?: string;
  from?: string;
  to?: string;
  out: string;
  format: string;
  lang: string;
  timezone: string;
  chromium: string;
  provenance?: string;
  by?: string;
  minCell: string;
  trend?: string;
  changesFrom?: string;
  changesTo?: string;
}

export function register(program: Command): void {
  program
    .command('report')
    .description('write the statistics of a period (each domain once: its latest diagnosis) as html, pdf, json and csv')
    .option('--survey <name>', 'diagnoses of this survey')
    .option('--source <source>', 'only diagnoses of this source: test-mail or scan')
    .option('--year <yyyy>', 'the calendar year')
    .option('--fiscal-year <yyyy>', 'the Japanese fiscal year starting April 1 of YYYY')
    .option('--from <date>', 'first day YYYY-MM-DD (with --to)')
    .option('--to <date>', 'last day YYYY-MM-DD, inclusive')
    .requiredOption('--out <dir>', 'folder to write report.json, report.html, report.pdf and *.csv into (created)')
    .option('--format <list>', 'comma-separated: html,pdf,json,csv,xlsx', 'html,pdf,json,csv,xlsx')
    .option('--lang <lang>', 'ja or en', 'ja')
    .option('--timezone <tz>', 'time zone of the period\'s dates (IANA name)', 'Asia/Tokyo')
    .option('--chromium <which>', 'browser for the PDF: auto (Debian\'s chromium, else the one bundled in node_modules), system, bundled, or a path', 'auto')
    .option('--by <column>', 'every share per cohort of the survey list: industry, tag or organization (needs --survey)')
    .option('--min-cell <n>', 'cohort cells counting fewer domains are suppressed as "<N"', '10')
    .option('--trend <range>', 'the series of every share over years YYYY..YYYY, fiscal years fyYYYY..fyYYYY or runs:ID,ID,… (a year trend alone: the report covers its last year)')
    .option('--changes-from <period>', 'domain by domain from this earlier period (YYYY, fyYYYY, YYYY-MM-DD..YYYY-MM-DD or run:ID) to the report\'s period')
    .option('--changes-to <period>', 'with --changes-from: compare with this later period or run:ID instead of the report\'s period')
    .option('--provenance <list>', 'only test-mail diagnoses of these classes, comma-separated: requested,authenticated,unverified')
    .action(
      action(async (o: Opts) => {
        const { InputError } = await import('../../lib/errors.ts');
        const { periodFromOptions } = await import('../../reports/period.ts');
        const { parseFormats, writeReport } = await import('../../reports/write.ts');
        if (o.survey === undefined && o.source === undefined) throw new InputError('give --survey NAME or --source test-mail|scan');
        if (o.source !== undefined && o.source !== 'test-mail' && o.source !== 'scan') {
          throw new InputError(`--source must be test-mail or scan, got "${o.source}"`);
        }
        const lang = langOption(o.lang, 'ja');
        const { parseTrend, parsePeriodSpec } = await import('../../reports/period.ts');
        const { parseCohortKey } = await import('../../reports/breakdowns.ts');
        const trend = o.trend !== undefined ? parseTrend(o.trend) : null;
        // With --trend alone, the report's own period is the trend's last.
        const noPeriod = o.year === undefined && o.fiscalYear === undefined && o.from === undefined && o.to === undefined;
        const lastOfTrend = trend?.periods[trend.periods.length - 1];
        const period = lastOfTrend && lastOfTrend.kind !== 'run' && noPeriod ? lastOfTrend : periodFromOptions(o);
        const minCell = Number(o.minCell);
        if (!/^\d+$/.test(o.minCell) || minCell > 1_000_000) throw new InputError(`--min-cell must be a whole number (0 turns suppression off), got "${o.minCell}"`);
        const by = o.by !== undefined ? parseCohortKey(o.by) : null;
        const changesFrom = o.changesFrom !== undefined ? parsePeriodSpec(o.changesFrom, '--changes-from') : null;
        const changesTo = o.changesTo !== undefined ? parsePeriodSpec(o.changesTo, '--changes-to') : null;
        if (changesTo && !changesFrom) throw new InputError('--changes-to needs --changes-from');
        const formats = parseFormats(o.format);
        let provenance: string[] | null = null;
        if (o.provenance !== undefined) {
          provenance = o.provenance.split(',').map((p) => p.trim()).filter(Boolean);
          const bad = provenance.filter((p) => !['requested', 'authenticated', 'unverified'].includes(p));
          if (provenance.length === 0 || bad.length > 0) throw new InputError(`--provenance takes requested, authenticated, unverified (comma-separated), got "${o.provenance}"`);
        }

        return withDatabase(async (handle) => {
          const { report, files } = await writeReport(
            handle.db,
            { period, timezone: o.timezone, source: (o.source as 'test-mail' | 'scan' | undefined) ?? null, survey: o.survey ?? null, provenance, by, minCell, trend, changesFrom, changesTo },
            { out: o.out, formats, lang, chromium: o.chromium },
          );
          const { terminalSummary } = await import('../../reports/terminal.ts');
          process.stdout.write(terminalSummary(report, lang));
          for (const f of files) process.stdout.write(`wrote ${f}\n`);
        });
      }),
    );
}
