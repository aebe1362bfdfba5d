// startLab() and `mailcensus lab up|validate`: the lab comes up from a world file, points mailcensus at itself
// through the env, logs SMTP to the state dir, and stops cleanly on SIGTERM leaving its ports free.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLab } from '../lab/index.ts';
import { loadConfig } from '../lib/config.ts';
import { greetingLine } from './test-mail-helpers.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(root, 'bin/mailcensus.mjs');
const worldFile = path.join(root, 'lab/worlds/test-dns.json');

function tmpDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'lab-up-'));
}

/** True if both UDP and TCP can bind this port on 127.0.0.1 (the lab left nothing behind). */
async function portFree(port: number): Promise<boolean> {
  const tcpOk = await new Promise<boolean>((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)));
  });
  const udpOk = await new Promise<boolean>((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => {
      s.close();
      resolve(false);
    });
    s.bind({ port, address: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)));
  });
  return tcpOk && udpOk;
}

test('startLab serves DNS, starts the SMTP hosts, writes the CA and the env, logs SMTP to the state dir, and stops', async () => {
  const dir = tmpDir();
  const lab = await startLab(worldFile, { dnsPort: 0, smtpPort: 0, stateDir: dir });
  try {
    assert.deepEqual(Object.keys(lab.env), [
      'MAILCENSUS_LAB', 'MAILCENSUS_RESOLVER', 'MAILCENSUS_SMTP_PORT', 'MAILCENSUS_HTTPS_PORT', 'MAILCENSUS_DNSBL_ZONES', 'MAILCENSUS_CLOCK',
      'MAILCENSUS_EXTRA_CA', 'MAILCENSUS_LAB_STATE',
    ]);
    // The env is what lib/config.ts reads: the checker would use exactly this lab.
    const cfg = loadConfig(lab.env);
    assert.equal(cfg.lab, true);
    assert.deepEqual(cfg.resolver, { host: '127.0.0.1', port: lab.dns.port });
    assert.equal(cfg.smtpPort, lab.smtpPort);
    assert.deepEqual(cfg.dnsblZones, ['bl.lab.test', 'dnsbl2.lab.test']);
    assert.equal(cfg.clock?.toISOString(), '2021-06-30T00:00:00.000Z');
    assert.equal(cfg.extraCaFile, path.join(dir, 'lab-ca.pem'));
    assert.equal(readFileSync(path.join(dir, 'lab-ca.pem'), 'utf8'), lab.caPem);
    assert.match(lab.caPem, /^-----BEGIN CERTIFICATE-----/);
    assert.equal(lab.env.MAILCENSUS_LAB_STATE, dir);
    assert.ok(existsSync(path.join(dir, 'lab.json')));

    const r = new Resolver({ timeout: 2000, tries: 1 });
    r.setServers([lab.env.MAILCENSUS_RESOLVER]);
    assert.deepEqual(await r.resolve4('mx.bigmail.test'), ['127.100.0.1']);

    const greeting = await greetingLine('127.100.0.1', lab.smtpPort);
    assert.match(greeting, /^220 /);
    assert.ok(lab.smtp.connections('127.100.0.1') >= 1);
  } finally {
    await lab.stop();
  }
  const log = readFileSync(path.join(dir, 'smtp-log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(log.some((e) => e.ip === '127.100.0.1' && e.event === 'connect'));
  assert.ok(log.some((e) => e.ip === '127.100.0.1' && e.event === 'command' && /^QUIT/i.test(e.line)));
  assert.ok(!existsSync(path.join(dir, 'lab.json')), 'lab.json is removed when the lab stops');
  assert.ok(await portFree(lab.dns.port));
  assert.ok(await portFree(lab.smtpPort));
  rmSync(dir, { recursive: true, force: true });
});

test('startLab with a bad world starts nothing and throws every error', async () => {
  const dir = tmpDir();
  const bad = path.join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ version: 1, name: 'bad', hosts: { a: { ip: '10.1.1.1' } }, domains: [{ name: 'x.test', mx: ['b'] }] }));
  await assert.rejects(startLab(bad, { dnsPort: 0, smtpPort: 0, stateDir: dir }), /2 errors\n.*10\.1\.1\.1.*\n.*unknown host id "b"/);
  assert.ok(!existsSync(path.join(dir, 'lab.json')));
  rmSync(dir, { recursive: true, force: true });
});

/** Spawns the CLI; collects output; resolves the exit code. */
function cli(args: string[], opts: { cwd?: string } = {}) {
  const child = spawn(process.execPath, [bin, ...args], { cwd: opts.cwd ?? root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, out: () => stdout, err: () => stderr };
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('`lab up` prints the env, writes --env-file, answers queries, and exits 0 on SIGTERM leaving its ports free', async () => {
  const dir = tmpDir();
  const envFile = path.join(dir, 'lab.env');
  // Node 20 itself checks that an --env-file argument exists, even after the script (docs/lab.md).
  writeFileSync(envFile, '');
  const p = cli(['lab', 'up', '--world', worldFile, '--dns-port', '0', '--smtp-port', '0', '--state-dir', path.join(dir, 'state'), '--env-file', envFile]);
  try {
    await waitFor(() => p.out().includes('MAILCENSUS_LAB_STATE='), 60000, `the env lines (stderr: ${p.err()})`);
    const env = Object.fromEntries(p.out().trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    assert.equal(env.MAILCENSUS_LAB, '1');
    assert.equal(readFileSync(envFile, 'utf8'), p.out());
    const r = new Resolver({ timeout: 2000, tries: 1 });
    r.setServers([env.MAILCENSUS_RESOLVER]);
    assert.deepEqual(await r.resolveMx('nullmx.test'), [{ exchange: '', priority: 0 }]);
    const dnsPort = Number(env.MAILCENSUS_RESOLVER.split(':')[1]);
    const smtpPort = Number(env.MAILCENSUS_SMTP_PORT);
    assert.equal(await portFree(dnsPort), false);

    const t0 = Date.now();
    p.child.kill('SIGTERM');
    const code = await Promise.race([p.exited, new Promise<string>((r) => setTimeout(() => r('hung'), 15000))]);
    assert.equal(code, 0, p.err());
    assert.ok(Date.now() - t0 < 10000);
    assert.match(p.err(), /lab stopped \(SIGTERM\)/);
    assert.ok(await portFree(dnsPort), 'DNS port free again');
    assert.ok(await portFree(smtpPort), 'SMTP port free again');
  } finally {
    p.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('`lab up` on a DNS port in use fails with a one-line error and exit 2', async () => {
  const blocker = dgram.createSocket('udp4');
  await new Promise<void>((r) => blocker.bind({ port: 0, address: '127.0.0.1' }, () => r()));
  const port = blocker.address().port;
  const dir = tmpDir();
  try {
    const p = cli(['lab', 'up', '--world', worldFile, '--dns-port', String(port), '--smtp-port', '0', '--state-dir', dir]);
    assert.equal(await p.exited, 2);
    assert.equal(p.err().trim().split('\n').length, 1, p.err());
    assert.match(p.err(), new RegExp(`DNS port ${port} .*in use`));
  } finally {
    blocker.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('`lab validate` prints every error with its JSON path and exits 2; a good world exits 0', async () => {
  const dir = tmpDir();
  const bad = path.join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ version: 1, name: 'bad', hosts: { a: { ip: '127.0.0.9' } }, domains: [{ name: 'x.test', mx: ['b'], dnssec: 'maybe' }] }));
  try {
    const p = cli(['lab', 'validate', '--world', bad]);
    assert.equal(await p.exited, 2);
    const lines = p.err().trim().split('\n');
    assert.match(lines[0], /invalid lab world .*bad\.json: 1 error$/);
    assert.match(lines[1], /\$\.domains\[0\]\.dnssec: must be one of/);
    // Schema errors come first; the semantic ones once the schema passes.
    writeFileSync(bad, JSON.stringify({ version: 1, name: 'bad', hosts: { a: { ip: '127.0.0.9' } }, domains: [{ name: 'x.test', mx: ['b'] }] }));
    const p2 = cli(['lab', 'validate', '--world', bad]);
    assert.equal(await p2.exited, 2);
    assert.match(p2.err(), /\$\.hosts\.a\.ip: 127\.0\.0\.9 is inside 127\.0\.0\.0\/16/);
    assert.match(p2.err(), /\$\.domains\[0\]\.mx\[0\]: unknown host id "b"/);
    const ok = cli(['lab', 'validate', '--world', worldFile]);
    assert.equal(await ok.exited, 0, ok.err());
    assert.match(ok.out(), /^ok: world "test-dns": 9 domains/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('`lab generate` writes a world that `lab validate` accepts; bad options exit 2', async () => {
  const dir = tmpDir();
  try {
    const out = path.join(dir, 'g.json');
    const g = cli(['lab', 'generate', '--domains', '120', '--seed', '7', '--out', out]);
    assert.equal(await g.exited, 0, g.err());
    const v = cli(['lab', 'validate', '--world', out]);
    assert.equal(await v.exited, 0, v.err());
    assert.match(v.out(), /: 120 domains/);
    const bad = cli(['lab', 'generate', '--domains', 'many']);
    assert.equal(await bad.exited, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('`lab send` delivers each sender\'s mail from its own IP and prints a one-line summary', async () => {
  const { SMTPServer } = await import('smtp-server');
  const seen: string[] = [];
  const receiver = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onConnect(session, cb) {
      seen.push(session.remoteAddress.replace(/^::ffff:/, ''));
      cb();
    },
    onData(stream, _session, cb) {
      stream.resume();
      stream.on('end', () => cb());
    },
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  const port = (receiver.server.address() as net.AddressInfo).port;
  try {
    const p = cli(['lab', 'send', '--world', path.join(root, 'lab/worlds/test-dns-send.json'), '--to', `127.0.0.1:${port}`]);
    assert.equal(await p.exited, 0, p.err());
    assert.match(p.out(), /^sent 1, failed 0/);
    assert.deepEqual(seen, ['127.210.0.1']);
    const bad = cli(['lab', 'send', '--world', path.join(root, 'lab/worlds/test-dns-send.json'), '--to', 'nowhere']);
    assert.equal(await bad.exited, 2);
  } finally {
    await new Promise<void>((r) => receiver.close(() => r()));
  }
});
