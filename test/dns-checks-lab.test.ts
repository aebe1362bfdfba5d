// The DNS checks against the lab's real DNS server (lab/worlds/test-dns-checks.json): every DNS state and
// fault of ../shared/LAB-WORLD.md ends in the status ../shared/CRITERIA.md gives it, and a fault is never NG.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { loadWorld } from '../lab/world.ts';
import { startDnsServer, type DnsServer } from '../lab/dns-server.ts';
import { createResolver, type Resolver } from '../lib/dns/resolver.ts';
import { collectDnsObservations, collectIpDnsObservations, ipsToProbe, type IpDnsObservations } from '../lib/probes/dns.ts';
import { judgeDns, type DnsJudgement } from './helpers/judge-dns.ts';
import { evaluateSpfTestMail, type SpfTestMailObservation } from '../lib/checks/spf/spf.ts';
import { spf as mailauthSpf } from 'mailauth/lib/spf/index.js';
import { asDnsResolver, mailauthSpfResolver } from '../lib/dns/mailauth.ts';

/** check_host() as production runs it inside mailauth's authenticate(): mailauth's SPF through our adapter. */
async function checkHost(input: { ip: string; mailFrom: string }, r: Resolver): Promise<SpfTestMailObservation> {
  const res = await mailauthSpf({ ip: input.ip, sender: input.mailFrom, mta: 'mailcensus', resolver: asDnsResolver(mailauthSpfResolver(r)) });
  return { ip: input.ip, mailFrom: input.mailFrom, helo: null, result: res.status.result, comment: res.status.comment ?? null, record: res.rr ?? null, lookups: null };
}

const WORLD = fileURLToPath(new URL('../lab/worlds/test-dns-checks.json', import.meta.url));
const config = { dkimSelectors: ['default', 's1', 'selector1', 'google'], dnsblZones: ['bl.lab.test'] };
let server: DnsServer;
let resolver: Resolver;

before(async () => {
  server = await startDnsServer(loadWorld(WORLD), { port: 0 });
  // Short timeouts: the `timeout` domain is silent by design.
  resolver = createResolver({ server: { host: '127.0.0.1', port: server.port }, timeoutMs: 250, retries: 1, qps: 0 });
});
after(async () => {
  await server.stop();
});

async function scan(domain: string): Promise<DnsJudgement> {
  const obs = await collectDnsObservations(domain, { resolver, config });
  const ips: Record<string, IpDnsObservations> = {};
  for (const ip of ipsToProbe(obs)) ips[ip] = await collectIpDnsObservations(ip, { resolver, config });
  // Observations are plain JSON: judging a stored copy gives the same result.
  const again = judgeDns(JSON.parse(JSON.stringify(obs)), JSON.parse(JSON.stringify(ips)), 'scan');
  const j = judgeDns(obs, ips, 'scan');
  assert.deepEqual(again, j);
  return j;
}

const status = (j: DnsJudgement) => Object.fromEntries(Object.entries(j.criteria).map(([k, f]) => [k, `${f.status}:${f.reason}`]));

test('a well-configured secure domain is ok on every DNS criterion, with DMARC, MTA-STS and TLS-RPT present', async () => {
  const j = await scan('alpha.test');
  assert.deepEqual(status(j), { dnssec: 'ok:secure', spf: 'ok:spf_valid', dkim: 'ok:key_found', reverse_dns: 'ok:fcrdns', dnsbl: 'ok:not_listed' });
  // MTA-STS: the TXT record is valid, but without an outbound gate the policy is not fetched (not_measured).
  assert.deepEqual(j.findings, { dmarcPolicy: 'reject', mtaSts: 'unknown', tlsRpt: 'present', nullMx: false });
});

test('an unsigned domain is dnssec ng (insecure); DMARC p=none is recorded', async () => {
  const j = await scan('insecure.test');
  assert.equal(status(j).dnssec, 'ng:insecure');
  assert.equal(status(j).dkim, 'ok:key_found');
  assert.equal(j.findings.dmarcPolicy, 'none');
});

test('a bogus domain is dnssec ng (bogus) and its other records are still read with CD', async () => {
  const j = await scan('bogus.test');
  assert.deepEqual(status(j), { dnssec: 'ng:bogus', spf: 'ok:spf_valid', dkim: 'ok:key_found', reverse_dns: 'ok:fcrdns', dnsbl: 'ok:not_listed' });
  assert.equal(j.findings.dmarcPolicy, 'quarantine');
});

test('the MX host of a bogus domain still gets its reverse DNS judged: the forward lookup is read again with CD', async () => {
  const j = await scan('bogus-own.test');
  assert.equal(status(j).dnssec, 'ng:bogus');
  assert.equal(status(j).reverse_dns, 'ok:fcrdns');
});

for (const [domain, reason] of [
  ['spf-two.test', 'multiple_spf_records'],
  ['spf-plusall.test', 'plus_all'],
  ['spf-toomany.test', 'too_many_lookups'],
  ['spf-void.test', 'too_many_void_lookups'],
  ['spf-loop.test', 'include_loop'],
  ['spf-syntax.test', 'spf_syntax_error'],
  ['nospf.test', 'no_spf_record'],
] as const) {
  test(`scan SPF of ${domain} is ng (${reason})`, async () => {
    assert.equal(status(await scan(domain)).spf, `ng:${reason}`);
  });
}

test('an SPF record over 255 bytes (several strings) is joined and judged ok', async () => {
  assert.equal(status(await scan('spf-long.test')).spf, 'ok:spf_valid');
});

test('an include whose target SERVFAILs makes scan SPF unknown, not ng', async () => {
  assert.equal(status(await scan('inc-servfail.test')).spf, 'unknown:servfail');
});

test('DKIM: selectors outside the probed list still count through the _domainkey node; none at all is ng', async () => {
  assert.equal(status(await scan('dkim-other.test')).dkim, 'ok:domainkey_exists');
  assert.equal(status(await scan('nospf.test')).dkim, 'ng:no_dkim_key');
});

test('invalid DMARC, MTA-STS and TLS-RPT records are recorded as invalid', async () => {
  const j = await scan('dmarc-bad.test');
  assert.deepEqual({ ...j.findings }, { dmarcPolicy: 'invalid', mtaSts: 'invalid', tlsRpt: 'invalid', nullMx: false });
});

test('null MX and no MX make the MX-judged criteria na', async () => {
  const n = await scan('nullmx.test');
  assert.equal(n.findings.nullMx, true);
  assert.equal(status(n).reverse_dns, 'na:null_mx');
  assert.equal(status(n).dnsbl, 'na:null_mx');
  const none = await scan('nomx.test');
  assert.equal(none.mxKind, 'none');
  assert.equal(status(none).reverse_dns, 'na:no_mx');
  assert.equal(status(none).dnsbl, 'na:no_mx');
});

test('a missing PTR and a PTR that does not resolve back are reverse_dns ng; one bad MX of two is enough', async () => {
  assert.equal(status(await scan('ptr-missing.test')).reverse_dns, 'ng:no_ptr');
  assert.equal(status(await scan('ptr-mismatch.test')).reverse_dns, 'ng:ptr_mismatch');
  assert.equal(status(await scan('mixed.test')).reverse_dns, 'ng:no_ptr');
});

test('a listed MX is dnsbl ng with the reason text; a DNSBL error answer is unknown', async () => {
  const listed = await scan('listed.test');
  assert.equal(status(listed).dnsbl, 'ng:listed');
  assert.match(listed.criteria.dnsbl!.detail!, /127\.0\.0\.2.*listed in bl\.lab\.test/);
  assert.equal(status(await scan('dnsbl-error.test')).dnsbl, 'unknown:dnsbl_error');
});

for (const fault of ['servfail', 'timeout', 'refused'] as const) {
  test(`a domain whose DNS answers ${fault} is unknown on every DNS criterion, never ng`, async () => {
    const j = await scan(`${fault}.test`);
    for (const [c, f] of Object.entries(j.criteria)) {
      assert.equal(f.status, 'unknown', `${c}: ${JSON.stringify(f)}`);
      assert.equal(f.reason, fault, c);
    }
    assert.deepEqual(j.findings, { dmarcPolicy: 'unknown', mtaSts: 'unknown', tlsRpt: 'unknown', nullMx: false });
  });
}

test('a name that is not a host name is unknown (invalid_name) without any query', async () => {
  const before = server.queries;
  const j = await scan('not a domain!');
  assert.equal(server.queries, before);
  assert.ok(Object.values(j.criteria).every((f) => f.status === 'unknown' && f.reason === 'invalid_name'));
});

test('test-mail SPF through mailauth and the lab: pass, fail, permerror on a loop, temperror on SERVFAIL', async () => {
  const spf = async (ip: string, from: string) => evaluateSpfTestMail(await checkHost({ ip, mailFrom: from }, resolver));
  assert.equal((await spf('127.100.0.1', 'postmaster@alpha.test')).status, 'ok');
  assert.deepEqual(await spf('127.100.0.9', 'postmaster@alpha.test').then((f) => [f.status, f.reason]), ['ng', 'fail']);
  assert.deepEqual(await spf('127.100.0.1', 'postmaster@spf-loop.test').then((f) => [f.status, f.reason]), ['ng', 'permerror']);
  assert.deepEqual(await spf('127.100.0.1', 'postmaster@servfail.test').then((f) => [f.status, f.reason]), ['unknown', 'temperror']);
  // mailauth alone would skip an include that SERVFAILs; RFC 7208 §5.2 makes it a temperror.
  assert.deepEqual(await spf('127.100.0.1', 'postmaster@inc-servfail.test').then((f) => [f.status, f.reason]), ['unknown', 'temperror']);
});

test('test-mail source judges reverse DNS and DNSBL over the client IP', async () => {
  const obs = await collectDnsObservations('alpha.test', { resolver, config });
  const ip = await collectIpDnsObservations('127.100.0.2', { resolver, config });
  const j = judgeDns(obs, { '127.100.0.2': ip }, 'test-mail');
  assert.equal(j.criteria.spf, undefined);
  assert.equal(status(j).dnsbl, 'ng:listed');
  assert.equal(status(j).reverse_dns, 'ok:fcrdns');
});

test('a shared provider is asked once per run: the second domain on the same MX hits the cache', async () => {
  const r = createResolver({ server: { host: '127.0.0.1', port: server.port }, timeoutMs: 250, retries: 0, qps: 0 });
  await collectIpDnsObservations('127.100.0.1', { resolver: r, config });
  const q = r.stats().queries;
  await collectIpDnsObservations('127.100.0.1', { resolver: r, config });
  assert.equal(r.stats().queries, q);
});
