// DANE for SMTP (RFC 7672, issue 15): TLSA records at _25._tcp.<mx> through a validating unbound in front
// of NSD (signed, unsigned and bogus zones), matched against the chains Postfix really presents (RSA-2048,
// RSA-1024, ECDSA P-256, leaf without its intermediate). The chains are read twice, by a node:tls STARTTLS
// session and by `openssl s_client -showcerts`, and must agree; the TLSA data was computed by the openssl CLI.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import forge from 'node-forge';
import net from 'node:net';
import tls from 'node:tls';
import { createResolver, type Resolver } from '../lib/dns/resolver.ts';
import { evaluateDane, matchTlsa, parseTlsaData, retrieveTlsa, DANE_REASONS, type PresentedCert, type TlsaObservation } from '../lib/checks/dane/tlsa.ts';
import { chainFacts, presentedChain } from '../lib/net/presented-cert.ts';
import { opensslDigest, postfixUnavailable, sClientChain, skipUnless } from './helpers/real-servers.ts';
import { DANE_CASES, SMTP_PORTS, startDaneWorld, type DaneWorld, type SmtpListener } from './helpers/real-worlds.ts';

const skip = skipUnless(['nsd', 'unbound', 'dnssec-keygen', 'dnssec-signzone', 'openssl']) || postfixUnavailable();
if (skip) console.log(`# skipping the DANE real-server tests: ${skip}`);

/** EHLO, STARTTLS, handshake (no CA: the chain as sent), the chain as PresentedCert[]; QUIT. Bounded by 10 s. */
function starttlsChain(ip: string, port: number): Promise<PresentedCert[]> {
  return new Promise((resolve, reject) => {
    const raw = net.connect({ host: ip, port });
    let buf = '';
    let stage = 0;
    const timer = setTimeout(() => { raw.destroy(); reject(new Error(`STARTTLS to ${ip}:${port} timed out: ${buf}`)); }, 10_000);
    raw.on('error', (e) => { clearTimeout(timer); reject(e); });
    raw.on('data', (d) => {
      buf += d.toString();
      const finals = buf.split('\r\n').filter((l) => /^\d{3} /.test(l));
      if (stage === 0 && finals.length >= 1) { stage = 1; raw.write('EHLO dane-test.example\r\n'); }
      else if (stage === 1 && finals.length >= 2) { stage = 2; raw.write('STARTTLS\r\n'); }
      else if (stage === 2 && finals.length >= 3) {
        stage = 3;
        if (!finals[2].startsWith('220')) { clearTimeout(timer); raw.destroy(); return reject(new Error(`STARTTLS refused: ${finals[2]}`)); }
        raw.removeAllListeners('data');
        const t = tls.connect({ socket: raw, servername: 'mx-ee.dane.test', rejectUnauthorized: false, ca: [] });
        t.on('error', (e) => { clearTimeout(timer); reject(e); });
        t.once('secureConnect', () => {
          clearTimeout(timer);
          const chain = presentedChain(t);
          t.end('QUIT\r\n');
          t.destroy();
          resolve(chain);
        });
      }
    });
  });
}

describe('TLSA records and matching, pure', () => {
  const leaf: PresentedCert = {
    certSha256: 'aa'.repeat(32), certSha512: 'ab'.repeat(64), spkiSha256: 'ac'.repeat(32), spkiSha512: 'ad'.repeat(64),
    subject: 'CN=mx', issuer: 'CN=ca', keyType: 'rsa', bits: 2048, curve: null, notBefore: '2026-01-01T00:00:00.000Z', notAfter: '2027-01-01T00:00:00.000Z', selfIssued: false,
  };
  const ca: PresentedCert = { ...leaf, certSha256: 'ba'.repeat(32), spkiSha256: 'bc'.repeat(32), subject: 'CN=ca', issuer: 'CN=root' };
  test('parses our resolver\'s TLSA presentation, refuses the rest', () => {
    assert.deepEqual(parseTlsaData(`3 1 1 ${'AC'.repeat(32)}`), { usage: 3, selector: 1, matchingType: 1, data: 'ac'.repeat(32) });
    assert.equal(parseTlsaData('3 1 1 abc'), null);
    assert.equal(parseTlsaData('3 1'), null);
    assert.equal(parseTlsaData('300 1 1 ab'), null);
  });
  test('DANE-EE compares with the leaf only, DANE-TA with the certificates above it', () => {
    const m = matchTlsa([
      { usage: 3, selector: 1, matchingType: 1, data: 'ac'.repeat(32) },
      { usage: 3, selector: 1, matchingType: 1, data: 'bc'.repeat(32) }, // the CA's SPKI as EE: no match
      { usage: 2, selector: 0, matchingType: 1, data: 'ba'.repeat(32) },
      { usage: 2, selector: 0, matchingType: 1, data: 'aa'.repeat(32) }, // the leaf as TA: no match
    ], [leaf, ca]);
    assert.deepEqual(m.results.map((r) => r.matchedDepth), [0, null, 1, null]);
    assert.equal(m.matched, true);
  });
  test('usages 0/1, unknown selectors and types, wrong digest lengths are unusable', () => {
    const m = matchTlsa([
      { usage: 1, selector: 1, matchingType: 1, data: 'ac'.repeat(32) },
      { usage: 0, selector: 0, matchingType: 1, data: 'ba'.repeat(32) },
      { usage: 4, selector: 1, matchingType: 1, data: 'ac'.repeat(32) },
      { usage: 3, selector: 2, matchingType: 1, data: 'ac'.repeat(32) },
      { usage: 3, selector: 1, matchingType: 3, data: 'ac'.repeat(32) },
      { usage: 3, selector: 1, matchingType: 1, data: 'ac'.repeat(31) },
      { usage: 3, selector: 1, matchingType: 2, data: 'ac'.repeat(32) },
    ], [leaf, ca]);
    assert.deepEqual(m.results.map((r) => r.unusable), ['pkix_usage', 'pkix_usage', 'unknown_usage', 'unknown_selector', 'unknown_matching_type', 'bad_digest_length', 'bad_digest_length']);
    assert.equal(m.usableCount, 0);
    assert.equal(m.matched, false);
  });
  test('every reason code names a value and whether it is transient', () => {
    for (const [k, v] of Object.entries(DANE_REASONS)) assert.equal(typeof v.transient, 'boolean', k);
  });

  // RFC 7672 §3.1.2 / §3.2.2: a DANE-TA record vouches for the leaf through signatures, not by sitting in
  // the chain. Real certificates (node-forge): root -> intermediate -> leaf, and an impostor with the
  // intermediate's name and another key that signed nothing.
  test('DANE-TA: the matched certificate must have signed the chain below it, and the leaf carry the MX name', () => {
    const make = (cn: string, key: forge.pki.rsa.KeyPair, signer: { cn: string; key: forge.pki.rsa.KeyPair }, ca: boolean) => {
      const c = forge.pki.createCertificate();
      c.publicKey = key.publicKey;
      c.serialNumber = `0${Math.floor(Math.random() * 1e6)}`;
      c.validity.notBefore = new Date('2026-01-01T00:00:00Z');
      c.validity.notAfter = new Date('2028-01-01T00:00:00Z');
      c.setSubject([{ name: 'commonName', value: cn }]);
      c.setIssuer([{ name: 'commonName', value: signer.cn }]);
      c.setExtensions([{ name: 'basicConstraints', cA: ca }]);
      c.sign(signer.key.privateKey, forge.md.sha256.create());
      return Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(c)).getBytes(), 'binary');
    };
    const keys = Array.from({ length: 4 }, () => forge.pki.rsa.generateKeyPair(1024));
    const root = { cn: 'Root', key: keys[0] };
    const inter = { cn: 'Intermediate', key: keys[1] };
    const interDer = make('Intermediate', keys[1], root, true);
    const impostorDer = make('Intermediate', keys[2], root, true);
    const leafDer = make('mx.example', keys[3], inter, false);

    const good = chainFacts([leafDer, interDer]);
    const forged = chainFacts([leafDer, impostorDer]);
    assert.deepEqual([good[0].issuedByNext, good[1].issuedByNext], [true, undefined]);
    assert.equal(forged[0].issuedByNext, false, 'same issuer name, another key: the signature does not verify');
    // Facts and signature checks are remembered per DER digest (and per pair): the same answers again, in
    // objects of their own, and the forged pair still fails after the good one was checked.
    const again = chainFacts([leafDer, interDer]);
    assert.deepEqual(again, good);
    again[0].subject = 'changed by a caller';
    assert.deepEqual(chainFacts([leafDer, interDer]), good);
    assert.equal(chainFacts([leafDer, impostorDer])[0].issuedByNext, false);

    const ta = (c: PresentedCert) => ({ usage: 2, selector: 1, matchingType: 1, data: c.spkiSha256 });
    assert.equal(matchTlsa([ta(good[1])], good).results[0].matchedDepth, 1);
    assert.deepEqual(matchTlsa([ta(forged[1])], forged).results[0], { record: ta(forged[1]), usable: true, unusable: null, matchedDepth: null, rejected: 'signature' });
    assert.equal(matchTlsa([ta(good[1])], good, false).results[0].rejected, 'name');
    // DANE-EE ignores names (§3.1.1) and signatures: the leaf's own key is the trust anchor.
    assert.equal(matchTlsa([{ usage: 3, selector: 1, matchingType: 1, data: forged[0].spkiSha256 }], forged, false).matched, true);
    // Chains recorded before signatures were checked have no issuedByNext: judged as they were then.
    const old = good.map(({ issuedByNext: _, ...c }) => c);
    assert.equal(matchTlsa([ta(old[1])], old).matched, true);

    const obs: TlsaObservation = {
      mxHost: 'mx.example', name: '_25._tcp.mx.example', cdLookup: null, malformed: 0, records: [ta(forged[1])],
      lookup: { name: '_25._tcp.mx.example', type: 'TLSA', outcome: 'answer', rcode: 'NOERROR', ad: true, cd: false, ede: [], cnameChain: [], data: [] },
    };
    const e = evaluateDane(obs, forged, true);
    assert.deepEqual([e.value, e.reason], ['mismatch', 'tlsa_mismatch']);
    assert.match(e.detail, /did not sign the chain below it/);
  });
});

describe('DANE against NSD + unbound + Postfix (real servers)', { skip }, () => {
  let w: DaneWorld;
  let resolver: Resolver;
  const chains = new Map<SmtpListener, PresentedCert[]>();
  before(async () => {
    w = await startDaneWorld(2);
    resolver = createResolver({ server: w.resolver, timeoutMs: 2000, retries: 1, qps: 0, cache: false });
    for (const l of Object.keys(SMTP_PORTS) as SmtpListener[]) chains.set(l, await starttlsChain(w.smtpIp, SMTP_PORTS[l]));
  });
  after(async () => {
    await w?.stop();
  });

  test('the chains a node:tls STARTTLS session reads are the ones openssl s_client -showcerts shows', () => {
    for (const l of Object.keys(SMTP_PORTS) as SmtpListener[]) {
      const fromOpenssl = sClientChain(w.smtpIp, SMTP_PORTS[l], { starttls: 'smtp' }).pems;
      assert.deepEqual(chains.get(l), chainFacts(fromOpenssl), l);
    }
  });

  test('PresentedCert facts: key type and size, curve, chain length, digests as openssl computes them', () => {
    const rsa = chains.get('rsa2048') as PresentedCert[];
    assert.equal(rsa.length, 2);
    assert.deepEqual([rsa[0].keyType, rsa[0].bits, rsa[0].curve, rsa[0].selfIssued], ['rsa', 2048, null, false]);
    assert.equal(rsa[0].spkiSha256, opensslDigest(w.leaves.rsa2048.certPath, 'spki', 'sha256'));
    assert.equal(rsa[0].spkiSha512, opensslDigest(w.leaves.rsa2048.certPath, 'spki', 'sha512'));
    assert.equal(rsa[0].certSha256, opensslDigest(w.leaves.rsa2048.certPath, 'cert', 'sha256'));
    assert.equal(rsa[1].certSha256, opensslDigest(w.pki.intermediatePath, 'cert', 'sha256'));
    assert.match(rsa[1].subject, /CN=Test Intermediate CA/);
    const small = chains.get('rsa1024') as PresentedCert[];
    assert.deepEqual([small[0].keyType, small[0].bits], ['rsa', 1024]);
    const ec = chains.get('ec256') as PresentedCert[];
    assert.deepEqual([ec[0].keyType, ec[0].bits, ec[0].curve], ['ec', 256, 'prime256v1']);
    assert.equal(chains.get('leafOnly')?.length, 1, 'the incomplete chain: leaf without its intermediate');
    assert.equal(chains.get('leafOnly')?.[0].certSha256, rsa[0].certSha256);
  });

  for (const c of DANE_CASES) {
    test(`${c.mx} via ${c.listener} → ${c.expect}: ${c.about}`, async () => {
      const obs = await retrieveTlsa(c.mx, resolver);
      const e = evaluateDane(obs, chains.get(c.listener) ?? null);
      assert.equal(e.value, c.expect, `${e.reason}: ${e.detail}\n${JSON.stringify(obs.lookup)}`);
    });
  }

  test('what is recorded: rcode, AD and records for secure, insecure and bogus answers', async () => {
    const secure = await retrieveTlsa('mx-ee.dane.test', resolver);
    assert.deepEqual([secure.lookup.outcome, secure.lookup.rcode, secure.lookup.ad], ['answer', 'NOERROR', true]);
    assert.equal(secure.name, '_25._tcp.mx-ee.dane.test');
    assert.equal(secure.records.length, 2);
    assert.ok(secure.records.some((r) => r.data === opensslDigest(w.leaves.rsa2048.certPath, 'spki', 'sha256')));
    assert.equal(secure.cdLookup, null);
    const m = evaluateDane(secure, chains.get('rsa2048') ?? null).match;
    assert.deepEqual(m?.results.map((r) => r.matchedDepth).sort(), [0, null]);

    const insecure = await retrieveTlsa('mx.insecure.test', resolver);
    assert.deepEqual([insecure.lookup.outcome, insecure.lookup.ad, insecure.records.length], ['answer', false, 1]);
    // It would match: it does not count (RFC 7672 §2.2).
    assert.equal(matchTlsa(insecure.records, chains.get('rsa2048') ?? []).matched, true);

    const bogus = await retrieveTlsa('mx.bogus.test', resolver);
    assert.deepEqual([bogus.lookup.outcome, bogus.lookup.rcode, bogus.records.length], ['servfail', 'SERVFAIL', 0]);
    assert.ok(bogus.lookup.ede.length > 0, 'unbound (ede: yes) says why');
    assert.equal(bogus.cdLookup?.outcome, 'answer');
    assert.equal(bogus.cdLookup?.ad, false);

    const none = await retrieveTlsa('mx-none.dane.test', resolver);
    assert.deepEqual([none.lookup.outcome, none.lookup.ad], ['nxdomain', true]);
    assert.deepEqual(JSON.parse(JSON.stringify(secure)), secure, 'plain JSON');
  });

  test('DANE-TA of the intermediate matches at depth 1 when sent, not when the server leaves it out', async () => {
    const obs = await retrieveTlsa('mx-ta.dane.test', resolver);
    assert.equal(evaluateDane(obs, chains.get('rsa2048') ?? null).match?.results[0].matchedDepth, 1);
    assert.equal(evaluateDane(obs, chains.get('leafOnly') ?? null).reason, 'tlsa_mismatch');
  });

  test('no handshake: a secure usable TLSA cannot be judged', async () => {
    const obs = await retrieveTlsa('mx-ee.dane.test', resolver);
    assert.deepEqual(pick(evaluateDane(obs, null)), { value: 'unknown', reason: 'no_handshake' });
  });

  test('a resolver that does not answer: unknown (dns_failure), never none', async () => {
    const dead = createResolver({ server: { host: `127.60.${w.net}.99`, port: 20053 }, timeoutMs: 300, retries: 0, qps: 0 });
    const obs: TlsaObservation = await retrieveTlsa('mx-ee.dane.test', dead);
    assert.deepEqual(pick(evaluateDane(obs, chains.get('rsa2048') ?? null)), { value: 'unknown', reason: 'dns_failure' });
  });
});

function pick(e: { value: string; reason: string }) {
  return { value: e.value, reason: e.reason };
}
