// The real-server harness itself (test/helpers/real-servers.ts), checked only with independent clients:
// `dig +dnssec` against NSD and unbound, `openssl s_client` against nginx and Postfix, `posttls-finger`
// (Postfix's own TLS client) against Postfix. Nothing here uses mailcensus code: these tests say the servers
// the MTA-STS and DANE tests compare us with really serve what the scenarios declare.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { BINARIES, dig, digHeader, opensslDigest, postfixUnavailable, sClientChain, skipUnless } from './helpers/real-servers.ts';
import { DANE_CASES, HTTPS_PORT, SMTP_PORTS, STS_ZONE, startDaneWorld, startStsWorld, type DaneWorld, type StsWorld } from './helpers/real-worlds.ts';

const skip = skipUnless(['nginx', 'nsd', 'unbound', 'dnssec-keygen', 'dnssec-signzone', 'dig', 'openssl', 'posttls-finger']) || postfixUnavailable();
if (skip) console.log(`# skipping real-server tests: ${skip}`);

function refused(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: ip, port });
    const t = setTimeout(() => { s.destroy(); resolve(false); }, 2000);
    s.once('connect', () => { clearTimeout(t); s.destroy(); resolve(false); });
    s.once('error', (e: NodeJS.ErrnoException) => { clearTimeout(t); resolve(e.code === 'ECONNREFUSED'); });
  });
}

/** An HTTP/1.0 GET through `openssl s_client` (independent of node:https): the status line and headers. */
function opensslGet(ip: string, host: string): { head: string; verify: string } {
  const out = execFileSync(BINARIES.openssl, ['s_client', '-connect', `${ip}:${HTTPS_PORT}`, '-servername', host, '-ign_eof', '-quiet'], {
    input: `GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: ${host}\r\n\r\n`,
    timeout: 15_000,
    stdio: ['pipe', 'pipe', 'pipe'],
  }).toString();
  return { head: out.split('\r\n\r\n')[0], verify: '' };
}

describe('real servers: NSD + unbound + Postfix (DANE scenario)', { skip }, () => {
  let w: DaneWorld;
  before(async () => {
    w = await startDaneWorld(0);
  });
  after(async () => {
    const ports = [[w?.dns.unbound.ip, w?.dns.unbound.port], [w?.dns.nsd.ip, w?.dns.nsd.port], ...Object.values(SMTP_PORTS).map((p) => [w?.smtpIp, p])] as [string, number][];
    await w?.stop();
    // Nothing of the harness is left listening.
    for (const [ip, port] of ports) if (ip) assert.ok(await refused(ip, port), `${ip}:${port} still accepts connections after stop()`);
  });

  test('unbound listens on 127.60.0.53 and validates the signed zone: TLSA with AD', () => {
    assert.equal(w.dns.unbound.ip, '127.60.0.53');
    const out = dig(w.dns.unbound, ['+dnssec', 'TLSA', '_25._tcp.mx-ee.dane.test']);
    const h = digHeader(out);
    assert.equal(h.rcode, 'NOERROR', out);
    assert.ok(h.flags.includes('ad'), `no AD: ${out}`);
    const expected = opensslDigest(w.leaves.rsa2048.certPath, 'spki', 'sha256').toUpperCase();
    assert.match(out.replace(/\s+/g, ' '), new RegExp(`TLSA 3 1 1 ${expected.slice(0, 56)} ?${expected.slice(56)}`), out);
  });

  test('NSD is authoritative and serves RRSIGs for the signed zone only', () => {
    const signed = dig(w.dns.nsd, ['+norec', '+dnssec', 'TLSA', '_25._tcp.mx-ee.dane.test']);
    assert.ok(digHeader(signed).flags.includes('aa'), signed);
    assert.match(signed, /RRSIG\s+TLSA 13 /);
    const unsigned = dig(w.dns.nsd, ['+norec', '+dnssec', 'TLSA', '_25._tcp.mx.insecure.test']);
    assert.doesNotMatch(unsigned, /RRSIG/);
  });

  test('the unsigned zone answers without AD, the bogus one SERVFAILs (and answers with CD)', () => {
    const insecure = dig(w.dns.unbound, ['+dnssec', 'TLSA', '_25._tcp.mx.insecure.test']);
    assert.equal(digHeader(insecure).rcode, 'NOERROR');
    assert.ok(!digHeader(insecure).flags.includes('ad'), insecure);
    assert.match(insecure, /IN\s+TLSA\s+3 1 1/);
    const bogus = dig(w.dns.unbound, ['+dnssec', 'TLSA', '_25._tcp.mx.bogus.test']);
    assert.equal(digHeader(bogus).rcode, 'SERVFAIL', bogus);
    assert.match(bogus, /EDE: (6|9|10)/, `unbound gives an Extended DNS Error: ${bogus}`);
    const cd = dig(w.dns.unbound, ['+dnssec', '+cd', 'TLSA', '_25._tcp.mx.bogus.test']);
    assert.equal(digHeader(cd).rcode, 'NOERROR', cd);
    assert.match(cd, /IN\s+TLSA\s+3 1 1/);
  });

  test('a secure denial (NXDOMAIN with AD) for the MX without TLSA', () => {
    const out = dig(w.dns.unbound, ['+dnssec', 'TLSA', '_25._tcp.mx-none.dane.test']);
    assert.equal(digHeader(out).rcode, 'NXDOMAIN', out);
    assert.ok(digHeader(out).flags.includes('ad'), out);
    assert.doesNotMatch(out, /IN\s+TLSA\s+\d/);
  });

  test('Postfix serves each chain over STARTTLS as openssl s_client sees it', () => {
    const full = sClientChain(w.smtpIp, SMTP_PORTS.rsa2048, { starttls: 'smtp' });
    assert.equal(full.pems.length, 2, 'leaf + intermediate');
    assert.match(full.output, /Server public key is 2048 bit/);
    const leafOnly = sClientChain(w.smtpIp, SMTP_PORTS.leafOnly, { starttls: 'smtp' });
    assert.equal(leafOnly.pems.length, 1, 'leaf alone');
    assert.match(sClientChain(w.smtpIp, SMTP_PORTS.rsa1024, { starttls: 'smtp' }).output, /Server public key is 1024 bit/);
    const ec = sClientChain(w.smtpIp, SMTP_PORTS.ec256, { starttls: 'smtp' });
    assert.match(ec.output, /Server public key is 256 bit/);
    assert.match(ec.output, /Peer signature type: ECDSA/);
  });

  test('posttls-finger: the complete chain verifies against the test root, the leaf-only chain does not', () => {
    const finger = (port: number) => {
      try {
        // posttls-finger reads a main.cf before it starts; the package installed "No configuration" has none in
        // /etc/postfix, so it reads the test Postfix's own (MAIL_CONFIG), which delivers nothing.
        const env = { ...process.env, MAIL_CONFIG: path.join(w.postfix.dir, 'conf') };
        return execFileSync(BINARIES['posttls-finger'], ['-c', '-l', 'secure', '-F', w.pki.rootPath, `[${w.smtpIp}]:${port}`, 'mx-ee.dane.test'], { timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe'], env }).toString();
      } catch (err) {
        const e = err as { stdout?: Buffer; stderr?: Buffer };
        return `${e.stdout ?? ''}${e.stderr ?? ''}`;
      }
    };
    assert.match(finger(SMTP_PORTS.rsa2048), /Verified TLS connection established/);
    assert.match(finger(SMTP_PORTS.leafOnly), /Untrusted TLS connection established|certificate verification failed/);
  });

  test('Postfix delivers nothing: relaying is refused and nothing is queued', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const s = net.connect({ host: w.smtpIp, port: SMTP_PORTS.rsa2048 });
      let buf = '';
      const steps = ['EHLO probe.test\r\n', 'MAIL FROM:<a@probe.test>\r\n', 'RCPT TO:<b@relay-target.example>\r\n', 'QUIT\r\n'];
      const timer = setTimeout(() => { s.destroy(); reject(new Error(`SMTP dialogue timed out: ${buf}`)); }, 10_000);
      s.on('data', (d) => {
        buf += d.toString();
        // One command per complete reply (a final line is "ddd " + text).
        const finals = buf.split('\r\n').filter((l) => /^\d{3} /.test(l)).length;
        if (finals >= 1 && steps.length > 0 && finals === 5 - steps.length) s.write(steps.shift() as string);
      });
      s.on('close', () => { clearTimeout(timer); resolve(buf); });
      s.on('error', reject);
    });
    assert.match(reply, /^554 5\.7\.1 .*Relay access denied/m, reply);
    const queued = execFileSync('/usr/sbin/postqueue', ['-c', `${w.postfix.dir}/conf`, '-p'], { timeout: 10_000 }).toString();
    assert.match(queued, /Mail queue is empty/);
  });

  test('every DANE case MX resolves to the Postfix address, with AD exactly in the signed zones', () => {
    for (const c of DANE_CASES) {
      const out = dig(w.dns.unbound, ['+dnssec', 'A', c.mx]);
      assert.equal(digHeader(out).rcode, 'NOERROR', `${c.mx}: ${out}`);
      assert.match(out, new RegExp(`IN\\s+A\\s+${w.smtpIp.replace(/\./g, '\\.')}`));
      assert.equal(digHeader(out).flags.includes('ad'), !c.mx.endsWith('.insecure.test'), `${c.mx}: ${out}`);
    }
  });
});

describe('real servers: nginx (MTA-STS scenario)', { skip }, () => {
  let w: StsWorld;
  before(async () => {
    w = await startStsWorld(3);
  });
  after(async () => {
    await w?.stop();
    assert.ok(await refused(w.ips.nginx, HTTPS_PORT), 'nginx still listening after stop()');
  });

  test('the good host sends leaf + intermediate, which verify against the test root', () => {
    const s = sClientChain(w.ips.nginx, HTTPS_PORT, { servername: `mta-sts.good.${STS_ZONE}` });
    assert.equal(s.pems.length, 2);
    const v = execFileSync(BINARIES.openssl, ['s_client', '-connect', `${w.ips.nginx}:${HTTPS_PORT}`, '-servername', `mta-sts.good.${STS_ZONE}`, '-CAfile', w.pki.rootPath, '-verify_hostname', `mta-sts.good.${STS_ZONE}`], { input: '', timeout: 15_000, stdio: ['pipe', 'pipe', 'pipe'] }).toString();
    assert.match(v, /Verify return code: 0 \(ok\)/);
  });

  test('self-signed, expired and wrong-name hosts fail verification as openssl reports it', () => {
    const verify = (label: string) => execFileSync(BINARIES.openssl, ['s_client', '-connect', `${w.ips.nginx}:${HTTPS_PORT}`, '-servername', `mta-sts.${label}.${STS_ZONE}`, '-CAfile', w.pki.rootPath, '-verify_hostname', `mta-sts.${label}.${STS_ZONE}`], { input: '', timeout: 15_000, stdio: ['pipe', 'pipe', 'pipe'] }).toString();
    assert.match(verify('selfsigned'), /Verify return code: 18 \(self-signed certificate\)/);
    assert.match(verify('expired'), /Verify return code: 10 \(certificate has expired\)/);
    assert.match(verify('wrongname'), /Verify return code: 62 \(hostname mismatch\)/);
  });

  test('status and Content-Type per vhost, as an HTTP/1.0 client over openssl sees them', () => {
    const head = (label: string) => opensslGet(w.ips.nginx, `mta-sts.${label}.${STS_ZONE}`).head;
    assert.match(head('good'), /^HTTP\/1\.1 200 OK[\s\S]*Content-Type: text\/plain\r?$/m);
    assert.match(head('testing'), /Content-Type: text\/plain; charset=utf-8/);
    assert.match(head('wrongtype'), /Content-Type: text\/html/);
    assert.match(head('notfound'), /^HTTP\/1\.1 404/);
    assert.match(head('redirect'), /^HTTP\/1\.1 301[\s\S]*Location: https:\/\/mta-sts\.good\.sts\.test\/\.well-known\/mta-sts\.txt/);
    assert.match(head('oversize'), /Content-Length: (\d{6})/);
  });

  test('the unsigned sts.test zone points the policy hosts at nginx, the refused one elsewhere', () => {
    const good = dig(w.dns.unbound, ['A', `mta-sts.good.${STS_ZONE}`]);
    assert.match(good, new RegExp(`IN\\s+A\\s+${w.ips.nginx.replace(/\./g, '\\.')}`));
    assert.match(dig(w.dns.unbound, ['TXT', `_mta-sts.good.${STS_ZONE}`]), /"v=STSv1; id=20260101"/);
    assert.equal(digHeader(dig(w.dns.unbound, ['A', `mta-sts.nohost.${STS_ZONE}`])).rcode, 'NXDOMAIN');
  });
});
