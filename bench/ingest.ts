// Ingest throughput: 1,000,000 domains (with organization, industry and tags, like a real list) written to
// a temporary CSV, ingested into a fresh database (a new survey: the COPY path), then ingested again (an
// existing survey: staging table + ON CONFLICT, adding nothing). Target (issue 18): >= 300,000 rows/s.
//
// The bound it is compared with, in the same invocation: postgres.js COPY of the very rows the ingest stored
// (read back with COPY TO after the first ingest, held in memory), into the same table, in one transaction;
// for the re-ingest, the same rows into a temporary staging table and INSERT ...
// ON CONFLICT DO NOTHING. That is what Postgres costs with no file to read, no parsing and no normalising:
// "ours / raw COPY" says how close the ingest is to it. Order: ours, raw, raw, ours (so a change of the
// machine's load over the run weighs on both alike), each on an emptied table; the table gives the best
// (shortest) time of each, the CPU seconds of this process (every thread) and of the Postgres backend.
//
// Profile: `node --cpu-prof --cpu-prof-dir DIR --import tsx bench/run.ts ingest` profiles the main thread
// and the ingest thread (ingest/ingest.ts passes --cpu-prof on to it).
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { tmpdir, loadavg } from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { openDatabase, migrateSchema } from '../lib/db.ts';
import { ingestFile, INGEST_COLUMNS } from '../ingest/ingest.ts';
import { cpuSeconds } from './lib/proc.ts';
import { machine, updateSection } from './_report.ts';

const ROWS = Number(process.env.BENCH_INGEST_ROWS || 1_000_000);
const SERVER_URL = process.env.TEST_DATABASE_SERVER_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const INDUSTRIES = ['製造業', '情報通信業', '卸売業', '小売業', '金融業', '建設業', '教育', '公務', 'サービス業', 'その他'];
const TLDS = ['co.jp', 'jp', 'ne.jp', 'or.jp', 'com', 'net', 'org'];

async function writeList(file: string): Promise<number> {
  const out = createWriteStream(file);
  out.write('domain,organization,industry,tags\n');
  let buf: string[] = [];
  for (let i = 0; i < ROWS; i++) {
    buf.push(`d${i.toString(36)}.example${i % 1000}.${TLDS[i % TLDS.length]},株式会社サンプル${i},${INDUSTRIES[i % 10]},bench;batch${i % 50}\n`);
    if (buf.length === 10000) {
      if (!out.write(buf.join(''))) await once(out, 'drain');
      buf = [];
    }
  }
  out.write(buf.join(''));
  out.end();
  await once(out, 'finish');
  return (await stat(file)).size;
}

interface Timing {
  ms: number;
  /** CPU seconds of this process, all threads (the ingest thread included). */
  cpu: number;
  /** CPU seconds of the Postgres backend serving the connection. */
  pg: number;
}

/** Times `fn`, with the CPU this process and the backend `pid` spent in it (from /proc: Linux only). */
async function timed(pid: number, fn: () => Promise<void>): Promise<Timing> {
  const pg0 = cpuSeconds(pid) ?? NaN;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { ms, cpu: (cpu.user + cpu.system) / 1e6, pg: (cpuSeconds(pid) ?? NaN) - pg0 };
}

async function copyInto(tx: postgres.TransactionSql, table: string, chunks: Buffer[]): Promise<void> {
  const copy = await tx`COPY ${tx(table)} (${tx(INGEST_COLUMNS)}) FROM STDIN`.writable();
  for (const c of chunks) if (!copy.write(c)) await once(copy, 'drain');
  copy.end();
  await once(copy, 'finish');
}

export async function run(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mailcensus-bench-'));
  const file = path.join(dir, 'domains.csv');
  const name = `mailcensus_bench_${randomBytes(4).toString('hex')}`;
  const admin = postgres(SERVER_URL, { max: 1, onnotice: () => {} });
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  let handle: ReturnType<typeof openDatabase> | null = null;
  try {
    const bytes = await writeList(file);
    console.log(`generated ${ROWS.toLocaleString('en')} domains (${(bytes / 2 ** 20).toFixed(1)} MiB) in ${file}`);
    await admin.unsafe(`CREATE DATABASE ${name}`);
    // One connection: every statement, the ingest's included, runs in the one backend whose CPU is read.
    handle = openDatabase(url.toString(), { max: 1 });
    const sql = handle.sql;
    await migrateSchema(handle.db);
    const [{ pid }] = await sql<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;

    const reset = async () => {
      await sql`TRUNCATE survey_domains, ingests, surveys RESTART IDENTITY CASCADE`;
      await sql`VACUUM ANALYZE survey_domains`;
      await sql`CHECKPOINT`; // each run starts with the same WAL state (full-page images after a checkpoint)
    };
    const times = { ours: { first: [] as Timing[], again: [] as Timing[] }, raw: { first: [] as Timing[], again: [] as Timing[] } };
    let rows: Buffer[] = [];

    const ours = async () => {
      await reset();
      const first = await timed(pid, async () => {
        const s = await ingestFile(sql, { file, survey: 'bench' });
        if (s.added !== ROWS) throw new Error(`expected ${ROWS} added, got ${s.added}`);
      });
      if (rows.length === 0) {
        // The rows exactly as the ingest stored them, as COPY text (added_at is left to its default, as there).
        // On a connection of its own: postgres.js 3.4 does not give the connection of a COPY TO readable back
        // to the pool, and the bench's pool has one connection.
        const reader = postgres(url.toString(), { max: 1, onnotice: () => {} });
        try {
          const out = await reader`COPY survey_domains (${reader(INGEST_COLUMNS)}) TO STDOUT`.readable();
          for await (const chunk of out) rows.push(chunk as Buffer);
        } finally {
          await reader.end({ timeout: 1 });
        }
        rows = [Buffer.concat(rows)].flatMap((b) => Array.from({ length: Math.ceil(b.length / 2 ** 20) }, (_, i) => b.subarray(i * 2 ** 20, (i + 1) * 2 ** 20)));
      }
      const again = await timed(pid, async () => {
        const s = await ingestFile(sql, { file, survey: 'bench' });
        if (s.added !== 0) throw new Error(`re-ingest added ${s.added}`);
      });
      times.ours.first.push(first);
      times.ours.again.push(again);
      console.log(`ours: new survey ${(first.ms / 1000).toFixed(2)} s, re-ingest ${(again.ms / 1000).toFixed(2)} s`);
    };
    const raw = async () => {
      await reset();
      const first = await timed(pid, () => sql.begin(async (tx) => {
        await tx`INSERT INTO surveys (name) VALUES ('bench')`;
        await copyInto(tx, 'survey_domains', rows);
      }));
      const again = await timed(pid, () => sql.begin(async (tx) => {
        await tx`CREATE TEMP TABLE ingest_stage (LIKE survey_domains INCLUDING DEFAULTS) ON COMMIT DROP`;
        await copyInto(tx, 'ingest_stage', rows);
        const res = await tx`
          INSERT INTO survey_domains (${tx(INGEST_COLUMNS)}) SELECT ${tx(INGEST_COLUMNS)} FROM ingest_stage
          ON CONFLICT (survey_id, domain) DO NOTHING`;
        if (res.count !== 0) throw new Error(`raw re-ingest added ${res.count}`);
      }));
      times.raw.first.push(first);
      times.raw.again.push(again);
      console.log(`raw COPY: new survey ${(first.ms / 1000).toFixed(2)} s, re-ingest ${(again.ms / 1000).toFixed(2)} s`);
    };

    const load = loadavg()[0].toFixed(1);
    for (const step of [ours, raw, raw, ours]) await step();
    const loadAfter = loadavg()[0].toFixed(1);

    const best = (t: Timing[]) => t.reduce((a, b) => (b.ms < a.ms ? b : a));
    const rate = (t: Timing) => Math.round(ROWS / (t.ms / 1000)).toLocaleString('en');
    const cell = (t: Timing[]) => {
      const b = best(t);
      return `${t.map((x) => `${(x.ms / 1000).toFixed(2)} s`).join(', ')} (**${rate(b)} rows/s**; CPU ${b.cpu.toFixed(1)} s here, ${b.pg.toFixed(1)} s Postgres)`;
    };
    const row = (label: string, key: 'first' | 'again') => {
      const ratio = best(times.raw[key]).ms / best(times.ours[key]).ms;
      console.log(`${label}: ours ${rate(best(times.ours[key]))} rows/s, raw COPY ${rate(best(times.raw[key]))} rows/s, ours / raw ${ratio.toFixed(2)}`);
      return `| ${label} | ${cell(times.ours[key])} | ${cell(times.raw[key])} | ${ratio.toFixed(2)} |`;
    };
    const when = new Date().toISOString().slice(0, 10);
    const lines = [row('new survey (COPY into survey_domains)', 'first'), row('re-ingest of the same file (staging + ON CONFLICT, 0 added)', 'again')];
    await updateSection(
      'ingest',
      `## ingest\n\n` +
        `\`npm run bench -- ingest\` (${when}; ${machine()}; PostgreSQL on the same machine, which is shared with ` +
        `other work: 1-minute load average ${load} at the start, ${loadAfter} at the end)\n\n` +
        `${ROWS.toLocaleString('en')} rows. **ours** = \`ingestFile\` (ingest/ingest.ts) on the CSV file; **raw COPY** = postgres.js ` +
        `COPY of the same rows (read back from the table after the first ingest, held in memory as COPY text) into the same ` +
        `table, with nothing to read, parse or normalise: the Postgres bound. In one invocation, in the order ours, raw, raw, ` +
        `ours, each on an emptied table; rows/s and CPU are of the best run. ours / raw COPY = best raw time / best ours time ` +
        `(1.00 = as fast as Postgres takes the rows).\n\n` +
        `| case | ours | raw COPY of the same rows | ours / raw COPY |\n|---|---:|---:|---:|\n${lines.join('\n')}\n\n` +
        `Each time of ours covers the whole command: the encoding pre-scan, reading, normalisation, COPY and commit. ` +
        `CPU = seconds of this process (all threads) and of the Postgres backend, from /proc. ` +
        `The list (${(bytes / 2 ** 20).toFixed(0)} MiB, domain + organization + industry + tags) is generated in a temporary directory and deleted.`,
    );
  } finally {
    await handle?.close();
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
    await admin.end();
    await rm(dir, { recursive: true, force: true });
  }
}
