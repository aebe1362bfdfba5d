// DMARC in depth and non_mail against independently written servers: NSD serves the `_dmarc` records and the
// RFC 7489 §7.1 authorisation records, unbound resolves them; `mailcensus check --json` through unbound must
// judge exactly as it judges the same records in our lab, and read what `dig` reads.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startLab, type Lab } from '../lab/index.ts';
import { FAST_LAB_CHECKER_ENV } from './helpers/lab-env.ts';
import { dig, skipUnless, startDns, type RunningDns } from './helpers/real-servers.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const skip = skipUnless(['nsd', 'unbound', 'dig']);
// The DMARC record as two character-strings (RFC 7208 §3.3 style joining applies to DMARC too, RFC 7489 §6.4).
const DMARC_PARTS = ['v=DMARC1; p=quarantine; sp=reject; pct=40; ', 'rua=mailto:agg@reports-real.test,mailto:x@dmarc-real.test; ruf=mailto:f@other-real.test'];
const IDS = ['dmarc_policy', 'dmarc_subdomain_policy', 'dmarc_flags', 'dmarc_reports', 'non_mail'];
const DOMAINS = ['dmarc-real.test', 'sub.dmarc-real.test'];

type Findings = Record<string, { status: string; reason: string; detail?: string; value: unknown }>;

function check(domain: string, env: Record<string, string>): Promise<{ findings: Findings; observations: { dns: { dmarc: { txt: { data: unknown } } } } }> {
  return new Promise((resolve, reject) =>
    execFile('node', [`${ROOT}bin/mailcensus.mjs`, 'check', domain, '--json'], { env: { ...process.env, ...FAST_LAB_CHECKER_ENV, ...env }, timeout: 60_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${domain}: ${stderr}`)) : resolve(JSON.parse(stdout)),
    ),
  );
}

describe('real servers: NSD + unbound serving DMARC and report authorisation records', { skip }, () => {
  let dns: RunningDns;
  let lab: Lab;
  before(async () => {
    dns = await startDns({
      nsd: { ip: '127.64.0.54', port: 53 },
      unbound: { ip: '127.64.0.53', port: 53 },
      zones: [
        {
          name: 'dmarc-real.test',
          dnssec: 'unsigned',
          records: ['@ IN MX 0 .', '@ IN TXT "v=spf1 -all"', `_dmarc IN TXT ${DMARC_PARTS.map((p) => JSON.stringify(p)).join(' ')}`, 'sub IN TXT "hello"'],
        },
        { name: 'reports-real.test', dnssec: 'unsigned', records: ['dmarc-real.test._report._dmarc IN TXT "v=DMARC1"'] },
        { name: 'other-real.test', dnssec: 'unsigned', records: ['@ IN TXT "nothing here"'] },
      ],
    });
    // The same records as a lab world.
    const world = {
      version: 2,
      name: 'dmarc-real',
      hosts: {},
      domains: [
        { name: 'dmarc-real.test', mx: 'null', spf: 'v=spf1 -all', dmarc: DMARC_PARTS.join('') },
        { name: 'sub.dmarc-real.test', mx: [], extraTxt: ['hello'] },
      ],
      records: [
        { name: 'dmarc-real.test._report._dmarc.reports-real.test', type: 'TXT', value: 'v=DMARC1' },
        { name: 'other-real.test', type: 'TXT', value: 'nothing here' },
      ],
    };
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mc-dmarc-real-'));
    writeFileSync(path.join(dir, 'world.json'), JSON.stringify(world));
    lab = await startLab(path.join(dir, 'world.json'), { dnsPort: 0, smtpPort: 0, httpsPort: 0, stateDir: dir });
  });
  after(async () => {
    await lab?.stop();
    await dns?.stop();
  });

  test('dig reads the records as NSD serves them', () => {
    assert.match(dig(dns.unbound, ['TXT', '_dmarc.dmarc-real.test']), /"v=DMARC1; p=quarantine; sp=reject; pct=40; " "rua=mailto:/);
    assert.match(dig(dns.unbound, ['TXT', 'dmarc-real.test._report._dmarc.reports-real.test']), /"v=DMARC1"/);
    assert.match(dig(dns.unbound, ['TXT', 'dmarc-real.test._report._dmarc.other-real.test']), /status: NXDOMAIN/);
  });

  test('mailcensus judges the real servers exactly as the lab', async () => {
    for (const domain of DOMAINS) {
      const real = await check(domain, { MAILCENSUS_RESOLVER: `${dns.unbound.ip}:${dns.unbound.port}`, MAILCENSUS_DNSBL_ZONES: 'bl.dmarc-real.test' });
      // No lab host listens (no MX to probe), so the lab's SMTP port is 0: any valid port will do.
      const labbed = await check(domain, { ...lab.env, MAILCENSUS_SMTP_PORT: '25' });
      for (const id of IDS) assert.deepEqual(real.findings[id], labbed.findings[id], `${domain} ${id}`);
      if (domain === 'dmarc-real.test') assert.deepEqual(real.observations.dns.dmarc.txt.data, [DMARC_PARTS]);
    }
    const real = await check('dmarc-real.test', { MAILCENSUS_RESOLVER: `${dns.unbound.ip}:${dns.unbound.port}`, MAILCENSUS_DNSBL_ZONES: 'bl.dmarc-real.test' });
    const v = (id: string) => [real.findings[id].value, real.findings[id].reason];
    assert.deepEqual(v('dmarc_policy'), ['quarantine', 'p_quarantine']);
    assert.deepEqual(v('dmarc_subdomain_policy'), ['reject', 'sp_reject']);
    assert.deepEqual(v('dmarc_flags'), [['pct_partial'], 'pct_partial']);
    assert.deepEqual(v('dmarc_reports'), [['rua:authorized', 'ruf:unauthorized'], 'unauthorized_destination']);
    assert.deepEqual(v('non_mail'), ['non_mail', 'null_mx_spf_all']);
    const sub = await check('sub.dmarc-real.test', { MAILCENSUS_RESOLVER: `${dns.unbound.ip}:${dns.unbound.port}`, MAILCENSUS_DNSBL_ZONES: 'bl.dmarc-real.test' });
    assert.deepEqual([sub.findings.dmarc_flags.value, sub.findings.dmarc_subdomain_policy.value, sub.findings.non_mail.reason], [['pct_partial', 'inherited'], 'reject', 'no_spf']);
  });
});
