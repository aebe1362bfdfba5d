// The internet-like benchmark world (`mailcensus lab generate --profile internet`, issue 18): the same mix of
// SPF, DKIM, DMARC, DNSSEC, certificates, relay refusals, DNSBL listings and DNS faults as the uniform world
// (lab/generate.ts), plus what the internet has and the uniform world lacks:
//
// - long-tailed latency: every host draws its own SMTP round-trip time and the DNS delay of its own names, and
//   every domain the DNS delay of its zone, from a log-normal distribution (median 40 ms, σ 1.0) clamped to
//   2..300 ms: p10 ≈ 11 ms, p90 ≈ 144 ms, ~1.5% at the 300 ms cap;
// - slow and hostile greeters among self-hosted MX: Postfix postscreen (greets after 6 s), tarpits that greet
//   after 30 s and tarpits that never greet (`silent`: they hold the connection until the client leaves), and
//   greylisting (450 on RCPT);
// - provider concentration: 75% of domains on 60 providers with Zipf weights (s = 1.1: the first provider has
//   ~19% of all domains, the first five ~40%), the rest a long tail of self-hosted MX;
// - several A records per provider MX name: every address is a host of its own with the same name, so each
//   listens, presents a certificate for that name and has a PTR naming it (forward-confirmed).
//
// The behaviours are shares of the self-hosted domains assigned by quota (round(share × count)), not drawn,
// so a small world has them in the stated proportion. The world is version 2 and uses the per-host and
// per-domain `latency` extension fields (docs/lab.md); the same seed gives the same world.
import {
  check,
  commonAttributes,
  ownMxHost,
  pick,
  prng,
  providerIp,
  providerSender,
  providerSmtp,
  spreadPopulations,
  type Json,
  type OwnBehavior,
  type Population,
  type Provider,
} from './generate.ts';

export interface InternetOptions {
  /** Number of domains. */
  domains: number;
  /** Same seed, same world. @defaultValue 1 */
  seed: number;
  /** Number of providers. @defaultValue 60 */
  providers: number;
  /** Share (0..1) of domains on a provider's MX. @defaultValue 0.75 */
  sharedMxShare: number;
  /** Zipf exponent of the providers' shares (weight of rank k: 1/k^s). @defaultValue 1.1 */
  zipfExponent: number;
  /** Addresses (A records) per MX name of the large providers (the first fifth); the others have 2. @defaultValue 4 */
  mxAddresses: number;
  /** Median of the log-normal latency (ms), for DNS and SMTP alike. @defaultValue 40 */
  latencyMedianMs: number;
  /** σ of the log-normal latency (of ln ms). @defaultValue 1.0 */
  latencySigma: number;
  /** Latencies are clamped to minMs..maxMs. @defaultValue 2 and 300 */
  latencyMinMs: number;
  latencyMaxMs: number;
  /** Shares (0..1) of self-hosted domains whose MX greets after postscreenDelayMs. @defaultValue 0.06, 6000 ms */
  postscreenShare: number;
  postscreenDelayMs: number;
  /** Share whose MX is a tarpit greeting after tarpitDelayMs. @defaultValue 0.005, 30000 ms */
  tarpitShare: number;
  tarpitDelayMs: number;
  /** Share whose MX is a tarpit that never greets (`silent`). @defaultValue 0.005 */
  silentShare: number;
  /** Share whose MX greylists (450 on RCPT). @defaultValue 0.03 */
  greylistShare: number;
  /** Share whose MX greets 421. @defaultValue 0.003 */
  tempfailShare: number;
}

export const INTERNET_DEFAULTS: Omit<InternetOptions, 'domains'> = {
  seed: 1,
  providers: 60,
  sharedMxShare: 0.75,
  zipfExponent: 1.1,
  mxAddresses: 4,
  latencyMedianMs: 40,
  latencySigma: 1.0,
  latencyMinMs: 2,
  latencyMaxMs: 300,
  postscreenShare: 0.06,
  postscreenDelayMs: 6000,
  tarpitShare: 0.005,
  tarpitDelayMs: 30_000,
  silentShare: 0.005,
  greylistShare: 0.03,
  tempfailShare: 0.003,
};

/** Provider addresses live in 127.98.0.0-127.99.255.255 (254 usable per /24). */
const PROVIDER_ADDRESSES = 2 * 256 * 254;
const MAX_DOMAINS = 5_000_000;
/** Templates per group: the world stays a few thousand populations whatever its size (see lab/generate.ts). */
const OWN_TEMPLATES = 2000;
const PROVIDER_TEMPLATES = 48;

/** A world (plain JSON object, LAB-WORLD.md version 2 with the latency extension); see the header. */
export function generateInternetWorld(input: Partial<InternetOptions> & { domains: number }): object {
  const o: InternetOptions = { ...INTERNET_DEFAULTS, ...input };
  check('domains', o.domains, 0, MAX_DOMAINS, true);
  check('seed', o.seed, -(2 ** 31), 2 ** 32 - 1, true);
  check('sharedMxShare', o.sharedMxShare, 0, 1, false);
  check('providers', o.providers, o.sharedMxShare > 0 ? 1 : 0, 20_000, true);
  check('zipfExponent', o.zipfExponent, 0, 4, false);
  check('mxAddresses', o.mxAddresses, 1, 16, true);
  check('latencyMinMs', o.latencyMinMs, 0, 60_000, true);
  check('latencyMaxMs', o.latencyMaxMs, o.latencyMinMs, 60_000, true);
  check('latencyMedianMs', o.latencyMedianMs, Math.max(1, o.latencyMinMs), o.latencyMaxMs, true);
  check('latencySigma', o.latencySigma, 0, 4, false);
  for (const k of ['postscreenDelayMs', 'tarpitDelayMs'] as const) check(k, o[k], 1, 600_000, true);
  const shares = ['postscreenShare', 'tarpitShare', 'silentShare', 'greylistShare', 'tempfailShare'] as const;
  for (const k of shares) check(k, o[k], 0, 1, false);
  const shareSum = shares.reduce((s, k) => s + o[k], 0);
  if (shareSum > 1) check('the sum of the behaviour shares', shareSum, 0, 1, false);
  const rnd = prng(o.seed);

  // Log-normal latency (Box-Muller), clamped and rounded: long-tailed and deterministic from the seed.
  const latency = (): number => {
    const u = 1 - rnd();
    const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rnd());
    const ms = Math.round(o.latencyMedianMs * Math.exp(o.latencySigma * z));
    return Math.min(o.latencyMaxMs, Math.max(o.latencyMinMs, ms));
  };
  const hostLatency = (): Json => ({ dnsMs: latency(), smtpRttMs: latency() });

  const hosts: Record<string, Json> = {};
  interface Provider { id: string; mx: string[]; out: string; outIp: string }
  const providers: Provider[] = [];
  const bigCount = Math.max(1, Math.ceil(o.providers / 5));
  const addressesNeeded = Array.from({ length: o.providers }, (_, k) => (k < bigCount ? 2 * o.mxAddresses + 1 : Math.min(2, o.mxAddresses)))
    .reduce((a, b) => a + b, 0);
  if (addressesNeeded > PROVIDER_ADDRESSES) {
    check(`provider addresses (providers × addresses per MX)`, addressesNeeded, 0, PROVIDER_ADDRESSES, true);
  }
  let ipIndex = 0;
  for (let k = 0; k < o.providers; k++) {
    const id = `prov${k + 1}`;
    const big = k < bigCount;
    const smtp = providerSmtp(rnd, big);
    const mx: string[] = [];
    const perName = big ? o.mxAddresses : Math.min(2, o.mxAddresses);
    for (let j = 1; j <= (big ? 2 : 1); j++) {
      const name = `mx${j}.${id}.test`;
      // One latency per MX name (a provider's addresses sit in the same place); every address listens.
      const lat = hostLatency();
      for (let a = 1; a <= perName; a++) {
        const hid = a === 1 ? `${id}-mx${j}` : `${id}-mx${j}-a${a}`;
        hosts[hid] = { ip: providerIp(ipIndex++), name, smtp, latency: lat };
        if (a === 1) mx.push(hid);
      }
    }
    providers.push(providerSender(rnd, hosts, { id, mx, big }, () => providerIp(ipIndex++)));
  }
  const zipf = providers.map((_, k) => [k, 1 / Math.pow(k + 1, o.zipfExponent)] as const);

  const withDnsLatency = (t: Json): Json => ({ ...t, latency: { dnsMs: latency() } });
  const ownTemplate = (b: OwnBehavior) => (): Json => {
    const mx = rnd() < 0.15 ? [ownMxHost(rnd, b), ownMxHost(rnd, b)] : [ownMxHost(rnd, b)];
    for (const h of mx) h.latency = hostLatency();
    const separateSender = rnd() < 0.05;
    const t = commonAttributes(rnd, separateSender ? 'v=spf1 mx ~all' : 'v=spf1 mx -all');
    t.mx = mx;
    if (separateSender) (t.sender as Json).host = { latency: hostLatency() };
    return withDnsLatency(t);
  };
  const providerTemplate = (p: Provider) => (): Json => {
    const t = commonAttributes(rnd, `v=spf1 ip4:${p.outIp} ~all`);
    t.mx = p.mx;
    (t.sender as Json).host = p.out;
    return withDnsLatency(t);
  };

  const perProvider = new Array<number>(providers.length).fill(0);
  let own = 0;
  for (let i = 0; i < o.domains; i++) {
    if (providers.length > 0 && rnd() < o.sharedMxShare) perProvider[pick(rnd, zipf)]!++;
    else own++;
  }
  // Quotas of the self-hosted domains per behaviour; the rest are normal.
  const kinds: Array<[string, number, OwnBehavior]> = [
    ['postscreen', o.postscreenShare, { behavior: 'slow', bannerDelayMs: o.postscreenDelayMs }],
    ['tarpit', o.tarpitShare, { behavior: 'slow', bannerDelayMs: o.tarpitDelayMs }],
    ['silent', o.silentShare, { behavior: 'silent' }],
    ['greylist', o.greylistShare, { behavior: 'greylist' }],
    ['tempfail', o.tempfailShare, { behavior: 'tempfail' }],
  ];
  const quotas = kinds.map(([name, share, b]) => ({ name, b, n: Math.round(share * own) }));
  const special = quotas.reduce((s, q) => s + q.n, 0);

  const populations: Population[] = [];
  const spread = (prefix: string, n: number, maxTemplates: number, make: () => Json) => spreadPopulations(populations, rnd, prefix, n, maxTemplates, make);
  providers.forEach((p, k) => spread(p.id, perProvider[k]!, PROVIDER_TEMPLATES, providerTemplate(p)));
  spread('own', own - special, OWN_TEMPLATES, ownTemplate({ behavior: 'normal' }));
  for (const q of quotas) spread(`own-${q.name}`, q.n, OWN_TEMPLATES, ownTemplate(q.b));

  return {
    version: 2,
    name: `internet-${o.domains}-s${o.seed}`,
    description:
      `Internet-like benchmark world: ${o.domains} domains, ${Math.round(o.sharedMxShare * 100)}% on ${o.providers} ` +
      `provider(s) (Zipf s=${o.zipfExponent}), log-normal latency median ${o.latencyMedianMs} ms (${o.latencyMinMs}..${o.latencyMaxMs} ms), ` +
      `seed ${o.seed} (lab/generate-internet.ts).`,
    latency: { dnsMs: o.latencyMedianMs, smtpRttMs: o.latencyMedianMs },
    hosts,
    domains: [],
    populations,
  };
}
