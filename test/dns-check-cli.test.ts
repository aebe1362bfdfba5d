// `mailcensus check` end to end against the lab (DNS and SMTP), as the README shows it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startLab, type Lab } from '../lab/index.ts';
import { runCli } from './helpers/cli.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
let lab: Lab;
before(async () => {
  lab = await startLab(`${ROOT}lab/worlds/test-dns-checks.json`, {
    dnsPort: 0,
    smtpPort: 0,
    stateDir: mkdtempSync(path.join(os.tmpdir(), 'mc-check-')),
  });
});
after(async () => {
  await lab.stop();
});

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = {
    ...process.env,
    ...lab.env,
    MAILCENSUS_SMTP_CONNECT_TIMEOUT_MS: '2000',
    MAILCENSUS_SMTP_BANNER_TIMEOUT_MS: '2000',
    MAILCENSUS_SMTP_COMMAND_TIMEOUT_MS: '2000',
    MAILCENSUS_PER_IP_INTERVAL_MS: '0',
    MAILCENSUS_DNS_TIMEOUT_MS: '300',
    MAILCENSUS_DNS_RETRIES: '0',
  };
  return runCli(args, env, { timeoutMs: 60_000 });
}

test('check prints every criterion with status and reason, then the findings', async () => {
  const r = await run(['check', 'alpha.test']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^SPF\s+OK\s+spf_valid/m);
  assert.match(r.stdout, /^DNSSEC\s+OK\s+secure/m);
  assert.match(r.stdout, /^Open relay\s+OK\s+relay_refused\s+relay refused by mx\.bigmail\.test \(127\.100\.0\.1\)/m);
  assert.match(r.stdout, /^TLS \(receiving\)\s+OK\s+starttls/m);
  assert.match(r.stdout, /^TLS \(sending\)\s+Unknown\s+not_measured/m);
  assert.match(r.stdout, /^DMARC policy\s+OK\s+p_reject/m);
  assert.match(r.stdout, /^TLS versions \(MX\)\s+OK\s+tls_seen\s+TLSv1\.3/m);
  assert.match(r.stdout, /^verdict: Safe$/m);
});

test('check --json gives observations and statuses; a bogus domain is read with CD', async () => {
  const r = await run(['check', 'bogus.test', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.statuses.dnssec.reason, 'bogus');
  assert.equal(out.statuses.spf.status, 'ok');
  assert.equal(out.observations.dns.cd, true);
  assert.equal(out.observations.dns.spf.root.txt.cd, true);
  assert.equal(out.verdict.verdict, 'review');
  assert.deepEqual(out.verdict.reasons.map((r: { criterion: string }) => r.criterion), ['dnssec']);
});

test('check --lang ja labels the table in Japanese', async () => {
  const r = await run(['check', 'listed.test', '--lang', 'ja']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^DNSBL登録\s+NG\s+listed/m);
  assert.match(r.stdout, /送信元DNS逆引き/);
  assert.match(r.stdout, /^評価: 見直しを推奨/m);
});

test('check exits 2 with a one-line error for a name that is not a domain', async () => {
  const r = await run(['check', 'not a domain']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.match(r.stderr, /not a valid domain name/);
});
