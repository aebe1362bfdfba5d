// Ingest throughput: 1,000,000 domains (with organization, industry and tags, like a real list) written to
// a temporary CSV, ingested into a fresh database (a new survey: the COPY path), then ingested again (an
// existing survey: staging table + ON CONFLICT, adding nothing). Target (issue 18): >= 300,000 rows/s.
// The ingest before the worker pipeline (bench/lib/ingest-v1.ts) runs in the same invocation, in the order
// old, new, new, old (so a change of the machine's load over the run weighs on both alike), each pair on an
// emptied table; the note gives each time and the ratio of the sums.
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { tmpdir, loadavg } from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { openDatabase, migrateSchema } from '../lib/db.ts';
import { ingestFile } from '../ingest/ingest.ts';
import { ingestFileV1 } from './lib/ingest-v1.ts';
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
    const impls = { old: ingestFileV1 as typeof ingestFile, new: ingestFile };
    const times: Record<'old' | 'new', { first: number[]; again: number[] }> = { old: { first: [], again: [] }, new: { first: [], again: [] } };
    for (const which of ['old', 'new', 'new', 'old'] as const) {
      await handle.sql`TRUNCATE survey_domains, ingests, surveys RESTART IDENTITY CASCADE`;
      await handle.sql`VACUUM ANALYZE survey_domains`;
      const ingest = impls[which];
      const first = await ingest(handle.sql, { file, survey: 'bench' });
      if (first.added !== ROWS) throw new Error(`${which}: expected ${ROWS} added, got ${first.added}`);
      const again = await ingest(handle.sql, { file, survey: 'bench' });
      if (again.added !== 0) throw new Error(`${which}: re-ingest added ${again.added}`);
      times[which].first.push(first.ms);
      times[which].again.push(again.ms);
      console.log(`${which}: new survey ${(first.ms / 1000).toFixed(2)} s, re-ingest ${(again.ms / 1000).toFixed(2)} s`);
    }
    const loadAfter = loadavg()[0].toFixed(1);
    const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
    const rate = (ms: number) => Math.round(ROWS / (ms / 1000));
    const row = (label: string, key: 'first' | 'again') => {
      const o = times.old[key];
      const n = times.new[key];
      const ratio = sum(o) / sum(n);
      console.log(`${label}: old ${o.map((x) => (x / 1000).toFixed(2)).join(' / ')} s, new ${n.map((x) => (x / 1000).toFixed(2)).join(' / ')} s, x${ratio.toFixed(2)}`);
      return `| ${label} | ${o.map((x) => `${(x / 1000).toFixed(2)} s`).join(', ')} (${rate(sum(o) / o.length).toLocaleString('en')} rows/s) | ` +
        `${n.map((x) => `${(x / 1000).toFixed(2)} s`).join(', ')} (${rate(sum(n) / n.length).toLocaleString('en')} rows/s) | ×${ratio.toFixed(2)} |`;
    };
    const when = new Date().toISOString().slice(0, 10);
    const lines = [row('new survey (COPY into survey_domains)', 'first'), row('re-ingest of the same file (staging + ON CONFLICT, 0 added)', 'again')];
    await updateSection(
      'ingest',
      `## ingest\n\n` +
        `\`npm run bench -- ingest\` (${when}; ${machine()}; PostgreSQL on the same machine, which is shared with ` +
        `other work: 1-minute load average ${load} at the start, ${loadAfter} at the end)\n\n` +
        `${ROWS.toLocaleString('en')} rows, old (bench/lib/ingest-v1.ts: csv-parse on a thread, the rest on the main thread) and new ` +
        `(ingest/ingest-worker.ts: everything per line on one thread) in one invocation, in the order old, new, new, old, ` +
        `each pair on an emptied table. Ratio = sum of the old times / sum of the new.\n\n` +
        `| case | old | new | ratio |\n|---|---:|---:|---:|\n${lines.join('\n')}\n\n` +
        `Each time covers the whole command: the encoding pre-scan, reading, normalisation, COPY and commit. ` +
        `The list (${(bytes / 2 ** 20).toFixed(0)} MiB, domain + organization + industry + tags) is generated in a temporary directory and deleted.`,
    );
  } finally {
    await handle?.close();
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
    await admin.end();
    await rm(dir, { recursive: true, force: true });
  }
}
