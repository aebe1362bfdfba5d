import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import postgres from 'postgres';
import { spawn } from 'node:child_process';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startReceiver, headerFromAddress, type Receiver } from '../receiver/server.ts';
import { openDatabase } from '../lib/db.ts';
import { createRequest, classifyRecipient, generateToken } from '../receiver/tokens.ts';
import { loadTestMail, listUndiagnosedTestMails } from '../receiver/store.ts';
import { SmtpDialog, dotStuff, holdGreetedSessions, sendMail, sessionAtData } from './test-mail-helpers.ts';

const DOMAIN = 'receiver.lab.test';
let tdb: TestDatabase;
let rx: Receiver;
const enqueued: string[] = [];

async function count(): Promise<number> {
  const r = await tdb.db.selectFrom('test_mails').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  return Number(r.n);
}

async function lastMail() {
  const r = await tdb.db.selectFrom('test_mails').select('id').orderBy('id', 'desc').limit(1).executeTakeFirstOrThrow();
  return (await loadTestMail(tdb.db, String(r.id)))!;
}

function message(from: string | null, extra = ''): string {
  return (
    (from ? `From: Sender <${from}>\r\n` : '') +
    `To: check@${DOMAIN}\r\nSubject: test\r\nMessage-ID: <${generateToken()}@x.test>\r\n${extra}\r\n` +
    'Hello.\r\n.leading dot survives\r\n'
  );
}

before(async () => {
  tdb = await createTestDatabase();
  rx = await startReceiver({
    db: tdb.db,
    domain: DOMAIN,
    port: 0,
    maxSize: 64 * 1024,
    maxConnectionsPerIp: 3,
    maxConnectionsPerWindow: 1000,
    maxMessagesPerWindow: 1000,
    storeTimeoutMs: 1500,
    sweepIntervalMs: 0,
    clock: new Date('2021-06-30T00:00:00Z'),
    enqueue: async (id) => {
      enqueued.push(id);
    },
  });
});

after(async () => {
  await rx.close();
  await tdb.drop();
});

test('a test mail over STARTTLS is stored byte for byte with its envelope, TLS, token and clock time', async () => {
  const req = await createRequest(tdb.db, 'sender.example.test', DOMAIN);
  const data = message('alice@sender.example.test', 'X-8bit: caf\u00e9\r\n');
  const r = await sendMail(rx.port, { helo: 'out.sender.example.test', from: 'alice@Sender.Example.test', to: [req.address], data, tls: true });
  assert.equal(r.code, 250, r.text);
  const m = await lastMail();
  assert.deepEqual(m.raw, Buffer.from(data, 'utf8'));
  assert.equal(m.clientIp, '127.0.0.1');
  assert.equal(m.helo, 'out.sender.example.test');
  assert.equal(m.mailFrom, 'alice@Sender.Example.test');
  assert.equal(m.domain, 'sender.example.test');
  assert.equal(m.token, req.token);
  assert.deepEqual(m.rcptTo, [req.address]);
  assert.equal(m.tls.used, true);
  assert.match(m.tls.protocol ?? '', /^TLSv1\.[23]$/);
  assert.ok(m.tls.cipher);
  assert.equal(m.receivedAt.toISOString(), '2021-06-30T00:00:00.000Z');
  assert.ok(enqueued.includes(m.id), 'the diagnosis job was enqueued');
});

test('a mail in clear records that TLS was not used although offered', async () => {
  const r = await sendMail(rx.port, { from: 'bob@plain.test', to: [`check@${DOMAIN}`], data: message('bob@plain.test') });
  assert.equal(r.code, 250);
  const m = await lastMail();
  assert.equal(m.tls.used, false);
  assert.equal(m.tls.offered, true);
  assert.equal(m.token, null);
  assert.equal(m.domain, 'plain.test');
});

test('the receiver never relays: a foreign recipient gets 550 5.7.1 and nothing is stored', async () => {
  const before = await count();
  for (const to of ['victim@foreign.test', `check@sub.${DOMAIN}`, `check@${DOMAIN}.evil.test`, 'check@[127.0.0.1]', `"check@${DOMAIN}"@foreign.test`]) {
    const r = await sendMail(rx.port, { from: 'spammer@evil.test', to: [to], data: message('spammer@evil.test') });
    // smtp-server itself refuses the quoted form as bad syntax (501); every other one is our relay refusal.
    if (to.startsWith('"')) assert.equal(r.code, 501, `${to}: ${r.text}`);
    else {
      assert.equal(r.code, 550, `${to}: ${r.text}`);
      assert.match(r.text, /5\.7\.1/);
    }
  }
  assert.equal(await count(), before);
});

test('an unknown mailbox at our domain is 550 5.1.1; postmaster is accepted (RFC 5321 §4.5.1)', async () => {
  const r = await sendMail(rx.port, { from: 'x@y.test', to: [`nobody@${DOMAIN}`], data: message('x@y.test') });
  assert.equal(r.code, 550);
  assert.match(r.text, /5\.1\.1/);
  assert.equal(classifyRecipient(`PostMaster@${DOMAIN.toUpperCase()}`, DOMAIN).kind, 'postmaster');
  assert.deepEqual(classifyRecipient(`check-ABC234@${DOMAIN}`, DOMAIN), { kind: 'check', token: 'abc234' });
});

test('10,000 recipients: the first 100 are accepted, the rest get 452 4.5.3, and the mail is stored once', async () => {
  const c = await SmtpDialog.connect(rx.port);
  try {
    await c.read();
    await c.cmd('EHLO many.test');
    assert.equal((await c.cmd('MAIL FROM:<m@many.test>')).code, 250);
    // Pipelined (RFC 2920) in batches, so the test does not wait 10,000 round trips.
    const codes = new Map<number, number>();
    for (let i = 0; i < 10_000; i += 500) {
      let batch = '';
      for (let j = i; j < i + 500; j++) batch += `RCPT TO:<check-r${j}@${DOMAIN}>\r\n`;
      await c.write(batch);
      for (let j = 0; j < 500; j++) {
        const r = await c.read();
        codes.set(r.code, (codes.get(r.code) ?? 0) + 1);
      }
    }
    assert.equal(codes.get(250), 100);
    assert.equal(codes.get(452), 9_900);
    assert.equal((await c.cmd('DATA')).code, 354);
    await c.write(dotStuff(Buffer.from(message('m@many.test'))));
    await c.write('\r\n.\r\n');
    const r = await c.read();
    assert.equal(r.code, 250, r.text);
  } finally {
    await c.quit();
  }
  const m = await lastMail();
  assert.equal(m.rcptTo.length, 100);
  assert.equal(m.token, 'r0');
});

test('SIZE is advertised; a declared oversize mail is refused at MAIL FROM, and a 200 MB stream gets 552 with bounded memory', async () => {
  const before = await count();
  const c = await SmtpDialog.connect(rx.port);
  try {
    await c.read();
    const ehlo = await c.cmd('EHLO big.test');
    assert.match(ehlo.text, /SIZE 65536/);
    assert.equal((await c.cmd('MAIL FROM:<big@big.test> SIZE=50000000')).code, 552);
  } finally {
    await c.quit();
  }
  // The stream comes from another process, so this process's memory is the receiver's alone.
  const rssBefore = process.memoryUsage().rss;
  let peak = rssBefore;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  try {
    const reply = await streamFromChild(rx.port, DOMAIN, 200);
    assert.match(reply, /^552 /m, reply);
    assert.match(reply, /^250 /m, 'the session is still usable after the refusal (RSET)');
  } finally {
    clearInterval(sampler);
  }
  // Bounded: discarded chunks wait for the garbage collector, so the peak is some tens of MB whatever the
  // size; a receiver that kept the stream would grow by at least the 200 MB it was sent.
  const grown = peak - rssBefore;
  assert.ok(grown < 100 * 1024 * 1024, `receiver memory grew by ${grown} bytes while 200 MB streamed in`);
  assert.equal(await count(), before);
});

/** A client in a child process: MAIL, RCPT, DATA, then `mb` megabytes (honouring backpressure), then RSET. */
function streamFromChild(port: number, domain: string, mb: number): Promise<string> {
  const script = `
    const net = require('node:net');
    const s = net.connect(${port}, '127.0.0.1');
    let buf = '';
    const steps = ['EHLO big.test', 'MAIL FROM:<big@big.test>', 'RCPT TO:<check@${domain}>', 'DATA'];
    let replies = 0, streaming = false, done = false;
    const line = Buffer.from('x'.repeat(998) + '\\r\\n');
    const chunk = Buffer.concat(Array.from({ length: 1000 }, () => line));
    function stream(i) {
      while (i < ${mb}) { i++; if (!s.write(chunk)) return s.once('drain', () => stream(i)); }
      s.write('.\\r\\n');
    }
    s.on('data', (d) => {
      buf += d.toString('latin1');
      const lines = buf.split('\\r\\n'); buf = lines.pop();
      for (const l of lines) {
        if (!/^\\d{3} /.test(l)) continue;
        replies++;
        if (replies <= steps.length) s.write(steps[replies - 1] + '\\r\\n');
        else if (!streaming) { streaming = true; s.write('From: big@big.test\\r\\n\\r\\n'); stream(0); }
        else if (!done) { done = true; process.stdout.write(l + '\\n'); s.write('RSET\\r\\n'); }
        else { process.stdout.write(l + '\\n'); s.end('QUIT\\r\\n'); }
      }
    });
    s.on('error', (e) => { process.stdout.write('error ' + e.message + '\\n'); process.exit(1); });
    setTimeout(() => { process.stdout.write('timeout\\n'); process.exit(1); }, 60000).unref();
    s.on('close', () => process.exit(0));
  `;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', () => resolve(out));
  });
}

test('a client that drops mid-DATA leaves nothing stored and the receiver keeps serving', async () => {
  const before = await count();
  const c = await sessionAtData(rx.port, 'drop.test', 'd@drop.test', `check@${DOMAIN}`);
  await c.write('From: d@drop.test\r\nSubject: half\r\n\r\nthe first half of a bo');
  c.destroy();
  await new Promise((r) => setTimeout(r, 200));
  const r = await sendMail(rx.port, { from: 'ok@drop.test', to: [`check@${DOMAIN}`], data: message('ok@drop.test') });
  assert.equal(r.code, 250);
  assert.equal(await count(), before + 1);
  assert.equal((await lastMail()).mailFrom, 'ok@drop.test');
});

test('hostile content is stored exactly: malformed MIME, raw 8-bit headers, no From', async () => {
  const eightBit = Buffer.concat([
    Buffer.from('From: =?bogus?= <m@mime.test>\r\nSubject: '),
    Buffer.from([0xe3, 0x83, 0x86, 0xff, 0xfe]),
    Buffer.from('\r\nContent-Type: multipart/mixed; boundary="never-closed"\r\n\r\n--never-closed\r\nContent-Type: text/plain\r\n\r\nbroken\r\n'),
  ]);
  let r = await sendMail(rx.port, { from: 'm@mime.test', to: [`check@${DOMAIN}`], data: eightBit });
  assert.equal(r.code, 250);
  assert.deepEqual((await lastMail()).raw, eightBit);

  r = await sendMail(rx.port, { from: 'nofrom@nofrom.test', to: [`check@${DOMAIN}`], data: message(null) });
  assert.equal(r.code, 250);
  const m = await lastMail();
  assert.equal(m.headerFrom, null);
  assert.equal(m.domain, 'nofrom.test');
});

test('a null reverse-path takes the diagnosed domain from the From: header', async () => {
  const r = await sendMail(rx.port, { from: '', to: [`check@${DOMAIN}`], data: message('bounce@bounces.test') });
  assert.equal(r.code, 250);
  const m = await lastMail();
  assert.equal(m.mailFrom, null);
  assert.equal(m.domain, 'bounces.test');
  assert.equal(headerFromAddress(Buffer.from('Subject: x\r\nFrom: "A, B" (c)\r\n <a@b.test>\r\n\r\n')), 'a@b.test');
});

test('a flood from one IP: concurrent connections beyond the limit get 421', async () => {
  const held: SmtpDialog[] = [];
  try {
    await holdGreetedSessions(rx.port, 3, held);
    const extra = await SmtpDialog.connect(rx.port);
    const greet = await extra.read();
    extra.destroy();
    assert.equal(greet.code, 421, greet.text);
  } finally {
    for (const c of held) await c.quit();
  }
  // Once they are closed, a new connection is served again.
  await new Promise((r) => setTimeout(r, 200));
  const r = await sendMail(rx.port, { from: 'f@flood.test', to: [`check@${DOMAIN}`], data: message('f@flood.test') });
  assert.equal(r.code, 250);
});

test('connection and message rates per IP are limited with 421 and 450', async () => {
  const db2 = await createTestDatabase();
  const limited = await startReceiver({
    db: db2.db, domain: DOMAIN, port: 0, maxConnectionsPerWindow: 2, maxMessagesPerWindow: 1, rateWindowMs: 600_000, sweepIntervalMs: 0,
  });
  try {
    const c = await SmtpDialog.connect(limited.port);
    await c.read();
    await c.cmd('EHLO rate.test');
    assert.equal((await c.cmd('MAIL FROM:<a@rate.test>')).code, 250);
    await c.cmd('RSET');
    const second = await c.cmd('MAIL FROM:<a@rate.test>');
    assert.equal(second.code, 450);
    assert.match(second.text, /4\.7\.1/);
    const c2 = await SmtpDialog.connect(limited.port);
    assert.equal((await c2.read()).code, 220);
    const c3 = await SmtpDialog.connect(limited.port);
    const g = await c3.read();
    assert.equal(g.code, 421);
    for (const x of [c, c2, c3]) await x.quit();
  } finally {
    await limited.close();
    await db2.drop();
  }
});

test('a slow Postgres answers 451 4.3.0 and stores nothing; once it recovers the retry is accepted', async () => {
  const before = await count();
  const locker = postgres(tdb.url, { max: 1, onnotice: () => {} });
  try {
    const reserved = await locker.reserve();
    await reserved`BEGIN`;
    await reserved`LOCK TABLE test_mails IN ACCESS EXCLUSIVE MODE`;
    const r = await sendMail(rx.port, { from: 's@slow.test', to: [`check@${DOMAIN}`], data: message('s@slow.test') });
    assert.equal(r.code, 451, r.text);
    assert.match(r.text, /4\.3\.0/);
    await reserved`ROLLBACK`;
    reserved.release();
  } finally {
    await locker.end();
  }
  assert.equal(await count(), before);
  const r = await sendMail(rx.port, { from: 's@slow.test', to: [`check@${DOMAIN}`], data: message('s@slow.test') });
  assert.equal(r.code, 250);
});

test('a Postgres that is down answers 451 4.3.0, never 250', async () => {
  const down = openDatabase('postgres://postgres@127.0.0.1:1/none', { max: 1 });
  const r2 = await startReceiver({ db: down.db, domain: DOMAIN, port: 0, storeTimeoutMs: 1000, sweepIntervalMs: 0 });
  try {
    const r = await sendMail(r2.port, { from: 'd@down.test', to: [`check@${DOMAIN}`], data: message('d@down.test') });
    assert.equal(r.code, 451, r.text);
  } finally {
    await r2.close();
    // postgres.js waits for a connection that never comes on end() without a timeout.
    await down.sql.end({ timeout: 0 });
  }
});

test('when the queue is down the mail is still stored, and the sweeper enqueues it later', async () => {
  const db2 = await createTestDatabase();
  let queueUp = false;
  const got: string[] = [];
  const r2 = await startReceiver({
    db: db2.db, domain: DOMAIN, port: 0, sweepIntervalMs: 0,
    enqueue: async (id) => {
      if (!queueUp) throw new Error('Redis is down');
      got.push(id);
    },
  });
  try {
    const r = await sendMail(r2.port, { from: 'q@queue.test', to: [`check@${DOMAIN}`], data: message('q@queue.test') });
    assert.equal(r.code, 250);
    assert.deepEqual(got, []);
    const waiting = await listUndiagnosedTestMails(db2.db);
    assert.equal(waiting.length, 1);
    queueUp = true;
    assert.equal(await r2.sweep(), 1);
    assert.deepEqual(got, waiting);
  } finally {
    await r2.close();
    await db2.drop();
  }
});
