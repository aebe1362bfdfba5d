// The receiver under load (issue 12): `mailcensus receive` in its own process, then 200 concurrent clients
// from 200 loopback addresses — half send a 10 MB mail as fast as loopback allows, half open DATA and drip a
// kilobyte a second — while a prober opens a fresh connection every 250 ms and times its greeting. Reported:
// the receiver's peak RSS against the stated bound (MAILCENSUS_RECEIVER_MEMORY_BYTES + 400 MiB for Node, tsx,
// socket buffers and uncollected garbage), the slowest greeting (target < 1 s), and what the clients were answered.
// A bench, not a test: it only measures and writes its section of BENCHMARKS.md.
import { mkdtemp, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir, loadavg } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import postgres from 'postgres';
import { spawnCli, peakRss, stopAll, waitFor } from './lib/proc.ts';
import { openRedis, deletePrefix } from './lib/redis.ts';
import { machine, updateSection } from './_report.ts';
import type { BenchArgs } from './lib/args.ts';
import { Worker } from 'node:worker_threads';
import { openDatabase, migrateSchema } from '../lib/db.ts';

// The greeting prober (plain JavaScript, run in a worker thread): for `seconds`, every 250 ms, connects from
// 127.3.x.y, waits for the first reply line, and records how long it took and its code.
const PROBER = `
const net = require('node:net');
const { parentPort, workerData } = require('node:worker_threads');
const { port, seconds } = workerData;
const greetings = [];
const codes = new Map();
const end = Date.now() + seconds * 1000;
function once(i) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.3.' + ((i >> 8) & 255) + '.' + ((i & 255) + 1) });
    let buf = '';
    const timer = setTimeout(() => { s.destroy(); greetings.push(10000); codes.set('none', (codes.get('none') || 0) + 1); resolve(); }, 10000);
    s.on('data', (d) => {
      buf += d.toString('latin1');
      if (!buf.includes('\\r\\n')) return;
      clearTimeout(timer);
      greetings.push(performance.now() - t0);
      const c = buf.slice(0, 3);
      codes.set(c, (codes.get(c) || 0) + 1);
      s.destroy();
      resolve();
    });
    s.on('error', () => { clearTimeout(timer); greetings.push(10000); codes.set('error', (codes.get('error') || 0) + 1); resolve(); });
  });
}
(async () => {
  for (let i = 0; Date.now() < end && i < 10000; i++) {
    await once(i);
    await new Promise((r) => setTimeout(r, 250));
  }
  parentPort.postMessage({ greetings, codes: [...codes] });
})();
`;

const SERVER_URL = process.env.TEST_DATABASE_SERVER_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const MiB = 1024 * 1024;

/** One raw SMTP client: reads replies, writes lines; every wait bounded. */
class Client {
  private buf = '';
  private waiters: ((line: string | null) => void)[] = [];
  private closed = false;
  constructor(readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\r\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 2);
        if (/^\d{3} /.test(line)) this.waiters.shift()?.(line);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w(null);
    });
  }
  static connect(port: number, localAddress: string, timeoutMs = 10_000): Promise<Client> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port, localAddress });
      const t = setTimeout(() => (s.destroy(), reject(new Error('connect timeout'))), timeoutMs);
      s.once('connect', () => (clearTimeout(t), resolve(new Client(s))));
      s.once('error', (e) => (clearTimeout(t), reject(e)));
    });
  }
  reply(timeoutMs = 60_000): Promise<string | null> {
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(null), timeoutMs);
      this.waiters.push((l) => (clearTimeout(t), resolve(l)));
    });
  }
  async cmd(line: string): Promise<string | null> {
    const r = this.reply();
    this.socket.write(`${line}\r\n`);
    return r;
  }
  /** Resolves once the data is handed to the kernel, or at once when the receiver has closed the session. */
  write(data: string | Buffer): Promise<void> {
    if (this.closed || this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      if (this.socket.write(data)) return resolve();
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.once('drain', done);
      this.socket.once('close', done);
    });
  }
  get isClosed(): boolean {
    return this.closed || this.socket.destroyed;
  }
  destroy() {
    this.socket.destroy();
  }
}

async function openData(port: number, ip: string, domain: string): Promise<{ c: Client; code: string }> {
  const c = await Client.connect(port, ip);
  const greet = await c.reply();
  if (!greet?.startsWith('220')) return { c, code: greet?.slice(0, 3) ?? 'closed' };
  await c.cmd('EHLO bench.example');
  const mf = await c.cmd('MAIL FROM:<bench@sender.example>');
  if (!mf?.startsWith('250')) return { c, code: mf?.slice(0, 3) ?? 'closed' };
  await c.cmd(`RCPT TO:<check@${domain}>`);
  const d = await c.cmd('DATA');
  return { c, code: d?.slice(0, 3) ?? 'closed' };
}

export async function run(args: BenchArgs): Promise<void> {
  const clients = Number(args['receiver-clients'] ?? 200);
  const mailMb = Number(args['receiver-mail-mb'] ?? 10);
  const seconds = Number(args['receiver-seconds'] ?? 40);
  const budget = Number(process.env.MAILCENSUS_RECEIVER_MEMORY_BYTES || 128 * MiB);
  const bound = budget + 400 * MiB;
  const domain = 'bench.mailcensus.test';
  const name = `mailcensus_bench_${randomBytes(4).toString('hex')}`;
  const prefix = `mc-bench-${randomBytes(4).toString('hex')}`;
  const logDir = await mkdtemp(path.join(tmpdir(), 'mailcensus-bench-receiver-'));
  const admin = postgres(SERVER_URL, { max: 1, onnotice: () => {} });
  // Ctrl-C: proc.ts stops the receiver and exits; the database goes with it.
  const dropOnInterrupt = () => void postgres(SERVER_URL, { max: 1, onnotice: () => {} }).unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
  process.once('SIGINT', dropOnInterrupt);
  const redis = openRedis(process.env.REDIS_URL || 'redis://127.0.0.1:6379');
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  let stopDrips = false;
  try {
    // Only `mailcensus migrate` (or this) changes a schema; the receiver refuses a database it does not know.
    const migrating = openDatabase(url.toString(), { max: 1 });
    await migrateSchema(migrating.db).finally(() => migrating.close());
    const rx = spawnCli('receive', ['receive', '--listen', '127.0.0.1:0', '--domain', domain, '--no-result-mail', '--log-level', 'warn'], {
      env: {
        ...process.env,
        DATABASE_URL: url.toString(),
        MAILCENSUS_QUEUE_PREFIX: prefix,
        MAILCENSUS_RECEIVER_MAX_CLIENTS: String(clients + 50),
        MAILCENSUS_RECEIVER_MAX_SIZE: String((mailMb + 1) * MiB),
        MAILCENSUS_RECEIVER_SESSION_TIMEOUT_MS: String((seconds + 60) * 1000),
      },
      logDir,
    });
    const port = await waitFor('the receiver to listen', () => Number(/ on 127\.0\.0\.1:(\d+)/.exec(rx.stderr())?.[1] ?? 0), 60_000);
    const baseRss = peakRss(rx.pid) ?? 0;
    const ipOf = (i: number, block: number) => `127.${block}.${(i >> 8) & 255}.${(i & 255) + 1}`;

    // The prober: a fresh client every 250 ms, in its own thread, so the load this process generates does not
    // delay its own measurement; the time to its 220 (or 421) greeting.
    const prober = new Worker(PROBER, { eval: true, workerData: { port, seconds } });
    const probed = new Promise<{ greetings: number[]; codes: [string, number][] }>((resolve, reject) => {
      prober.once('message', resolve);
      prober.once('error', reject);
    });
    const outcomes = new Map<string, number>();
    const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
    const body = Buffer.alloc(mailMb * MiB, 'x'.repeat(76) + '\r\n');
    const head = Buffer.from(`From: <bench@sender.example>\r\nSubject: bench\r\n\r\n`);
    const big = Math.ceil(clients / 2);
    let peak = baseRss;
    const sampler = setInterval(() => (peak = Math.max(peak, peakRss(rx.pid) ?? 0)), 200);
    const started = Date.now();
    const senders = Array.from({ length: big }, async (_, i) => {
      try {
        const { c, code } = await openData(port, ipOf(i, 1), domain);
        if (code !== '354') return count(`big: ${code} before DATA`);
        await c.write(head);
        // The receiver may close with 421 mid-DATA (memory budget full): the reply is read as it arrives.
        const final = c.reply(120_000);
        for (let off = 0; off < body.length && !c.isClosed; off += 256 * 1024) await c.write(body.subarray(off, off + 256 * 1024));
        if (!c.isClosed) await c.write('\r\n.\r\n');
        const r = await final;
        count(`big: ${r?.slice(0, 3) ?? 'closed'} ${r?.startsWith('421') ? 'mid-DATA' : 'after DATA'}`);
        c.destroy();
      } catch (err) {
        count(`big: ${(err as Error).message}`);
      }
    });
    const drips = Array.from({ length: clients - big }, async (_, i) => {
      try {
        const { c, code } = await openData(port, ipOf(i, 2), domain);
        if (code !== '354') return count(`drip: ${code} before DATA`);
        await c.write(head);
        // A kilobyte a second, until the bench ends (or the receiver closes the session).
        while (!stopDrips && !c.socket.destroyed && Date.now() - started < seconds * 1000) {
          await c.write(Buffer.alloc(1024, 'y'));
          await new Promise((r) => setTimeout(r, 1000));
        }
        count(c.socket.destroyed ? 'drip: closed by the receiver' : 'drip: still open at the end');
        c.destroy();
      } catch (err) {
        count(`drip: ${(err as Error).message}`);
      }
    });
    await Promise.all(senders);
    const bigSeconds = (Date.now() - started) / 1000;
    await Promise.all(drips);
    stopDrips = true;
    const { greetings, codes } = await probed;
    const greetCodes = new Map(codes);
    clearInterval(sampler);
    peak = Math.max(peak, peakRss(rx.pid) ?? 0);
    const stored = await postgres(url.toString(), { max: 1, onnotice: () => {} }).begin(async (s) => (await s`SELECT count(*)::int AS n, coalesce(sum(size), 0)::bigint AS bytes FROM test_mails`)[0]);
    await rx.stop(5000);

    const sorted = [...greetings].sort((a, b) => a - b);
    const p = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
    const lines = [
      `${clients} concurrent clients from ${clients} loopback addresses: ${big} sending a ${mailMb} MB mail each, ${clients - big} dripping 1 KB/s in DATA for ${seconds} s; a new client every 250 ms timing its greeting`,
      `receiver peak RSS ${(peak / MiB).toFixed(0)} MiB (at start ${(baseRss / MiB).toFixed(0)} MiB); bound ${(bound / MiB).toFixed(0)} MiB = memory budget ${(budget / MiB).toFixed(0)} MiB + 400 MiB (Node and tsx, socket buffers, garbage of the ~1 GB streamed through not yet collected): ${peak <= bound ? 'met' : 'NOT met'}`,
      `greetings of new clients (${greetings.length}): median ${p(0.5).toFixed(0)} ms, p99 ${p(0.99).toFixed(0)} ms, max ${(sorted[sorted.length - 1] ?? 0).toFixed(0)} ms (target < 1000 ms: ${(sorted[sorted.length - 1] ?? 0) < 1000 ? 'met' : 'NOT met'}); codes ${[...greetCodes].map(([k, v]) => `${k}×${v}`).join(', ')}`,
      `answers: ${[...outcomes].sort().map(([k, v]) => `${k} ×${v}`).join('; ')} (421 mid-DATA / 452 at MAIL FROM = the shared memory budget was full: the sender retries later)`,
      `stored ${stored.n} mails, ${(Number(stored.bytes) / MiB).toFixed(0)} MiB, the big senders done after ${bigSeconds.toFixed(0)} s`,
      `machine: ${machine()}; load average at the end ${loadavg().map((l) => l.toFixed(1)).join(' ')} (greeting times on a machine shared with other work measure its load as much as the receiver)`,
    ];
    console.log(lines.join('\n'));
    await updateSection('receiver', `## Receiver under load\n\n\`npm run bench -- receiver\` (bench/receiver.ts): ${lines.map((l) => `\n- ${l}`).join('')}\n`);
  } finally {
    stopDrips = true;
    await stopAll();
    await deletePrefix(redis, prefix).catch(() => {});
    redis.disconnect();
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
    await admin.end();
    if (!args.keep) await rm(logDir, { recursive: true, force: true });
  }
}
