// Name validation and reverse names (RFC 1035 §3.5, RFC 3596 §2.5, RFC 5782 §2.4).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalIp, normalizeDomain, normalizeQueryName, ptrName, reversedIpLabels } from '../lib/dns/names.ts';

test('normalizeDomain accepts host names and IDNs, and rejects everything else', () => {
  assert.equal(normalizeDomain('Example.COM.'), 'example.com');
  assert.equal(normalizeDomain('bücher.test'), 'xn--bcher-kva.test');
  for (const bad of ['', 'localhost', '192.0.2.1', 'a..b', '-a.test', 'a-.test', 'under_score.test', 'a b.test', 'x'.repeat(64) + '.test', 'user@d.test', 'http://d.test', 'd.123', '.']) {
    assert.equal(normalizeDomain(bad), null, bad);
  }
});

test('normalizeQueryName allows underscore labels but not empty or long ones', () => {
  assert.equal(normalizeQueryName('_DMARC.d.test.'), '_dmarc.d.test');
  assert.equal(normalizeQueryName('a..b'), null);
  assert.equal(normalizeQueryName(`${'a'.repeat(63)}.`.repeat(4) + 'b'), null);
});

test('reverse names: IPv4 octets and IPv6 nibbles', () => {
  assert.equal(ptrName('192.0.2.1'), '1.2.0.192.in-addr.arpa');
  assert.equal(reversedIpLabels('2001:db8::1'), '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2');
  assert.equal(ptrName('::ffff:192.0.2.1'), '1.0.2.0.0.0.0.c.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa');
  assert.equal(reversedIpLabels('not-an-ip'), null);
  assert.equal(canonicalIp('2001:DB8:0::1'), canonicalIp('2001:db8::1'));
});
