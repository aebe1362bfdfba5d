// Benchmark worlds: N domains with realistic MX sharing (a few providers' hosts serve a large share, as a
// handful of hosting companies and cloud suites do in the wild) and a realistic mix of SPF, DKIM, DMARC,
// DNSSEC, STARTTLS, certificate kinds, relay refusals, DNSBL listings and faults. A seeded PRNG draws a
// bounded set of domain templates per provider and for own servers, and spreads the domains over them as
// populations: a 50,000-domain world is a few hundred population lines, generated in milliseconds, and the
// same seed gives the same world.
//
// Own-server domains bring their own MX hosts (about 1.2 listening hosts per domain); one process can listen on
// about `ulimit -n` - 1500 addresses, so `lab up` spreads a larger world's hosts over SMTP shard processes
// (lab/smtp-shard.ts).
//
// The shares below are rough 2021-era figures for small and medium organisations (MSchecker's public, Japan),
// not measurements: they make benchmark worlds exercise every code path in plausible proportions.
import { InputError } from '../lib/errors.ts';

export interface GenerateOptions {
  /** Number of domains. */
  domains: number;
  /** Share (0..1) of domains whose MX is a provider's shared host. @defaultValue 0.4 in the CLI */
  sharedMxShare: number;
  /** Number of providers (each has one or two MX hosts and an outbound host). @defaultValue 5 in the CLI */
  providers: number;
  dnsLatencyMs: number;
  smtpRttMs: number;
  /** Same seed, same world. */
  seed: number;
}

/** Upper bound on providers: their hosts live in 127.98.0.0-127.99.255.255 (three addresses each). */
const MAX_PROVIDERS = 40_000;
const MAX_DOMAINS = 5_000_000;

/** mulberry32: a small, fast, well-distributed 32-bit PRNG; deterministic from the seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Picks a value by weight. */
export function pick<T>(rnd: () => number, table: ReadonlyArray<readonly [T, number]>): T {
  let total = 0;
  for (const [, w] of table) total += w;
  let x = rnd() * total;
  for (const [v, w] of table) {
    x -= w;
    if (x < 0) return v;
  }
  return table[table.length - 1]![0];
}

/** The k-th provider address (k from 0), skipping .0 and .255 as last octet. */
export function providerIp(k: number): string {
  const n = Math.floor(k / 254) * 256 + (k % 254) + 1;
  const base = 98 * 65536 + n;
  return `127.${base >>> 16}.${(base >>> 8) & 255}.${base & 255}`;
}

export type Json = Record<string, unknown>;

export interface Provider {
  id: string;
  mx: string[];
  /** The host the provider's customers send from. */
  out: string;
  /** The provider's outbound IP, for its customers' SPF records. */
  outIp: string;
}

export function check(name: string, value: number, min: number, max: number, integer: boolean): void {
  if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    throw new InputError(`generateWorld: ${name} must be ${integer ? 'an integer' : 'a number'} in ${min}..${max}, got ${value}`);
  }
}

// Attributes shared by both kinds of domains (SPF, DKIM, DMARC, DNSSEC, DNS faults, the sender).
export function commonAttributes(rnd: () => number, spfPass: string): Json {
  const t: Json = {};
  const spf = pick(rnd, [['pass', 70], ['softfail', 8], ['fail', 4], ['none', 16], ['two', 2]] as const);
  if (spf === 'pass') t.spf = spfPass;
  else if (spf === 'softfail') t.spf = 'v=spf1 ip4:192.0.2.0/24 ~all';
  else if (spf === 'fail') t.spf = 'v=spf1 ip4:198.51.100.25 -all';
  else if (spf === 'two') {
    // RFC 7208 §4.5: two SPF records are a permerror.
    t.spf = spfPass;
    t.extraTxt = ['v=spf1 -all'];
  }
  const dkim = pick(rnd, [['signed', 50], ['unsigned', 35], ['unpublished', 5], ['published-unsigned', 10]] as const);
  const selector = pick(rnd, [['s1', 4], ['default', 3], ['selector1', 2], ['google', 1]] as const);
  const sender: Json = {};
  if (dkim === 'signed' || dkim === 'unpublished' || dkim === 'published-unsigned') t.dkim = { selectors: [selector] };
  if (dkim === 'signed') sender.dkimSign = selector;
  if (dkim === 'unpublished') sender.dkimSign = `${selector}-old`;
  const dmarc = pick(rnd, [['none', 22], ['quarantine', 8], ['reject', 6], ['absent', 64]] as const);
  if (dmarc !== 'absent') t.dmarc = `v=DMARC1; p=${dmarc}`;
  const dnssec = pick(rnd, [['insecure', 90], ['secure', 9], ['bogus', 1]] as const);
  if (dnssec !== 'insecure') t.dnssec = dnssec;
  const fault = pick(rnd, [[null, 994], ['servfail', 3], ['timeout', 2], ['refused', 1]] as const);
  if (fault !== null) t.dnsFault = fault;
  if (rnd() < 0.1) sender.starttls = false;
  t.sender = sender;
  return t;
}

/** The SMTP behaviour of a provider's MX hosts (both generators draw it alike, in this order). */
export function providerSmtp(rnd: () => number, big: boolean): Json {
  const smtp: Json = {};
  // Large providers run TLS with valid certificates; small hosting companies are more varied.
  if (!big) {
    const tlsKind = pick(rnd, [['valid', 70], ['wrong-name', 15], ['none', 10], ['self-signed', 5]] as const);
    if (tlsKind === 'none') smtp.starttls = false;
    else if (tlsKind !== 'valid') smtp.tls = { cert: tlsKind };
  }
  smtp.relayDenyCode = pick(rnd, [[554, 60], [550, 35], [530, 5]] as const);
  return smtp;
}

/**
 * The provider with the host its customers send from. Big providers send from an outbound-only host
 * (connection refused on port 25), added to `hosts` at `nextIp()`; small ones from their first MX, which is
 * sometimes on a DNSBL (a small shared host someone abused).
 */
export function providerSender(rnd: () => number, hosts: Record<string, Json>, p: { id: string; mx: string[]; big: boolean }, nextIp: () => string): Provider {
  const { id, mx } = p;
  let out = mx[0]!;
  let outIp = hosts[out]!.ip as string;
  if (p.big) {
    out = `${id}-out`;
    outIp = nextIp();
    hosts[out] = { ip: outIp, name: `out.${id}.test`, smtp: { behavior: 'refuse' } };
  } else if (rnd() < 0.1) {
    hosts[out] = { ...hosts[out]!, dnsbl: true };
  }
  return { id, mx, out, outIp };
}

/** A behaviour the internet profile assigns to an own MX host. */
export interface OwnBehavior {
  behavior: 'normal' | 'greylist' | 'tempfail' | 'silent' | 'slow';
  bannerDelayMs?: number;
}

// The MX host of an own server.
export function ownMxHost(rnd: () => number, forced?: OwnBehavior): Json {
  const h: Json = {};
  const smtp: Json = {};
  if (forced !== undefined) {
    // The internet profile decides the behaviour by quota (lab/generate-internet.ts), not by a draw.
    if (forced.behavior !== 'normal') smtp.behavior = forced.behavior;
    if (forced.bannerDelayMs !== undefined) smtp.bannerDelayMs = forced.bannerDelayMs;
  } else {
    const behavior = pick(rnd, [['normal', 985], ['greylist', 8], ['tempfail', 3], ['silent', 2], ['slow', 2]] as const);
    if (behavior !== 'normal') smtp.behavior = behavior;
    if (behavior === 'slow') smtp.bannerDelayMs = 3000;
  }
  if (rnd() < 0.18) smtp.starttls = false;
  else {
    const cert = pick(rnd, [['valid', 70], ['self-signed', 14], ['expired', 8], ['wrong-name', 8]] as const);
    const minVersion = pick(rnd, [['TLSv1.2', 92], ['TLSv1', 6], ['TLSv1.3', 2]] as const);
    const tls: Json = {};
    if (cert !== 'valid') tls.cert = cert;
    if (minVersion !== 'TLSv1.2') tls.minVersion = minVersion;
    if (Object.keys(tls).length > 0) smtp.tls = tls;
  }
  if (rnd() < 0.004) smtp.openRelay = true;
  else {
    const deny = pick(rnd, [[554, 55], [550, 40], [530, 5]] as const);
    if (deny !== 550) smtp.relayDenyCode = deny;
  }
  if (Object.keys(smtp).length > 0) h.smtp = smtp;
  const ptr = pick(rnd, [['ok', 93], ['none', 4], ['mismatch', 3]] as const);
  if (ptr === 'none') h.ptr = null;
  if (ptr === 'mismatch') h.ptrMismatch = true;
  if (rnd() < 0.02) h.dnsbl = true;
  return h;
}

/** A world (plain JSON object, LAB-WORLD.md version 1) for benchmarks; see the header. */
export interface Population {
  count: number;
  name: string;
  template: Json;
}

/**
 * Spreads `n` domains over at most `maxTemplates` templates drawn with `make`, each domain on a random one, and
 * appends the non-empty populations `<prefix>-<j>-{i}.test`: a world stays a few hundred populations whatever
 * its size, while every attribute keeps roughly its share.
 */
export function spreadPopulations(into: Population[], rnd: () => number, prefix: string, n: number, maxTemplates: number, make: () => Json): void {
  const k = Math.min(n, maxTemplates);
  if (k === 0) return;
  const templates = Array.from({ length: k }, make);
  const counts = new Array<number>(k).fill(0);
  for (let i = 0; i < n; i++) counts[Math.floor(rnd() * k)]!++;
  templates.forEach((template, j) => {
    if (counts[j]! > 0) into.push({ count: counts[j]!, name: `${prefix}-${j + 1}-{i}.test`, template });
  });
}

export function generateWorld(opts: GenerateOptions): object {
  check('domains', opts.domains, 0, MAX_DOMAINS, true);
  check('sharedMxShare', opts.sharedMxShare, 0, 1, false);
  check('providers', opts.providers, opts.sharedMxShare > 0 ? 1 : 0, MAX_PROVIDERS, true);
  check('dnsLatencyMs', opts.dnsLatencyMs, 0, 60_000, true);
  check('smtpRttMs', opts.smtpRttMs, 0, 60_000, true);
  check('seed', opts.seed, -(2 ** 31), 2 ** 32 - 1, true);
  const rnd = prng(opts.seed);

  // Providers: Zipf-weighted (s = 1), so with 5 providers the first serves ~44% of shared domains.
  const hosts: Record<string, Json> = {};
  const providers: Provider[] = [];
  let ipIndex = 0;
  for (let k = 0; k < opts.providers; k++) {
    const id = `prov${k + 1}`;
    const big = k < Math.max(1, Math.ceil(opts.providers / 5));
    const mxCount = big ? 2 : 1;
    const mx: string[] = [];
    const smtp = providerSmtp(rnd, big);
    for (let j = 1; j <= mxCount; j++) {
      const hid = `${id}-mx${j}`;
      hosts[hid] = { ip: providerIp(ipIndex++), name: `mx${j}.${id}.test`, smtp };
      mx.push(hid);
    }
    providers.push(providerSender(rnd, hosts, { id, mx, big }, () => providerIp(ipIndex++)));
  }
  const zipf = providers.map((_, k) => [k, 1 / (k + 1)] as const);

  const common = (spfPass: string): Json => commonAttributes(rnd, spfPass);
  const mxHost = (): Json => ownMxHost(rnd);
  // An own server: one or two MX hosts, sending from the first (or, sometimes, from a separate host).
  const ownTemplate = (): Json => {
    const mx = rnd() < 0.15 ? [mxHost(), mxHost()] : [mxHost()];
    // A separate outbound host is not in `mx`: its SPF (the same record) softfails, a common misconfiguration.
    const separateSender = rnd() < 0.05;
    const t = common(separateSender ? 'v=spf1 mx ~all' : 'v=spf1 mx -all');
    t.mx = mx;
    if (separateSender) (t.sender as Json).host = {};
    return t;
  };
  const providerTemplate = (p: Provider) => (): Json => {
    const t = common(`v=spf1 ip4:${p.outIp} ~all`);
    t.mx = p.mx;
    (t.sender as Json).host = p.out;
    return t;
  };

  // Who is where: a draw per domain, then the counts.
  const perProvider = new Array<number>(providers.length).fill(0);
  let own = 0;
  for (let i = 0; i < opts.domains; i++) {
    if (providers.length > 0 && rnd() < opts.sharedMxShare) perProvider[pick(rnd, zipf)]!++;
    else own++;
  }

  // Each group of domains gets a bounded number of templates drawn from the distributions above.
  const populations: Population[] = [];
  const spread = (prefix: string, n: number, maxTemplates: number, make: () => Json) => spreadPopulations(populations, rnd, prefix, n, maxTemplates, make);
  providers.forEach((p, k) => spread(p.id, perProvider[k]!, 48, providerTemplate(p)));
  spread('own', own, 240, ownTemplate);

  return {
    version: 1,
    name: `generated-${opts.domains}-s${opts.seed}`,
    description:
      `Benchmark world: ${opts.domains} domains, ${Math.round(opts.sharedMxShare * 100)}% on ${opts.providers} ` +
      `provider(s), seed ${opts.seed} (lab/generate.ts).`,
    latency: { dnsMs: opts.dnsLatencyMs, smtpRttMs: opts.smtpRttMs },
    hosts,
    domains: [],
    populations,
  };
}
