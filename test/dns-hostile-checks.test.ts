// The whole DNS probe of one domain against a hostile server: a CNAME loop for MX, garbage for DMARC,
// answers for the wrong question for TLS-RPT, silence for DKIM, 50 TXT records with a long SPF record at the apex.
// The probe finishes in bounded time, nothing crashes, and no fault turns into NG.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createResolver } from '../lib/dns/resolver.ts';
import { collectDnsObservations, collectIpDnsObservations, ipsToProbe } from '../lib/probes/dns.ts';
import { judgeDns } from './helpers/judge-dns.ts';
import { startHostileDns, respond, soa } from './helpers/hostile-dns.ts';

const dns = await startHostileDns((q) => {
  const { name, type } = q.questions[0];
  if (name === 'h.test' && type === 'TXT') {
    const spf = ['v=spf1 ' + Array.from({ length: 15 }, (_, i) => `ip4:192.0.2.${i}`).join(' '), ' ' + Array.from({ length: 12 }, (_, i) => `ip4:198.51.100.${i}`).join(' '), ' -all'];
    const filler = Array.from({ length: 49 }, (_, i) => ({ name, type: 'TXT' as const, ttl: 60, data: `verification-token-${i}` }));
    return respond(q, { answers: [...filler, { name, type: 'TXT', ttl: 60, data: spf }] });
  }
  if (name === 'h.test' && type === 'MX') {
    return respond(q, { answers: [{ name, type: 'CNAME', ttl: 60, data: 'loop.h.test' }, { name: 'loop.h.test', type: 'CNAME', ttl: 60, data: 'h.test' }] });
  }
  if (name === '_dmarc.h.test') return Buffer.concat([Buffer.from([q.id >> 8, q.id & 255]), Buffer.from([0x81, 0x80, 0, 1, 0, 9, 0, 0, 0, 0, 0xc0, 0xff])]);
  if (name === '_smtp._tls.h.test') return respond(q, { questions: [{ name: 'other.test', type: 'TXT' }], answers: [{ name: 'other.test', type: 'TXT', ttl: 60, data: 'v=TLSRPTv1; rua=mailto:x@other.test' }] });
  if (name.endsWith('_domainkey.h.test')) return null;
  return respond(q, { rcode: 3, authorities: [soa('h.test')] });
});
after(() => dns.close());

test('a hostile server yields unknowns with reasons, never NG, in bounded time', async () => {
  const resolver = createResolver({ server: { host: dns.host, port: dns.port }, timeoutMs: 200, retries: 1, qps: 0 });
  const deps = { resolver, config: { dkimSelectors: ['s1', 's2'], dnsblZones: ['bl.test'] } };
  const t0 = Date.now();
  const obs = await collectDnsObservations('h.test', deps);
  const ips = Object.fromEntries(await Promise.all(ipsToProbe(obs).map(async (ip) => [ip, await collectIpDnsObservations(ip, deps)] as const)));
  const j = judgeDns(obs, ips, 'scan');
  assert.ok(Date.now() - t0 < 15_000);
  assert.deepEqual(
    Object.fromEntries(Object.entries(j.criteria).map(([k, f]) => [k, `${f.status}:${f.reason}`])),
    // DNSSEC is read on the MX answer (issue 18): the CNAME loop leaves it unknown too.
    { dnssec: 'unknown:cname_loop', spf: 'ok:spf_valid', dkim: 'unknown:timeout', reverse_dns: 'unknown:cname_loop', dnsbl: 'unknown:cname_loop' },
  );
  assert.equal(j.findings.dmarcPolicy, 'unknown');
  assert.equal(j.findings.tlsRpt, 'unknown', 'only answers for another question: a timeout, not their data');
  assert.equal(j.mx.reason, 'cname_loop');
});
