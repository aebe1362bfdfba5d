// A world with more listening hosts than one process may open (`ulimit -n` is per process) is served by
// several SMTP processes (lab/index.ts, lab/smtp-shard.ts): every host greets, certificates of every process
// chain to the one lab CA, the one smtp-log.jsonl has every host, and SIGTERM stops them all.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { greetingLine } from './test-mail-helpers.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const HOSTS = 120;
// 1500 descriptors are kept for sessions, so this limit leaves 60 listening hosts per process: 2 processes.
const ULIMIT = 1560;

let dir: string;
let lab: ChildProcess;
let env: Record<string, string>;
let state: { pid: number; smtpPids: number[] };

/** EHLO, STARTTLS, then the handshake against the lab CA alone: `authorized` says whether the chain verifies. */
function starttls(ip: string, port: number, servername: string, ca: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: ip, port });
    let buf = '';
    let step = 0;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`${ip}: STARTTLS timed out`));
    }, 10_000);
    s.on('error', reject);
    s.on('data', (b) => {
      buf += b.toString();
      const lines = buf.split('\r\n');
      if (step === 0 && /^220 /m.test(buf)) {
        step = 1;
        buf = '';
        s.write('EHLO test.invalid\r\n');
      } else if (step === 1 && lines.some((l) => /^250 /.test(l))) {
        step = 2;
        buf = '';
        s.write('STARTTLS\r\n');
      } else if (step === 2 && /^220 /m.test(buf)) {
        step = 3;
        s.removeAllListeners('data');
        const t = tls.connect({ socket: s, servername, ca: [ca], rejectUnauthorized: false }, () => {
          clearTimeout(timer);
          const ok = t.authorized;
          t.destroy();
          resolve(ok);
        });
        t.on('error', reject);
      }
    });
  });
}

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'mailcensus-shards-'));
  const world = { version: 1, name: 'shards', populations: [{ count: HOSTS, name: 'sh-{i}.test', template: { mx: [{}] } }] };
  writeFileSync(path.join(dir, 'world.json'), JSON.stringify(world));
  const envFile = path.join(dir, 'lab.env');
  lab = spawn(
    'sh',
    ['-c', `ulimit -n ${ULIMIT} && exec "$0" bin/mailcensus.mjs lab up --world "$1" --dns-port 0 --smtp-port 0 --state-dir "$2" --env-out "$3"`,
      process.execPath, path.join(dir, 'world.json'), path.join(dir, 'state'), envFile],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  lab.stderr!.on('data', (b) => (err += b));
  const deadline = Date.now() + 60_000;
  while (!existsSync(envFile) || !readFileSync(envFile, 'utf8').includes('MAILCENSUS_LAB_STATE=')) {
    if (lab.exitCode !== null) throw new Error(`lab up exited with ${lab.exitCode}: ${err}`);
    if (Date.now() > deadline) throw new Error(`lab up did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  env = Object.fromEntries(
    readFileSync(envFile, 'utf8').trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  state = JSON.parse(readFileSync(path.join(dir, 'state', 'lab.json'), 'utf8'));
});

after(async () => {
  if (lab && lab.exitCode === null) {
    lab.kill('SIGKILL');
    for (const pid of state?.smtpPids ?? []) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

test('a world larger than one process can listen on is served by several SMTP processes, every host greeting', async () => {
  assert.equal(state.smtpPids.length, 1, 'one SMTP shard process besides lab up itself');
  const port = Number(env.MAILCENSUS_SMTP_PORT);
  const ips = Array.from({ length: HOSTS }, (_, i) => `127.100.0.${i + 1}`);
  const greetings = await Promise.all(ips.map((ip) => greetingLine(ip, port)));
  for (const [i, g] of greetings.entries()) assert.match(g, new RegExp(`^220 mx1\\.sh-${i + 1}\\.test ESMTP`));
});

test('hosts of the child process present certificates that chain to the lab CA lab up published', async () => {
  const ca = readFileSync(env.MAILCENSUS_EXTRA_CA!, 'utf8');
  const port = Number(env.MAILCENSUS_SMTP_PORT);
  // Shard 0 (this process) serves hosts 1, 3, …; the child serves 2, 4, ….
  assert.equal(await starttls('127.100.0.1', port, 'mx1.sh-1.test', ca), true);
  assert.equal(await starttls('127.100.0.2', port, 'mx1.sh-2.test', ca), true);
});

test('the one smtp-log.jsonl records the connections of every process, and SIGTERM stops them all', async () => {
  const lines = readFileSync(path.join(dir, 'state', 'smtp-log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const connected = new Set(lines.filter((e) => e.event === 'connect').map((e) => e.ip));
  assert.equal(connected.size, HOSTS);
  const exited = new Promise<number | null>((r) => lab.once('exit', (code) => r(code)));
  lab.kill('SIGTERM');
  assert.equal(await exited, 0);
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const deadline = Date.now() + 10_000;
  while (state.smtpPids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(state.smtpPids.filter(alive), []);
});
