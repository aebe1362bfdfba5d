import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkAddress } from '../lib/net/address-policy.ts';

// [address, allowed outside lab mode, range expected when refused]
const TABLE: [string, boolean, string?][] = [
  // IPv4 special-purpose blocks
  ['0.0.0.0', false, '0.0.0.0/8'],
  ['0.1.2.3', false, '0.0.0.0/8'],
  ['10.0.0.1', false, '10.0.0.0/8'],
  ['100.64.0.1', false, '100.64.0.0/10'],
  ['100.127.255.254', false, '100.64.0.0/10'],
  ['127.0.0.1', false, '127.0.0.0/8'],
  ['127.100.0.9', false, '127.0.0.0/8'],
  ['169.254.169.254', false, '169.254.0.0/16'],
  ['172.16.0.1', false, '172.16.0.0/12'],
  ['172.31.255.255', false, '172.16.0.0/12'],
  ['192.0.0.8', false, '192.0.0.0/24'],
  ['192.0.2.1', false, '192.0.2.0/24'],
  ['192.88.99.1', false, '192.88.99.0/24'],
  ['192.168.1.1', false, '192.168.0.0/16'],
  ['198.18.0.1', false, '198.18.0.0/15'],
  ['198.19.255.1', false, '198.18.0.0/15'],
  ['198.51.100.7', false, '198.51.100.0/24'],
  ['203.0.113.25', false, '203.0.113.0/24'],
  ['224.0.0.251', false, '224.0.0.0/4'],
  ['239.255.255.250', false, '224.0.0.0/4'],
  ['240.0.0.1', false, '240.0.0.0/4'],
  ['255.255.255.255', false, '240.0.0.0/4'],
  // IPv4 neighbours of those blocks are public
  ['8.8.8.8', true],
  ['1.1.1.1', true],
  ['100.63.255.255', true],
  ['100.128.0.1', true],
  ['172.15.255.255', true],
  ['172.32.0.1', true],
  ['192.0.1.1', true],
  ['198.17.255.255', true],
  ['198.20.0.1', true],
  ['223.255.255.255', true],
  // IPv6
  ['::', false, '::/128'],
  ['::1', false, '::1/128'],
  ['0:0:0:0:0:0:0:1', false, '::1/128'],
  ['fc00::1', false, 'fc00::/7'],
  ['fd12:3456:789a::1', false, 'fc00::/7'],
  ['fe80::1', false, 'fe80::/10'],
  ['fe80::1%eth0', false, 'fe80::/10'],
  ['fec0::1', false, 'fec0::/10'],
  ['ff02::1', false, 'ff00::/8'],
  ['2001:db8::25', false, '2001:db8::/32'],
  ['2001:0:4136:e378::1', false, '2001::/32'],
  ['2001:2::1', false, '2001:2::/48'],
  ['3fff::1', false, '3fff::/20'],
  ['100::1', false, '100::/64'],
  ['64:ff9b:1::1', false, '64:ff9b:1::/48'],
  ['::2', false, '!2000::/3'],
  ['4000::1', false, '!2000::/3'],
  ['2a00:1450:4001:80b::200e', true],
  ['2606:4700:4700::1111', true],
  ['2001:4860:4860::8888', true],
  // IPv4 embedded in IPv6 is judged as IPv4
  ['::ffff:127.0.0.1', false, '127.0.0.0/8'],
  ['::ffff:10.1.2.3', false, '10.0.0.0/8'],
  ['::ffff:a01:203', false, '10.0.0.0/8'],
  ['::FFFF:192.168.0.1', false, '192.168.0.0/16'],
  ['::ffff:8.8.8.8', true],
  ['64:ff9b::10.0.0.1', false, '10.0.0.0/8'],
  ['64:ff9b::808:808', true],
  ['2002:c0a8:0101::1', false, '192.168.0.0/16'],
  ['2002:0808:0808::1', true],
  // not addresses at all
  ['mx.example.com', false, 'invalid'],
  ['', false, 'invalid'],
  ['1.2.3.4.5', false, 'invalid'],
];

for (const [ip, allowed, cidr] of TABLE) {
  test(`outside lab mode ${ip || '(empty)'} is ${allowed ? 'allowed' : `refused as ${cidr}`}`, () => {
    const v = checkAddress(ip, { lab: false });
    if (allowed) {
      assert.deepEqual(v, { allowed: true });
    } else {
      assert.equal(v.allowed, false);
      if (!v.allowed) {
        assert.equal(v.reason, 'forbidden_address');
        assert.equal(v.range, cidr);
        assert.ok(v.purpose.length > 0);
      }
    }
  });
}

// In lab mode nothing but loopback is allowed, so a lab run can never reach the internet.
const LAB: [string, boolean][] = [
  ['127.0.0.1', true],
  ['127.100.0.9', true],
  ['127.255.255.254', true],
  ['::1', true],
  ['::ffff:127.100.0.1', true],
  ['8.8.8.8', false],
  ['10.0.0.1', false],
  ['192.168.1.1', false],
  ['::', false],
  ['fe80::1', false],
  ['2a00:1450:4001:80b::200e', false],
  ['::ffff:8.8.8.8', false],
  ['not-an-ip', false],
];

for (const [ip, allowed] of LAB) {
  test(`in lab mode ${ip} is ${allowed ? 'allowed' : 'refused'}`, () => {
    const v = checkAddress(ip, { lab: true });
    assert.equal(v.allowed, allowed);
    if (!v.allowed) assert.equal(v.reason, 'forbidden_address');
  });
}
