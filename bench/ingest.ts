// Ingest throughput: 1,000,000 domains (with organization, industry and tags, like a real list) written to
// a temporary CSV, ingested into a fresh database (a new survey: the COPY path), then ingested again (an
// existing survey: staging table + ON CONFLICT, adding nothing). Target: the first under 10 s.
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { tmpdir, loadavg } from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { openDatabase, migrateSchema } from '../lib/db.ts';
import { ingestFile } from '../ingest/ingest.ts';
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
    handle = openDatabase(url.toString(), { max: 2 });
    await migrateSchema(handle.db);

    const load = loadavg()[0].toFixed(1);
    const first = await ingestFile(handle.sql, { file, survey: 'bench' });
    if (first.added !== ROWS) throw new Error(`expected ${ROWS} added, got ${first.added}`);
    const again = await ingestFile(handle.sql, { file, survey: 'bench' });
    if (again.added !== 0) throw new Error(`re-ingest added ${again.added}`);

    const rate = (ms: number) => Math.round(ROWS / (ms / 1000));
    console.log(`new survey:      ${(first.ms / 1000).toFixed(2)} s, ${rate(first.ms).toLocaleString('en')} rows/s`);
    console.log(`re-ingest (0 added): ${(again.ms / 1000).toFixed(2)} s, ${rate(again.ms).toLocaleString('en')} rows/s`);
    const when = new Date().toISOString().slice(0, 10);
    await updateSection(
      'ingest',
      `## ingest\n\n` +
        `\`npm run bench ingest\` (${when}; ${machine()}; PostgreSQL on the same machine; ` +
        `1-minute load average ${load} when it started)\n\n` +
        `| case | rows | time | rows/s |\n|---|---:|---:|---:|\n` +
        `| new survey (COPY into survey_domains) | ${ROWS.toLocaleString('en')} | ${(first.ms / 1000).toFixed(2)} s | ${rate(first.ms).toLocaleString('en')} |\n` +
        `| re-ingest of the same file (staging + ON CONFLICT, 0 added) | ${ROWS.toLocaleString('en')} | ${(again.ms / 1000).toFixed(2)} s | ${rate(again.ms).toLocaleString('en')} |\n\n` +
        `Each time covers the whole command: the encoding pre-scan, csv-parse, normalisation, COPY and commit. ` +
        `The list (${(bytes / 2 ** 20).toFixed(0)} MiB, domain + organization + industry + tags) is generated in a temporary directory and deleted.`,
    );
  } finally {
    await handle?.close();
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
    await admin.end();
    await rm(dir, { recursive: true, force: true });
  }
}
