// The worlds in lab/worlds and the benchmark generator. For msc-2021.json this is a consistency check of the
// world itself: an independent reading of the world file (its own population expansion, host defaults and a
// small SPF evaluator) applies the test-mail rules of ../shared/CRITERIA.md and must reproduce the seed's 2021
// figures (../shared/SEED.md). The real pipeline test against the running lab comes later.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadWorld } from '../lab/world.ts';
import { generateWorld } from '../lab/generate.ts';
import { judgeVerdict } from '../lib/verdict.ts';
import type { Criterion, CriterionFindings, Status } from '../lib/criteria.ts';

const worldPath = (name: string) => fileURLToPath(new URL(`../lab/worlds/${name}`, import.meta.url));

// ---- An independent reading of a raw world file ----------------------------------------------------------

interface Host {
  ip?: string;
  name: string;
  ptr: string | null;
  ptrMismatch: boolean;
  behavior: string;
  starttls: boolean;
  openRelay: boolean;
  dnsbl: boolean | 'error';
}
type RawHost = {
  ip?: string;
  name?: string;
  ptr?: string | null;
  ptrMismatch?: boolean;
  smtp?: { behavior?: string; starttls?: boolean; openRelay?: boolean };
  dnsbl?: boolean | 'error';
};
type RawDomain = {
  name?: string;
  mx?: Array<string | RawHost> | 'null';
  spf?: string | null;
  extraTxt?: string[];
  dkim?: { selectors: string[] } | null;
  dnssec?: string;
  dnsFault?: string | null;
  sender?: { host?: string | RawHost; starttls?: boolean; dkimSign?: string | null; mailFrom?: string } | null;
};
type RawWorld = {
  observedAt?: string;
  hosts?: Record<string, RawHost>;
  domains?: RawDomain[];
  populations?: Array<{ count: number; name: string; template: RawDomain }>;
};

function host(raw: RawHost, defaultName: string): Host {
  const name = raw.name ?? defaultName;
  return {
    ip: raw.ip,
    name,
    ptr: raw.ptr === undefined ? name : raw.ptr,
    ptrMismatch: raw.ptrMismatch ?? false,
    behavior: raw.smtp?.behavior ?? 'normal',
    starttls: raw.smtp?.starttls ?? true,
    openRelay: raw.smtp?.openRelay ?? false,
    dnsbl: raw.dnsbl ?? false,
  };
}

/** Does an ip4:net/len mechanism match? Decided only when the host has a fixed address. */
function ip4Matches(spec: string, h: Host, domain: string): boolean {
  const [net, len = '32'] = spec.split('/');
  const num = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
  const bits = Number(len);
  const mask = bits === 0 ? 0 : 2 ** 32 - 2 ** (32 - bits);
  const inNet = (ip: string) => (num(ip) & mask) >>> 0 === (num(net!) & mask) >>> 0;
  if (h.ip !== undefined) return inNet(h.ip);
  // An allocated address lies in 127.100.0.0-127.255.255.254: a network outside that range cannot match.
  const low = num('127.100.0.0');
  const high = num('127.255.255.255');
  const start = (num(net!) & mask) >>> 0;
  const end = start + (2 ** (32 - bits) - 1);
  assert.ok(end < low || start > high, `${domain}: ip4:${spec} may cover an allocated address; give the host an ip`);
  return false;
}

/** RFC 7208 §4-5 for the mechanisms our worlds use; anything else fails the test so it gets added here. */
function spfResult(d: RawDomain, name: string, sender: Host, mxHosts: Host[]): string {
  const records = [d.spf, ...(d.extraTxt ?? [])].filter((r): r is string => typeof r === 'string' && /^v=spf1(\s|$)/i.test(r));
  if (records.length === 0) return 'none';
  if (records.length > 1) return 'permerror'; // RFC 7208 §4.5
  const results: Record<string, string> = { '+': 'pass', '-': 'fail', '~': 'softfail', '?': 'neutral' };
  for (const term of records[0]!.split(/\s+/).slice(1)) {
    if (term === '') continue;
    const q = '+-~?'.includes(term[0]!) ? term[0]! : '+';
    const mech = q === term[0] ? term.slice(1) : term;
    let match: boolean;
    if (mech === 'all') match = true;
    else if (mech.startsWith('ip4:')) match = ip4Matches(mech.slice(4), sender, name);
    else if (mech === 'mx') match = mxHosts.includes(sender);
    else if (mech === 'a') match = false; // lab domains have no A record
    else if (mech.startsWith('a:')) match = sender.name === mech.slice(2);
    else throw new Error(`${name}: SPF term "${term}" is not understood by this test`);
    if (match) return results[q]!;
  }
  return 'neutral'; // RFC 7208 §4.7: no match, no all
}

interface Diagnosis {
  name: string;
  status: Record<Criterion, Status>;
}

/** Test-mail source, CRITERIA.md: what the checker must conclude for a domain of this world. */
function diagnose(w: RawWorld, d: RawDomain, name: string): Diagnosis {
  const shared = new Map<string, Host>();
  for (const [id, h] of Object.entries(w.hosts ?? {})) shared.set(id, host(h, `${id}.hosts.lab.test`));
  const ref = (r: string | RawHost, defaultName: string): Host => {
    if (typeof r === 'string') {
      const h = shared.get(r);
      assert.ok(h, `${name}: unknown host ${r}`);
      return h;
    }
    return host(r, defaultName);
  };
  const mxHosts = d.mx === 'null' ? [] : (d.mx ?? []).map((m, k) => ref(m, `mx${k + 1}.${name}`));
  assert.ok(d.sender, `${name} has no sender`);
  const s = d.sender;
  const senderHost =
    s.host === undefined || s.host === 'mx' ? mxHosts[0]! : ref(s.host, `out.${name}`);
  assert.ok(senderHost, `${name}: sender "mx" without MX`);
  const mailFromDomain = (s.mailFrom ?? `postmaster@${name}`).split('@')[1]!;
  assert.equal(mailFromDomain, name, 'this test only knows SPF for the domain itself');

  const faulty = (d.dnsFault ?? null) !== null;
  const reachable = (h: Host) => ['normal', 'slow', 'greylist'].includes(h.behavior);

  // open_relay: every MX host; the sender host only if it answers SMTP at all.
  const relayHosts = [...mxHosts, ...(['refuse', 'silent'].includes(senderHost.behavior) ? [] : [senderHost])];
  const relay = relayHosts.map((h): Status =>
    h.behavior === 'normal' || h.behavior === 'slow' ? (h.openRelay ? 'ng' : 'ok') : 'unknown',
  );
  const open_relay: Status = relay.includes('ng') ? 'ng' : relay.includes('unknown') ? 'unknown' : 'ok';

  const spfRes = faulty ? 'temperror' : spfResult(d, name, senderHost, mxHosts);
  const spf: Status = spfRes === 'pass' ? 'ok' : spfRes === 'temperror' ? 'unknown' : 'ng';
  const published = (d.dkim?.selectors ?? []).map((x) => x.toLowerCase());
  const dkim: Status = faulty
    ? 'unknown'
    : s.dkimSign != null && published.includes(s.dkimSign.toLowerCase()) ? 'ok' : 'ng';

  let tls_receive: Status;
  if (mxHosts.length === 0) tls_receive = 'na';
  else if (mxHosts.some((h) => reachable(h) && !h.starttls)) tls_receive = 'ng';
  else if (mxHosts.some((h) => !reachable(h))) tls_receive = 'unknown';
  else tls_receive = 'ok';

  const tls_send: Status = (s.starttls ?? true) ? 'ok' : 'ng';
  const reverse_dns: Status = senderHost.ptr === null || senderHost.ptrMismatch ? 'ng' : 'ok';
  const dnssec: Status = faulty ? 'unknown' : d.dnssec === 'secure' ? 'ok' : 'ng';
  const dnsbl: Status = senderHost.dnsbl === true ? 'ng' : senderHost.dnsbl === 'error' ? 'unknown' : 'ok';
  return { name, status: { open_relay, spf, dkim, tls_receive, tls_send, reverse_dns, dnssec, dnsbl } };
}

/** CRITERIA.md "Verdict", written out again (not lib/verdict.ts), for the world check. */
function verdict(st: Record<Criterion, Status>): string {
  const ng = (c: Criterion) => st[c] === 'ng';
  const unk = (c: Criterion) => st[c] === 'unknown';
  const level = ng('open_relay')
    ? 3
    : (ng('spf') && ng('dkim')) || ng('tls_send') || ng('tls_receive') || ng('reverse_dns')
      ? 2
      : ng('dnssec') || ng('dnsbl')
        ? 1
        : 0;
  const pairOpen = (unk('spf') || unk('dkim')) && st.spf !== 'ok' && st.dkim !== 'ok';
  const openAbove =
    (level < 3 && unk('open_relay')) ||
    (level < 2 && (pairOpen || unk('tls_send') || unk('tls_receive') || unk('reverse_dns'))) ||
    (level < 1 && (unk('dnssec') || unk('dnsbl')));
  if (openAbove) return 'incomplete';
  return ['safe', 'review', 'needs_improvement', 'danger'][level]!;
}

function diagnoseWorld(w: RawWorld): Diagnosis[] {
  const out: Diagnosis[] = [];
  for (const d of w.domains ?? []) out.push(diagnose(w, d, d.name!));
  for (const p of w.populations ?? []) {
    for (let i = 1; i <= p.count; i++) out.push(diagnose(w, p.template, p.name.replaceAll('{i}', String(i))));
  }
  return out;
}

const pct = (n: number, total: number) => Math.round((100 * n) / total);

// ---- Tests -------------------------------------------------------------------------------------------------

describe('lab/worlds/msc-2021.json reproduces the MSchecker 2021 figures', () => {
  const raw = JSON.parse(readFileSync(worldPath('msc-2021.json'), 'utf8')) as RawWorld;
  const diagnoses = diagnoseWorld(raw);
  const count = (f: (d: Diagnosis) => boolean) => diagnoses.filter(f).length;

  test('it is a valid world of 202 domains observed in 2021, every one with a sender', () => {
    const w = loadWorld(worldPath('msc-2021.json'));
    assert.equal(w.domains.length, 202);
    assert.equal(diagnoses.length, 202);
    assert.ok(w.domains.every((d) => d.sender !== null));
    assert.match(w.observedAt ?? '', /^2021-/);
    assert.ok((raw.populations ?? []).length <= 30, 'written as populations');
  });

  test('verdicts: safe 12, review 102, needs improvement 87, danger 1, none incomplete', () => {
    const tally: Record<string, number> = {};
    for (const d of diagnoses) {
      const v = verdict(d.status);
      tally[v] = (tally[v] ?? 0) + 1;
    }
    assert.deepEqual(tally, { safe: 12, review: 102, needs_improvement: 87, danger: 1 });
    // The seed's rounded percentages (SEED.md): safe 6%, needs improvement 43%.
    assert.equal(pct(tally.safe!, 202), 6);
    assert.equal(pct(tally.needs_improvement!, 202), 43);
  });

  test('SPF and DKIM both NG 32 (16%), reverse DNS NG 8 (OK 96%), send or receive TLS NG 51 (25%)', () => {
    const pair = count((d) => d.status.spf === 'ng' && d.status.dkim === 'ng');
    const rdns = count((d) => d.status.reverse_dns === 'ng');
    const tlsNg = count((d) => d.status.tls_send === 'ng' || d.status.tls_receive === 'ng');
    assert.equal(pair, 32);
    assert.equal(rdns, 8);
    assert.equal(tlsNg, 51);
    assert.equal(pct(pair, 202), 16);
    assert.equal(pct(202 - rdns, 202), 96);
    assert.equal(pct(tlsNg, 202), 25);
    // Every criterion is measurable in this world: no unknown anywhere.
    assert.equal(count((d) => Object.values(d.status).includes('unknown')), 0);
  });

  test('lib/verdict.ts agrees with the independent verdict on every domain', () => {
    for (const d of diagnoses) {
      const findings = Object.fromEntries(
        Object.entries(d.status).map(([c, s]) => [c, { status: s, reason: 'test' }]),
      ) as CriterionFindings;
      assert.equal(judgeVerdict(findings, 'test-mail').verdict, verdict(d.status), d.name);
    }
  });

  test('it is realistic: shared provider hosts, DMARC for a share, DNSSEC mostly insecure', () => {
    const w = loadWorld(worldPath('msc-2021.json'));
    const sharedUse = w.domains.filter((d) => Array.isArray(d.mx) && d.mx.some((id) => !id.includes('#'))).length;
    assert.ok(sharedUse >= 50, `${sharedUse} domains on shared hosts`);
    const dmarc = w.domains.filter((d) => d.dmarc !== null).length;
    assert.ok(dmarc > 20 && dmarc < 101, `${dmarc} DMARC records`);
    assert.ok(w.domains.filter((d) => d.dnssec === 'secure').length < 30);
  });
});

describe('small worlds', () => {
  test('tiny.json is the example of LAB-WORLD.md and loads', () => {
    const w = loadWorld(worldPath('tiny.json'));
    assert.deepEqual(w.domains.map((d) => d.name), ['alpha.test', 'open.test', 'broken-1.test', 'broken-2.test', 'broken-3.test']);
    assert.equal(w.hosts.get('bigmail')!.name, 'mx.bigmail.test');
  });

  test('test-smtp.json has one host per SMTP behaviour, certificate kind and relay code', () => {
    const w = loadWorld(worldPath('test-smtp.json'));
    const hosts = [...w.hosts.values()];
    for (const b of ['normal', 'refuse', 'silent', 'tempfail', 'greylist', 'slow']) {
      assert.ok(hosts.some((h) => h.smtp.behavior === b), b);
    }
    for (const c of ['valid', 'self-signed', 'expired', 'wrong-name']) assert.ok(hosts.some((h) => h.smtp.tls.cert === c), c);
    for (const code of [550, 554, 530]) assert.ok(hosts.some((h) => h.smtp.relayDenyCode === code), String(code));
    assert.ok(hosts.some((h) => h.smtp.tls.minVersion === 'TLSv1.3'));
    assert.ok(hosts.some((h) => h.smtp.openRelay));
    assert.ok(hosts.some((h) => !h.smtp.starttls));
    const senders = w.domains.filter((d) => d.sender !== null);
    assert.ok(senders.some((d) => !d.sender!.starttls));
    assert.ok(senders.some((d) => d.sender!.dkimSign !== null && d.dkim?.selectors.includes(d.sender!.dkimSign)));
    assert.ok(senders.some((d) => d.sender!.dkimSign !== null && !d.dkim?.selectors.includes(d.sender!.dkimSign)));
    assert.ok(senders.some((d) => d.sender!.dkimSign === null));
    assert.ok(senders.some((d) => w.hosts.get(d.sender!.hostId)!.ptr === null));
    assert.ok(senders.some((d) => w.hosts.get(d.sender!.hostId)!.ptrMismatch));
    assert.ok(senders.some((d) => w.hosts.get(d.sender!.hostId)!.dnsbl === true));
  });
});

describe('lab/generate.ts', () => {
  const base = { domains: 2000, sharedMxShare: 0.4, providers: 5, dnsLatencyMs: 3, smtpRttMs: 7, seed: 42 };

  test('a generated world is valid and has the requested size and latencies', () => {
    const w = loadWorld(generateWorld(base));
    assert.equal(w.domains.length, 2000);
    assert.deepEqual(w.latency, { dnsMs: 3, smtpRttMs: 7 });
    assert.ok(w.domains.every((d) => d.sender !== null));
  });

  test('the same seed gives the same world; another seed another one', () => {
    assert.deepEqual(generateWorld(base), generateWorld(base));
    assert.notDeepEqual(generateWorld(base), generateWorld({ ...base, seed: 43 }));
  });

  test('about sharedMxShare of the domains use provider hosts, the first provider the most (Zipf)', () => {
    const w = loadWorld(generateWorld({ ...base, domains: 10000 }));
    const perProvider = new Map<string, number>();
    let shared = 0;
    for (const d of w.domains) {
      const first = Array.isArray(d.mx) ? d.mx[0] : undefined;
      if (first === undefined || first.includes('#')) continue;
      shared++;
      const p = first.split('-')[0]!;
      perProvider.set(p, (perProvider.get(p) ?? 0) + 1);
    }
    assert.ok(Math.abs(shared / 10000 - 0.4) < 0.03, `shared share ${shared / 10000}`);
    const sizes = [1, 2, 3, 4, 5].map((k) => perProvider.get(`prov${k}`) ?? 0);
    assert.ok(sizes[0]! > sizes[1]! && sizes[1]! > sizes[4]!, `provider sizes ${sizes}`);
    assert.ok(sizes[0]! / shared > 0.35, 'the largest provider serves a large share');
  });

  test('it mixes the attributes the checker judges', () => {
    const w = loadWorld(generateWorld({ ...base, domains: 10000 }));
    const hosts = [...w.hosts.values()];
    const share = (n: number) => n / w.domains.length;
    assert.ok(share(w.domains.filter((d) => d.spf === null).length) > 0.05);
    assert.ok(share(w.domains.filter((d) => d.dmarc !== null).length) > 0.2);
    assert.ok(w.domains.some((d) => d.dnssec === 'secure') && w.domains.some((d) => d.dnssec === 'bogus'));
    assert.ok(w.domains.some((d) => d.sender!.dkimSign !== null) && w.domains.some((d) => !d.sender!.starttls));
    for (const c of ['valid', 'self-signed', 'expired', 'wrong-name'] as const) assert.ok(hosts.some((h) => h.smtp.tls.cert === c), c);
    assert.ok(hosts.some((h) => !h.smtp.starttls) && hosts.some((h) => h.dnsbl === true));
    assert.ok(hosts.some((h) => h.ptr === null) && hosts.some((h) => h.ptrMismatch));
    assert.ok(hosts.some((h) => h.smtp.openRelay));
  });

  test('a 50,000-domain world is generated in well under a second and stays compact', () => {
    const t0 = performance.now();
    const world = generateWorld({ ...base, domains: 50000 }) as { populations: unknown[] };
    const ms = performance.now() - t0;
    assert.ok(ms < 800, `took ${ms} ms`);
    assert.ok(world.populations.length < 1000, `${world.populations.length} populations`);
    assert.ok(JSON.stringify(world).length < 500_000);
  });

  test('bad options are rejected with a message naming the option', () => {
    assert.throws(() => generateWorld({ ...base, sharedMxShare: 1.5 }), /sharedMxShare must be a number in 0\.\.1, got 1\.5/);
    assert.throws(() => generateWorld({ ...base, domains: -1 }), /domains must be an integer/);
    assert.throws(() => generateWorld({ ...base, providers: 0 }), /providers must be an integer in 1\.\./);
  });
});
