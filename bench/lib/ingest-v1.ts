// The ingest as it was before the one-thread pipeline (commit dc21082's ingest/ingest.ts), kept only so that
// `npm run bench -- ingest` measures old and new in one invocation. Not used by the product.
//
// Loads a CSV list of domains into a survey: streamed through csv-parse, normalised line by line, written
// with COPY, all in one transaction, so a failure at line 900,000 leaves the survey exactly as it was (and
// a survey this ingest created does not exist afterwards).
//
// Fates of the lines of the file, which add up exactly:
//   lines = header (0 or 1) + blank + accepted + duplicates + rejected   (a record spanning several lines
//   counts at the line it starts on, and its other lines are part of it)
// accepted = distinct valid domains of the file; added = those not yet in the survey (0 on a re-ingest).
import { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { pipeline } from 'node:stream/promises';
import path from 'node:path';
import { CsvError } from 'csv-parse';
import type postgres from 'postgres';
import { InputError } from '../../lib/errors.ts';
import { normalizeDomain, splitTags, type RejectReason } from '../../ingest/normalize.ts';
import { detectLayout, type Layout } from '../../ingest/columns.ts';
import { sniffFile, SJIS_CODEC, type Encoding, type EncodingOption, type LineEnding } from '../../ingest/sniff.ts';
import { RejectsWriter, rejectsPathFor } from '../../ingest/rejects.ts';

interface IngestOptions {
  file: string;
  /** Survey name; created when it does not exist. */
  survey: string;
  /** @defaultValue 'auto' */
  encoding?: EncodingOption;
  /** Where the rejects CSV goes. @defaultValue `<file>.rejects.csv` */
  rejectsPath?: string;
  /** Parse, normalise and write the rejects CSV, but touch no database. @defaultValue false */
  dryRun?: boolean;
  /** Longest record accepted, in characters (csv-parse max_record_size). @defaultValue 1 MiB */
  maxRecordSize?: number;
}

interface IngestSummary {
  file: string;
  survey: string;
  surveyId: number | null;
  ingestId: number | null;
  /** True when this ingest created the survey. */
  created: boolean;
  encoding: Encoding;
  /** True when `--encoding auto` chose the encoding. */
  encodingDetected: boolean;
  warning?: string;
  headerless: boolean;
  header: string[];
  /** Physical lines of the file, header included. */
  lines: number;
  /** Data records: every record after the header that is not blank. */
  read: number;
  blank: number;
  accepted: number;
  duplicates: number;
  rejected: number;
  /** Accepted domains that were new in the survey; null in a dry run. */
  added: number | null;
  rejectReasons: Partial<Record<RejectReason, number>>;
  /** The rejects CSV written, or null when nothing was rejected. */
  rejectsFile: string | null;
  dryRun: boolean;
  ms: number;
}

const DEFAULT_MAX_RECORD_SIZE = 1 << 20;
const COPY_BATCH = 2000;

/** COPY text format (PostgreSQL "COPY", File Formats): backslash escapes, \N for NULL. */
function copyText(v: string | null | undefined): string {
  if (v === null || v === undefined) return '\\N';
  if (!/[\\\t\n\r\0]/.test(v)) return v;
  return v.replace(/\0/g, '').replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

function arrayLiteral(items: string[]): string {
  if (items.length === 0) return '{}';
  return `{${items.map((t) => `"${t.replace(/[\\"]/g, '\\$&')}"`).join(',')}}`;
}

function cell(rec: string[], i: number | undefined): string | null {
  if (i === undefined) return null;
  const v = rec[i]?.trim();
  return v ? v : null;
}

/** A record with nothing but white space in every field (an empty line, or ",,,"). */
function isBlank(rec: string[]): boolean {
  for (const f of rec) if (f.length !== 0 && f.trim() !== '') return false;
  return true;
}

function lineBreaks(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 10) n++;
    else if (c === 13) { n++; if (s.charCodeAt(i + 1) === 10) i++; }
  }
  return n;
}

function csvErrorToInput(err: CsvError, file: string, line: number, max: number): InputError {
  if (err.code === 'CSV_MAX_RECORD_SIZE') {
    return new InputError(`${file} line ${line}: record longer than ${max} characters (is this a CSV list of domains?)`);
  }
  if (err.code === 'CSV_QUOTE_NOT_CLOSED') {
    return new InputError(`${file} line ${line}: a quoted field opened on this line is never closed`);
  }
  return new InputError(`${file} line ${line}: ${err.message}`);
}

/**
 * The records of the file, in batches, parsed by csv-parse on a worker thread (bench/lib/ingest-v1-parse-worker.mjs) so that
 * parsing overlaps with the normalisation and COPY done here. At most a few batches are in flight, so memory
 * stays bounded whatever the file's size; the worker stops with the generator.
 */
async function* recordBatches(file: string, encoding: Encoding, lineEnding: LineEnding, maxRecordSize: number): AsyncGenerator<string[][]> {
  const worker = new Worker(new URL('./ingest-v1-parse-worker.mjs', import.meta.url), {
    execArgv: [], // not the parent's `--import tsx`: see ingest/ingest.ts
    workerData: {
      file,
      encoding,
      codec: SJIS_CODEC,
      // All three line ends, even mixed in one file (lists concatenated from several sources, or Excel's LF
      // inside cells of a CRLF file); the one the whole file uses when the pre-scan found a single kind.
      recordDelimiter: lineEnding === 'mixed' ? ['\r\n', '\n', '\r'] : lineEnding,
      maxRecordSize,
    },
  });
  type Message =
    | { type: 'records'; records: string[][] }
    | { type: 'end' }
    | { type: 'error'; csv: boolean; code: string | null; message: string };
  const inbox: Message[] = [];
  let crashed: Error | null = null;
  let wake: (() => void) | null = null;
  const signal = () => { const w = wake; wake = null; w?.(); };
  worker.on('message', (m: Message) => { inbox.push(m); signal(); });
  worker.on('error', (err) => { crashed = err; signal(); });
  worker.on('exit', (code) => { if (code !== 0) crashed ??= new Error(`the CSV parser thread exited with code ${code}`); signal(); });
  try {
    for (;;) {
      const m = inbox.shift();
      if (!m) {
        if (crashed) throw crashed;
        await new Promise<void>((resolve) => { wake = resolve; });
        continue;
      }
      if (m.type === 'records') {
        worker.postMessage({ type: 'credit' });
        yield m.records;
      } else if (m.type === 'end') {
        return;
      } else {
        // Records parsed before the error came first, so the caller's line count names the right line.
        if (m.csv) throw new CsvError(m.code as ConstructorParameters<typeof CsvError>[0], m.message, {});
        throw Object.assign(new Error(m.message), m.code ? { code: m.code } : {});
      }
    }
  } finally {
    await worker.terminate();
  }
}

/** Which domain cell a record uses: the first non-empty of the domain, email and url columns. */
function domainCell(rec: string[], layout: Layout): string {
  for (const i of layout.domain) {
    const v = rec[i];
    if (v !== undefined && v.trim() !== '') return v;
  }
  return rec[layout.domain[0]] ?? '';
}

interface SurveyTarget {
  id: number;
  created: boolean;
}

async function findOrCreateSurvey(tx: postgres.TransactionSql, name: string): Promise<SurveyTarget> {
  const [made] = await tx<{ id: number }[]>`
    INSERT INTO surveys (name) VALUES (${name}) ON CONFLICT (name) DO NOTHING RETURNING id`;
  if (made) return { id: made.id, created: true };
  const [found] = await tx<{ id: number }[]>`SELECT id FROM surveys WHERE name = ${name}`;
  return { id: found.id, created: false };
}

function checkSurveyName(name: string): string {
  const n = name.trim();
  if (n === '') throw new InputError('--survey must not be empty');
  if (n.length > 200) throw new InputError('--survey is longer than 200 characters');
  if (/[\x00-\x1f\x7f]/.test(n)) throw new InputError('--survey contains a control character');
  return n;
}

/**
 * Ingests one file. `sql` is the postgres.js client (null only for a dry run); the schema must be current
 * (the CLI calls ensureSchema first). Throws InputError for a bad file, with the line when there is one.
 */
export async function ingestFileV1(sql: postgres.Sql | null, options: IngestOptions): Promise<IngestSummary> {
  const started = new Date();
  const t0 = performance.now();
  const file = options.file;
  const survey = checkSurveyName(options.survey);
  const dryRun = options.dryRun ?? false;
  if (!dryRun && !sql) throw new Error('ingestFile needs a database unless dryRun is set');
  const maxRecordSize = options.maxRecordSize ?? DEFAULT_MAX_RECORD_SIZE;
  const sniffed = await sniffFile(file, options.encoding ?? 'auto');

  const summary: IngestSummary = {
    file, survey, surveyId: null, ingestId: null, created: false,
    encoding: sniffed.encoding, encodingDetected: sniffed.detected, warning: sniffed.warning,
    headerless: false, header: [], lines: 0, read: 0, blank: 0, accepted: 0, duplicates: 0, rejected: 0,
    added: null, rejectReasons: {}, rejectsFile: null, dryRun, ms: 0,
  };
  const rejectsPath = options.rejectsPath ?? rejectsPathFor(file);
  if (path.resolve(rejectsPath) === path.resolve(file)) throw new InputError(`--rejects ${rejectsPath} is the input file`);
  const rejects = await RejectsWriter.open(rejectsPath);

  let surveyId = 0;
  // The record stream, turned into COPY text lines; counts and rejects are kept on the way.
  async function* copyLines(): AsyncGenerator<string> {
    const seen = new Map<string, number>();
    let layout: Layout | null = null;
    let line = 1; // physical line where the next record starts
    let batch: string[] = [];
    try {
      for await (const recs of recordBatches(file, sniffed.encoding, sniffed.lineEnding, maxRecordSize)) for (const rec of recs) {
        const start = line;
        let breaks = 0;
        for (const f of rec) if (f.includes('\n') || f.includes('\r')) breaks += lineBreaks(f);
        line = start + breaks + 1;

        const blank = isBlank(rec);
        if (layout === null && blank) {
          summary.blank++; // blank lines before the header
          continue;
        }
        if (layout === null) {
          const detected = detectLayout(rec);
          if (!detected.ok) throw new InputError(`${file}: ${detected.message}`);
          layout = detected.layout;
          summary.headerless = layout.headerless;
          summary.header = layout.header;
          if (!layout.headerless) continue;
        }
        if (blank) {
          summary.blank++;
          continue;
        }
        summary.read++;
        const raw = domainCell(rec, layout);
        const n = normalizeDomain(raw);
        if (!n.ok) {
          summary.rejected++;
          summary.rejectReasons[n.reason] = (summary.rejectReasons[n.reason] ?? 0) + 1;
          rejects.add(start, n.reason, n.detail, raw);
        } else {
          const first = seen.get(n.domain);
          if (first !== undefined) {
            summary.duplicates++;
            rejects.add(start, 'duplicate', `same domain as line ${first}`, raw);
          } else {
            seen.set(n.domain, start);
            summary.accepted++;
            const input = raw.trim() === n.domain ? null : raw.trim();
            batch.push(
              `${surveyId}\t${n.domain}\t${copyText(cell(rec, layout.organization))}\t${copyText(cell(rec, layout.industry))}\t` +
                `${copyText(arrayLiteral(layout.tags === undefined ? [] : splitTags(rec[layout.tags])))}\t${copyText(input)}\n`,
            );
            if (batch.length >= COPY_BATCH) {
              yield batch.join('');
              batch = [];
            }
          }
        }
        if (rejects.pending >= 1000) await rejects.flush();
      }
    } catch (err) {
      if (err instanceof CsvError) throw csvErrorToInput(err, file, line, maxRecordSize);
      throw err;
    }
    summary.lines = line - 1;
    if (layout === null) throw new InputError(`${file} is empty (no records, only blank space)`);
    if (summary.read === 0) {
      throw new InputError(`${file} has no domains${layout.headerless ? '' : ' after the header (line 1)'}`);
    }
    if (batch.length) yield batch.join('');
    await rejects.flush();
  }

  try {
    if (dryRun) {
      for await (const _ of copyLines()) { /* counting only */ }
    } else {
      await sql!.begin(async (tx) => {
        const target = await findOrCreateSurvey(tx, survey);
        surveyId = target.id;
        summary.surveyId = target.id;
        summary.created = target.created;
        // A new survey cannot conflict with anything and the file is already deduplicated: COPY straight
        // into the table. An existing one goes through a staging table and ON CONFLICT DO NOTHING, which
        // makes a re-ingest add nothing and keeps the metadata of domains already listed.
        if (!target.created) {
          await tx`CREATE TEMP TABLE ingest_stage (LIKE survey_domains INCLUDING DEFAULTS) ON COMMIT DROP`;
        }
        const table = target.created ? 'survey_domains' : 'ingest_stage';
        const copy = await tx`COPY ${tx(table)} (survey_id, domain, organization, industry, tags, input) FROM STDIN`.writable();
        await pipeline(Readable.from(copyLines()), copy);
        if (target.created) {
          summary.added = summary.accepted;
        } else {
          const res = await tx`
            INSERT INTO survey_domains (survey_id, domain, organization, industry, tags, input)
            SELECT survey_id, domain, organization, industry, tags, input FROM ingest_stage
            ON CONFLICT (survey_id, domain) DO NOTHING`;
          summary.added = res.count;
        }
        const keepEmpty = options.rejectsPath !== undefined;
        summary.rejectsFile = keepEmpty || rejects.rows > 0 ? path.resolve(rejectsPath) : null;
        const [ing] = await tx<{ id: number }[]>`
          INSERT INTO ingests (survey_id, file, encoding, lines_read, accepted, duplicates, rejected, added,
                               started_at, blank_lines, reject_reasons, rejects_file)
          VALUES (${surveyId}, ${path.resolve(file)}, ${summary.encoding}, ${summary.read}, ${summary.accepted},
                  ${summary.duplicates}, ${summary.rejected}, ${summary.added}, ${started}, ${summary.blank},
                  ${tx.json(summary.rejectReasons as Record<string, number>)}, ${summary.rejectsFile})
          RETURNING id`;
        summary.ingestId = ing.id;
      });
    }
  } catch (err) {
    await rejects.discard();
    throw err;
  }
  const written = await rejects.commit(options.rejectsPath !== undefined);
  summary.rejectsFile = written ? path.resolve(written) : null;
  summary.ms = Math.round(performance.now() - t0);
  return summary;
}
