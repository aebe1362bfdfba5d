// MX, DMARC, MTA-STS, TLS-RPT, reverse DNS, DNSSEC and DNSBL judged over declared observations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluateMx, mxIps, mxKind, type MxObservation } from '../lib/checks/mx/mx.ts';
import { evaluateDmarc } from '../lib/checks/dmarc/dmarc.ts';
import { evaluateMtaSts } from '../lib/checks/mta-sts/mta-sts.ts';
import { evaluateTlsRpt } from '../lib/checks/tls-rpt/tls-rpt.ts';
import { combineIpFindings, evaluateReverseDns } from '../lib/checks/reverse-dns/reverse-dns.ts';
import { evaluateDnssec, needsCd } from '../lib/checks/dnssec/dnssec.ts';
import { evaluateDnsbl } from '../lib/checks/dnsbl/dnsbl.ts';
import { judgeDns } from './helpers/judge-dns.ts';
import { finding } from '../lib/criteria.ts';
import { L, txt } from './helpers/lookups.ts';

const host = (exchange: string, a: ReturnType<typeof L>, aaaa = L(exchange, 'AAAA', 'nodata')) => ({ exchange, preference: 10, a, aaaa });
const mxCases: [string, MxObservation, string, string][] = [
  ['an MX with an address', { mx: L('d.test', 'MX', 'answer', [{ preference: 10, exchange: 'mx.d.test' }]), hosts: [host('mx.d.test', L('mx.d.test', 'A', 'answer', ['192.0.2.1']))], truncated: false }, 'ok', 'mx_present'],
  ['null MX', { mx: L('d.test', 'MX', 'answer', [{ preference: 0, exchange: '.' }]), hosts: [], truncated: false }, 'na', 'null_mx'],
  ['null MX mixed with another MX', { mx: L('d.test', 'MX', 'answer', [{ preference: 0, exchange: '.' }, { preference: 10, exchange: 'mx.d.test' }]), hosts: [host('mx.d.test', L('mx.d.test', 'A', 'answer', ['192.0.2.1']))], truncated: false }, 'ng', 'null_mx_mixed'],
  ['no MX, no address', { mx: L('d.test', 'MX', 'nodata'), implicitA: L('d.test', 'A', 'nodata'), implicitAaaa: L('d.test', 'AAAA', 'nodata'), hosts: [], truncated: false }, 'na', 'no_mx'],
  ['no MX but an A record (implicit MX)', { mx: L('d.test', 'MX', 'nodata'), implicitA: L('d.test', 'A', 'answer', ['192.0.2.7']), implicitAaaa: L('d.test', 'AAAA', 'nodata'), hosts: [{ exchange: 'd.test', preference: 0, implicit: true, a: L('d.test', 'A', 'answer', ['192.0.2.7']), aaaa: L('d.test', 'AAAA', 'nodata') }], truncated: false }, 'ok', 'implicit_mx'],
  ['the domain does not exist', { mx: L('d.test', 'MX', 'nxdomain'), hosts: [], truncated: false }, 'na', 'no_mx'],
  ['MX SERVFAIL', { mx: L('d.test', 'MX', 'servfail'), hosts: [], truncated: false }, 'unknown', 'servfail'],
  ['MX host without address', { mx: L('d.test', 'MX', 'answer', [{ preference: 10, exchange: 'mx.d.test' }]), hosts: [host('mx.d.test', L('mx.d.test', 'A', 'nxdomain'), L('mx.d.test', 'AAAA', 'nxdomain'))], truncated: false }, 'ng', 'mx_without_address'],
  ['MX host lookup timing out', { mx: L('d.test', 'MX', 'answer', [{ preference: 10, exchange: 'mx.d.test' }]), hosts: [host('mx.d.test', L('mx.d.test', 'A', 'timeout'), L('mx.d.test', 'AAAA', 'timeout'))], truncated: false }, 'unknown', 'timeout'],
];
for (const [name, o, status, reason] of mxCases) {
  test(`MX: ${name} → ${status} (${reason})`, () => {
    const f = evaluateMx(o);
    assert.equal(f.status, status, JSON.stringify(f));
    assert.equal(f.reason, reason);
  });
}

test('mxIps lists each distinct MX address once, IPv4 first', () => {
  const o: MxObservation = {
    mx: L('d.test', 'MX', 'answer', [{ preference: 10, exchange: 'a.d.test' }, { preference: 20, exchange: 'b.d.test' }]),
    hosts: [host('a.d.test', L('a', 'A', 'answer', ['192.0.2.1']), L('a', 'AAAA', 'answer', ['2001:db8::1'])), host('b.d.test', L('b', 'A', 'answer', ['192.0.2.1']))],
    truncated: false,
  };
  assert.deepEqual(mxIps(o), ['192.0.2.1', '2001:db8::1']);
  assert.equal(mxKind(o), 'mx');
});

const dmarcCases: [string, ReturnType<typeof L>, string, string][] = [
  ['p=reject', txt('_dmarc.d.test', 'v=DMARC1; p=reject; rua=mailto:a@d.test'), 'ok', 'reject'],
  ['p=none', txt('_dmarc.d.test', 'v=DMARC1; p=none'), 'ok', 'none'],
  ['no record', L('_dmarc.d.test', 'TXT', 'nxdomain'), 'ng', 'absent'],
  ['two records', txt('_dmarc.d.test', 'v=DMARC1; p=reject', 'v=DMARC1; p=none'), 'ng', 'invalid'],
  ['bad policy', txt('_dmarc.d.test', 'v=DMARC1; p=maybe'), 'ng', 'invalid'],
  ['SERVFAIL', L('_dmarc.d.test', 'TXT', 'servfail'), 'unknown', 'unknown'],
];
for (const [name, l, status, value] of dmarcCases) {
  test(`DMARC: ${name} → ${value}`, () => {
    const f = evaluateDmarc({ domain: 'd.test', txt: l });
    assert.equal(f.status, status);
    assert.equal(f.value, value);
  });
}
test('DMARC falls back to the organizational domain record', () => {
  const f = evaluateDmarc({ domain: 'a.d.test', txt: L('_dmarc.a.d.test', 'TXT', 'nxdomain'), orgDomain: 'd.test', orgTxt: txt('_dmarc.d.test', 'v=DMARC1; p=quarantine') });
  assert.equal(f.value, 'quarantine');
  assert.equal(f.policy?.fromOrgDomain, true);
});

for (const [name, l, value] of [
  ['valid', txt('_mta-sts.d.test', 'v=STSv1; id=20210630T000000'), 'present'],
  ['absent', L('_mta-sts.d.test', 'TXT', 'nxdomain'), 'absent'],
  ['other TXT only', txt('_mta-sts.d.test', 'hello'), 'absent'],
  ['bad id', txt('_mta-sts.d.test', 'v=STSv1; id=a-b'), 'invalid'],
  ['two records', txt('_mta-sts.d.test', 'v=STSv1; id=1', 'v=STSv1; id=2'), 'invalid'],
  ['timeout', L('_mta-sts.d.test', 'TXT', 'timeout'), 'unknown'],
] as const) {
  test(`MTA-STS: ${name} → ${value}`, () => assert.equal(evaluateMtaSts({ domain: 'd.test', txt: l }).value, value));
}
for (const [name, l, value] of [
  ['valid', txt('_smtp._tls.d.test', 'v=TLSRPTv1; rua=mailto:tls@d.test,https://r.d.test/v1'), 'present'],
  ['absent', L('_smtp._tls.d.test', 'TXT', 'nodata'), 'absent'],
  ['no rua', txt('_smtp._tls.d.test', 'v=TLSRPTv1;'), 'invalid'],
  ['bad rua scheme', txt('_smtp._tls.d.test', 'v=TLSRPTv1; rua=ftp://x'), 'invalid'],
  ['refused', L('_smtp._tls.d.test', 'TXT', 'refused'), 'unknown'],
] as const) {
  test(`TLS-RPT: ${name} → ${value}`, () => assert.equal(evaluateTlsRpt({ domain: 'd.test', txt: l }).value, value));
}

const ptr = '1.2.0.192.in-addr.arpa';
for (const [name, o, status, reason] of [
  ['forward-confirmed', { ip: '192.0.2.1', ptr: L(ptr, 'PTR', 'answer', ['mx.d.test']), forward: [{ name: 'mx.d.test', lookup: L('mx.d.test', 'A', 'answer', ['192.0.2.1']) }] }, 'ok', 'fcrdns'],
  ['one of two PTR names confirms', { ip: '192.0.2.1', ptr: L(ptr, 'PTR', 'answer', ['x.test', 'mx.d.test']), forward: [{ name: 'x.test', lookup: L('x.test', 'A', 'nxdomain') }, { name: 'mx.d.test', lookup: L('mx.d.test', 'A', 'answer', ['192.0.2.1']) }] }, 'ok', 'fcrdns'],
  ['no PTR', { ip: '192.0.2.1', ptr: L(ptr, 'PTR', 'nxdomain'), forward: [] }, 'ng', 'no_ptr'],
  ['PTR name resolves elsewhere', { ip: '192.0.2.1', ptr: L(ptr, 'PTR', 'answer', ['mx.d.test']), forward: [{ name: 'mx.d.test', lookup: L('mx.d.test', 'A', 'answer', ['192.0.2.99']) }] }, 'ng', 'ptr_mismatch'],
  ['PTR SERVFAIL', { ip: '192.0.2.1', ptr: L(ptr, 'PTR', 'servfail'), forward: [] }, 'unknown', 'servfail'],
  ['forward lookup times out', { ip: '192.0.2.1', ptr: L(ptr, 'PTR', 'answer', ['mx.d.test']), forward: [{ name: 'mx.d.test', lookup: L('mx.d.test', 'A', 'timeout') }] }, 'unknown', 'timeout'],
  ['IPv6 compared canonically', { ip: '2001:db8::1', ptr: L('x.ip6.arpa', 'PTR', 'answer', ['mx.d.test']), forward: [{ name: 'mx.d.test', lookup: L('mx.d.test', 'AAAA', 'answer', ['2001:0db8:0:0::1']) }] }, 'ok', 'fcrdns'],
] as const) {
  test(`reverse DNS: ${name} → ${status} (${reason})`, () => {
    const f = evaluateReverseDns(o as never);
    assert.equal(f.status, status, JSON.stringify(f));
    assert.equal(f.reason, reason);
  });
}

test('over several IPs: any ng wins, then any unknown, else ok; none is na', () => {
  const ok = { ip: 'a', finding: finding('ok', 'fcrdns') };
  const ng = { ip: 'b', finding: finding('ng', 'no_ptr') };
  const un = { ip: 'c', finding: finding('unknown', 'timeout') };
  assert.equal(combineIpFindings([ok, un, ng]).status, 'ng');
  assert.equal(combineIpFindings([ok, un]).status, 'unknown');
  assert.equal(combineIpFindings([ok, ok]).status, 'ok');
  assert.equal(combineIpFindings([]).status, 'na');
});

const soaData = [{ mname: 'ns', rname: 'h', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 1 }];
for (const [name, o, status, reason, cd] of [
  ['AD set', { domain: 'd.test', soa: L('d.test', 'SOA', 'answer', soaData, { ad: true }) }, 'ok', 'secure', false],
  ['AD set on NODATA below the apex', { domain: 'd.test', soa: L('d.test', 'SOA', 'nodata', [], { ad: true }) }, 'ok', 'secure', false],
  ['AD clear', { domain: 'd.test', soa: L('d.test', 'SOA', 'answer', soaData) }, 'ng', 'insecure', false],
  ['SERVFAIL + EDE 6, CD succeeds', { domain: 'd.test', soa: L('d.test', 'SOA', 'servfail', [], { ede: [{ code: 6 }] }), soaCd: L('d.test', 'SOA', 'answer', soaData, { cd: true }) }, 'ng', 'bogus', true],
  ['SERVFAIL without EDE, CD succeeds', { domain: 'd.test', soa: L('d.test', 'SOA', 'servfail'), soaCd: L('d.test', 'SOA', 'answer', soaData, { cd: true }) }, 'ng', 'bogus', true],
  ['SERVFAIL with and without CD', { domain: 'd.test', soa: L('d.test', 'SOA', 'servfail', [], { ede: [{ code: 6 }] }), soaCd: L('d.test', 'SOA', 'servfail') }, 'unknown', 'servfail', false],
  ['timeout', { domain: 'd.test', soa: L('d.test', 'SOA', 'timeout') }, 'unknown', 'timeout', false],
  ['refused', { domain: 'd.test', soa: L('d.test', 'SOA', 'refused') }, 'unknown', 'refused', false],
  // Since issue 18 the state is read on the domain's MX (the question the MX check asks anyway); the SOA cases
  // above are the observations stored before, judged as they were.
  ['AD set on MX', { domain: 'd.test', mx: L('d.test', 'MX', 'answer', [{ preference: 10, exchange: 'mx.d.test' }], { ad: true }) }, 'ok', 'secure', false],
  ['AD set on the NODATA of a domain without MX', { domain: 'd.test', mx: L('d.test', 'MX', 'nodata', [], { ad: true }) }, 'ok', 'secure', false],
  ['AD clear on the NXDOMAIN of a domain that does not exist', { domain: 'd.test', mx: L('d.test', 'MX', 'nxdomain') }, 'ng', 'insecure', false],
  ['MX SERVFAIL, CD succeeds', { domain: 'd.test', mx: L('d.test', 'MX', 'servfail', [], { ede: [{ code: 7 }] }), mxCd: L('d.test', 'MX', 'nodata', [], { cd: true }) }, 'ng', 'bogus', true],
  ['MX timeout', { domain: 'd.test', mx: L('d.test', 'MX', 'timeout') }, 'unknown', 'timeout', false],
] as const) {
  test(`DNSSEC: ${name} → ${status} (${reason})`, () => {
    const f = evaluateDnssec(o as never);
    assert.equal(f.status, status, JSON.stringify(f));
    assert.equal(f.reason, reason);
    assert.equal(needsCd(o as never), cd);
    const type = 'mx' in o ? 'MX' : 'SOA';
    if (status !== 'unknown' && reason !== 'bogus') assert.match(f.detail ?? '', new RegExp(`^AD (set|clear) on ${type} d\\.test`));
  });
}

const q = '1.2.0.192.bl.test';
for (const [name, zones, status, reason] of [
  ['not listed (NXDOMAIN)', [{ zone: 'bl.test', a: L(q, 'A', 'nxdomain') }], 'ok', 'not_listed'],
  ['listed 127.0.0.2 with a reason', [{ zone: 'bl.test', a: L(q, 'A', 'answer', ['127.0.0.2']), txt: txt(q, 'spam source') }], 'ng', 'listed'],
  ['listed in one of two zones', [{ zone: 'a.test', a: L(q, 'A', 'nxdomain') }, { zone: 'bl.test', a: L(q, 'A', 'answer', ['127.0.0.4']) }], 'ng', 'listed'],
  ['operator error 127.255.255.254', [{ zone: 'bl.test', a: L(q, 'A', 'answer', ['127.255.255.254']) }], 'unknown', 'dnsbl_error'],
  ['a non-127 answer (wildcard/hijack)', [{ zone: 'bl.test', a: L(q, 'A', 'answer', ['198.51.100.1']) }], 'unknown', 'unexpected_answer'],
  ['SERVFAIL', [{ zone: 'bl.test', a: L(q, 'A', 'servfail') }], 'unknown', 'servfail'],
  ['timeout in one zone, clean in another', [{ zone: 'a.test', a: L(q, 'A', 'nxdomain') }, { zone: 'bl.test', a: L(q, 'A', 'timeout') }], 'unknown', 'timeout'],
  ['no zone configured', [], 'unknown', 'no_zones'],
] as const) {
  test(`DNSBL: ${name} → ${status} (${reason})`, () => {
    const f = evaluateDnsbl({ ip: '192.0.2.1', zones: zones as never });
    assert.equal(f.status, status, JSON.stringify(f));
    assert.equal(f.reason, reason);
  });
}

test('an invalid name yields unknown (invalid_name) for every DNS criterion in both sources', () => {
  for (const source of ['scan', 'test-mail'] as const) {
    const j = judgeDns({ version: 1, input: 'x y', domain: 'x y', valid: false, reason: 'invalid_name' }, {}, source);
    assert.ok(Object.values(j.criteria).every((f) => f.status === 'unknown' && f.reason === 'invalid_name'));
    assert.equal(j.criteria.spf === undefined, source === 'test-mail');
  }
});
