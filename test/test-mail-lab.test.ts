// The whole test-mail flow against the lab: every sender variant of lab/worlds/test-mail-senders.json mails our
// receiver, each stored mail is diagnosed by processTestMail (the worker's job function), and every domain's
// criteria and verdict must be those ../shared/CRITERIA.md gives for it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { labClock, labWithDatabaseForFile } from './helpers/lab.ts';
import { sendTestMails } from '../lab/sender.ts';
import { loadConfig, type Config } from '../lib/config.ts';
import { createProbeDeps, rejudge, type ProbeDeps } from '../lib/diagnose.ts';
import { CRITERIA, type Criterion, type Status } from '../lib/criteria.ts';
import type { Verdict } from '../lib/verdict.ts';
import { OUR_DOMAIN, startLabReceiver } from './helpers/lab-receiver.ts';
import { processTestMail } from '../workers/test-mail.ts';
import { judgeTestMail, type TestMailObservations } from '../lib/test-mail.ts';
import { randomBytes } from 'node:crypto';
import { createRedis, openQueues, enqueueTestMail } from '../workers/queues.ts';
import { startWorker } from '../workers/worker.ts';
import { loadDiagnose } from '../workers/diagnose-api.ts';
import { createRequest } from '../receiver/tokens.ts';
import { sendMail } from './test-mail-helpers.ts';
import { FAST_LAB_CHECKER_ENV } from './helpers/lab-env.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// open_relay, spf, dkim, tls_receive, tls_send, reverse_dns, dnssec, dnsbl
type Row = [string, string, Verdict];
const EXPECTED: Row[] = [
  ['safe.test', 'ok ok ok ok ok ok ok ok', 'safe'],
  ['shared-mx.test', 'ok ok ok ok ok ok ok ok', 'safe'],
  ['dkim-unpublished.test', 'ok ok ng ok ok ok ok ok', 'safe'],
  ['dkim-none-spf-fail.test', 'ok ng ng ok ok ok ok ok', 'needs_improvement'],
  ['spf-none.test', 'ok ng ok ok ok ok ok ok', 'safe'],
  ['spf-softfail-nodkim.test', 'ok ng ng ok ok ok ok ok', 'needs_improvement'],
  ['notls-send.test', 'ok ok ok ok ng ok ok ok', 'needs_improvement'],
  ['nostarttls-mx.test', 'ok ok ok ng ok ok ok ok', 'needs_improvement'],
  ['ptr-missing.test', 'ok ok ok ok ok ng ok ok', 'needs_improvement'],
  ['ptr-mismatch.test', 'ok ok ok ok ok ng ok ok', 'needs_improvement'],
  ['listed.test', 'ok ok ok ok ok ok ok ng', 'review'],
  ['dnsbl-error.test', 'ok ok ok ok ok ok ok unknown', 'incomplete'],
  ['insecure.test', 'ok ok ok ok ok ok ng ok', 'review'],
  ['bogus.test', 'ok ok ok ok ok ok ng ok', 'review'],
  ['open-sender.test', 'ng ok ok ok ok ok ok ok', 'danger'],
  ['open-mx.test', 'ng ng ng ng ng ok ng ok', 'danger'],
  ['relay-530.test', 'ok ok ok ok ok ok ok ok', 'safe'],
  ['nullmx.test', 'na ok ok na ok ok ok ok', 'safe'],
  ['tempfail-mx.test', 'unknown ok ok unknown ok ok ok ok', 'incomplete'],
  ['servfail.test', 'unknown unknown unknown unknown ok unknown unknown ok', 'incomplete'],
  ['nothing.test', 'ok ng ng ng ng ok ng ok', 'needs_improvement'],
];

let config: Readonly<Config>;
let deps: ProbeDeps;
const enqueued: string[] = [];
const logger = pino({ level: 'silent' });

const setup = labWithDatabaseForFile(path.join(ROOT, 'lab/worlds/test-mail-senders.json'), 'mc-testmail-', {
  receiver: (lab) => ({
    clock: labClock(lab),
    enqueue: async (id) => {
      enqueued.push(id);
    },
  }),
  setUp: () => {
    config = loadConfig({
      ...setup.lab.env,
      MAILCENSUS_RECEIVER_DOMAIN: OUR_DOMAIN,
      ...FAST_LAB_CHECKER_ENV,
    });
    deps = createProbeDeps(config);
  },
});

test('every sender variant gets the criteria and verdict of CRITERIA.md, and a result mail through its MX', async () => {
  const sent = await sendTestMails(setup.lab.world, { to: { host: '127.0.0.1', port: setup.rx.port }, rcpt: `check@${OUR_DOMAIN}`, concurrency: 4 });
  const failed = sent.filter((s) => !s.ok);
  assert.deepEqual(failed, [], 'every lab sender delivered its test mail');
  assert.equal(enqueued.length, EXPECTED.length);

  // The worker's job function, several at a time as a worker would run them.
  const ctx = { db: setup.tdb.db, config, logger, deps };
  const results = [];
  for (let i = 0; i < enqueued.length; i += 6) {
    results.push(...(await Promise.all(enqueued.slice(i, i + 6).map((id) => processTestMail({ testMailId: id }, ctx)))));
  }
  assert.ok(results.every((r) => r.inserted && r.diagnosisId));

  const rows = await setup.tdb.db.selectFrom('diagnoses').selectAll().where('source', '=', 'test-mail').execute();
  const problems: string[] = [];
  for (const [domain, statuses, verdict] of EXPECTED) {
    const d = rows.find((r) => r.domain === domain);
    if (!d) {
      problems.push(`${domain}: no diagnosis`);
      continue;
    }
    const want = statuses.split(' ') as Status[];
    const got = CRITERIA.map((c) => `${d[c as Criterion]}`);
    const detail = CRITERIA.map((c, i) => (got[i] !== want[i] ? `${c}=${got[i]}(${d[`${c}_reason` as `${Criterion}_reason`]}: ${judgeTestMail(d.observations as TestMailObservations).criteria[c].detail}) want ${want[i]}` : null)).filter(Boolean);
    if (detail.length > 0 || d.verdict !== verdict) problems.push(`${domain}: ${detail.join(', ')}${d.verdict !== verdict ? ` verdict ${d.verdict} want ${verdict}` : ''}`);
    assert.equal(new Date(d.observed_at).toISOString(), '2021-06-30T00:00:00.000Z');
  }
  assert.deepEqual(problems, []);

  // Re-judging the stored observations (what `rejudge` does) gives the same diagnosis, without probing.
  for (const d of rows) {
    const again = judgeTestMail(d.observations as TestMailObservations, new Date(d.observed_at));
    assert.equal(again.verdict.verdict, d.verdict, `${d.domain} re-judged`);
    assert.equal(rejudge({ source: 'test-mail', domain: d.domain, observations: d.observations, observed_at: new Date(d.observed_at) }).verdict.verdict, d.verdict);
  }

  // The answer to the sender: delivered to safe.test's MX over STARTTLS, with both languages; none for a null MX.
  const mails = await setup.tdb.db.selectFrom('test_mails').select(['domain', 'result_mail' as never]).execute() as unknown as { domain: string; result_mail: { status: string; detail?: string } }[];
  const safe = mails.find((m) => m.domain === 'safe.test')!;
  assert.equal(safe.result_mail.status, 'sent', JSON.stringify(safe.result_mail));
  assert.match(safe.result_mail.detail ?? '', /\[TLS\]/);
  assert.equal(mails.find((m) => m.domain === 'nullmx.test')!.result_mail.status, 'failed');
  const delivered = (setup.lab.smtp.messages?.() ?? []).filter((m) => m.rcptTo.includes('postmaster@safe.test'));
  assert.equal(delivered.length, 1);
  assert.equal(delivered[0].tls, true);
  assert.equal(delivered[0].mailFrom, '');
  assert.match(delivered[0].data, /Auto-Submitted: auto-replied/);
  assert.match(delivered[0].data, /safe\.test/);
});

test('a retried job neither writes a second diagnosis nor sends a second result mail', async () => {
  const id = enqueued[0];
  const before = (setup.lab.smtp.messages?.() ?? []).length;
  const r = await processTestMail({ testMailId: id }, { db: setup.tdb.db, config, logger, deps });
  assert.equal(r.inserted, false);
  const n = await setup.tdb.db.selectFrom('diagnoses').select((eb) => eb.fn.countAll<string>().as('n')).where('test_mail_id', '=', id).executeTakeFirstOrThrow();
  assert.equal(Number(n.n), 1);
  assert.equal((setup.lab.smtp.messages?.() ?? []).length, before);
});

test('through the queue: the receiver enqueues, `mailcensus worker` diagnoses every mail with the same results, retrying transient unknowns once', async () => {
  const prefix = `mc-test-${randomBytes(4).toString('hex')}`;
  const tempfailDomain = setup.lab.world.domains.find((d) => d.name === 'tempfail-mx.test')!;
  const tempfailIp = setup.lab.world.hosts.get((tempfailDomain.mx as string[])[0])!.ip;
  const tempfailBefore = setup.lab.smtp.connections(tempfailIp);
  const qconfig = loadConfig({ ...setup.lab.env,
    MAILCENSUS_QUEUE_PREFIX: prefix, MAILCENSUS_RESULT_MAIL: '0', MAILCENSUS_RECEIVER_DOMAIN: OUR_DOMAIN,
    MAILCENSUS_DNS_TIMEOUT_MS: '1000', MAILCENSUS_DNS_RETRIES: '1', MAILCENSUS_DNS_QPS: '0',
    MAILCENSUS_SMTP_CONNECT_TIMEOUT_MS: '3000', MAILCENSUS_SMTP_BANNER_TIMEOUT_MS: '5000', MAILCENSUS_SMTP_COMMAND_TIMEOUT_MS: '5000',
    MAILCENSUS_PER_IP_CONCURRENCY: '4', MAILCENSUS_PER_IP_INTERVAL_MS: '0', MAILCENSUS_LOCK_DURATION_MS: '30000',
    MAILCENSUS_TRANSIENT_RETRIES: '1', MAILCENSUS_TRANSIENT_RETRY_DELAY_MS: '300' });
  const producer = createRedis(qconfig.redisUrl);
  const consumer = createRedis(qconfig.redisUrl, { worker: true });
  const queues = openQueues(producer, qconfig);
  const ids: string[] = [];
  const rx2 = await startLabReceiver(setup.tdb.db, {
    clock: qconfig.clock,
    enqueue: async (id) => {
      ids.push(id);
      await enqueueTestMail(queues, id);
    },
  });
  const diag = await loadDiagnose();
  const running = startWorker({ db: setup.tdb.db, config: qconfig, redis: consumer, logger, deps: createProbeDeps(qconfig) as never, queues, diag }, { concurrency: 2 });
  try {
    const sent = await sendTestMails(setup.lab.world, { to: { host: '127.0.0.1', port: rx2.port }, rcpt: `check@${OUR_DOMAIN}`, concurrency: 4 });
    assert.ok(sent.every((r) => r.ok));
    assert.equal(ids.length, EXPECTED.length);
    // Duplicates collapse: enqueueing a mail again (as the sweeper might) adds no second job.
    await enqueueTestMail(queues, ids[0]);
    const deadline = Date.now() + 120_000;
    let rows: { domain: string; verdict: string }[] = [];
    while (Date.now() < deadline) {
      rows = await setup.tdb.db.selectFrom('diagnoses').select(['domain', 'verdict']).where('test_mail_id', 'in', ids).execute();
      if (rows.length === ids.length) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(rows.length, ids.length, 'every queued mail was diagnosed');
    for (const [domain, , verdict] of EXPECTED) assert.equal(rows.find((r) => r.domain === domain)?.verdict, verdict, domain);
    // Its MX greets 421 (a transient unknown): diagnosed a second time, after the retry delay, before it was stored.
    assert.equal(setup.lab.smtp.connections(tempfailIp) - tempfailBefore, 2, 'the 421 MX was probed on the first pass and on the retry');
    // The result mail's fate is recorded just after the diagnosis (and its provenance): wait for it too.
    let disabled: { result_mail: { status: string } | null }[] = [];
    while (Date.now() < deadline) {
      disabled = await setup.tdb.db.selectFrom('test_mails').select('result_mail' as never).where('id', 'in', ids).execute() as unknown as typeof disabled;
      if (disabled.every((m) => m.result_mail)) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok(disabled.every((m) => m.result_mail?.status === 'disabled'), 'MAILCENSUS_RESULT_MAIL=0 sends no result mail');
  } finally {
    await running.close(10_000);
    await rx2.close();
    const keys = await producer.keys(`${prefix}:*`);
    if (keys.length > 0) await producer.del(...keys);
    await queues.close();
    await producer.quit();
    await consumer.quit();
  }
});

test('a requested token links the mail to its request; an unknown token still diagnoses the sender domain', async () => {
  const only = { ...setup.lab.world, domains: setup.lab.world.domains.filter((d) => d.name === 'safe.test') };
  const req = await createRequest(setup.tdb.db, 'safe.test', OUR_DOMAIN);
  const ctx = { db: setup.tdb.db, config, logger, deps };
  for (const [rcpt, requestDomain] of [[req.address, 'safe.test'], [`check-nosuchtoken@${OUR_DOMAIN}`, null]] as const) {
    const before = enqueued.length;
    const [s] = await sendTestMails(only, { to: { host: '127.0.0.1', port: setup.rx.port }, rcpt });
    assert.ok(s.ok, s.error);
    const id = enqueued[before];
    const r = await processTestMail({ testMailId: id }, ctx);
    const d = await setup.tdb.db.selectFrom('diagnoses').selectAll().where('id', '=', r.diagnosisId!).executeTakeFirstOrThrow();
    assert.equal(d.domain, 'safe.test');
    assert.equal(d.verdict, 'safe');
    const obs = d.observations as TestMailObservations;
    assert.equal(obs.mail.token, rcpt.slice('check-'.length, rcpt.indexOf('@')));
    assert.equal(obs.mail.requestDomain, requestDomain);
  }
});

test('hostile mails (malformed MIME, raw 8-bit headers, no From, a null reverse-path) are diagnosed, not crashed on', async () => {
  const hostile: { from: string; data: Buffer }[] = [
    { from: 'postmaster@safe.test', data: Buffer.from('From: <postmaster@safe.test>\r\nContent-Type: multipart/mixed; boundary=\r\nDKIM-Signature: v=1; d=safe.test; b=!!!\r\n\r\n--\r\n') },
    { from: 'postmaster@safe.test', data: Buffer.concat([Buffer.from('Subject: '), Buffer.from([0xff, 0xfe, 0x80]), Buffer.from('\r\nX: \u00e9\r\n\r\nbody\r\n')]) },
    { from: '', data: Buffer.from('From: someone <someone@safe.test>\r\nSubject: bounce\r\n\r\nbody\r\n') },
  ];
  const ctx = { db: setup.tdb.db, config, logger, deps };
  for (const h of hostile) {
    const before = enqueued.length;
    const r = await sendMail(setup.rx.port, { from: h.from, to: [`check@${OUR_DOMAIN}`], data: h.data, helo: 'hostile.safe.test' });
    assert.equal(r.code, 250, r.text);
    const res = await processTestMail({ testMailId: enqueued[before] }, ctx);
    const d = await setup.tdb.db.selectFrom('diagnoses').selectAll().where('id', '=', res.diagnosisId!).executeTakeFirstOrThrow();
    assert.equal(d.domain, 'safe.test');
    // 127.0.0.1 is not in safe.test's SPF, the signature (if any) cannot verify, and it has no PTR in the lab.
    assert.equal(d.spf, 'ng');
    assert.equal(d.dkim, 'ng');
    assert.equal(d.verdict, 'needs_improvement');
    // A null reverse-path gets no automatic reply (RFC 3834 §2).
    if (h.from === '') assert.equal(res.resultMail?.status, 'skipped');
  }
});
