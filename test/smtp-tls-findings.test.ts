import { test } from 'node:test';
import assert from 'node:assert/strict';
import { certProblemsOf, tlsFindings } from '../lib/checks/cert-problems/tls-findings.ts';
import { obs } from './smtp-fixtures.ts';

test('a trusted certificate for the MX name has no problems', () => {
  assert.deepEqual(tlsFindings([obs('ok')]), { tlsVersions: ['TLSv1.3'], certProblems: [] });
});

const CASES: [string, Parameters<typeof obs>[2], string[]][] = [
  ['self-signed', { cert: { selfSigned: true, trusted: false, trustError: 'DEPTH_ZERO_SELF_SIGNED_CERT' } }, ['self_signed']],
  ['expired', { cert: { expired: true, trusted: false, trustError: 'CERT_HAS_EXPIRED' } }, ['expired']],
  ['wrong name', { cert: { nameMatch: false } }, ['wrong_name']],
  ['unknown issuer', { cert: { trusted: false, trustError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' } }, ['untrusted']],
  ['self-signed, expired and for another name', { cert: { selfSigned: true, expired: true, nameMatch: false, trusted: false, trustError: 'DEPTH_ZERO_SELF_SIGNED_CERT' } }, ['self_signed', 'expired', 'wrong_name']],
];
for (const [name, over, problems] of CASES) {
  test(`a ${name} certificate is reported as ${problems.join(' + ')}`, () => {
    assert.deepEqual(tlsFindings([obs('ok', '127.100.0.1', over)]).certProblems, problems);
  });
}

test('versions and problems are collected over every MX, sorted and without duplicates', () => {
  const f = tlsFindings([
    obs('ok', '127.100.0.1', { protocol: 'TLSv1.2' }),
    obs('ok', '127.100.0.2', { protocol: 'TLSv1.3', cert: { nameMatch: false } }),
    obs('ok', '127.100.0.3', { protocol: 'TLSv1.2', cert: { nameMatch: false } }),
    obs('no_starttls'),
    obs('handshake_failed'),
  ]);
  assert.deepEqual(f, { tlsVersions: ['TLSv1.2', 'TLSv1.3'], certProblems: ['wrong_name'] });
});

test('sessions without a completed handshake contribute nothing', () => {
  assert.deepEqual(tlsFindings([obs('unreachable'), obs('no_starttls'), obs('handshake_failed')]), { tlsVersions: [], certProblems: [] });
});

test('the name is re-judged for the MX name given, from the names in the certificate (RFC 6125 wildcards)', () => {
  const o = obs('ok', '127.100.0.1', { cert: { subjectCN: '*.bigmail.test', subjectAltName: 'DNS:*.bigmail.test, DNS:bigmail.test' } });
  assert.deepEqual(certProblemsOf(o, 'mx1.bigmail.test'), []);
  assert.deepEqual(certProblemsOf(o, 'bigmail.test'), []);
  assert.deepEqual(certProblemsOf(o, 'a.b.bigmail.test'), ['wrong_name']);
  assert.deepEqual(certProblemsOf(o, 'mx.other.test'), ['wrong_name']);
});
