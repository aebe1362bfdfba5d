// tls_cert, tls_key and dane against independently written servers (issue 15): Postfix's smtpd with RSA-2048,
// RSA-1024 and ECDSA P-256 certificates and a leaf sent without its intermediate, NSD serving a signed, an
// unsigned and a bogus zone with TLSA records behind a validating unbound. Measured through the production
// path (`mailcensus check --json`: the MX gatherer, then the TLSA gatherer for the hosts DANE applies to, the
// SMTP probe's recorded chain),
// and compared with what `openssl s_client` sees: the chain it is sent, the key size, and its own DANE
// verdict (-dane_tlsa_rrdata) on the TLSA records dig returns.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { rmSync } from 'node:fs';
import {
  BINARIES, createPki, dig, opensslDigest, postfixUnavailable, sClientChain, skipUnless, startDns, startPostfix, tempDir,
  type Leaf, type Pki, type RunningDns, type RunningPostfix,
} from './helpers/real-servers.ts';
import { FAST_LAB_CHECKER_ENV } from './helpers/lab-env.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const skip = skipUnless(['nsd', 'unbound', 'dnssec-keygen', 'dnssec-signzone', 'openssl', 'dig']) || postfixUnavailable();
if (skip) console.log(`# skipping the tls_cert/dane real-server tests: ${skip}`);

// Our own /24 of the harness's space: 127.61.1.0/24.
const P = '127.61.1';
const SMTP_PORT = 20025;
const DNS_PORT = 20053;
const IP = { rsa2048: `${P}.25`, rsa1024: `${P}.26`, ec256: `${P}.27`, leafOnly: `${P}.28` } as const;

interface Finding { status: string; reason: string; value: unknown; detail?: string }
interface Out { findings: Record<string, Finding>; observations: { dns: { dane?: { hosts: { name: string }[]; notApplicable?: { mxHost: string; reason: string }[] } } } }

describe('tls_cert, tls_key and dane against Postfix + NSD + unbound', { skip }, () => {
  let pki: Pki;
  let pkiDir: string;
  let leaves: Record<'rsa2048' | 'rsa1024' | 'ec256', Leaf>;
  let dns: RunningDns | undefined;
  let postfix: RunningPostfix | undefined;
  const outs = new Map<string, Out>();

  function check(domain: string): Promise<Out> {
    const env = {
      ...process.env, ...FAST_LAB_CHECKER_ENV,
      MAILCENSUS_LAB: '1', MAILCENSUS_RESOLVER: `${P}.53:${DNS_PORT}`, MAILCENSUS_SMTP_PORT: String(SMTP_PORT),
      MAILCENSUS_EXTRA_CA: pki.rootPath, MAILCENSUS_DNSBL_ZONES: '', MAILCENSUS_DKIM_SELECTORS: 's',
    };
    return new Promise((resolve, reject) =>
      execFile('node', [`${ROOT}bin/mailcensus.mjs`, 'check', domain, '--json'], { env, timeout: 90_000, maxBuffer: 64 << 20 }, (err, stdout) => {
        if (!stdout) return reject(err ?? new Error('no output'));
        resolve(JSON.parse(stdout) as Out);
      }),
    );
  }

  before(async () => {
    pkiDir = tempDir('tlscert-pki');
    pki = createPki(pkiDir);
    leaves = {
      rsa2048: pki.issue({ id: 'tc-rsa2048', name: 'mx-ee.rs.test', key: 'rsa2048' }),
      rsa1024: pki.issue({ id: 'tc-rsa1024', name: 'mx-weak.rs.test', key: 'rsa1024' }),
      ec256: pki.issue({ id: 'tc-ec256', name: 'mx-ec.rs.test', key: 'ec256' }),
    };
    const spki = (l: Leaf, alg: 'sha256' | 'sha512' = 'sha256') => opensslDigest(l.certPath, 'spki', alg);
    const rr = (owner: string, type: string, data: string) => `${owner} IN ${type} ${data}`;
    dns = await startDns({
      nsd: { ip: `${P}.54`, port: DNS_PORT },
      unbound: { ip: `${P}.53`, port: DNS_PORT },
      zones: [
        {
          name: 'rs.test', dnssec: 'signed', records: [
            rr('mx-ee', 'A', IP.rsa2048), rr('_25._tcp.mx-ee', 'TLSA', `3 1 1 ${spki(leaves.rsa2048)}`),
            rr('mx-weak', 'A', IP.rsa1024), rr('_25._tcp.mx-weak', 'TLSA', `3 1 1 ${spki(leaves.rsa1024)}`),
            rr('mx-ec', 'A', IP.ec256), rr('_25._tcp.mx-ec', 'TLSA', `3 1 2 ${spki(leaves.ec256, 'sha512')}`),
            rr('mx-ta', 'A', IP.leafOnly), rr('_25._tcp.mx-ta', 'TLSA', `2 0 1 ${opensslDigest(pki.intermediatePath, 'cert', 'sha256')}`),
            rr('mx-bad', 'A', IP.rsa2048), rr('_25._tcp.mx-bad', 'TLSA', `3 1 1 ${spki(leaves.rsa1024)}`),
            rr('mx-none', 'A', IP.rsa2048),
            rr('ee', 'MX', '10 mx-ee.rs.test.'),
            rr('weak', 'MX', '10 mx-weak.rs.test.'),
            rr('ec', 'MX', '10 mx-ec.rs.test.'),
            rr('ta', 'MX', '10 mx-ta.rs.test.'),
            rr('bad', 'MX', '10 mx-bad.rs.test.'),
            rr('none', 'MX', '10 mx-none.rs.test.'),
            rr('mixed', 'MX', '10 mx-ee.rs.test.'), rr('mixed', 'MX', '20 mx-none.rs.test.'),
            // A signed MX RRset naming a host in the unsigned zone, which publishes TLSA: its addresses are insecure.
            rr('tounsigned', 'MX', '10 mx.ins.test.'),
          ],
        },
        { name: 'ins.test', dnssec: 'unsigned', records: [rr('@', 'MX', '10 mx.ins.test.'), rr('mx', 'A', IP.rsa2048), rr('_25._tcp.mx', 'TLSA', `3 1 1 ${spki(leaves.rsa2048)}`)] },
        {
          name: 'bog.test', dnssec: 'bogus', bogusOwner: '_25._tcp.mx.bog.test',
          records: [rr('@', 'MX', '10 mx.bog.test.'), rr('mx', 'A', IP.rsa2048), rr('_25._tcp.mx', 'TLSA', `3 1 1 ${spki(leaves.rsa2048)}`)],
        },
      ],
    });
    postfix = await startPostfix({
      hostname: 'mx-ee.rs.test',
      listeners: [
        { ip: IP.rsa2048, port: SMTP_PORT, leaf: leaves.rsa2048 },
        { ip: IP.rsa1024, port: SMTP_PORT, leaf: leaves.rsa1024 },
        { ip: IP.ec256, port: SMTP_PORT, leaf: leaves.ec256 },
        { ip: IP.leafOnly, port: SMTP_PORT, leaf: leaves.rsa2048, leafOnly: true },
      ],
    });
    const domains = ['ee.rs.test', 'weak.rs.test', 'ec.rs.test', 'ta.rs.test', 'bad.rs.test', 'none.rs.test', 'mixed.rs.test', 'tounsigned.rs.test', 'ins.test', 'bog.test'];
    // Two at a time: the machine is shared.
    for (let i = 0; i < domains.length; i += 2) {
      const batch = domains.slice(i, i + 2);
      const got = await Promise.all(batch.map(check));
      batch.forEach((d, j) => outs.set(d, got[j]));
    }
  });
  after(async () => {
    await postfix?.stop();
    await dns?.stop();
    if (pkiDir) rmSync(pkiDir, { recursive: true, force: true });
  });

  const pick = (d: string, id: string) => {
    const f = outs.get(d)?.findings[id];
    return [f?.value, f?.reason];
  };

  test('dane per domain: valid, mismatch (DANE-TA without its intermediate, another key), none, partial, bogus; not applicable to insecure hosts', () => {
    assert.deepEqual(pick('ee.rs.test', 'dane'), ['valid', 'tlsa_match']);
    assert.deepEqual(pick('weak.rs.test', 'dane'), ['valid', 'tlsa_match'], 'DANE says nothing of key size');
    assert.deepEqual(pick('ec.rs.test', 'dane'), ['valid', 'tlsa_match']);
    assert.deepEqual(pick('ta.rs.test', 'dane'), ['mismatch', 'tlsa_mismatch']);
    assert.deepEqual(pick('bad.rs.test', 'dane'), ['mismatch', 'tlsa_mismatch']);
    assert.deepEqual(pick('none.rs.test', 'dane'), ['none', 'no_tlsa']);
    assert.deepEqual(pick('mixed.rs.test', 'dane'), ['partial', 'dane_partial']);
    assert.deepEqual(pick('bog.test', 'dane'), ['bogus', 'tlsa_bogus'], 'MX and address secure, the TLSA RRset alone bogus: asked, and bogus');
    // RFC 7672 §2.2.1 and §2.2.3: an insecure MX RRset, or a secure one naming a host whose addresses are insecure,
    // means DANE does not apply: the TLSA mx.ins.test publishes (unsigned) is not asked either way.
    assert.deepEqual(pick('ins.test', 'dane'), ['none', 'mx_insecure']);
    assert.deepEqual(pick('tounsigned.rs.test', 'dane'), ['none', 'address_insecure']);
    assert.deepEqual(outs.get('ins.test')?.observations.dns.dane, { hosts: [], notApplicable: [{ mxHost: 'mx.ins.test', reason: 'mx_insecure' }] });
    assert.deepEqual(outs.get('tounsigned.rs.test')?.observations.dns.dane, { hosts: [], notApplicable: [{ mxHost: 'mx.ins.test', reason: 'address_insecure' }] });
    assert.equal(outs.get('tounsigned.rs.test')?.findings.dane.status, 'na');
    assert.deepEqual(outs.get('mixed.rs.test')?.observations.dns.dane?.hosts.map((h) => h.name), ['_25._tcp.mx-ee.rs.test', '_25._tcp.mx-none.rs.test'], 'one TLSA lookup per MX name');
  });

  test('openssl s_client agrees on the DANE match of every secure TLSA RRset (dig +dnssec through unbound)', () => {
    const cases: [string, string, number, boolean][] = [
      ['mx-ee.rs.test', IP.rsa2048, 0, true],
      ['mx-weak.rs.test', IP.rsa1024, 0, true],
      ['mx-ec.rs.test', IP.ec256, 0, true],
      ['mx-ta.rs.test', IP.leafOnly, 0, false],
      ['mx-bad.rs.test', IP.rsa2048, 0, false],
    ];
    for (const [host, ip] of cases) {
      const out = dig({ ip: `${P}.53`, port: DNS_PORT }, ['+dnssec', '+short', 'TLSA', `_25._tcp.${host}`]);
      const rdata = out.split('\n').filter((l) => /^\d+ \d+ \d+ /.test(l)).map((l) => {
        const [u, s, m, ...hex] = l.split(' ');
        return `${u} ${s} ${m} ${hex.join('')}`;
      });
      assert.ok(rdata.length > 0, host);
      const args = ['s_client', '-connect', `${ip}:${SMTP_PORT}`, '-starttls', 'smtp', '-servername', host, '-dane_tlsa_domain', host, '-CAfile', pki.rootPath, '-verify_return_error',
        // OpenSSL 3's default security level refuses the RSA-1024 leaf ("EE certificate key too weak", our weak_key
        // too); DANE itself says nothing of key size, so compare the match at level 0.
        '-auth_level', '0', '-cipher', 'DEFAULT:@SECLEVEL=0'];
      for (const r of rdata) args.push('-dane_tlsa_rrdata', r);
      let text: string;
      try {
        text = execFileSync(BINARIES.openssl, args, { input: 'QUIT\r\n', timeout: 15_000, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
      } catch (e) {
        text = String((e as { stdout?: string }).stdout ?? '');
      }
      const opensslValid = /Verify return code: 0 \(ok\)/.test(text) && /DANE TLSA \d \d \d .* matched/.test(text);
      const domain = host.replace(/^mx-/, '');
      const ours = outs.get(domain)?.findings.dane.value === 'valid';
      assert.equal(ours, opensslValid, `${host}: openssl says ${opensslValid ? 'valid' : 'not valid'}\n${text.split('\n').filter((l) => /Verif|DANE/.test(l)).join('\n')}`);
    }
  });

  test('tls_key and weak_key: RSA-1024 weak, RSA-2048 and ECDSA by type, as openssl reads the key', () => {
    assert.deepEqual(pick('weak.rs.test', 'tls_key'), ['rsa_weak', 'weak_rsa_key']);
    assert.deepEqual(pick('ee.rs.test', 'tls_key'), ['rsa_2048_plus', 'strong_key']);
    assert.deepEqual(pick('ec.rs.test', 'tls_key'), ['ec', 'strong_key']);
    assert.ok((outs.get('weak.rs.test')?.findings.tls_cert.value as string[]).includes('weak_key'));
    for (const [ip, bits] of [[IP.rsa1024, 1024], [IP.rsa2048, 2048], [IP.ec256, 256]] as const) {
      const leafPem = sClientChain(ip, SMTP_PORT, { starttls: 'smtp' }).pems[0];
      const text = execFileSync(BINARIES.openssl, ['x509', '-noout', '-text'], { input: leafPem, timeout: 10_000, encoding: 'utf8' });
      assert.match(text, new RegExp(`Public-Key: \\(${bits} bit\\)`), ip);
    }
  });

  test('tls_cert: the leaf without its intermediate is an incomplete chain, as openssl sees one certificate sent; wrong names; ok', () => {
    assert.equal(sClientChain(IP.leafOnly, SMTP_PORT, { starttls: 'smtp' }).pems.length, 1);
    assert.equal(sClientChain(IP.rsa2048, SMTP_PORT, { starttls: 'smtp' }).pems.length, 2);
    assert.deepEqual(pick('ta.rs.test', 'tls_cert'), [['incomplete_chain', 'wrong_name', 'any'], 'cert_problems']);
    assert.deepEqual(pick('ee.rs.test', 'tls_cert'), [['ok'], 'cert_ok']);
    assert.deepEqual(pick('ec.rs.test', 'tls_cert'), [['ok'], 'cert_ok']);
    // mx-none.rs.test shares mx-ee's address and certificate: the name is judged per domain.
    assert.deepEqual(pick('none.rs.test', 'tls_cert'), [['wrong_name', 'any'], 'cert_problems']);
    assert.deepEqual(pick('mixed.rs.test', 'tls_cert'), [['wrong_name', 'any'], 'cert_problems']);
  });
});
