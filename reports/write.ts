// Writes a report's files into --out: report.json first (the contract), then the CSVs, the HTML drawn from
// that saved JSON, and last the PDF (so a missing Chromium costs only the PDF).
import { access, mkdir, rm, stat, writeFile, constants } from 'node:fs/promises';
import path from 'node:path';
import type { Db } from '../lib/db.ts';
import { InputError } from '../lib/errors.ts';
import { buildReport, type BuildOptions, type Report, type ReportRequest } from './aggregate.ts';
import { summaryEn, summaryJa } from './summary.ts';
import { aggregateCsvs, domainsCsv } from './csv.ts';
import { renderCharts } from './charts.ts';
import { renderHtml } from './html.ts';
import { htmlToPdf, type ChromiumChoice } from './pdf.ts';
import { ChromiumUnavailableError } from '../lib/browser.ts';
import { domainRows } from './queries.ts';
import type { Lang } from './labels.ts';

export const FORMATS = ['html', 'pdf', 'json', 'csv', 'xlsx'] as const;
export type Format = (typeof FORMATS)[number];

export function parseFormats(raw: string): Format[] {
  const list = raw.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  if (list.length === 0) throw new InputError('--format: give one or more of html,pdf,json,csv,xlsx');
  for (const f of list) {
    if (!(FORMATS as readonly string[]).includes(f)) throw new InputError(`--format: unknown format "${f}" (use html,pdf,json,csv,xlsx)`);
  }
  return [...new Set(list)] as Format[];
}

export interface WriteOptions {
  out: string;
  formats: Format[];
  lang: Lang;
  /** auto (Debian's chromium, else the bundled one), system, bundled, or a path. @defaultValue auto */
  chromium?: ChromiumChoice;
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(() => true, () => false);
}

/** Creates --out (with parents) and proves it is writable, naming it in the error otherwise. */
export async function prepareOut(out: string): Promise<void> {
  try {
    // One level at a time: Node's recursive mkdir can loop forever on pseudo file systems such as /proc.
    const missing: string[] = [];
    let dir = path.resolve(out);
    while (!(await exists(dir))) {
      missing.unshift(dir);
      const parent = path.dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
    for (const d of missing) await mkdir(d);
    await access(out, constants.W_OK);
    const probe = path.join(out, `.mailcensus-write-test-${process.pid}`);
    await writeFile(probe, '');
    await rm(probe, { force: true });
  } catch (err) {
    throw new InputError(`--out ${out}: cannot write there (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** The report object with its generated summary in both languages. */
export async function computeReport(db: Db, req: ReportRequest, options: BuildOptions = {}): Promise<Report> {
  const report = await buildReport(db, req, options);
  report.summary = { ja: summaryJa(report), en: summaryEn(report) };
  return report;
}

/** Renders every file format but the per-domain CSV from a saved report object (report.json). */
export async function writeFromReport(report: Report, o: WriteOptions): Promise<string[]> {
  const files: string[] = [];
  const put = async (name: string, data: string | Buffer) => {
    const p = path.join(o.out, name);
    await writeFile(p, data);
    files.push(p);
  };
  // Everything below reads the JSON as saved, never the live object: charts from the saved aggregate.
  const json = JSON.stringify(report, null, 2) + '\n';
  const saved = JSON.parse(json) as Report;
  if (o.formats.includes('json')) await put('report.json', json);
  if (o.formats.includes('csv')) for (const [name, text] of Object.entries(aggregateCsvs(saved, o.lang))) await put(name, text);
  if (o.formats.includes('xlsx')) {
    const { reportXlsx } = await import('./xlsx.ts');
    await put('report.xlsx', await reportXlsx(saved, o.lang));
  }
  let html: string | null = null;
  if (o.formats.includes('html') || o.formats.includes('pdf')) {
    html = renderHtml(saved, await renderCharts(saved, o.lang), o.lang);
    if (o.formats.includes('html')) await put('report.html', html);
  }
  if (o.formats.includes('pdf') && html !== null) {
    const p = path.join(o.out, 'report.pdf');
    try {
      await htmlToPdf(html, p, o.chromium ?? 'auto');
    } catch (err) {
      if (err instanceof ChromiumUnavailableError) err.message += '; the other formats were written';
      throw err;
    }
    files.push(p);
  }
  return files;
}

/** Computes the report and writes the requested formats; returns the report and the files written. */
export async function writeReport(db: Db, req: ReportRequest, o: WriteOptions): Promise<{ report: Report; files: string[] }> {
  await prepareOut(o.out);
  const files: string[] = [];
  // The per-domain CSV is read from the very snapshot the figures are computed from, in the same transaction:
  // its rows always add up to the report's figures, even while diagnoses are being stored.
  const onSnapshot: BuildOptions['onSnapshot'] = o.formats.includes('csv')
    ? async (trx, set) => {
        const p = path.join(o.out, 'domains.csv');
        await writeFile(p, domainsCsv(await domainRows(trx, set)));
        files.push(p);
      }
    : undefined;
  const report = await computeReport(db, req, { onSnapshot });
  try {
    files.push(...(await writeFromReport(report, o)));
  } catch (err) {
    (err as { filesWritten?: string[] }).filesWritten = files;
    throw err;
  }
  return { report, files };
}
