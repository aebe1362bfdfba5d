// The presented chain recorded by the SMTP probe (tls.chain, for DANE and certificate details) against the lab's
// version-2 hosts (lab/worlds/test-v2.json): an intermediate CA, per-host key types and complete / leaf-only
// chains. Hashes are recomputed from the lab's own certificates.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import forge from 'node-forge';
import { startLab, type Lab } from '../lab/index.ts';
import { probeSmtp, type SmtpObservation } from '../lib/probes/smtp/index.ts';
import { chainFacts, MAX_CHAIN } from '../lib/net/presented-cert.ts';

const WORLD = fileURLToPath(new URL('../lab/worlds/test-v2.json', import.meta.url));
let lab: Lab;
let tmp: string;

before(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'smtp-chain-'));
  lab = await startLab(WORLD, { dnsPort: 0, smtpPort: 0, httpsPort: 0, stateDir: tmp });
});
after(async () => {
  await lab?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

async function probe(id: string): Promise<SmtpObservation> {
  const h = lab.world.hosts.get(id)!;
  return probeSmtp(h.ip, {
    port: lab.smtpPort, lab: true, host: h.name, extraCaPems: [lab.caPem], relayVariants: ['plain'],
    connectTimeoutMs: 5000, bannerTimeoutMs: 5000, commandTimeoutMs: 10_000,
  });
}

const sha = (alg: string, der: Buffer) => createHash(alg).update(der).digest('hex');

test('a complete chain: leaf, the lab intermediate, and the lab root Node completes it with', async () => {
  const obs = await probe('complete');
  assert.equal(obs.tls.handshake, 'ok');
  const chain = obs.tls.chain!;
  assert.deepEqual(chain.map((c) => c.subject), ['CN=mx.complete.test', 'CN=mailcensus lab intermediate CA, O=mailcensus lab', 'CN=mailcensus lab CA, O=mailcensus lab']);
  assert.equal(chain.length, 3);
  assert.equal(chain[0].issuer, 'CN=mailcensus lab intermediate CA, O=mailcensus lab');
  assert.deepEqual(chain.map((c) => c.selfIssued), [false, false, true]);
  // The intermediate's hashes are those of the PEM the lab writes.
  const inter = new X509Certificate(readFileSync(path.join(tmp, 'lab-intermediate.pem')));
  assert.equal(chain[1].certSha256, sha('sha256', inter.raw));
  assert.equal(chain[1].certSha512, sha('sha512', inter.raw));
  const spki = inter.publicKey.export({ type: 'spki', format: 'der' });
  assert.equal(chain[1].spkiSha256, sha('sha256', spki));
  assert.equal(chain[1].spkiSha512, sha('sha512', spki));
  assert.equal(chain[2].certSha256, sha('sha256', new X509Certificate(lab.caPem).raw));
  for (const c of chain) {
    assert.match(c.certSha256, /^[0-9a-f]{64}$/);
    assert.match(c.spkiSha512, /^[0-9a-f]{128}$/);
    assert.ok(!Number.isNaN(Date.parse(c.notBefore)) && c.notBefore.endsWith('Z'));
  }
  assert.deepEqual([chain[0].keyType, chain[0].bits, chain[0].curve], ['rsa', 2048, null]);
  // The leaf of the chain is the certificate the cert observation describes.
  assert.equal(chain[0].certSha256, obs.tls.cert!.fingerprint256.replace(/:/g, '').toLowerCase());
});

test('a leaf-only host presents one certificate (its issuer is not in the trust store)', async () => {
  const chain = (await probe('leaf-only')).tls.chain!;
  assert.equal(chain.length, 1);
  assert.equal(chain[0].subject, 'CN=mx.leaf-only.test');
  assert.equal(chain[0].selfIssued, false);
});

test('key types and sizes as the lab serves them: RSA 1024/4096, ECDSA P-256, a self-signed ECDSA leaf', async () => {
  const leaf = async (id: string) => (await probe(id)).tls.chain![0];
  assert.deepEqual(await leaf('rsa1024').then((c) => [c.keyType, c.bits, c.curve]), ['rsa', 1024, null]);
  assert.deepEqual(await leaf('rsa4096').then((c) => [c.keyType, c.bits, c.curve]), ['rsa', 4096, null]);
  assert.deepEqual(await leaf('ecdsa').then((c) => [c.keyType, c.bits, c.curve]), ['ec', 256, 'prime256v1']);
  const self = (await probe('dane-ecdsa-self')).tls.chain!;
  assert.equal(self.length, 1);
  assert.deepEqual([self[0].keyType, self[0].bits, self[0].curve, self[0].selfIssued], ['ec', 256, 'prime256v1', true]);
});

test('hostile certificate strings are bounded: control characters stripped, subject capped; garbage is skipped', () => {
  assert.equal(MAX_CHAIN, 10);
  assert.deepEqual(chainFacts([Buffer.from('not a certificate')]), []);
  const keys = forge.pki.rsa.generateKeyPair(1024);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '01';
  cert.validity.notBefore = new Date('2020-01-01T00:00:00Z');
  cert.validity.notAfter = new Date('2030-01-01T00:00:00Z');
  const cn = `evil\u001b[31m\r\nX-Injected: yes${'x'.repeat(3000)}`;
  cert.setSubject([{ name: 'commonName', value: cn }]);
  cert.setIssuer([{ name: 'commonName', value: 'issuer\u0000\u202e' }]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  const der = Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), 'binary');
  const [p] = chainFacts([der, Buffer.from('garbage after it')]);
  assert.equal(p.issuedByNext, undefined, 'the last certificate that parsed has no next');
  assert.ok(p.subject.length <= 513, String(p.subject.length));
  assert.doesNotMatch(p.subject + p.issuer, /[\u0000-\u001f\u007f-\u009f\u202e]/);
  assert.ok(p.subject.startsWith('CN=evil') && !p.subject.includes('\n'), p.subject.slice(0, 40));
  assert.equal(p.selfIssued, false);
  assert.deepEqual([p.keyType, p.bits, p.notBefore], ['rsa', 1024, '2020-01-01T00:00:00.000Z']);
});
