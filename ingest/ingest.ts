// Loads a CSV list of domains into a survey, all in one transaction, so a failure at line 900,000 leaves the
// survey exactly as it was (and a survey this ingest created does not exist afterwards). The per-line work
// (read, decode, split, normalise, de-duplicate, COPY text, rejects rows) runs on one worker thread
// (ingest/ingest-worker.ts); this thread streams its COPY bytes into Postgres and its rows into the rejects CSV.
//
// Fates of the lines of the file, which add up exactly:
//   lines = header (0 or 1) + blank + accepted + duplicates + rejected   (a record spanning several lines
//   counts at the line it starts on, and its other lines are part of it)
// accepted = distinct valid domains of the file; added = those not yet in the survey (0 on a re-ingest).
//
// De-duplication stays on the worker (in file order, so the rejects CSV lists every line in order and names
// the first line of each repeat): moving it into Postgres (COPY into a temp table, then INSERT ... SELECT
// DISTINCT ON) measured 9.4 s of Postgres time for 1,000,000 rows against 4.5 s for the COPY straight into
// survey_domains (BENCHMARKS.md, ingest), and Postgres is already half of the two CPUs.
//
// One connection, one COPY stream. Two streams (two backends sharing the per-row work) cannot be one
// transaction: Postgres has no transaction spanning sessions, and two-phase commit needs
// max_prepared_transactions > 0 (0 by default, and on our server); staging on two connections and one final
// INSERT ... SELECT puts the costly part (the primary-key btree, half of the backend's time) back on one
// backend. Raw COPY of 1,000,000 rows in two uncoordinated streams measured 2.0-2.5 s against 2.7 s for one
// (issue 18), the best that design could have given before the ingest thread's own CPU.
// Also measured and not taken (issue 18, 1,000,000 rows): rows in key order cut the backend's CPU from 2.5 to
// 1.8 s (the btree inserts at its right edge), but sorting needs the whole file before the first row, so the
// thread's ~1.3 s no longer overlaps the COPY; staging an existing survey's rows in 8 MiB chunks, each
// inserted while the next is read, was 3.4 s against 3.2 s for one INSERT after the COPY (the backend waited
// on each chunk's round trips, and on two cores the thread and the backend contend anyway).
import { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { pipeline } from 'node:stream/promises';
import path from 'node:path';
import type postgres from 'postgres';
import { InputError } from '../lib/errors.ts';
import { sniffFile, SJIS_CODEC, type Encoding, type EncodingOption } from './sniff.ts';
import { RejectsWriter, rejectsPathFor } from './rejects.ts';
import type { WorkerCounts, WorkerInput, WorkerMessage } from './ingest-worker.ts';

export interface IngestOptions {
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

/** What an ingest did: the worker's counts of the file (ingest-worker.ts), and where they went. */
export interface IngestSummary extends WorkerCounts {
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
  /** Accepted domains that were new in the survey; null in a dry run. */
  added: number | null;
  /** The rejects CSV written, or null when nothing was rejected. */
  rejectsFile: string | null;
  dryRun: boolean;
  ms: number;
}

export const DEFAULT_MAX_RECORD_SIZE = 1 << 20;
/** The columns of survey_domains an ingest writes, in the order of the worker's COPY rows. */
export const INGEST_COLUMNS = ['survey_id', 'domain', 'organization', 'industry', 'tags', 'input', 'dkim_selectors'];
const STOP_DEADLINE_MS = 10_000;

/** Flags that take their value as the next argument when it is not given with "=" (node --help). */
const CPU_PROF_VALUE_FLAGS = new Set(['--cpu-prof-dir', '--cpu-prof-name', '--cpu-prof-interval']);

/**
 * The `--cpu-prof` flags of `execArgv`, each with its value: `--cpu-prof-dir DIR` (docs/bench.md) passed on as
 * the flag alone made the Worker constructor throw ERR_WORKER_INVALID_EXEC_ARGV.
 */
function cpuProfFlags(execArgv: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const a = execArgv[i];
    if (!a.startsWith('--cpu-prof')) continue;
    kept.push(a);
    if (CPU_PROF_VALUE_FLAGS.has(a) && i + 1 < execArgv.length) kept.push(execArgv[++i]);
  }
  return kept;
}

/**
 * The ingest thread, started before the file is sniffed and the transaction begun, so that loading its code
 * (~0.3 s of TypeScript through tsx) overlaps them; it waits for its WorkerInput (workerBatches sends it).
 */
class IngestThread {
  readonly worker: Worker;
  readonly inbox: WorkerMessage[] = [];
  crashed: Error | null = null;
  private wake: (() => void) | null = null;
  private exited = false;
  private readonly exit: Promise<void>;

  constructor() {
    // execArgv: not the parent's `--import tsx`, whose ESM loader, started again inside a worker on Node 20,
    // now and then hangs the thread at start or at exit (the worker loads its TypeScript itself, see there).
    // `--cpu-prof` flags are passed on, so a profiled ingest profiles this thread too.
    const execArgv = cpuProfFlags(process.execArgv);
    const worker = new Worker(new URL('./ingest-worker.mjs', import.meta.url), { execArgv });
    this.worker = worker;
    worker.on('message', (m: WorkerMessage) => { this.inbox.push(m); this.signal(); });
    worker.on('error', (err) => { this.crashed = err; this.signal(); });
    this.exit = new Promise<void>((resolve) => worker.once('exit', () => { this.exited = true; resolve(); }));
    worker.on('exit', (code) => { if (code !== 0) this.crashed ??= new Error(`the ingest thread exited with code ${code}`); this.signal(); });
  }

  private signal(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Resolves when a message arrives or the thread fails. */
  wait(): Promise<void> {
    return new Promise<void>((resolve) => { this.wake = resolve; });
  }

  /**
   * Asks the thread to stop and waits for it to exit by itself: terminate() on Node 20 can hang for good when
   * it races the thread's own exit while the thread's module loader (tsx) is shutting down. The deadline only
   * matters if the thread is stuck in a long synchronous step. Idempotent.
   */
  async stop(): Promise<void> {
    if (this.exited) return;
    this.worker.postMessage({ type: 'stop' });
    const deadline = setTimeout(() => void this.worker.terminate(), STOP_DEADLINE_MS);
    await this.exit;
    clearTimeout(deadline);
  }
}

/**
 * Runs the thread over the file and yields its COPY bytes, writing its rejects rows on the way; resolves
 * `counts` at the end. At most a few batches are in flight, so memory stays bounded whatever the file's size;
 * the thread stops with the generator (an error, or COPY failing, ends it early).
 */
async function* workerBatches(
  thread: IngestThread, input: WorkerInput, rejects: RejectsWriter, done: (counts: WorkerCounts) => void,
): AsyncGenerator<Uint8Array> {
  const { worker, inbox } = thread;
  worker.postMessage({ type: 'input', input });
  try {
    for (;;) {
      const m = inbox.shift();
      if (!m) {
        if (thread.crashed) throw thread.crashed;
        await thread.wait();
        continue;
      }
      if (m.type === 'batch') {
        worker.postMessage({ type: 'credit' });
        if (m.rejectRows) {
          rejects.addRows(m.rejects, m.rejectRows);
          await rejects.flush();
        }
        if (m.copy) yield m.copy;
      } else if (m.type === 'end') {
        done(m.counts);
        return;
      } else {
        if (m.input) throw new InputError(m.message);
        throw Object.assign(new Error(m.message), m.code ? { code: m.code } : {});
      }
    }
  } finally {
    await thread.stop();
  }
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

export function checkSurveyName(name: string): string {
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
export async function ingestFile(sql: postgres.Sql | null, options: IngestOptions): Promise<IngestSummary> {
  const started = new Date();
  const t0 = performance.now();
  const file = options.file;
  const survey = checkSurveyName(options.survey);
  const dryRun = options.dryRun ?? false;
  if (!dryRun && !sql) throw new Error('ingestFile needs a database unless dryRun is set');
  const maxRecordSize = options.maxRecordSize ?? DEFAULT_MAX_RECORD_SIZE;
  const thread = new IngestThread();
  try {
    return await ingestWith(thread, sql, options, { started, t0, file, survey, dryRun, maxRecordSize });
  } finally {
    await thread.stop(); // when the ingest failed before the thread was given its input
  }
}

async function ingestWith(
  thread: IngestThread, sql: postgres.Sql | null, options: IngestOptions,
  { started, t0, file, survey, dryRun, maxRecordSize }: { started: Date; t0: number; file: string; survey: string; dryRun: boolean; maxRecordSize: number },
): Promise<IngestSummary> {
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

  const input = (surveyId: number): WorkerInput => ({
    file, encoding: sniffed.encoding, codec: SJIS_CODEC, lineEnding: sniffed.lineEnding, quoted: sniffed.quoted,
    maxRecordSize, surveyId, copy: !dryRun,
  });
  const settle = (c: WorkerCounts) => {
    Object.assign(summary, c);
  };
  try {
    if (dryRun) {
      for await (const _ of workerBatches(thread, input(0), rejects, settle)) { /* counting only */ }
      await rejects.flush();
    } else {
      await sql!.begin(async (tx) => {
        const target = await findOrCreateSurvey(tx, survey);
        summary.surveyId = target.id;
        summary.created = target.created;
        // A new survey cannot conflict with anything and the file is already deduplicated: COPY straight
        // into the table. An existing one goes through a staging table and ON CONFLICT DO NOTHING, which
        // makes a re-ingest add nothing and keeps the metadata of domains already listed.
        if (!target.created) {
          await tx`CREATE TEMP TABLE ingest_stage (LIKE survey_domains INCLUDING DEFAULTS) ON COMMIT DROP`;
        }
        const table = target.created ? 'survey_domains' : 'ingest_stage';
        const copy = await tx`COPY ${tx(table)} (${tx(INGEST_COLUMNS)}) FROM STDIN`.writable();
        await pipeline(Readable.from(workerBatches(thread, input(target.id), rejects, settle), { objectMode: false }), copy);
        await rejects.flush();
        if (target.created) {
          summary.added = summary.accepted;
        } else {
          const res = await tx`
            INSERT INTO survey_domains (${tx(INGEST_COLUMNS)}) SELECT ${tx(INGEST_COLUMNS)} FROM ingest_stage
            ON CONFLICT (survey_id, domain) DO NOTHING`;
          summary.added = res.count;
        }
        const keepEmpty = options.rejectsPath !== undefined;
        summary.rejectsFile = keepEmpty || rejects.rows > 0 ? path.resolve(rejectsPath) : null;
        const [ing] = await tx<{ id: number }[]>`
          INSERT INTO ingests (survey_id, file, encoding, lines_read, accepted, duplicates, rejected, added,
                               started_at, blank_lines, reject_reasons, rejects_file)
          VALUES (${target.id}, ${path.resolve(file)}, ${summary.encoding}, ${summary.read}, ${summary.accepted},
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

/** The summary as the CLI prints it: one fact per line, the counts aligned. */
export function formatSummary(s: IngestSummary): string {
  const out: string[] = [];
  const enc = s.encoding === 'sjis' ? 'Shift_JIS (CP932)' : 'UTF-8';
  out.push(
    `${s.dryRun ? 'dry run: nothing written to the database; ' : ''}${s.file} -> survey "${s.survey}"` +
      `${s.created ? ' (new)' : ''}`,
  );
  out.push(`  encoding   ${enc}${s.encodingDetected ? (s.encoding === 'sjis' ? ' (detected: not UTF-8, decodes cleanly as CP932)' : ' (detected)') : ''}`);
  out.push(`  columns    ${s.headerless ? 'no header: one domain per line' : s.header.map((h) => h || '(empty)').join(', ')}`);
  const w = String(Math.max(s.read, s.lines)).length;
  const n = (v: number) => String(v).padStart(w);
  out.push(`  lines      ${n(s.lines)}${s.headerless ? '' : ' (1 header)'}${s.blank ? `, ${s.blank} blank` : ''}`);
  out.push(`  read       ${n(s.read)}`);
  out.push(
    `  accepted   ${n(s.accepted)}` +
      (s.added === null ? '' : `  (added ${s.added} new, ${s.accepted - s.added} already in the survey)`),
  );
  out.push(`  duplicate  ${n(s.duplicates)}`);
  const reasons = Object.entries(s.rejectReasons).sort((a, b) => b[1] - a[1]).map(([r, c]) => `${r} ${c}`).join(', ');
  out.push(`  rejected   ${n(s.rejected)}${reasons ? `  (${reasons})` : ''}`);
  if (s.rejectsFile) out.push(`  rejects    ${s.rejectsFile}`);
  if (s.warning) out.push(`  warning    ${s.warning}`);
  out.push(`  time       ${(s.ms / 1000).toFixed(2)} s`);
  return out.join('\n');
}
