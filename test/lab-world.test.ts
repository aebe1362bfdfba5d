// lab/world.ts and lab/world.schema.json: the world format of ../shared/LAB-WORLD.md, its defaults, its
// expansion, and the errors bad worlds get.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadWorld } from '../lab/world.ts';
import { InputError } from '../lib/errors.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const specFile = path.resolve(root, '../shared/LAB-WORLD.md');

// The example of LAB-WORLD.md, copied so the test runs without ../shared; the next test checks the copy.
const EXAMPLE = {
  version: 1,
  name: 'tiny',
  observedAt: '2021-06-30T00:00:00Z',
  hosts: { bigmail: { ip: '127.100.0.1', name: 'mx.bigmail.test' } },
  domains: [
    { name: 'alpha.test', mx: ['bigmail'], spf: 'v=spf1 ip4:127.100.0.1 -all', dkim: { selectors: ['s1'] }, dnssec: 'secure', sender: { host: 'bigmail', dkimSign: 's1' } },
    { name: 'open.test', mx: [{ smtp: { openRelay: true, starttls: false } }], sender: { starttls: false } },
  ],
  populations: [{ count: 3, name: 'broken-{i}.test', template: { mx: ['bigmail'], dnsFault: 'servfail' } }],
};

/** The problems of an InputError, one per line after the summary. */
function errorsOf(world: unknown): string[] {
  try {
    loadWorld(world as object);
  } catch (err) {
    assert.ok(err instanceof InputError, `expected InputError, got ${err}`);
    const [summary, ...lines] = err.message.split('\n');
    assert.match(summary, /^invalid lab world .*: \d+ errors?$/);
    return lines.map((l) => l.trim());
  }
  assert.fail('the world was accepted');
}

const base = (extra: object) => ({ version: 1, name: 'w', ...extra });

test('the example of LAB-WORLD.md loads (from the spec itself when ../shared is there)', { skip: !existsSync(specFile) && 'no ../shared' }, () => {
  const md = readFileSync(specFile, 'utf8');
  const json = /## Example\s+```json\n([\s\S]*?)```/.exec(md)?.[1];
  assert.ok(json, 'the spec has a JSON example');
  assert.deepEqual(JSON.parse(json), EXAMPLE);
  assert.equal(loadWorld(JSON.parse(json)).domains.length, 5);
});

test('the example gets every default, expanded populations, inline hosts and allocated addresses', () => {
  const w = loadWorld(EXAMPLE);
  assert.equal(w.version, 1);
  assert.equal(w.name, 'tiny');
  assert.equal(w.observedAt, '2021-06-30T00:00:00Z');
  assert.deepEqual(w.latency, { dnsMs: 0, smtpRttMs: 0 });
  assert.deepEqual(w.dnsbls, ['bl.lab.test']);
  assert.deepEqual(w.domains.map((d) => d.name), ['alpha.test', 'open.test', 'broken-1.test', 'broken-2.test', 'broken-3.test']);

  const big = w.hosts.get('bigmail')!;
  assert.deepEqual(big, {
    id: 'bigmail', ip: '127.100.0.1', name: 'mx.bigmail.test', ptr: 'mx.bigmail.test', ptrMismatch: false,
    smtp: { behavior: 'normal', bannerDelayMs: 0, starttls: true, tls: { cert: 'valid', minVersion: 'TLSv1.2', key: 'rsa-2048', notAfterDays: null, chain: 'complete' }, openRelay: false, relayDenyCode: 550 },
    dnsbl: false, tlsa: [], dnssec: null,
  });
  // The inline MX host: generated id and name; 127.100.0.1 is taken, so it gets the next address.
  const inline = w.hosts.get('open.test#mx1')!;
  assert.equal(inline.name, 'mx1.open.test');
  assert.equal(inline.ip, '127.100.0.2');
  assert.equal(inline.smtp.openRelay, true);
  assert.equal(inline.smtp.starttls, false);

  const [alpha, open, broken1] = w.domains;
  assert.deepEqual(alpha, {
    name: 'alpha.test', displayName: 'alpha.test', mx: ['bigmail'], spf: 'v=spf1 ip4:127.100.0.1 -all', extraTxt: [],
    dkim: { selectors: ['s1'], keys: { s1: { type: 'rsa', bits: 2048, testing: false, revoked: false } } },
    dmarc: null, mtaSts: null, mtaStsPolicy: null, tlsRpt: null, dnssec: 'secure', dnsFault: null,
    sender: { hostId: 'bigmail', starttls: true, dkimSign: 's1', mailFrom: 'postmaster@alpha.test' },
  });
  // sender.host defaults to "mx": the domain's first MX host.
  assert.deepEqual(open.sender, { hostId: 'open.test#mx1', starttls: false, dkimSign: null, mailFrom: 'postmaster@open.test' });
  assert.equal(open.dnssec, 'insecure');
  assert.deepEqual(broken1.mx, ['bigmail']);
  assert.equal(broken1.dnsFault, 'servfail');
  assert.equal(broken1.sender, null);
  assert.equal(w.hosts.size, 2);
});

test('inline hosts of a population template are created anew for every generated domain', () => {
  const w = loadWorld(base({ populations: [{ count: 3, name: 'p{i}.test', template: { mx: [{}, {}], sender: { host: {} } } }] }));
  assert.equal(w.hosts.size, 9);
  assert.deepEqual(w.domains[2].mx, ['p3.test#mx1', 'p3.test#mx2']);
  assert.equal(w.hosts.get('p3.test#mx2')!.name, 'mx2.p3.test');
  assert.equal(w.hosts.get('p2.test#out')!.name, 'out.p2.test');
  assert.equal(w.domains[1].sender!.hostId, 'p2.test#out');
  assert.equal(new Set([...w.hosts.values()].map((h) => h.ip)).size, 9);
});

test('allocation starts at 127.100.0.1 and skips addresses taken explicitly anywhere in the file', () => {
  const w = loadWorld(base({
    hosts: { a: {}, b: { ip: '127.100.0.2' } },
    domains: [{ name: 'x.test', mx: [{}, { ip: '127.100.0.3' }, {}] }],
  }));
  assert.equal(w.hosts.get('a')!.ip, '127.100.0.1');
  assert.equal(w.hosts.get('x.test#mx1')!.ip, '127.100.0.4');
  assert.equal(w.hosts.get('x.test#mx3')!.ip, '127.100.0.5');
  assert.equal(w.hosts.get('a')!.name, 'a.hosts.lab.test');
});

test('IDN names go to A-label form on the wire; the display name is kept', () => {
  const w = loadWorld(base({ domains: [{ name: 'Bücher.test', mx: [{}], sender: { mailFrom: 'info@bücher.test' } }], dnsbls: ['BL.Lab.test'] }));
  assert.equal(w.domains[0].name, 'xn--bcher-kva.test');
  assert.equal(w.domains[0].displayName, 'Bücher.test');
  assert.equal(w.hosts.get('xn--bcher-kva.test#mx1')!.name, 'mx1.xn--bcher-kva.test');
  assert.equal(w.domains[0].sender!.mailFrom, 'info@xn--bcher-kva.test');
  assert.deepEqual(w.dnsbls, ['bl.lab.test']);
});

test('ptr: default = name, null = none, and a mismatching PTR gets a name of its own so the forward name still works', () => {
  const w = loadWorld(base({ hosts: { a: {}, b: { ptr: null }, c: { ptrMismatch: true }, d: { ptr: 'rev.example.test' } } }));
  assert.equal(w.hosts.get('a')!.ptr, 'a.hosts.lab.test');
  assert.equal(w.hosts.get('b')!.ptr, null);
  assert.equal(w.hosts.get('c')!.ptr, 'rdns-mismatch.c.hosts.lab.test');
  assert.equal(w.hosts.get('c')!.name, 'c.hosts.lab.test');
  assert.equal(w.hosts.get('d')!.ptr, 'rev.example.test');
});

test('an invalid world reports every schema error, each with its JSON path', () => {
  const lines = errorsOf({
    version: 3,
    name: '',
    extra: true,
    latency: { dnsMs: -1 },
    hosts: { 'bad id': {}, h: { ip: '127.100.0.300', smtp: { behavior: 'angry', tls: { cert: 'nope' } }, dnsbl: 'maybe', ptrMismatch: 'yes' } },
    domains: [
      { mx: [{ bogus: 1 }, 5], dkim: {}, dnssec: 'maybe', dnsFault: 'flaky', sender: { host: 3, mailFrom: 'nobody' } },
      { name: 'b.test', mx: 'nul', sender: 7 },
    ],
    populations: [{ count: -1, name: 'x.test', template: { name: 'no' } }],
  });
  const expected = [
    '$.extra: unknown field',
    '$.version: must be one of 1, 2',
    '$.name: must NOT have fewer than 1 characters',
    '$.latency.dnsMs: must be >= 0',
    '$.hosts["bad id"]: is not a valid host id',
    '$.hosts.h.ip: must match format "ipv4"',
    '$.hosts.h.ptrMismatch: must be boolean',
    '$.hosts.h.smtp.behavior: must be one of "normal", "refuse", "silent", "tempfail", "greylist", "slow"',
    '$.hosts.h.smtp.tls.cert: must be one of',
    '$.hosts.h.dnsbl: must be one of false, true, "error"',
    '$.domains[0].name: is required',
    '$.domains[0].mx[0].bogus: unknown field',
    '$.domains[0].mx[1]: must be a host id or an inline host object',
    '$.domains[0].dkim.selectors: is required',
    '$.domains[0].dnssec: must be one of "secure", "insecure", "bogus"',
    '$.domains[0].dnsFault: must be one of "servfail", "timeout", "refused", null',
    '$.domains[0].sender.host: must be a host id or an inline host object',
    '$.domains[0].sender.mailFrom: must be an address local@domain',
    '$.domains[1].mx: must be a list of hosts, or "null" for a null MX',
    '$.domains[1].sender: must be null or a sender object',
    '$.populations[0].count: must be >= 0',
    '$.populations[0].name: must contain {i}',
    '$.populations[0].template.name: unknown field',
  ];
  for (const e of expected) assert.ok(lines.some((l) => l.startsWith(e)), `missing "${e}" in:\n${lines.join('\n')}`);
  assert.equal(lines.length, expected.length, lines.join('\n'));
});

test('an unknown field is rejected at every level of the format (the spec is closed)', () => {
  const cases: Array<[object, string]> = [
    [base({ latency: { x: 1 } }), '$.latency.x'],
    [base({ hosts: { h: { x: 1 } } }), '$.hosts.h.x'],
    [base({ hosts: { h: { smtp: { x: 1 } } } }), '$.hosts.h.smtp.x'],
    [base({ hosts: { h: { smtp: { tls: { x: 1 } } } } }), '$.hosts.h.smtp.tls.x'],
    [base({ domains: [{ name: 'a.test', x: 1 }] }), '$.domains[0].x'],
    [base({ domains: [{ name: 'a.test', dkim: { selectors: [], x: 1 } }] }), '$.domains[0].dkim.x'],
    [base({ domains: [{ name: 'a.test', sender: { host: {}, x: 1 } }] }), '$.domains[0].sender.x'],
    [base({ populations: [{ count: 1, name: '{i}.test', template: {}, x: 1 }] }), '$.populations[0].x'],
    [base({ populations: [{ count: 1, name: '{i}.test', template: { x: 1 } }] }), '$.populations[0].template.x'],
  ];
  for (const [world, where] of cases) assert.deepEqual(errorsOf(world), [`${where}: unknown field`]);
});

test('every field of LAB-WORLD.md is in the schema, with its default', { skip: !existsSync(specFile) && 'no ../shared' }, () => {
  const md = readFileSync(specFile, 'utf8');
  const schema = readFileSync(path.join(root, 'lab/world.schema.json'), 'utf8');
  // A row marked **v2** belongs to version 2 of the format; its fields are owed only once the schema
  // accepts `version: 2` (then every one of them is).
  const rows = [...md.matchAll(/^\| `([a-zA-Z.]+)`( \*\*v2\*\*)?/gm)];
  const fieldsOf = (v2: boolean) => new Set(rows.filter((m) => Boolean(m[2]) === v2).map((m) => m[1].split('.').pop()!));
  const s = JSON.parse(schema);
  const v1 = fieldsOf(false);
  assert.ok(v1.size >= 30, `found ${v1.size} fields`);
  for (const f of v1) assert.ok(schema.includes(`"${f}"`), `schema lacks ${f}`);
  if (JSON.stringify(s.properties.version).includes('2')) {
    for (const f of fieldsOf(true)) assert.ok(schema.includes(`"${f}"`), `schema accepts version 2 but lacks ${f}`);
  }
  assert.equal(s.$schema, 'https://json-schema.org/draft/2020-12/schema');
  assert.deepEqual(s.properties.dnsbls.default, ['bl.lab.test']);
  assert.equal(s.$defs.domainFields.properties.dnssec.default, 'insecure');
  assert.equal(s.$defs.host.properties.smtp.properties.relayDenyCode.default, 550);
});

test('addresses outside 127/8 or inside the reserved 127.0.0.0/16, and duplicates, are named with their path', () => {
  assert.deepEqual(errorsOf(base({ hosts: { a: { ip: '10.0.0.1' } } })), ['$.hosts.a.ip: 10.0.0.1 is outside 127.0.0.0/8: the lab lives on loopback']);
  assert.deepEqual(errorsOf(base({ hosts: { a: { ip: '127.0.3.3' } } })), ["$.hosts.a.ip: 127.0.3.3 is inside 127.0.0.0/16, reserved for the lab's own services"]);
  assert.deepEqual(errorsOf(base({ hosts: { a: { ip: '127.100.0.5' } }, domains: [{ name: 'x.test', mx: [{ ip: '127.100.0.5' }] }] })), [
    '$.domains[0].mx[0].ip: duplicate ip 127.100.0.5 (also at $.hosts.a)',
  ]);
});

test('unknown host ids, duplicate domains and an impossible sender are each reported', () => {
  assert.deepEqual(errorsOf(base({ domains: [{ name: 'x.test', mx: ['nope'] }] })), ['$.domains[0].mx[0]: unknown host id "nope"']);
  assert.deepEqual(errorsOf(base({ domains: [{ name: 'x.test', sender: { host: 'nope' } }] })), ['$.domains[0].sender.host: unknown host id "nope"']);
  // Same domain in two spellings: case and U-label/A-label.
  assert.deepEqual(errorsOf(base({ domains: [{ name: 'bücher.test' }, { name: 'XN--BCHER-KVA.test' }] })), [
    '$.domains[1].name: duplicate domain xn--bcher-kva.test (also at $.domains[0].name)',
  ]);
  assert.deepEqual(errorsOf(base({ domains: [{ name: 'p1.test' }], populations: [{ count: 2, name: 'p{i}.test', template: {} }] })), [
    '$.populations[0].name: duplicate domain p1.test (also at $.domains[0].name)',
  ]);
  assert.deepEqual(errorsOf(base({ domains: [{ name: 'x.test', sender: {} }] })), ['$.domains[0].sender.host: is "mx" but x.test has no MX host']);
  assert.deepEqual(errorsOf(base({ domains: [{ name: 'x.test', mx: 'null', sender: { host: 'mx' } }] })), ['$.domains[0].sender.host: is "mx" but x.test has no MX host']);
  assert.deepEqual(errorsOf(base({ populations: [{ count: 2, name: 'p{i}.test', template: { mx: [{ ip: '127.100.9.9' }] } }] })), [
    '$.populations[0].template: an inline host with a fixed ip would be shared by all 2 generated domains; drop its ip or use a shared host',
  ]);
  assert.deepEqual(errorsOf(base({ domains: [{ name: 'bad..name' }] })), ['$.domains[0].name: "bad..name" is not a valid DNS name']);
});

test('semantic errors are all reported together, not only the first', () => {
  const lines = errorsOf(base({ hosts: { a: { ip: '10.0.0.1' } }, domains: [{ name: 'x.test', mx: ['zz'] }, { name: 'x.test' }] }));
  assert.equal(lines.length, 3, lines.join('\n'));
});

test('a world file that is missing or not JSON gets a one-line error naming the file', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lab-world-'));
  try {
    const bad = path.join(dir, 'bad.json');
    writeFileSync(bad, '{ "version": 1, ');
    assert.throws(() => loadWorld(bad), (e: Error) => e instanceof InputError && e.message.startsWith(`invalid lab world ${bad}: not JSON`));
    assert.throws(() => loadWorld(path.join(dir, 'none.json')), (e: Error) => e instanceof InputError && /none\.json: no such file/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every world shipped in lab/worlds/ is valid', () => {
  const dir = path.join(root, 'lab/worlds');
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.json'))) {
    assert.doesNotThrow(() => loadWorld(path.join(dir, f)), `lab/worlds/${f}`);
  }
});

test('a 50,000-domain world loads in linear time', () => {
  const t0 = process.hrtime.bigint();
  const w = loadWorld(base({
    hosts: { p1: {}, p2: {} },
    populations: [
      { count: 20000, name: 'shared-{i}.test', template: { mx: ['p1', 'p2'], spf: 'v=spf1 mx -all' } },
      { count: 30000, name: 'own-{i}.test', template: { mx: [{}], sender: { host: {} }, dkim: { selectors: ['s1'] } } },
    ],
  }));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  assert.equal(w.domains.length, 50000);
  assert.equal(w.hosts.size, 60002);
  assert.equal(new Set([...w.hosts.values()].map((h) => h.ip)).size, 60002);
  // Quadratic work would take minutes here; linear takes well under a second even on a busy machine.
  assert.ok(ms < 15000, `took ${ms} ms`);
});

test('v2: a v2 field in a version-1 world is an error naming its path', () => {
  const lines = errorsOf(base({
    records: [{ name: 'x.test', type: 'A', value: '127.100.9.9' }],
    hosts: { h: { tlsa: [{ usage: 3, selector: 1, matching: 1 }], dnssec: 'secure', smtp: { tls: { key: 'ecdsa-p256', notAfterDays: 5, chain: 'leaf-only' } } } },
    domains: [{ name: 'a.test', mx: ['h'], dkim: { selectors: ['s1'], keys: { s1: { type: 'ed25519' } } }, mtaStsPolicy: { https: 'ok' } }],
  }));
  const need = 'is a version 2 field: set "version": 2 to use it';
  assert.deepEqual(lines.sort(), [
    `$.domains[0].dkim.keys: ${need}`,
    `$.domains[0].mtaStsPolicy: ${need}`,
    `$.hosts.h.dnssec: ${need}`,
    `$.hosts.h.smtp.tls.chain: ${need}`,
    `$.hosts.h.smtp.tls.key: ${need}`,
    `$.hosts.h.smtp.tls.notAfterDays: ${need}`,
    `$.hosts.h.tlsa: ${need}`,
    `$.records: ${need}`,
  ]);
});

test('v2: bad records, TLSA parameters and DKIM keys are reported with their JSON paths', () => {
  // The same bad records and keys in both worlds; the fourth record's name is what tells the schema's error
  // from the semantic one.
  const badRecords = (fourthName: string) => [
    { name: 'a.x.test', type: 'A', value: '10.0.0.300' },
    { name: 'm.x.test', type: 'MX', value: 'mx.x.test' },
    { name: 't.x.test', type: 'TLSA', value: '3 1 1 abc' },
    { name: fourthName, type: 'TXT', value: 'hi' },
    { name: 'c.x.test', type: 'CNAME', value: 'a.x.test' },
    { name: 'c.x.test', type: 'TXT', value: 'clash' },
    { name: 'd.test', type: 'CNAME', value: 'a.x.test' },
  ];
  const badKeys = { selectors: ['s1'], keys: { s2: {}, s1: { type: 'ed25519', bits: 1024 } } };
  const lines = errorsOf({
    version: 2,
    name: 'w',
    records: [...badRecords('a*.x.test'), { name: 'q.x.test', type: 'SRV', value: '1' }],
    hosts: { h: { tlsa: [{ usage: 4, selector: 1, matching: 1 }] } },
    domains: [{ name: 'd.test', mx: ['h'], dkim: badKeys, mtaStsPolicy: { https: 'maybe' } }],
  });
  for (const l of [
    '$.records[3].name: must be a DNS name, optionally starting with "*."',
    '$.records[7].type: must be one of "A", "TXT", "CNAME", "MX", "TLSA"',
    '$.hosts.h.tlsa[0].usage: must be one of 0, 1, 2, 3',
    '$.domains[0].mtaStsPolicy.https: must be one of "ok", "refuse", "timeout", "404", "self-signed", "expired", "wrong-name"',
  ]) assert.ok(lines.some((x) => x.startsWith(l)), `missing ${l} in\n${lines.join('\n')}`);
  // The semantic checks run once the schema passes.
  const semantic = errorsOf({ version: 2, name: 'w', records: badRecords('*.*.x.test'), domains: [{ name: 'd.test', dkim: badKeys }] });
  assert.deepEqual(semantic.sort(), [
    '$.domains[0].dkim.keys.s1.bits: applies to rsa keys only',
    '$.domains[0].dkim.keys.s2: selector "s2" is not in dkim.selectors',
    '$.records[0].value: must be an IPv4 address',
    '$.records[1].value: must be "<preference 0-65535> <exchange>", e.g. "10 mx.example.test"',
    '$.records[2].value: must be "<usage> <selector> <matching> <hex data>", e.g. "3 1 1 ab12…"',
    '$.records[3].name: "*.*.x.test" is not a valid DNS name (a wildcard is "*." followed by a name)',
    '$.records[5].name: a CNAME cannot share its name with other records (c.x.test, also at $.records[4])',
    '$.records[6].name: d.test is a domain of the world: its apex has SOA and NS, so it cannot be a CNAME',
  ]);
});

test('v2: defaults of the v2 fields, and policy hosts get addresses after the mail hosts', () => {
  const w = loadWorld({
    version: 2, name: 'w',
    hosts: { h: { tlsa: [{ usage: 3, selector: 1, matching: 1 }] } },
    domains: [{ name: 'd.test', mx: ['h'], dkim: { selectors: ['a', 'b'], keys: { b: { type: 'ed25519', testing: true } } }, mtaStsPolicy: {} }],
    records: [{ name: '*.D.test', type: 'MX', value: '5  MX.d.test' }],
  });
  assert.equal(w.version, 2);
  const h = w.hosts.get('h')!;
  assert.deepEqual(h.tlsa, [{ usage: 3, selector: 1, matching: 1, matches: true }]);
  assert.equal(h.dnssec, null);
  assert.deepEqual(w.domains[0].dkim!.keys, {
    a: { type: 'rsa', bits: 2048, testing: false, revoked: false },
    b: { type: 'ed25519', bits: 0, testing: true, revoked: false },
  });
  assert.deepEqual(w.domains[0].mtaStsPolicy, {
    https: 'ok', contentType: 'text/plain', name: 'mta-sts.d.test', ip: '127.100.0.2',
    body: 'version: STSv1\r\nmode: enforce\r\nmx: h.hosts.lab.test\r\nmax_age: 604800\r\n',
  });
  assert.deepEqual(w.records, [{ name: '*.d.test', type: 'MX', value: '5 mx.d.test' }]);
});
