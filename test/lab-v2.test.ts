// The version-2 fields of the lab world (../shared/LAB-WORLD.md), on lab/worlds/test-v2.json brought up with
// startLab, observed only with independent clients: `dig` for DNS (records, RFC 4592 wildcards, TLSA, AD,
// SERVFAIL + EDE), `openssl s_client -starttls smtp -showcerts` and `openssl x509`/`pkey`/`dgst` for the
// certificates and to recompute every TLSA record, `curl` and node:https for the MTA-STS policy hosts,
// smtp-server + mailauth for mails signed under v2 DKIM selectors. Nothing here uses the checker.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { promises as dnsPromises } from 'node:dns';
import tls from 'node:tls';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startMailSink, type MailSink } from './helpers/mail-sink.ts';
import { authenticate } from 'mailauth';
import { startLab, type Lab } from '../lab/index.ts';
import { createLabCa } from '../lab/ca.ts';
import { sendTestMails, type SendResult } from '../lab/sender.ts';

const WORLD = fileURLToPath(new URL('../lab/worlds/test-v2.json', import.meta.url));
const DAY = 86_400_000;

function run(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: opts.timeoutMs ?? 20_000, maxBuffer: 4 * 2 ** 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ stdout, stderr, code: err ? (typeof err.code === 'number' ? err.code : 1) : 0 });
    });
    child.stdin?.end(opts.input ?? '');
  });
}
const sh = (script: string) => run('sh', ['-c', script]);

let lab: Lab;
let tmp: string;
let dnsPort: number;

before(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'lab-v2-'));
  lab = await startLab(WORLD, { dnsPort: 0, smtpPort: 0, httpsPort: 0, stateDir: tmp });
  dnsPort = lab.dns.port;
});
after(async () => {
  await lab?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

interface Dig {
  status: string;
  flags: string[];
  answers: Array<{ name: string; type: string; data: string }>;
  ede: string | null;
}

async function dig(name: string, type: string, ...extra: string[]): Promise<Dig> {
  const r = await run('dig', ['@127.0.0.1', '-p', String(dnsPort), '+dnssec', '+time=3', '+tries=1', '+noall', '+comments', '+answer', ...extra, name, type]);
  assert.equal(r.code, 0, r.stderr);
  const status = /status: (\w+)/.exec(r.stdout)?.[1] ?? '';
  const flags = (/;; flags: ([a-z ]+);/.exec(r.stdout)?.[1] ?? '').trim().split(/\s+/);
  const ede = /; EDE: (\d+)/.exec(r.stdout)?.[1] ?? null;
  const answers = r.stdout
    .split('\n')
    .filter((l) => l && !l.startsWith(';'))
    .map((l) => {
      const [n, , , t, ...rest] = l.split(/\s+/);
      return { name: n!.replace(/\.$/, ''), type: t!, data: rest.join(' ') };
    });
  return { status, flags, answers, ede };
}

describe('v2 records and RFC 4592 wildcards (dig)', () => {
  test('A, TXT, MX and TLSA records are served verbatim; CNAME chains are followed', async () => {
    assert.deepEqual((await dig('a.extra.test', 'A')).answers, [{ name: 'a.extra.test', type: 'A', data: '127.100.9.1' }]);
    assert.deepEqual((await dig('extra.test', 'TXT')).answers.map((a) => a.data), ['"verbatim text record"']);
    assert.deepEqual((await dig('mail.extra.test', 'MX')).answers.map((a) => a.data), ['5 mx.rsa2048.test.']);
    assert.deepEqual((await dig('_25._tcp.mx.rsa2048.test', 'TLSA')).answers.map((a) => a.data.replace(/ /g, '')), [`311${'0'.repeat(64)}`]);
    const chain = await dig('alias2.extra.test', 'A');
    assert.equal(chain.status, 'NOERROR');
    assert.deepEqual(chain.answers.map((a) => `${a.name} ${a.type} ${a.data}`), [
      'alias2.extra.test CNAME alias.extra.test.',
      'alias.extra.test CNAME a.extra.test.',
      'a.extra.test A 127.100.9.1',
    ]);
    assert.deepEqual((await dig('alias.extra.test', 'CNAME')).answers.map((a) => a.data), ['a.extra.test.']);
  });

  test('a wildcard answers for names that do not exist, under the query name, one or more labels deep', async () => {
    for (const n of ['x.wild.test', 'a.b.wild.test', '_domainkey.wild.test', 'selector._domainkey.wild.test']) {
      const r = await dig(n, 'TXT');
      assert.equal(r.status, 'NOERROR', n);
      assert.deepEqual(r.answers, [{ name: n, type: 'TXT', data: '"v=spf1 -all"' }], n);
    }
    assert.deepEqual((await dig('x.wild.test', 'A')).answers.map((a) => a.data), ['127.100.9.2']);
    // A type the wildcard does not have: NODATA, not NXDOMAIN (the synthesized name exists).
    const mx = await dig('x.wild.test', 'MX');
    assert.equal(mx.status, 'NOERROR');
    assert.deepEqual(mx.answers, []);
  });

  test('a wildcard never answers for an existing name or an empty non-terminal', async () => {
    const exists = await dig('exists.wild.test', 'A');
    assert.equal(exists.status, 'NOERROR');
    assert.deepEqual(exists.answers, [], 'exists.wild.test has TXT only: A is NODATA');
    assert.deepEqual((await dig('exists.wild.test', 'TXT')).answers.map((a) => a.data), ['"I exist"']);
    const ent = await dig('ent.wild.test', 'TXT');
    assert.equal(ent.status, 'NOERROR');
    assert.deepEqual(ent.answers, [], 'ent.wild.test is an empty non-terminal');
    // Below the empty non-terminal the closest encloser is ent.wild.test, which has no wildcard: NXDOMAIN.
    assert.equal((await dig('zz.ent.wild.test', 'TXT')).status, 'NXDOMAIN');
    // The apex itself is not matched either: wild.test has its SPF only.
    assert.deepEqual((await dig('wild.test', 'TXT')).answers.map((a) => a.data), ['"v=spf1 mx -all"']);
    // No wildcard in another domain: NXDOMAIN as before.
    assert.equal((await dig('x.extra.test', 'TXT')).status, 'NXDOMAIN');
  });

  test("a record takes the DNSSEC state of the lab domain it falls under: AD under a secure domain's wildcard", async () => {
    const r = await dig('anything.secure-wild.test', 'TXT');
    assert.ok(r.flags.includes('ad'), r.flags.join(' '));
    assert.deepEqual(r.answers.map((a) => a.data), ['"wildcard under a secure domain"']);
    assert.ok(!(await dig('x.wild.test', 'TXT')).flags.includes('ad'));
    // A name under no lab domain is insecure.
    assert.ok(!(await dig('a.extra.test', 'A')).flags.includes('ad'));
    // Under a bogus domain: SERVFAIL + EDE 6, the answer with CD; under a faulty domain: its fault.
    const bogus = await dig('x.bogus-wild.test', 'TXT');
    assert.equal(bogus.status, 'SERVFAIL');
    assert.equal(bogus.ede, '6');
    assert.deepEqual((await dig('x.bogus-wild.test', 'TXT', '+cd')).answers.map((a) => a.data), ['"wildcard under a bogus domain"']);
    assert.equal((await dig('a.faulty.test', 'A')).status, 'REFUSED');
  });
});

describe('v2 host DNSSEC and TLSA (dig)', () => {
  test('secure host: its A and TLSA records carry AD', async () => {
    for (const [n, t] of [['mx.dane.test', 'A'], ['_25._tcp.mx.dane.test', 'TLSA']] as const) {
      const r = await dig(n, t);
      assert.equal(r.status, 'NOERROR');
      assert.ok(r.flags.includes('ad'), `${n} ${t}: ${r.flags.join(' ')}`);
      assert.ok(r.answers.length > 0);
    }
    assert.equal((await dig('_25._tcp.mx.dane.test', 'TLSA')).answers.length, 7);
  });

  test('bogus host: SERVFAIL with EDE 6 for its names, the answer with CD; its domain stays secure', async () => {
    for (const [n, t] of [['mx.dane-bogus.test', 'A'], ['_25._tcp.mx.dane-bogus.test', 'TLSA']] as const) {
      const r = await dig(n, t);
      assert.equal(r.status, 'SERVFAIL', n);
      assert.equal(r.ede, '6', n);
      const cd = await dig(n, t, '+cd');
      assert.equal(cd.status, 'NOERROR', n);
      assert.ok(cd.answers.length > 0 && !cd.flags.includes('ad'), n);
    }
    const mx = await dig('dane-bogus.test', 'MX');
    assert.equal(mx.status, 'NOERROR');
    assert.ok(mx.flags.includes('ad'));
  });

  test('insecure host: no AD on its TLSA; an inline host takes its domain state', async () => {
    const r = await dig('_25._tcp.mx.dane-insecure.test', 'TLSA');
    assert.equal(r.answers.length, 1);
    assert.ok(!r.flags.includes('ad'));
    const inline = await dig('_25._tcp.mx1.dane-inline.test', 'TLSA');
    assert.equal(inline.answers.length, 1);
    assert.ok(inline.flags.includes('ad'));
    // A host without tlsa has no TLSA name: NXDOMAIN.
    assert.equal((await dig('_25._tcp.mx.ecdsa.test', 'TLSA')).status, 'NXDOMAIN');
  });
});

// ---- What the SMTP hosts present, read with openssl ------------------------------------------------------

interface Presented {
  /** PEM blocks as sent, leaf first. */
  certs: string[];
  verify: number;
}

async function presented(ip: string): Promise<Presented> {
  const r = await run('openssl', ['s_client', '-starttls', 'smtp', '-connect', `${ip}:${lab.smtpPort}`, '-showcerts', '-CAfile', path.join(tmp, 'lab-ca.pem')], { input: 'QUIT\r\n' });
  const certs = r.stdout.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g) ?? [];
  const verify = Number(/Verify return code: (\d+)/.exec(r.stdout)?.[1] ?? -1);
  assert.ok(certs.length > 0, `${ip}: no certificate in\n${r.stdout}\n${r.stderr}`);
  return { certs, verify };
}

function pemFile(pem: string): string {
  const f = path.join(tmp, `${createHash('sha256').update(pem).digest('hex').slice(0, 16)}.pem`);
  writeFileSync(f, pem);
  return f;
}

async function x509Text(pem: string): Promise<string> {
  return (await run('openssl', ['x509', '-in', pemFile(pem), '-noout', '-text', '-enddate'])).stdout;
}

const ip = (id: string) => lab.world.hosts.get(id)!.ip;

describe('v2 certificates (openssl s_client -starttls smtp -showcerts)', () => {
  test('a complete chain is leaf + intermediate and verifies against the lab root alone; leaf-only does not', async () => {
    const complete = await presented(ip('complete'));
    assert.equal(complete.certs.length, 2);
    assert.equal(complete.verify, 0);
    assert.match(await x509Text(complete.certs[1]!), /Subject: CN = mailcensus lab intermediate CA/);
    assert.match(await x509Text(complete.certs[0]!), /Issuer: CN = mailcensus lab intermediate CA/);
    const leafOnly = await presented(ip('leaf-only'));
    assert.equal(leafOnly.certs.length, 1);
    // 21: unable to verify the first certificate (the intermediate is missing).
    assert.equal(leafOnly.verify, 21);
    // With the intermediate supplied by hand it verifies: only the chain is incomplete.
    const v = await run('openssl', ['verify', '-CAfile', path.join(tmp, 'lab-ca.pem'), '-untrusted', path.join(tmp, 'lab-intermediate.pem'), pemFile(leafOnly.certs[0]!)]);
    assert.match(v.stdout, /: OK/);
  });

  test('the key of each host certificate is the declared type and size', async () => {
    const expect: Array<[string, RegExp]> = [
      ['rsa1024', /rsaEncryption[\s\S]*Public-Key: \(1024 bit\)/],
      ['rsa2048', /rsaEncryption[\s\S]*Public-Key: \(2048 bit\)/],
      ['rsa4096', /rsaEncryption[\s\S]*Public-Key: \(4096 bit\)/],
      ['ecdsa', /id-ecPublicKey[\s\S]*Public-Key: \(256 bit\)[\s\S]*NIST CURVE: P-256/],
    ];
    for (const [id, re] of expect) {
      const p = await presented(ip(id));
      // 66: EE_KEY_TOO_SMALL, OpenSSL's default security level refuses to trust an RSA-1024 leaf.
      assert.equal(p.verify, id === 'rsa1024' ? 66 : 0, id);
      assert.match(await x509Text(p.certs[0]!), re, id);
    }
    // A self-signed ECDSA leaf is signed with ECDSA and verifies with its own key.
    const self = await presented(ip('dane-ecdsa-self'));
    assert.equal(self.certs.length, 1);
    assert.match(await x509Text(self.certs[0]!), /Signature Algorithm: ecdsa-with-SHA256/);
    assert.equal(self.verify, 18); // self-signed certificate
  });

  test('notAfter is notAfterDays after the world clock (now): 10, default expired -30, -5, default 365', async () => {
    const days = async (id: string) => {
      const p = await presented(ip(id));
      const end = /notAfter=(.+)/.exec(await x509Text(p.certs[0]!))![1]!;
      return { days: (Date.parse(end) - Date.now()) / DAY, verify: p.verify };
    };
    const soon = await days('expires-soon');
    assert.ok(Math.abs(soon.days - 10) < 1, String(soon.days));
    assert.equal(soon.verify, 0);
    const expired = await days('expired-default');
    assert.ok(Math.abs(expired.days + 30) < 1, String(expired.days));
    assert.equal(expired.verify, 10); // certificate has expired
    const minus5 = await days('expired-days');
    assert.ok(Math.abs(minus5.days + 5) < 1, String(minus5.days));
    assert.equal(minus5.verify, 10);
    const normal = await days('rsa2048');
    assert.ok(Math.abs(normal.days - 365) < 1, String(normal.days));
  });

  test('every TLSA record of a host matches the chain it presents, recomputed with openssl (or nothing, when matches is false)', async () => {
    const digest = async (pem: string, selector: number, matching: number) => {
      const f = pemFile(pem);
      const der = selector === 0 ? `openssl x509 -in ${f} -outform DER` : `openssl x509 -in ${f} -noout -pubkey | openssl pkey -pubin -outform DER`;
      const r = matching === 0 ? await sh(`${der} | od -An -v -tx1 | tr -d ' \\n'`) : await sh(`${der} | openssl dgst -${matching === 1 ? 'sha256' : 'sha512'} -r | cut -d' ' -f1`);
      return r.stdout.trim().toLowerCase();
    };
    const intermediate = readFileSync(path.join(tmp, 'lab-intermediate.pem'), 'utf8');
    for (const [id, name, expectMatch] of [
      ['dane', 'mx.dane.test', true],
      ['dane-ecdsa-self', 'mx.dane-ecdsa.test', true],
      ['dane-leaf-only', 'mx.dane-leaf-only.test', true],
      ['dane-mismatch', 'mx.dane-mismatch.test', false],
    ] as const) {
      const p = await presented(ip(id));
      const records = (await dig(`_25._tcp.${name}`, 'TLSA')).answers;
      assert.ok(records.length > 0, name);
      for (const rec of records) {
        const [u, s, m, ...hex] = rec.data.split(' ');
        const usage = Number(u);
        // Usages 1/3 match the leaf; 0/2 its issuer: the second certificate sent, the leaf itself when it is
        // self-signed, or (leaf-only) the intermediate that is not sent.
        const cert = usage === 1 || usage === 3 ? p.certs[0]! : p.certs[1] ?? (id === 'dane-ecdsa-self' ? p.certs[0]! : intermediate);
        const want = await digest(cert, Number(s), Number(m));
        const got = hex.join('').toLowerCase();
        if (expectMatch) assert.equal(got, want, `${name} ${u} ${s} ${m}`);
        else {
          assert.notEqual(got, want, name);
          assert.equal(got.length, want.length, name);
        }
      }
    }
  });

  test('issuing is deterministic: a CA rebuilt from the material (an SMTP shard) presents byte-identical certificates', async () => {
    const ca = await createLabCa({ stateDir: tmp, keyTypes: ['rsa-2048', 'ecdsa-p256'] });
    const copy = await createLabCa({ existing: ca.material() });
    for (const key of ['rsa-2048', 'ecdsa-p256'] as const) {
      const spec = { name: 'mx.x.test', kind: 'valid' as const, key, notAfterDays: 3, chain: 'complete' as const };
      assert.equal(copy.issue(spec).certPem, ca.issue(spec).certPem, key);
    }
    // Keys are kept per type in the state directory: the next start reuses them.
    const again = await createLabCa({ stateDir: tmp, keyTypes: ['ecdsa-p256'] });
    assert.equal(again.material().hostKeys['ecdsa-p256'], ca.material().hostKeys['ecdsa-p256']);
  });

  test('the world clock is observedAt when set: notAfterDays counts from it; default-valid certificates stay valid at real time', async () => {
    const ca = await createLabCa({ observedAt: '2021-06-30T00:00:00Z', stateDir: tmp, keyTypes: ['rsa-2048'] });
    const end = (kind: 'valid' | 'expired', notAfterDays: number | null) =>
      Date.parse(new X509Certificate(ca.issue({ name: 'mx.x.test', kind, key: 'rsa-2048', notAfterDays, chain: 'complete' }).chainDer[0]!).validTo);
    assert.equal(end('valid', 10), Date.parse('2021-07-10T00:00:00Z'));
    assert.equal(end('expired', null), Date.parse('2021-05-31T00:00:00Z'));
    assert.ok(end('valid', null) > Date.now() + 364 * DAY);
  });
});

// ---- MTA-STS policy hosts --------------------------------------------------------------------------------

describe('v2 MTA-STS policy hosts (curl, node:https)', () => {
  const policyIp = async (domain: string) => {
    const r = await dig(`mta-sts.${domain}`, 'A');
    assert.equal(r.answers.length, 1, domain);
    return r.answers[0]!.data;
  };
  const curl = async (domain: string, ...extra: string[]) => {
    const name = `mta-sts.${domain}`;
    const r = await run('curl', ['-sS', '-m', '5', '-i', '--cacert', path.join(tmp, 'lab-ca.pem'), '--resolve', `${name}:${lab.httpsPort}:${await policyIp(domain)}`, ...extra, `https://${name}:${lab.httpsPort}/.well-known/mta-sts.txt`]);
    return { ...r, status: Number(/^HTTP\/[\d.]+ (\d+)/.exec(r.stdout)?.[1] ?? 0), body: r.stdout.split('\r\n\r\n').slice(1).join('\r\n\r\n') };
  };

  test('the env names the HTTPS port', () => {
    assert.equal(lab.env.MAILCENSUS_HTTPS_PORT, String(lab.httpsPort));
    assert.ok(lab.httpsPort > 0);
  });

  test('ok: a verified certificate for mta-sts.<domain>, 200 and the default policy naming every MX', async () => {
    const r = await curl('sts-ok.test');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.status, 200);
    assert.match(r.stdout, /^Content-Type: text\/plain\r$/m);
    assert.equal(r.body, 'version: STSv1\r\nmode: enforce\r\nmx: mx.rsa2048.test\r\nmax_age: 604800\r\n');
    // Other paths are 404.
    const other = await run('curl', ['-sS', '-m', '5', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', path.join(tmp, 'lab-ca.pem'), '--resolve', `mta-sts.sts-ok.test:${lab.httpsPort}:${await policyIp('sts-ok.test')}`, `https://mta-sts.sts-ok.test:${lab.httpsPort}/`]);
    assert.equal(other.stdout, '404');
  });

  test('body and contentType are served as declared', async () => {
    const r = await curl('sts-custom.test');
    assert.equal(r.status, 200);
    assert.match(r.stdout, /^Content-Type: text\/html\r$/m);
    assert.equal(r.body, 'version: STSv1\nmode: testing\nmx: *.other.test\nmax_age: 86400\n');
  });

  test('404, self-signed, expired, wrong-name: what curl says', async () => {
    assert.equal((await curl('sts-404.test')).status, 404);
    const self = await curl('sts-self-signed.test');
    assert.equal(self.code, 60);
    assert.match(self.stderr, /self[- ]signed/i);
    assert.match((await curl('sts-expired.test')).stderr, /expired/i);
    assert.match((await curl('sts-wrong-name.test')).stderr, /no alternative certificate subject name matches|does not match/i);
    // Without verification they still serve the policy.
    for (const d of ['sts-self-signed.test', 'sts-expired.test', 'sts-wrong-name.test']) {
      const r = await curl(d, '-k');
      assert.equal(r.status, 200, d);
      assert.match(r.body, /^version: STSv1/, d);
    }
  });

  test('refuse: connection refused; timeout: accepts TCP and never sends a byte', async () => {
    const refused = await curl('sts-refuse.test');
    assert.equal(refused.code, 7, refused.stderr);
    const addr = await policyIp('sts-timeout.test');
    const got = await new Promise<{ connected: boolean; bytes: number }>((resolve) => {
      let connected = false;
      let bytes = 0;
      const s = net.connect({ host: addr, port: lab.httpsPort }, () => {
        connected = true;
        s.write('\u0016\u0003\u0001\u0000\u0005hello'); // looks like a ClientHello start: still no answer
      });
      s.on('data', (d) => (bytes += d.length));
      s.on('error', () => {});
      setTimeout(() => {
        s.destroy();
        resolve({ connected, bytes });
      }, 1500);
    });
    assert.deepEqual(got, { connected: true, bytes: 0 });
  });

  test('requests are bounded: oversized headers get 431, a request body is refused unread, POST is 405', async () => {
    const addr = await policyIp('sts-ok.test');
    // Raw TLS, so the reply is read even when the server closes right after it.
    const exchange = (request: string) =>
      new Promise<string>((resolve) => {
        let out = '';
        const s = tls.connect({ host: addr, port: lab.httpsPort, servername: 'mta-sts.sts-ok.test', rejectUnauthorized: false }, () => s.write(request));
        s.setEncoding('utf8');
        s.on('data', (d: string) => (out += d));
        s.on('error', () => {});
        s.on('close', () => resolve(out));
        setTimeout(() => s.destroy(), 5000).unref();
      });
    const status = (reply: string) => Number(/^HTTP\/1\.1 (\d+)/.exec(reply)?.[1] ?? 0);
    const req = (lines: string[], body = '') => `${lines.join('\r\n')}\r\nHost: mta-sts.sts-ok.test\r\nConnection: close\r\n\r\n${body}`;
    assert.equal(status(await exchange(req(['GET /.well-known/mta-sts.txt HTTP/1.1', `X-Big: ${'a'.repeat(9000)}`]))), 431);
    assert.equal(status(await exchange(req(['GET /.well-known/mta-sts.txt HTTP/1.1', 'Content-Length: 5'], 'hello'))), 413);
    assert.equal(status(await exchange(req(['POST /.well-known/mta-sts.txt HTTP/1.1']))), 405);
    assert.equal(status(await exchange(req(['GET /.well-known/mta-sts.txt HTTP/1.1']))), 200);
  });
});

// ---- DKIM keys per selector --------------------------------------------------------------------------------

describe('v2 DKIM keys (dig, mailauth)', () => {
  test('each selector publishes its key: k=, size, t=y, empty p= when revoked', async () => {
    const txt = async (sel: string) => (await dig(`${sel}._domainkey.dkim.test`, 'TXT')).answers.map((a) => a.data.replace(/" "/g, '').replace(/^"|"$/g, ''))[0]!;
    const keyBits = (rec: string) => {
      const p = /p=([A-Za-z0-9+/=]*)/.exec(rec)![1]!;
      return createPublicKey({ key: Buffer.from(p, 'base64'), format: 'der', type: 'spki' }).asymmetricKeyDetails?.modulusLength ?? 0;
    };
    const def = await txt('default');
    assert.match(def, /^v=DKIM1; k=rsa; p=MII/);
    assert.equal(keyBits(def), 2048);
    assert.equal(keyBits(await txt('rsa1024')), 1024);
    assert.equal(await txt('rsa2048'), def, 'an explicit RSA-2048 key is the default key');
    const ed = await txt('ed');
    assert.match(ed, /^v=DKIM1; k=ed25519; p=/);
    assert.equal(Buffer.from(/p=(.*)$/.exec(ed)![1]!, 'base64').length, 32, 'RFC 8463: the raw 32-byte key');
    assert.match(await txt('testing'), /^v=DKIM1; k=rsa; t=y; p=MII/);
    assert.equal(await txt('revoked'), 'v=DKIM1; k=rsa; p=');
  });

  describe('signed mails from v2 selectors, verified by mailauth against the lab DNS', () => {
    let sink: MailSink;
    const received = new Map<string, { ip: string; helo: string; from: string; message: Buffer }>();
    let results: SendResult[];
    let resolver: dnsPromises.Resolver;
    before(async () => {
      resolver = new dnsPromises.Resolver({ timeout: 2000, tries: 2 });
      resolver.setServers([`127.0.0.1:${dnsPort}`]);
      sink = await startMailSink((m) => received.set(m.mailFrom.split('@')[1]!, { ip: m.remoteAddress, helo: m.clientHostname, from: m.mailFrom, message: m.message }), { hideSTARTTLS: true });
      const port = sink.port;
      results = await sendTestMails(lab.world, { to: { host: '127.0.0.1', port }, concurrency: 4, timeoutMs: 10_000 });
    });
    after(async () => {
      await sink.close();
    });
    const verify = async (domain: string) => {
      const m = received.get(domain);
      assert.ok(m, `no mail from ${domain}`);
      const res = await authenticate(m.message, {
        ip: m.ip,
        helo: m.helo,
        sender: m.from,
        mta: 'receiver.test',
        resolver: (name: string, rrtype: string) => resolver.resolve(name, rrtype) as Promise<string[][] | string[]>,
        disableArc: true,
        disableBimi: true,
      } as Parameters<typeof authenticate>[1]);
      assert.equal(res.dkim.results.length, 1, domain);
      return res.dkim.results[0]! as typeof res.dkim.results[0] & { algo?: string; modulusLength?: number };
    };

    test('every sender delivered', () => {
      for (const r of results) assert.equal(r.ok, true, `${r.domain}: ${r.error}`);
      assert.equal(results.length, 4);
    });

    test('RSA-1024, Ed25519 and testing selectors verify, each with its own algorithm and key', async () => {
      const rsa1024 = await verify('dkim-rsa1024.test');
      assert.equal(rsa1024.status.result, 'pass', JSON.stringify(rsa1024.status));
      assert.equal(rsa1024.algo, 'rsa-sha256');
      assert.equal(rsa1024.modulusLength, 1024);
      const ed = await verify('dkim-ed25519.test');
      assert.equal(ed.status.result, 'pass', JSON.stringify(ed.status));
      assert.equal(ed.algo, 'ed25519-sha256');
      const testing = await verify('dkim-testing.test');
      assert.equal(testing.status.result, 'pass', JSON.stringify(testing.status));
      assert.match(received.get('dkim-testing.test')!.message.toString(), /^DKIM-Signature: [^\r]*a=rsa-sha256/m);
    });

    test('a revoked selector: the mail is signed with the key, and the empty p= makes it fail', async () => {
      const m = received.get('dkim-revoked.test')!;
      assert.match(m.message.toString().split('\r\nX-Mailer')[0]!, /^DKIM-Signature: [\s\S]*\bs=s;/);
      const rev = await verify('dkim-revoked.test');
      assert.notEqual(rev.status.result, 'pass');
      assert.match(JSON.stringify(rev.status), /revoked|no key|neutral|fail|permerror/i);
    });
  });
});
