// `mailcensus request`, `show` and `receive` as a user runs them: real processes, a real database and Redis.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { insertTestMail } from '../receiver/store.ts';
import { insertDiagnosis, type Diagnosis } from '../lib/diagnosis.ts';
import { CRITERIA, finding, type CriterionFindings } from '../lib/criteria.ts';
import { judgeVerdict } from '../lib/verdict.ts';
import { sendMail } from './test-mail-helpers.ts';
import { findingResults } from './report-fixtures.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin/mailcensus.mjs');
let tdb: TestDatabase;

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, DATABASE_URL: tdb.url, MAILCENSUS_RECEIVER_DOMAIN: 'check.mailcensus.test', LANG: 'C', ...extra };
}

function run(args: string[], extra: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('node', [BIN, ...args], { env: env(extra), timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

before(async () => {
  tdb = await createTestDatabase();
});
after(async () => {
  await tdb.drop();
});

test('request prints a fresh check-<token>@ address per call and stores it for the domain (A-label)', async () => {
  const a = await run(['request', '--domain', 'Example.CO.JP']);
  const b = await run(['request', '--domain', 'bücher.example', '--json']);
  assert.equal(a.code, 0, a.stderr);
  assert.match(a.stdout, /^check-[a-z2-7]{16}@check\.mailcensus\.test\n$/);
  const j = JSON.parse(b.stdout);
  assert.equal(j.domain, 'xn--bcher-kva.example');
  assert.notEqual(j.address, a.stdout.trim());
  const rows = await tdb.db.withTables<{ diagnosis_requests: { token: string; domain: string } }>().selectFrom('diagnosis_requests').select(['token', 'domain']).execute();
  assert.deepEqual(rows.map((r) => r.domain).sort(), ['example.co.jp', 'xn--bcher-kva.example']);
});

test('request refuses a non-domain with exit 2 and a one-line error', async () => {
  const r = await run(['request', '--domain', 'not a domain']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^mailcensus: error: --domain: not a domain name: "not a domain"\n$/);
});

test('show prints the verdict and every criterion in English or Japanese, JSON on request, exit 2 if unknown', async () => {
  const id = await insertTestMail(tdb.db, {
    receivedAt: new Date('2021-06-30T00:00:00Z'), clientIp: '192.0.2.1', helo: 'out.shown.test', mailFrom: 'a@shown.test',
    rcptTo: ['check@check.mailcensus.test'], token: null, domain: 'shown.test', headerFrom: 'a@shown.test',
    tls: { used: false, offered: true, protocol: null, cipher: null }, raw: Buffer.from('From: a@shown.test\r\n\r\nhi\r\n'),
  });
  const criteria = {} as CriterionFindings;
  for (const c of CRITERIA) criteria[c] = finding('ok', 'fine');
  criteria.tls_send = finding('ng', 'cleartext', 'the test mail arrived in clear although we offered STARTTLS');
  const d: Diagnosis = {
    source: 'test-mail', domain: 'shown.test', observedAt: new Date('2021-06-30T00:00:00Z'), criteria,
    verdict: judgeVerdict(criteria, 'test-mail'),
    findings: findingResults({ dmarcPolicy: 'absent', mtaSts: 'absent', tlsRpt: 'absent', tlsVersions: [], certProblems: [], nullMx: false }),
    observations: {}, mx: [],
  };
  const { id: did } = await insertDiagnosis(tdb.db, d, { source: 'test-mail', testMailId: id });
  const en = await run(['show', did]);
  assert.equal(en.code, 0, en.stderr);
  assert.match(en.stdout, /Verdict: Needs improvement/);
  assert.match(en.stdout, /TLS \(sending\)\s+NG\s+cleartext — the test mail arrived in clear/);
  for (const c of CRITERIA) assert.ok(en.stdout.includes(c === 'tls_send' ? 'cleartext' : 'fine'));
  const ja = await run(['show', did, '--lang', 'ja']);
  assert.match(ja.stdout, /評価: 改善が必要/);
  assert.match(ja.stdout, /SSL\/TLSメール送信\s+NG\s+cleartext/);
  const js = JSON.parse((await run(['show', did, '--json'])).stdout);
  assert.equal(js.verdict, 'needs_improvement');
  assert.equal(js.criteria.tls_send.status, 'ng');
  assert.equal(js.testMail.client_ip, '192.0.2.1');
  const missing = await run(['show', '987654']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /no diagnosis with id 987654/);
  assert.equal((await run(['show', 'abc'])).code, 2);
});

test('receive listens, stores a mail, enqueues its job on Redis, and stops cleanly on SIGTERM', async () => {
  const prefix = `mc-test-${randomBytes(4).toString('hex')}`;
  const child = spawn('node', [BIN, 'receive', '--listen', '127.0.0.1:0', '--no-result-mail'], {
    env: env({ MAILCENSUS_QUEUE_PREFIX: prefix, MAILCENSUS_LOG_LEVEL: 'warn' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  try {
    let stderr = '';
    const port = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`receive did not start: ${stderr}`)), 30_000);
      child.stderr.on('data', (d) => {
        stderr += d;
        const m = /on 127\.0\.0\.1:(\d+)/.exec(stderr);
        if (m) {
          clearTimeout(t);
          resolve(Number(m[1]));
        }
      });
      child.once('exit', (code) => reject(new Error(`receive exited ${code}: ${stderr}`)));
    });
    const r = await sendMail(port, { from: 'x@cli-sender.test', to: ['check@check.mailcensus.test'], data: 'From: x@cli-sender.test\r\nSubject: t\r\n\r\nhi\r\n', tls: true });
    assert.equal(r.code, 250, r.text);
    const row = await tdb.db.selectFrom('test_mails').select(['id', 'domain']).where('domain', '=', 'cli-sender.test').executeTakeFirstOrThrow();
    let jobs: string[] = [];
    for (let i = 0; i < 40 && jobs.length === 0; i++) {
      jobs = await redis.keys(`${prefix}:control:mail-${row.id}`);
      if (jobs.length === 0) await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(jobs.length, 1, 'the test-mail job is in the control queue');
    const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  }
});
