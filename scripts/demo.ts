// `npm run demo`: the whole story of the 2021 survey on the lab, as a user would run it by hand —
//   lab up (lab/worlds/msc-2021.json) → `mailcensus receive` → `mailcensus worker` → every lab domain sends its
//   test mail (`lab send`) → wait until each mail is diagnosed → `mailcensus report` (HTML, PDF, JSON, CSV).
// The receiver, the worker and the report run as real `mailcensus` processes; the lab runs in this process.
// Options: --out DIR (default out/demo-2021), --lang ja|en (default ja), --workers N (default 2),
//          --world FILE (default lab/worlds/msc-2021.json), --result-mail (mail each result back to the lab MX),
//          --chromium auto|system|bundled|PATH (the PDF's browser; auto: Debian's chromium, else the bundled one).
// A missing system package never fails the demo: the PDF comes from the browser inside node_modules with the
// font embedded in the page, and should even that browser not start, the demo says so and still exits 0.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { Redis } from 'ioredis';
import { deleteKeysUnder } from '../workers/queues.ts';
import { startLab } from '../lab/index.ts';
import { sendTestMails } from '../lab/sender.ts';
import { freePort } from '../lab/listen.ts';
import { loadConfig } from '../lib/config.ts';
import { openDatabase, migrateSchema } from '../lib/db.ts';
import { redactUrl } from '../lib/redact-url.ts';
import { stopProcess } from '../lib/stop-process.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'bin/mailcensus.mjs');
const RECEIVER_DOMAIN = 'mailcensus.lab.test';
const WAIT_LIMIT_MS = 10 * 60_000;

const { values: args } = parseArgs({
  options: {
    out: { type: 'string', default: path.join(ROOT, 'out/demo-2021') },
    lang: { type: 'string', default: 'ja' },
    workers: { type: 'string', default: '2' },
    world: { type: 'string', default: path.join(ROOT, 'lab/worlds/msc-2021.json') },
    'result-mail': { type: 'boolean', default: false },
    chromium: { type: 'string', default: 'auto' },
  },
});

const say = (line: string) => process.stderr.write(`demo: ${line}\n`);

/** Creates the database of DATABASE_URL when it does not exist yet, so the demo works on a fresh machine. */
async function ensureDatabase(url: string): Promise<void> {
  const name = decodeURIComponent(new URL(url).pathname.slice(1));
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const sql = postgres(admin.toString(), { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql`SELECT 1 AS x FROM pg_database WHERE datname = ${name}`;
    if (!row) {
      await sql.unsafe(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
      say(`created database ${name}`);
    }
  } finally {
    await sql.end();
  }
}

const children: ChildProcess[] = [];
function start(name: string, argv: string[], env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(process.execPath, [CLI, ...argv], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let tail = '';
  child.stderr!.on('data', (d: Buffer) => {
    tail = (tail + d.toString()).slice(-4000);
  });
  child.on('exit', (code, signal) => {
    if (!stopping) say(`${name} exited early (${signal ?? code}); its last output:\n${tail}`);
  });
  children.push(child);
  return child;
}
let stopping = false;
async function stopChildren(): Promise<void> {
  stopping = true;
  await Promise.all(children.map((c) => stopProcess(c, 15_000)));
}

function runCli(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...argv], { env, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('exit', (code) => resolve(code ?? 1));
  });
}

async function main(): Promise<number> {
  if (args.lang !== 'ja' && args.lang !== 'en') throw new Error(`--lang must be ja or en, got "${args.lang}"`);
  const workers = Number(args.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 8) throw new Error(`--workers must be 1..8, got "${args.workers}"`);
  const base = loadConfig();
  await ensureDatabase(base.databaseUrl);

  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'mailcensus-demo-'));
  say(`bringing up the lab world ${path.relative(ROOT, args.world!)} …`);
  const lab = await startLab(args.world!, { dnsPort: 0, smtpPort: 0, httpsPort: 0, stateDir });
  const receiverPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...lab.env,
    DATABASE_URL: base.databaseUrl,
    REDIS_URL: base.redisUrl,
    // Its own queues: a user's workers (another environment) never pick up the demo's jobs, nor it theirs.
    MAILCENSUS_QUEUE_PREFIX: `mailcensus-demo-${process.pid}`,
    MAILCENSUS_RECEIVER_DOMAIN: RECEIVER_DOMAIN,
    MAILCENSUS_RECEIVER_LISTEN: `127.0.0.1:${receiverPort}`,
    MAILCENSUS_RESULT_MAIL: args['result-mail'] ? '1' : '0',
    // Every lab domain mails once, all within a minute: the internet's hourly cap (200) would skip the last ones.
    MAILCENSUS_RESULT_MAIL_PER_HOUR: '10000',
    // The lab answers at once: short timeouts keep the demo brisk, and every lab host is judged within them.
    MAILCENSUS_SMTP_CONNECT_TIMEOUT_MS: '5000',
    MAILCENSUS_SMTP_BANNER_TIMEOUT_MS: '10000',
    MAILCENSUS_SMTP_COMMAND_TIMEOUT_MS: '10000',
    MAILCENSUS_PER_IP_INTERVAL_MS: '0',
    MAILCENSUS_PER_IP_CONCURRENCY: '4',
    MAILCENSUS_TRANSIENT_RETRY_DELAY_MS: '2000',
    MAILCENSUS_LOG_LEVEL: 'warn',
  };
  const handle = openDatabase(base.databaseUrl, { max: 2 });
  try {
    await migrateSchema(handle.db); // the demo migrates its database, as `mailcensus migrate` would
    const before = await handle.sql<{ max: string | null }[]>`SELECT max(id)::text AS max FROM test_mails`;
    const firstId = before[0].max ?? '0';

    say(`starting the receiver on 127.0.0.1:${receiverPort} and ${workers} worker process(es) …`);
    start('receiver', ['receive'], env);
    for (let i = 0; i < workers; i++) start(`worker ${i + 1}`, ['worker'], env);
    await waitForPort(receiverPort, 60_000);

    const world = lab.world;
    say(`${world.domains.filter((d) => d.sender).length} lab domains send their test mail to check@${RECEIVER_DOMAIN} …`);
    const sent = await sendTestMails(world, { to: { host: '127.0.0.1', port: receiverPort }, rcpt: `check@${RECEIVER_DOMAIN}`, concurrency: 8 });
    const failed = sent.filter((s) => !s.ok);
    for (const f of failed) say(`send failed for ${f.domain}: ${f.error}`);
    const expected = sent.length - failed.length;

    const started = Date.now();
    let last = -1;
    for (;;) {
      const [row] = await handle.sql<{ received: number; diagnosed: number }[]>`
        SELECT count(*)::int AS received, count(d.id)::int AS diagnosed
        FROM test_mails t LEFT JOIN diagnoses d ON d.test_mail_id = t.id
        WHERE t.id > ${firstId}`;
      if (row.diagnosed !== last) {
        say(`diagnosed ${row.diagnosed} / ${expected} (received ${row.received})`);
        last = row.diagnosed;
      }
      if (row.diagnosed >= expected) break;
      if (Date.now() - started > WAIT_LIMIT_MS) throw new Error(`only ${row.diagnosed} of ${expected} mails were diagnosed within ${WAIT_LIMIT_MS / 60000} minutes`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    say(`all ${expected} test mails diagnosed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await stopChildren();
    await removeQueues(base.redisUrl, env.MAILCENSUS_QUEUE_PREFIX!).catch(() => {});
    await handle.close();
    await lab.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }

  const year = String(new Date(lab.world.observedAt ?? Date.now()).getUTCFullYear());
  say(`writing the ${year} report to ${args.out} …`);
  const pdf = path.join(args.out!, 'report.pdf');
  rmSync(pdf, { force: true });
  const code = await runCli(['report', '--source', 'test-mail', '--year', year, '--out', args.out!, '--lang', args.lang!, '--chromium', args.chromium!], env);
  const html = path.join(args.out!, 'report.html');
  // Exit 3 after the HTML was written is the browser (Postgres would have failed before any file): the
  // report itself is complete, only its printout is missing — not a reason for the demo to fail.
  const pdfOnly = code === 3 && existsSync(html) && !existsSync(pdf);
  if (code === 0 || pdfOnly) {
    say(`HTML: ${html}`);
    say(pdfOnly ? `PDF:  not written — no browser could start (see the error above); open the HTML and print it instead` : `PDF:  ${pdf}`);
    say(`the diagnoses are in ${redactUrl(base.databaseUrl, 'DATABASE_URL')} (view diagnosis_results); see README "SQL for analysts"`);
    return 0;
  }
  return code;
}

/** The demo's queues are its own (a per-run prefix): remove their keys so the demo leaves Redis as it found it. */
async function removeQueues(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  try {
    await deleteKeysUnder(redis, prefix);
  } finally {
    redis.disconnect();
  }
}

async function waitForPort(port: number, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`the receiver did not start listening on 127.0.0.1:${port} within ${ms / 1000} s`);
}

main().then(
  (code) => process.exit(code),
  async (err) => {
    await stopChildren();
    process.stderr.write(`demo: error: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
