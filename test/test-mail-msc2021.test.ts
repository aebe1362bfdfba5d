// The final test of issue 7: the full lab/worlds/msc-2021.json run — 202 domains mail our receiver, every mail
// is diagnosed — reproduces the seed's 2021 figures (../shared/SEED.md) in the database.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import pino from 'pino';
import { labClock, labWithDatabaseForFile } from './helpers/lab.ts';
import { sendTestMails } from '../lab/sender.ts';
import { loadConfig } from '../lib/config.ts';
import { createProbeDeps } from '../lib/diagnose.ts';
import { OUR_DOMAIN } from './helpers/lab-receiver.ts';
import { processTestMail } from '../workers/test-mail.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const ids: string[] = [];

const setup = labWithDatabaseForFile(path.join(ROOT, 'lab/worlds/msc-2021.json'), 'mc-msc2021-', {
  receiver: (lab) => ({
    clock: labClock(lab),
    // A provider's outbound host sends dozens of the lab's mails: the per-IP limits are for the internet.
    maxMessagesPerWindow: 10_000,
    maxConnectionsPerWindow: 10_000,
    enqueue: async (id) => {
      ids.push(id);
    },
  }),
});

test('the msc-2021 world reproduces MSchecker 2021: safe 12, review 102, needs improvement 87, danger 1; SPF+DKIM NG 32; reverse DNS NG 8', async () => {
  const config = loadConfig({
    ...setup.lab.env,
    MAILCENSUS_RECEIVER_DOMAIN: OUR_DOMAIN,
    MAILCENSUS_RESULT_MAIL: '0',
    MAILCENSUS_DNS_TIMEOUT_MS: '2000',
    MAILCENSUS_DNS_RETRIES: '1',
    MAILCENSUS_DNS_QPS: '0',
    MAILCENSUS_SMTP_CONNECT_TIMEOUT_MS: '5000',
    MAILCENSUS_SMTP_BANNER_TIMEOUT_MS: '10000',
    MAILCENSUS_SMTP_COMMAND_TIMEOUT_MS: '10000',
    MAILCENSUS_PER_IP_CONCURRENCY: '8',
    MAILCENSUS_PER_IP_INTERVAL_MS: '0',
  });
  const sent = await sendTestMails(setup.lab.world, { to: { host: '127.0.0.1', port: setup.rx.port }, rcpt: `check@${OUR_DOMAIN}`, concurrency: 8 });
  assert.deepEqual(sent.filter((s) => !s.ok).map((s) => `${s.domain}: ${s.error}`), []);
  assert.equal(ids.length, 202);

  const ctx = { db: setup.tdb.db, config, logger: pino({ level: 'silent' }), deps: createProbeDeps(config) };
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < ids.length) await processTestMail({ testMailId: ids[next++] }, ctx);
    }),
  );

  const verdicts = await sql<{ verdict: string; n: number }>`
    SELECT verdict, count(*)::int AS n FROM diagnoses WHERE source = 'test-mail' GROUP BY verdict ORDER BY verdict`.execute(setup.tdb.db);
  assert.deepEqual(Object.fromEntries(verdicts.rows.map((r) => [r.verdict, r.n])), {
    safe: 12,
    review: 102,
    needs_improvement: 87,
    danger: 1,
  });
  const pairs = await sql<{ both_ng: number; rdns_ng: number; tls_ng: number; total: number }>`
    SELECT count(*) FILTER (WHERE spf = 'ng' AND dkim = 'ng')::int AS both_ng,
           count(*) FILTER (WHERE reverse_dns = 'ng')::int AS rdns_ng,
           count(*) FILTER (WHERE tls_send = 'ng' OR tls_receive = 'ng')::int AS tls_ng,
           count(*)::int AS total
    FROM diagnoses WHERE source = 'test-mail'`.execute(setup.tdb.db);
  assert.deepEqual(pairs.rows[0], { both_ng: 32, rdns_ng: 8, tls_ng: 51, total: 202 });
});
