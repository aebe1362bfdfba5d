// The stub resolver against real sockets: a well-behaved server, and hostile ones (garbage, silence, answers
// for another question, CNAME loops, truncation). Every case ends in bounded time with an outcome.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as dnsPacket from 'dns-packet';
import { createResolver, diagnosisResolver, type Resolver } from '../lib/dns/resolver.ts';
import { mailauthResolver } from '../lib/dns/mailauth.ts';
import { tokenBucket } from '../lib/dns/rate-limit.ts';
import { startHostileDns, respond, soa, type Handler, type HostileDns } from './helpers/hostile-dns.ts';

const servers: HostileDns[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

async function serve(handler: Handler, opts: { timeoutMs?: number; retries?: number; cache?: boolean; cacheEntries?: number } = {}): Promise<{ dns: HostileDns; r: Resolver }> {
  const dns = await startHostileDns(handler);
  servers.push(dns);
  const r = createResolver({ server: { host: dns.host, port: dns.port }, timeoutMs: opts.timeoutMs ?? 300, retries: opts.retries ?? 0, qps: 0, cache: opts.cache, ...(opts.cacheEntries ? { cacheEntries: opts.cacheEntries } : {}) });
  return { dns, r };
}

const ede = (code: number, text = ''): dnsPacket.Answer =>
  ({ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0, options: [{ code: 15, data: Buffer.concat([Buffer.from([code >> 8, code & 255]), Buffer.from(text)]) }] }) as unknown as dnsPacket.Answer;

test('an answer carries the AD bit and records; the query sets DO with a 1232-byte payload', async () => {
  let sawDo = false;
  let payload = 0;
  const { r } = await serve((q) => {
    const opt = q.additionals.find((a) => a.type === 'OPT') as { flag_do?: boolean; udpPayloadSize?: number } | undefined;
    sawDo = Boolean(opt?.flag_do);
    payload = opt?.udpPayloadSize ?? 0;
    return respond(q, { flags: dnsPacket.AUTHENTIC_DATA, answers: [{ name: 'a.test', type: 'A', ttl: 60, data: '127.0.0.9' }] });
  });
  const res = await r.query('A.Test.', 'A');
  assert.equal(res.outcome, 'answer');
  assert.equal(res.ad, true);
  assert.deepEqual(res.answers.map((a) => a.data), ['127.0.0.9']);
  assert.equal(sawDo, true);
  assert.equal(payload, 1232);
});

test('NXDOMAIN and NODATA are facts, and are cached for the SOA minimum (RFC 2308)', async () => {
  const { dns, r } = await serve((q) =>
    q.questions[0].name === 'gone.test' ? respond(q, { rcode: 3, authorities: [soa('test', 30)] }) : respond(q, { authorities: [soa('test', 30)] }),
  );
  assert.equal((await r.query('gone.test', 'TXT')).outcome, 'nxdomain');
  assert.equal((await r.query('here.test', 'TXT')).outcome, 'nodata');
  assert.equal((await r.query('gone.test', 'TXT')).outcome, 'nxdomain');
  assert.equal(dns.queries.length, 2);
  assert.equal(r.stats().cacheHits, 1);
});

test('SERVFAIL with Extended DNS Error 6 is servfail (unknown) and keeps the EDE', async () => {
  const { r } = await serve((q) => respond(q, { rcode: 2, additionals: [ede(6, 'signature expired')] }));
  const res = await r.query('bogus.test', 'SOA');
  assert.equal(res.outcome, 'servfail');
  assert.deepEqual(res.ede, [{ code: 6, text: 'signature expired' }]);
});

test('the CD bit is sent when asked, and cached separately', async () => {
  const { dns, r } = await serve((q) =>
    (q as { flag_cd?: boolean }).flag_cd ? respond(q, { answers: [{ name: 'b.test', type: 'A', ttl: 60, data: '127.0.0.1' }] }) : respond(q, { rcode: 2 }),
  );
  assert.equal((await r.query('b.test', 'A')).outcome, 'servfail');
  const cd = await r.query('b.test', 'A', { cd: true });
  assert.equal(cd.outcome, 'answer');
  assert.equal(cd.cd, true);
  assert.deepEqual(dns.queries.map((q) => q.cd), [false, true]);
});

test('REFUSED is refused, and FORMERR is an error with the rcode as reason', async () => {
  const { r } = await serve((q) => respond(q, { rcode: q.questions[0].name === 'r.test' ? 5 : 1 }));
  assert.equal((await r.query('r.test', 'A')).outcome, 'refused');
  const f = await r.query('f.test', 'A');
  assert.equal(f.outcome, 'error');
  assert.equal(f.reason, 'rcode_formerr');
});

test('a resolver that never answers times out after the bounded retries', async () => {
  const { dns, r } = await serve(() => null, { timeoutMs: 150, retries: 2 });
  const t0 = Date.now();
  const res = await r.query('silent.test', 'A');
  assert.equal(res.outcome, 'timeout');
  assert.equal(dns.queries.length, 3);
  assert.ok(Date.now() - t0 < 5000);
});

test('answers for the wrong question (id, name or type) are ignored; the right one is taken', async () => {
  const { r } = await serve((q) => [
    respond(q, { id: (q.id + 1) % 65536, answers: [{ name: 'x.test', type: 'A', ttl: 60, data: '127.6.6.6' }] }),
    respond(q, { questions: [{ name: 'evil.test', type: 'A' }], answers: [{ name: 'evil.test', type: 'A', ttl: 60, data: '127.6.6.6' }] }),
    respond(q, { questions: [{ name: 'x.test', type: 'TXT' }], answers: [{ name: 'x.test', type: 'TXT', ttl: 60, data: 'evil' }] }),
    respond(q, { answers: [{ name: 'x.test', type: 'A', ttl: 60, data: '127.0.0.7' }] }),
  ]);
  const res = await r.query('X.TEST', 'A');
  assert.equal(res.outcome, 'answer');
  assert.deepEqual(res.answers.map((a) => a.data), ['127.0.0.7']);
});

test('only answers for the wrong question end in a timeout, not in their data', async () => {
  const { r } = await serve((q) => respond(q, { questions: [{ name: 'evil.test', type: 'A' }], answers: [{ name: 'evil.test', type: 'A', ttl: 60, data: '127.6.6.6' }] }));
  const res = await r.query('y.test', 'A');
  assert.equal(res.outcome, 'timeout');
  assert.deepEqual(res.answers, []);
});

test('an answer from another address, even from the queried port, is ignored (RFC 5452 §9.1)', async () => {
  // A spoofer on 127.0.0.2, bound to the server's port, answers with the right id and question; the real
  // server stays silent. The answer must not be taken.
  const dgram = await import('node:dgram');
  const spoofer = dgram.createSocket('udp4');
  const { dns, r } = await serve(() => null);
  await new Promise<void>((resolve) => spoofer.bind(dns.port, '127.0.0.2', () => resolve()));
  try {
    const pending = r.query('spoof.test', 'A');
    const deadline = Date.now() + 2000;
    while (dns.sources.length === 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
    const src = dns.sources[dns.sources.length - 1];
    const q = dnsPacket.decode(src.raw) as dnsPacket.DecodedPacket & { id: number };
    const answer = dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE, questions: q.questions, answers: [{ name: 'spoof.test', type: 'A', ttl: 60, data: '192.0.2.66' }] });
    await new Promise<void>((resolve) => spoofer.send(answer, src.port, '127.0.0.1', () => resolve()));
    const res = await pending;
    assert.equal(res.outcome, 'timeout', JSON.stringify(res.answers ?? []));
  } finally {
    spoofer.close();
  }
});

test('garbage bytes with our id are a malformed reply, not a crash', async () => {
  const { r } = await serve((q) => Buffer.concat([Buffer.from([q.id >> 8, q.id & 255]), Buffer.from('\xff\xff\x00\x01garbage-garbage', 'latin1')]));
  const res = await r.query('garbage.test', 'A');
  assert.equal(res.outcome, 'malformed');
});

test('a truncated UDP answer is retried over TCP; TXT over 255 bytes in several strings and 50 records survive', async () => {
  const long = ['a'.repeat(255), 'b'.repeat(255), 'c'.repeat(100)];
  const many = Array.from({ length: 50 }, (_, i) => ({ name: 'big.test', type: 'TXT' as const, ttl: 60, data: `record-${i}-${'x'.repeat(40)}` }));
  const { dns, r } = await serve((q, transport) =>
    transport === 'udp'
      ? respond(q, { flags: dnsPacket.TRUNCATED_RESPONSE })
      : respond(q, { answers: [{ name: 'big.test', type: 'TXT', ttl: 60, data: [...long] }, ...many.map((m) => ({ ...m }))] }),
  );
  const res = await r.query('big.test', 'TXT');
  assert.equal(res.outcome, 'answer');
  assert.equal(res.answers.length, 51);
  assert.deepEqual(res.answers[0].data, long);
  assert.deepEqual(dns.queries.map((q) => q.transport), ['udp', 'tcp']);
});

test('a CNAME loop inside one answer is an error (cname_loop), not an answer', async () => {
  const { r } = await serve((q) =>
    respond(q, {
      answers: [
        { name: 'l1.test', type: 'CNAME', ttl: 60, data: 'l2.test' },
        { name: 'l2.test', type: 'CNAME', ttl: 60, data: 'l1.test' },
      ],
    }),
  );
  const res = await r.query('l1.test', 'A');
  assert.equal(res.outcome, 'error');
  assert.equal(res.reason, 'cname_loop');
});

test('a CNAME chain the server leaves unresolved is chased, bounded, and loops across queries are caught', async () => {
  // c0 -> c1 -> ... (each answer holds only its own CNAME): an endless chain.
  const { dns, r } = await serve((q) => {
    const name = q.questions[0].name;
    const m = /^c(\d+)\.test$/.exec(name);
    if (m) return respond(q, { answers: [{ name, type: 'CNAME', ttl: 60, data: `c${Number(m[1]) + 1}.test` }] });
    if (name === 'p.test') return respond(q, { answers: [{ name, type: 'CNAME', ttl: 60, data: 'q.test' }] });
    if (name === 'q.test') return respond(q, { answers: [{ name, type: 'CNAME', ttl: 60, data: 'p.test' }] });
    if (name === 'short.test') return respond(q, { answers: [{ name, type: 'CNAME', ttl: 60, data: 'target.test' }] });
    return respond(q, { answers: [{ name, type: 'A', ttl: 60, data: '127.0.0.5' }] });
  });
  const long = await r.query('c0.test', 'A');
  assert.equal(long.outcome, 'error');
  assert.equal(long.reason, 'cname_chain_too_long');
  assert.ok(dns.queries.length <= 10);
  const loop = await r.query('p.test', 'A');
  assert.equal(loop.outcome, 'error');
  assert.equal(loop.reason, 'cname_loop');
  const ok = await r.query('short.test', 'A');
  assert.equal(ok.outcome, 'answer');
  assert.deepEqual(ok.cnameChain, ['target.test']);
  assert.deepEqual(ok.answers.map((a) => a.data), ['127.0.0.5']);
});

test('concurrent questions for a CNAME the server leaves unresolved are asked once and all chase the chain', async () => {
  const { dns, r } = await serve(async (q) => {
    const name = q.questions[0].name;
    await new Promise((res) => setTimeout(res, 30));
    if (name === 'alias.test') return respond(q, { answers: [{ name, type: 'CNAME', ttl: 60, data: 'real.test' }] });
    return respond(q, { answers: [{ name, type: 'A', ttl: 60, data: '127.0.0.6' }] });
  });
  const results = await Promise.all(Array.from({ length: 4 }, () => r.query('alias.test', 'A')));
  for (const res of results) {
    assert.equal(res.outcome, 'answer');
    assert.deepEqual(res.cnameChain, ['real.test']);
    assert.deepEqual(res.answers.map((a) => a.data), ['127.0.0.6']);
  }
  assert.equal(dns.queries.filter((q) => q.name === 'alias.test').length, 1);
});

test('the answer cache is bounded and keeps what is asked again (least recently used goes first)', async () => {
  const { dns, r } = await serve((q) => respond(q, { answers: [{ name: q.questions[0].name, type: 'A', ttl: 300, data: '127.0.0.7' }] }), { cacheEntries: 50 });
  const asked = (name: string) => dns.queries.filter((q) => q.name === name).length;
  await r.query('hot.test', 'A');
  // 200 other names, four times what this cache holds, asking the shared name again in between.
  for (let i = 0; i < 200; i++) {
    await r.query(`n${i}.test`, 'A');
    if (i % 20 === 19) await r.query('hot.test', 'A');
  }
  assert.equal(asked('hot.test'), 1, 'an answer asked for again stays cached');
  await r.query('n0.test', 'A');
  assert.equal(asked('n0.test'), 2, 'the least recently used answer was dropped');
  await r.query('n199.test', 'A');
  assert.equal(asked('n199.test'), 1, 'a recent answer is still cached');
});

test('names that are not valid DNS names are refused before any query', async () => {
  const { dns, r } = await serve((q) => respond(q));
  for (const bad of ['', 'a..b', 'x'.repeat(64) + '.test', 'spa ce.test', 'a'.repeat(250) + '.test.test', 'semi;colon.test', '..']) {
    const res = await r.query(bad, 'A');
    assert.equal(res.outcome, 'error', bad);
    assert.equal(res.reason, 'invalid_name', bad);
  }
  assert.equal(dns.queries.length, 0);
});

test('identical concurrent queries are sent once and answers are cached for their TTL', async () => {
  const { dns, r } = await serve(async (q) => {
    await new Promise((res) => setTimeout(res, 50));
    return respond(q, { answers: [{ name: q.questions[0].name, type: 'TXT', ttl: 300, data: 'v=spf1 -all' }] });
  });
  const results = await Promise.all(Array.from({ length: 5 }, () => r.query('shared.test', 'TXT')));
  assert.ok(results.every((x) => x.outcome === 'answer'));
  await r.query('shared.test', 'TXT');
  assert.equal(dns.queries.length, 1);
  assert.deepEqual(r.stats(), { queries: 1, cacheHits: 5 });
});

test('one diagnosis asks each question once, whatever its TTL: a TTL-0 answer, a negative answer without SOA, a failure', async () => {
  // The shared resolver may not keep these (TTL 0; no SOA, RFC 2308 §5; a failure only briefly): the scope does.
  const { dns, r } = await serve((q) => {
    const name = q.questions[0].name;
    if (name === 'ttl0.test') return respond(q, { answers: [{ name, type: 'A', ttl: 0, data: '192.0.2.1' }] });
    if (name === 'nosoa.test') return respond(q, {});
    return respond(q, { rcode: 2 });
  });
  const scope = diagnosisResolver(r);
  for (let i = 0; i < 3; i++) {
    assert.equal((await scope.query('ttl0.test', 'A')).outcome, 'answer');
    assert.equal((await scope.query('NoSoa.test.', 'TXT')).outcome, 'nodata');
    assert.equal((await scope.query('broken.test', 'MX')).outcome, 'servfail');
  }
  assert.deepEqual(dns.queries.map((q) => q.name), ['ttl0.test', 'nosoa.test', 'broken.test']);
  assert.deepEqual(scope.stats(), { queries: 3, cacheHits: 6 });
  // Another diagnosis asks again: the TTL-0 answer was for that transaction only (RFC 1035 §3.2.1).
  await diagnosisResolver(r).query('ttl0.test', 'A');
  assert.equal(dns.queries.filter((q) => q.name === 'ttl0.test').length, 2);
});

test('RFC 8020: below a name answered NXDOMAIN nothing is asked; the denial of the last name of a CNAME chain counts, with its AD bit', async () => {
  const { dns, r } = await serve((q) => {
    const name = q.questions[0].name;
    if (name === 'alias.test') {
      return respond(q, { rcode: 3, flags: dnsPacket.AUTHENTIC_DATA, answers: [{ name, type: 'CNAME', ttl: 60, data: 'target.test' }], authorities: [soa('test', 30)] });
    }
    if (name === 'gone.test' || name.endsWith('.gone.test')) return respond(q, { rcode: 3, authorities: [soa('test', 30)] });
    return respond(q, { authorities: [soa('test', 30)] });
  });
  const scope = diagnosisResolver(r);
  assert.equal((await scope.query('gone.test', 'SOA')).outcome, 'nxdomain');
  for (const [name, type] of [['gone.test', 'MX'], ['_dmarc.gone.test', 'TXT'], ['a.b._domainkey.gone.test', 'TXT']] as const) {
    const res = await scope.query(name, type);
    assert.deepEqual([res.outcome, res.rcode, res.name, res.type, res.ad], ['nxdomain', 'NXDOMAIN', name, type, false]);
  }
  assert.equal((await scope.query('gone.test', 'MX', { cd: true })).outcome, 'nxdomain', 'a CD question is its own');
  assert.deepEqual(dns.queries.map((q) => q.name), ['gone.test', 'gone.test']);
  // The chain alias.test -> target.test ends in NXDOMAIN: target.test does not exist, alias.test does.
  assert.equal((await scope.query('alias.test', 'A')).outcome, 'nxdomain');
  const below = await scope.query('x.target.test', 'TXT');
  assert.deepEqual([below.outcome, below.ad], ['nxdomain', true], 'a validated denial covers the names below it');
  assert.equal((await scope.query('x.alias.test', 'TXT')).outcome, 'nodata', 'asked: the alias name exists');
  assert.deepEqual(dns.queries.map((q) => q.name).slice(2), ['alias.test', 'x.alias.test']);
});

test('mailauthResolver maps outcomes to Node error codes and records to mailauth shapes', async () => {
  const { r } = await serve((q) => {
    const { name, type } = q.questions[0];
    if (name === 'nx.test') return respond(q, { rcode: 3 });
    if (name === 'sf.test') return respond(q, { rcode: 2 });
    if (name === 'silent.test') return null;
    if (type === 'TXT') return respond(q, { answers: [{ name, type: 'TXT', ttl: 60, data: ['v=spf1 ', '-all'] }] });
    if (type === 'MX') return respond(q, { answers: [{ name, type: 'MX', ttl: 60, data: { preference: 10, exchange: 'mx.m.test' } }] });
    return respond(q);
  });
  const m = mailauthResolver(r);
  assert.deepEqual(await m('m.test', 'TXT'), [['v=spf1 ', '-all']]);
  assert.deepEqual(await m('m.test', 'MX'), [{ exchange: 'mx.m.test', priority: 10 }]);
  await assert.rejects(m('m.test', 'A'), { code: 'ENODATA' });
  await assert.rejects(m('nx.test', 'A'), { code: 'ENOTFOUND' });
  await assert.rejects(m('sf.test', 'A'), { code: 'ESERVFAIL' });
  await assert.rejects(m('silent.test', 'A'), { code: 'ETIMEOUT' });
});

test('the token bucket spaces queries at the configured rate', async () => {
  const bucket = tokenBucket(10, 1);
  const t0 = performance.now();
  for (let i = 0; i < 4; i++) await bucket.acquire();
  // Three waits of 100 ms each at least; no upper bound (a busy machine is slower, never faster).
  assert.ok(performance.now() - t0 >= 250);
});
