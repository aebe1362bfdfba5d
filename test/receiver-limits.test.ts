// The receiver under hostile clients (issue 12): a huge From: header must not freeze it, sessions are bounded
// in number, in total time and in memory, IPv6 clients share limits per /64, and raw mails are pruned after
// the retention period. Real receiver, real Postgres, raw SMTP clients on loopback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { SmtpDialog, holdGreetedSessions, sendMail, sessionAtData } from './test-mail-helpers.ts';
import { startReceiver, clientKey, headerFromAddress, type Receiver } from '../receiver/server.ts';
import { loadTestMail, setNotDiagnosed } from '../receiver/store.ts';

const OUR = 'rx.mailcensus.test';
let tdb: TestDatabase;
const ids: string[] = [];

before(async () => {
  tdb = await createTestDatabase();
});
after(async () => {
  await tdb?.drop();
});

async function receiver(over: Parameters<typeof startReceiver>[0] extends infer O ? Partial<O> : never = {}): Promise<Receiver> {
  return startReceiver({ db: tdb.db, domain: OUR, port: 0, sweepIntervalMs: 0, maxConnectionsPerIp: 500, maxConnectionsPerWindow: 10_000, maxMessagesPerWindow: 10_000, enqueue: async (id) => void ids.push(id), ...over });
}

/** How long a new client waits for its 220. */
async function greetingMs(port: number): Promise<number> {
  const t0 = performance.now();
  const c = await SmtpDialog.connect(port);
  const g = await c.read(30_000);
  const ms = performance.now() - t0;
  c.destroy();
  assert.equal(g.code, 220);
  return ms;
}

test('a 200,000-character From: header without @ neither freezes the receiver nor is stored', async () => {
  const rx = await receiver();
  try {
    const big = `From: ${'x'.repeat(200_000)}\r\nSubject: t\r\n\r\nbody\r\n`;
    const almost = `From: ${'a,'.repeat(40_000)}\r\nSubject: t\r\n\r\nbody\r\n`;
    const sending = Promise.all([
      sendMail(rx.port, { from: 'a@sender.example', to: [`check@${OUR}`], data: big }),
      sendMail(rx.port, { from: 'a@sender.example', to: [`check@${OUR}`], data: almost }),
    ]);
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) waits.push(await greetingMs(rx.port));
    const [r1, r2] = await sending;
    assert.equal(r1.code, 552, r1.text); // header section over 100 KB
    assert.match(r1.text, /Header section exceeds/);
    assert.equal(r2.code, 552, r2.text); // From: field over 4 KB
    assert.ok(Math.max(...waits) < 1000, `greetings took ${waits.map((w) => w.toFixed(0)).join(', ')} ms`);
    // And the parser itself is linear: 100 KB of hostile From in well under a second.
    const t0 = performance.now();
    assert.equal(headerFromAddress(Buffer.from(`From: ${'x'.repeat(100_000)}\r\n\r\n`)), null);
    assert.equal(headerFromAddress(Buffer.from(`From: "A (b)" <a@b.example> (c)\r\n\r\n`)), 'a@b.example');
    assert.ok(performance.now() - t0 < 200);
  } finally {
    await rx.close();
  }
});

test('maxClients: beyond it a new client is greeted 421', async () => {
  const rx = await receiver({ maxClients: 3 });
  const held: SmtpDialog[] = [];
  try {
    await holdGreetedSessions(rx.port, 3, held);
    const extra = await SmtpDialog.connect(rx.port);
    assert.equal((await extra.read()).code, 421);
    extra.destroy();
  } finally {
    for (const c of held) c.destroy();
    await rx.close();
  }
});

test('a session has a total deadline: a client that keeps dripping commands is closed', async () => {
  const rx = await receiver({ sessionTimeoutMs: 1500, socketTimeoutMs: 60_000 });
  try {
    const c = await SmtpDialog.connect(rx.port);
    assert.equal((await c.read()).code, 220);
    const t0 = Date.now();
    // One NOOP every 200 ms: never idle, so only the total deadline can end it.
    for (let i = 0; i < 50 && !c.closed; i++) {
      await c.write('NOOP\r\n');
      await c.read(2000).catch(() => null);
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(c.closed, 'the session was closed');
    const took = Date.now() - t0;
    assert.ok(took >= 1200 && took < 5000, `closed after ${took} ms`);
  } finally {
    await rx.close();
  }
});

test('all sessions together hold at most the memory budget: the mail that would exceed it is refused (421 4.3.1)', async () => {
  const rx = await receiver({ memoryBudgetBytes: 1024 * 1024 });
  try {
    const open = () => sessionAtData(rx.port, 'c.example', 'a@sender.example', `check@${OUR}`);
    const chunk = `Subject: t\r\n\r\n${'y'.repeat(998)}\r\n`.repeat(700);
    const a = await open();
    await a.write(chunk);
    await new Promise((r) => setTimeout(r, 300));
    // A new transaction while the budget is nearly used up still starts; its DATA overflows the budget and
    // the session is closed with 421 4.3.1 (RFC 5321 §3.8) instead of reading megabytes it cannot keep.
    const b = await open();
    await b.write(chunk);
    await b.write('\r\n.\r\n');
    const rb = await b.read();
    assert.equal(rb.code, 421, rb.text);
    assert.match(rb.text, /4\.3\.1/);
    // While `a` holds 700 KB of a 1 MiB budget, a third client can still start (MAIL FROM is refused only
    // once the budget is full).
    await a.write('\r\n.\r\n');
    assert.equal((await a.read()).code, 250);
    a.destroy();
    b.destroy();
    // The budget is released again: the next mail is taken.
    const r = await sendMail(rx.port, { from: 'a@sender.example', to: [`check@${OUR}`], data: chunk });
    assert.equal(r.code, 250, r.text);
  } finally {
    await rx.close();
  }
});

test('IPv6 clients are keyed by /64 for the per-client limits; IPv4-mapped ones by their IPv4 address', () => {
  assert.equal(clientKey('2001:db8:1:2::1'), clientKey('2001:db8:1:2:ffff:eeee:dddd:9'));
  assert.notEqual(clientKey('2001:db8:1:2::1'), clientKey('2001:db8:1:3::1'));
  assert.equal(clientKey('2001:db8:1:2::1'), '2001:db8:1:2::/64');
  assert.equal(clientKey('::ffff:192.0.2.7'), '192.0.2.7');
  assert.equal(clientKey('192.0.2.7'), '192.0.2.7');
});

test('raw mails older than the retention period lose their bytes once diagnosed, keep their row; undiagnosed ones keep them', async () => {
  const rx = await receiver({ clock: new Date('2020-01-01T00:00:00Z'), rawRetentionDays: 30 });
  try {
    const r = await sendMail(rx.port, { from: 'old@sender.example', to: [`check@${OUR}`], data: 'Subject: old\r\n\r\nold body\r\n' });
    assert.equal(r.code, 250);
    const id = ids[ids.length - 1];
    assert.ok((await loadTestMail(tdb.db, id))!.raw.length > 0);
    await rx.sweep();
    assert.ok((await loadTestMail(tdb.db, id))!.raw.length > 0, 'not diagnosed yet: the bytes stay');
    await setNotDiagnosed(tdb.db, id, 'opted_out');
    await rx.sweep();
    const m = await loadTestMail(tdb.db, id);
    assert.equal(m!.raw.length, 0);
    assert.ok(m!.rawPrunedAt instanceof Date);
    assert.ok(m!.size > 0, 'the size and envelope stay');
    assert.equal(m!.mailFrom, 'old@sender.example');
  } finally {
    await rx.close();
  }
});
