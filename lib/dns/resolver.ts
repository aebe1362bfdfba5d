// A small DNSSEC-aware stub resolver on dns-packet. Node's `dns` module hides the AD bit and Extended DNS
// Errors and folds timeouts into SERVFAIL-like codes, so the checks could not tell "secure" from "insecure"
// nor "absent" from "could not ask". Every reply is mapped to one DnsOutcome here, once (STYLE.md §4):
// answer / nodata / nxdomain are facts; the rest are unknowns with a reason.
import dgram from 'node:dgram';
import net from 'node:net';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as dnsPacket from 'dns-packet';
import { normalizeQueryName } from './names.ts';
import { tokenBucket, type RateLimiter } from './rate-limit.ts';
import { config, ConfigError, type Config } from '../config.ts';

export type DnsOutcome = 'answer' | 'nodata' | 'nxdomain' | 'servfail' | 'refused' | 'timeout' | 'malformed' | 'error';
export type QueryType = 'A' | 'AAAA' | 'MX' | 'TXT' | 'PTR' | 'SOA' | 'CNAME' | 'NS' | 'TLSA';

/** Facts about the name; everything else means we could not find out. */
export const FACT_OUTCOMES: readonly DnsOutcome[] = ['answer', 'nodata', 'nxdomain'];
export function isFact(outcome: DnsOutcome): boolean {
  return FACT_OUTCOMES.includes(outcome);
}
/** NXDOMAIN and NODATA: the name or the record type does not exist (RFC 2308). */
export function isAbsent(outcome: DnsOutcome): boolean {
  return outcome === 'nodata' || outcome === 'nxdomain';
}

export interface MxData { preference: number; exchange: string }
export interface SoaData { mname: string; rname: string; serial: number; refresh: number; retry: number; expire: number; minimum: number }
/** Plain JSON, so observations can be stored and re-judged. TXT: the character-strings of one record. */
export type AnswerData = string | string[] | MxData | SoaData;

export interface Answer {
  name: string;
  type: string;
  ttl: number;
  data: AnswerData;
}

export interface ExtendedDnsError {
  code: number;
  text?: string;
}

export interface DnsResult {
  outcome: DnsOutcome;
  /** Why an unknown is unknown (`cname_loop`, `invalid_name`, `rcode_formerr`, …); absent for facts. */
  reason?: string;
  name: string;
  type: string;
  /** Records of the asked type, after following CNAMEs. */
  answers: Answer[];
  /** The AD bit: the validating resolver proved these records (RFC 4035 §3.2.3). */
  ad: boolean;
  rcode: string;
  /** RFC 8914 Extended DNS Errors. */
  ede: ExtendedDnsError[];
  /** Names the CNAME chain went through (not including `name`). */
  cnameChain: string[];
  /** Whether the query was sent with CD (checking disabled). */
  cd: boolean;
}

export interface QueryOptions {
  /** Set CD: ask the validating resolver for the records even when their signatures are bogus. */
  cd?: boolean;
}

export interface Resolver {
  query(name: string, type: QueryType, opts?: QueryOptions): Promise<DnsResult>;
  stats(): { queries: number; cacheHits: number };
}

export interface ResolverOptions {
  /** @defaultValue config().resolver, else the first nameserver of /etc/resolv.conf, else 127.0.0.1:53 */
  server?: { host: string; port: number };
  /** Per-attempt timeout. @defaultValue config().dnsTimeoutMs */
  timeoutMs?: number;
  /** Retries after a timeout. @defaultValue config().dnsRetries */
  retries?: number;
  /** Queries per second (ignored when `limiter` is given). @defaultValue config().dnsQps */
  qps?: number;
  /** Replaces the in-process token bucket (e.g. a Redis-based cap shared by all workers). */
  limiter?: RateLimiter;
  /** Cache answers for their TTL and coalesce identical in-flight queries. @defaultValue true */
  cache?: boolean;
  /** Answers kept at most (the least recently used goes first). @defaultValue 20,000 */
  cacheEntries?: number;
}

// RFC 9715 / DNS flag day 2020: 1232 octets avoids IP fragmentation on almost every path.
const EDNS_PAYLOAD = 1232;
const MAX_CNAME_HOPS = 8;
// RFC 9520 §3.2: cache resolution failures for at least 1 s, so a dead provider is not asked again per domain.
const FAILURE_TTL_S = 5;
// A survey's answers rarely repeat across domains except those of shared hosts (provider MX names, their
// PTR and DNSBL names), which recency keeps; the bound keeps a worker's memory flat over a long run
// (issue 18: 100,000 entries were ~100 MiB per worker, filled only after ~50,000 domains).
const DEFAULT_CACHE_ENTRIES = 20_000;
const MAX_TTL_S = 86_400;

/** The first `nameserver` line of resolv.conf, or null. */
export function systemResolver(path = '/etc/resolv.conf'): { host: string; port: number } | null {
  try {
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      const m = /^\s*nameserver\s+(\S+)/.exec(line);
      if (m && net.isIP(m[1].replace(/%.*$/, ''))) return { host: m[1].replace(/%.*$/, ''), port: 53 };
    }
  } catch {
    // No resolv.conf (containers): fall through to the default.
  }
  return null;
}

interface Exchange {
  outcome: DnsOutcome;
  reason?: string;
  packet?: dnsPacket.DecodedPacket;
}

function dataOf(a: dnsPacket.Answer): AnswerData {
  const d = (a as { data?: unknown }).data;
  switch (a.type) {
    case 'A':
    case 'AAAA':
    case 'PTR':
    case 'CNAME':
    case 'NS':
      return String(d).toLowerCase().replace(/\.$/, '') || '.';
    case 'MX': {
      const mx = d as { preference: number; exchange: string };
      // dns-packet decodes the root name as "" or "."; RFC 7505 null MX needs it kept as ".".
      const ex = (mx.exchange ?? '').toLowerCase().replace(/\.$/, '');
      return { preference: mx.preference, exchange: ex === '' ? '.' : ex };
    }
    case 'TXT': {
      const chunks = Array.isArray(d) ? d : [d];
      return chunks.map((c) => (Buffer.isBuffer(c) ? c.toString('utf8') : String(c)));
    }
    case 'SOA': {
      const s = d as { mname: string; rname: string; serial: number; refresh: number; retry: number; expire: number; minimum: number };
      return { mname: s.mname, rname: s.rname, serial: s.serial, refresh: s.refresh, retry: s.retry, expire: s.expire, minimum: s.minimum };
    }
    case 'TLSA': {
      // RFC 6698 §2.2 presentation format, association data in lower-case hex: "3 1 1 ab12…".
      const t = d as { usage: number; selector: number; matchingType: number; certificate: Buffer };
      return `${t.usage} ${t.selector} ${t.matchingType} ${Buffer.from(t.certificate ?? []).toString('hex')}`;
    }
    default:
      return Buffer.isBuffer(d) ? d.toString('hex') : JSON.stringify(d ?? null);
  }
}

/** RFC 8914 §2: option 15 carries a 16-bit INFO-CODE and optional UTF-8 EXTRA-TEXT. */
function extendedErrors(packet: dnsPacket.DecodedPacket): ExtendedDnsError[] {
  const out: ExtendedDnsError[] = [];
  for (const rr of packet.additionals ?? []) {
    if (rr.type !== 'OPT') continue;
    for (const opt of (rr as { options?: { code: number; data?: Buffer }[] }).options ?? []) {
      if (opt.code !== 15 || !opt.data || opt.data.length < 2) continue;
      const text = opt.data.subarray(2).toString('utf8').replace(/\0+$/, '');
      out.push(text ? { code: opt.data.readUInt16BE(0), text } : { code: opt.data.readUInt16BE(0) });
    }
  }
  return out;
}

function encodeQuery(id: number, name: string, type: QueryType, cd: boolean): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED | (cd ? dnsPacket.CHECKING_DISABLED : 0),
    questions: [{ type, name, class: 'IN' }],
    // RFC 6891 EDNS0 with the DO bit (RFC 3225), so a validating resolver reports AD.
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: EDNS_PAYLOAD, flags: dnsPacket.DNSSEC_OK } as dnsPacket.Answer],
  });
}

type Match = { kind: 'match'; packet: dnsPacket.DecodedPacket } | { kind: 'malformed' } | { kind: 'ignore' };

/**
 * Is this datagram the reply to our question? A reply for another id, name or type is ignored (an off-path
 * spoofer, or a late answer to an earlier attempt); bytes that do not decode but carry our id are malformed.
 */
function matchReply(buf: Buffer, id: number, name: string, type: QueryType): Match {
  let packet: dnsPacket.DecodedPacket;
  try {
    packet = dnsPacket.decode(buf);
  } catch {
    return buf.length >= 2 && buf.readUInt16BE(0) === id ? { kind: 'malformed' } : { kind: 'ignore' };
  }
  if (packet.id !== id || packet.type !== 'response') return { kind: 'ignore' };
  const q = packet.questions?.[0];
  if (!q) {
    // A FORMERR/SERVFAIL may legally omit the question; anything else must echo it.
    const rcode = (packet as { rcode?: string }).rcode;
    return rcode && rcode !== 'NOERROR' && rcode !== 'NXDOMAIN' ? { kind: 'match', packet } : { kind: 'ignore' };
  }
  if (q.name.toLowerCase().replace(/\.$/, '') !== name || q.type !== type) return { kind: 'ignore' };
  return { kind: 'match', packet };
}

/** The reason code of a socket error: the stage it failed in and its errno code (`connect_econnrefused`). */
function errnoReason(stage: 'socket' | 'connect' | 'send' | 'tcp', err: Error): string {
  return `${stage}_${(err as NodeJS.ErrnoException).code ?? 'error'}`.toLowerCase();
}

/**
 * How one exchange ends, whichever comes first: an answer, an error or its deadline. The first outcome wins,
 * clears the deadline and releases the socket. Silence (the deadline, a closed connection) after a reply we
 * could not decode is reported as that reply (`undecodable_reply`), not as silence.
 */
function exchangeEnd(resolve: (ex: Exchange) => void, release: () => void, timeoutMs: number, timeoutReason: string) {
  const end = {
    done: false,
    sawMalformed: false,
    silence: (ex: Exchange): Exchange => (end.sawMalformed ? { outcome: 'malformed', reason: 'undecodable_reply' } : ex),
    finish(ex: Exchange): void {
      if (end.done) return;
      end.done = true;
      clearTimeout(timer);
      release();
      resolve(ex);
    },
  };
  const timer = setTimeout(() => end.finish(end.silence({ outcome: 'timeout', reason: timeoutReason })), timeoutMs);
  return end;
}

function udpExchange(server: { host: string; port: number }, name: string, type: QueryType, cd: boolean, timeoutMs: number): Promise<Exchange> {
  return new Promise((resolve) => {
    const id = randomInt(0, 65536);
    const socket = dgram.createSocket(net.isIPv6(server.host) ? 'udp6' : 'udp4');
    const end = exchangeEnd(resolve, () => socket.close(), timeoutMs, 'timeout');
    socket.on('error', (err) => end.finish({ outcome: 'error', reason: errnoReason('socket', err) }));
    let peer: { address: string; port: number } | null = null;
    socket.on('message', (msg, rinfo) => {
      // Only the address and port we asked may answer (RFC 5452 §9.1): the socket is connected, so the kernel
      // drops other sources already; the check here holds even where it does not.
      if (!peer || rinfo.port !== peer.port || canonicalAddress(rinfo.address) !== canonicalAddress(peer.address)) return;
      const m = matchReply(msg, id, name, type);
      if (m.kind === 'malformed') end.sawMalformed = true;
      if (m.kind === 'match') end.finish({ outcome: 'answer', packet: m.packet });
    });
    // Port 0: the kernel picks a random ephemeral source port per query (RFC 5452 §9.2).
    socket.bind(0, () => {
      if (end.done) return;
      socket.connect(server.port, server.host, (err?: Error) => {
        if (end.done) return;
        if (err) return end.finish({ outcome: 'error', reason: errnoReason('connect', err) });
        peer = socket.remoteAddress();
        socket.send(encodeQuery(id, name, type, cd), (e) => {
          if (e) end.finish({ outcome: 'error', reason: errnoReason('send', e) });
        });
      });
    });
  });
}

/** `::ffff:1.2.3.4` and `1.2.3.4` are one address. */
function canonicalAddress(a: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  return (m ? m[1] : a).toLowerCase();
}

function tcpExchange(server: { host: string; port: number }, name: string, type: QueryType, cd: boolean, timeoutMs: number): Promise<Exchange> {
  return new Promise((resolve) => {
    const id = randomInt(0, 65536);
    let buf = Buffer.alloc(0);
    const socket = net.connect({ host: server.host, port: server.port });
    const end = exchangeEnd(resolve, () => socket.destroy(), timeoutMs, 'timeout_tcp');
    socket.on('connect', () => {
      const q = encodeQuery(id, name, type, cd);
      const len = Buffer.alloc(2);
      len.writeUInt16BE(q.length);
      socket.write(Buffer.concat([len, q]));
    });
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      // RFC 1035 §4.2.2: each message is preceded by a two-octet length.
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        const m = matchReply(msg, id, name, type);
        if (m.kind === 'malformed') end.sawMalformed = true;
        if (m.kind === 'match') return end.finish({ outcome: 'answer', packet: m.packet });
      }
      if (buf.length > 70_000) end.finish({ outcome: 'malformed', reason: 'oversized_tcp_reply' });
    });
    socket.on('error', (err) => end.finish({ outcome: 'error', reason: errnoReason('tcp', err) }));
    socket.on('close', () => end.finish(end.silence({ outcome: 'error', reason: 'tcp_closed' })));
  });
}

interface Resolved {
  result: DnsResult;
  /** Seconds this result may be cached. */
  ttl: number;
}

const RCODE_OUTCOME: Record<string, DnsOutcome> = { SERVFAIL: 'servfail', REFUSED: 'refused' };

/** Maps one reply to a result: the only place rcodes and sections become outcomes. */
function interpret(packet: dnsPacket.DecodedPacket, name: string, type: QueryType, cd: boolean): Resolved & { pendingTarget?: string } {
  const rcode = (packet as { rcode?: string }).rcode ?? 'NOERROR';
  const ad = Boolean((packet as { flag_ad?: boolean }).flag_ad);
  const ede = extendedErrors(packet);
  const base = { name, type, ad, rcode, ede, cd, answers: [] as Answer[], cnameChain: [] as string[] };
  if (rcode !== 'NOERROR' && rcode !== 'NXDOMAIN') {
    const outcome = RCODE_OUTCOME[rcode] ?? 'error';
    return { result: { ...base, outcome, reason: outcome === 'error' ? `rcode_${rcode.toLowerCase()}` : outcome }, ttl: FAILURE_TTL_S };
  }
  if ((packet as { flag_tc?: boolean }).flag_tc) {
    return { result: { ...base, outcome: 'malformed', reason: 'truncated' }, ttl: 0 };
  }
  const records = (packet.answers ?? []).filter((a) => (a as { class?: string }).class === 'IN' || (a as { class?: string }).class === undefined);
  // Follow the CNAME chain inside the answer section (RFC 1034 §3.6.2), detecting loops.
  let target = name;
  const chain: string[] = [];
  const seen = new Set([name]);
  if (type !== 'CNAME') {
    for (let hop = 0; hop <= MAX_CNAME_HOPS; hop++) {
      const c = records.find((a) => a.type === 'CNAME' && a.name.toLowerCase().replace(/\.$/, '') === target);
      if (!c) break;
      const next = String(dataOf(c));
      if (seen.has(next)) return { result: { ...base, outcome: 'error', reason: 'cname_loop', cnameChain: [...chain, next] }, ttl: FAILURE_TTL_S };
      if (chain.length >= MAX_CNAME_HOPS) return { result: { ...base, outcome: 'error', reason: 'cname_chain_too_long', cnameChain: chain }, ttl: FAILURE_TTL_S };
      seen.add(next);
      chain.push(next);
      target = next;
    }
  }
  const answers: Answer[] = records
    .filter((a) => a.type === type && a.name.toLowerCase().replace(/\.$/, '') === target)
    .map((a) => ({ name: a.name.toLowerCase().replace(/\.$/, ''), type: a.type, ttl: (a as { ttl?: number }).ttl ?? 0, data: dataOf(a) }));
  const withChain = { ...base, cnameChain: chain };
  if (rcode === 'NXDOMAIN') return { result: { ...withChain, outcome: 'nxdomain' }, ttl: negativeTtl(packet) };
  if (answers.length > 0) {
    const ttl = Math.min(...records.filter((a) => a.type === type || a.type === 'CNAME').map((a) => (a as { ttl?: number }).ttl ?? 0));
    return { result: { ...withChain, outcome: 'answer', answers }, ttl };
  }
  // A CNAME whose target the server did not resolve: the caller asks for the target itself.
  if (chain.length > 0 && !(packet.authorities ?? []).some((a) => a.type === 'SOA')) {
    return { result: { ...withChain, outcome: 'nodata' }, ttl: 0, pendingTarget: target };
  }
  return { result: { ...withChain, outcome: 'nodata' }, ttl: negativeTtl(packet) };
}

/** RFC 2308 §5: a negative answer is cached for min(SOA TTL, SOA MINIMUM); without an SOA, not at all. */
function negativeTtl(packet: dnsPacket.DecodedPacket): number {
  const soa = (packet.authorities ?? []).find((a) => a.type === 'SOA') as { ttl?: number; data?: { minimum?: number } } | undefined;
  if (!soa) return 0;
  return Math.min(soa.ttl ?? 0, soa.data?.minimum ?? 0);
}

export function createResolver(opts: ResolverOptions = {}): Resolver {
  const needConfig = opts.server === undefined || opts.timeoutMs === undefined || opts.retries === undefined || (opts.qps === undefined && !opts.limiter);
  const cfg = needConfig ? loadConfigLazily() : null;
  // In lab mode the system resolver would send lab names to the real internet: refuse instead.
  if (!opts.server && cfg?.lab && !cfg.resolver) {
    throw new ConfigError('MAILCENSUS_LAB=1 but MAILCENSUS_RESOLVER is not set (use the env lines of `mailcensus lab up`)');
  }
  const server = opts.server ?? cfg?.resolver ?? systemResolver() ?? { host: '127.0.0.1', port: 53 };
  const timeoutMs = opts.timeoutMs ?? cfg?.dnsTimeoutMs ?? 2000;
  const retries = opts.retries ?? cfg?.dnsRetries ?? 2;
  const limiter = opts.limiter ?? tokenBucket(opts.qps ?? cfg?.dnsQps ?? 200);
  const useCache = opts.cache ?? true;
  const maxCacheEntries = Math.max(1, opts.cacheEntries ?? DEFAULT_CACHE_ENTRIES);

  // Least recently used first (a Map iterates in insertion order; a hit is moved to the end). Each entry keeps
  // the whole answer, the CNAME target the server left unresolved included, so a hit chases the same chain.
  const cache = new Map<string, { expires: number; resolved: Resolved & { pendingTarget?: string } }>();
  const inflight = new Map<string, Promise<Resolved & { pendingTarget?: string }>>();
  let queries = 0;
  let cacheHits = 0;

  /** One question to the server: UDP with retries on timeout, TCP when truncated (RFC 7766 §5). */
  async function ask(name: string, type: QueryType, cd: boolean): Promise<Resolved & { pendingTarget?: string }> {
    const fail = (outcome: DnsOutcome, reason: string): Resolved => ({
      result: { outcome, reason, name, type, answers: [], ad: false, rcode: '', ede: [], cnameChain: [], cd },
      ttl: FAILURE_TTL_S,
    });
    queries++;
    let last: Exchange = { outcome: 'timeout', reason: 'timeout' };
    for (let attempt = 0; attempt <= retries; attempt++) {
      await limiter.acquire();
      last = await udpExchange(server, name, type, cd, timeoutMs);
      if (last.packet && (last.packet as { flag_tc?: boolean }).flag_tc) {
        await limiter.acquire();
        last = await tcpExchange(server, name, type, cd, timeoutMs);
      }
      if (last.packet) return interpret(last.packet, name, type, cd);
      // Only a lost datagram is worth another try; a socket error will not heal.
      if (last.outcome !== 'timeout' && last.outcome !== 'malformed') break;
    }
    return fail(last.outcome, last.reason ?? last.outcome);
  }

  async function resolve(name: string, type: QueryType, cd: boolean): Promise<DnsResult> {
    let current = name;
    const chain: string[] = [];
    let resolved = await cachedAsk(current, type, cd);
    // Chase a CNAME the server left unresolved, bounded, with loop detection across queries.
    while (resolved.pendingTarget) {
      chain.push(...resolved.result.cnameChain);
      const next: string = resolved.pendingTarget;
      if (next === name || chain.slice(0, -1).includes(next)) {
        return { ...resolved.result, name, outcome: 'error', reason: 'cname_loop', cnameChain: chain };
      }
      if (chain.length >= MAX_CNAME_HOPS) {
        return { ...resolved.result, name, outcome: 'error', reason: 'cname_chain_too_long', cnameChain: chain };
      }
      current = next;
      resolved = await cachedAsk(current, type, cd);
    }
    if (chain.length === 0) return resolved.result;
    return { ...resolved.result, name, cnameChain: [...chain, ...resolved.result.cnameChain] };
  }

  async function cachedAsk(name: string, type: QueryType, cd: boolean): Promise<Resolved & { pendingTarget?: string }> {
    const key = `${name}|${type}|${cd ? 1 : 0}`;
    if (!useCache) return ask(name, type, cd);
    const hit = cache.get(key);
    if (hit && hit.expires > Date.now()) {
      cacheHits++;
      cache.delete(key);
      cache.set(key, hit);
      return { ...hit.resolved, ttl: 0 };
    }
    const running = inflight.get(key);
    if (running) {
      cacheHits++;
      return { ...(await running), ttl: 0 };
    }
    const p = ask(name, type, cd);
    inflight.set(key, p);
    try {
      const r = await p;
      const ttl = Math.min(r.ttl, MAX_TTL_S);
      if (ttl > 0) {
        cache.delete(key);
        if (cache.size >= maxCacheEntries) cache.delete(cache.keys().next().value as string);
        cache.set(key, { expires: Date.now() + ttl * 1000, resolved: r });
      }
      return r;
    } finally {
      inflight.delete(key);
    }
  }

  return {
    async query(rawName, type, qopts = {}) {
      const cd = Boolean(qopts.cd);
      const name = normalizeQueryName(rawName);
      if (!name) {
        return { outcome: 'error', reason: 'invalid_name', name: String(rawName), type, answers: [], ad: false, rcode: '', ede: [], cnameChain: [], cd };
      }
      return resolve(name, type, cd);
    },
    stats: () => ({ queries, cacheHits }),
  };
}

// Read only when the caller left a setting out, so tests need no environment.
function loadConfigLazily(): Readonly<Config> {
  return config();
}

/**
 * The resolver of one diagnosis, over a shared one: within it no question is sent twice, and nothing is asked
 * below a name already known not to exist. Checks ask the same names independently (an MX host's A by the MX
 * check and again by reverse DNS; `_dmarc` by two DMARC findings); the shared resolver's cache covers that only
 * while the TTL lasts, and not at all for a TTL of 0 or a negative answer without an SOA. Here every result,
 * a failure too, is reused for the rest of the diagnosis (RFC 1035 §3.2.1: a TTL of 0 still serves "the
 * transaction in progress"), so every check judges the same answer. RFC 8020 §2: an NXDOMAIN means the name
 * and every name below it do not exist, so a question at or below such a name is answered NXDOMAIN at once,
 * with that denial's AD bit (a validated denial covers the names below it too).
 */
export function diagnosisResolver(resolver: Resolver): Resolver {
  const memo = new Map<string, Promise<DnsResult>>();
  /** Names answered NXDOMAIN, per CD setting (a denial read with CD says nothing to a validating question). */
  const nonexistent = [new Map<string, boolean>(), new Map<string, boolean>()];
  let hits = 0;
  const deniedAncestor = (name: string, cd: boolean): { ad: boolean } | null => {
    const denied = nonexistent[cd ? 1 : 0];
    if (denied.size === 0) return null;
    for (let n = name; ; ) {
      const ad = denied.get(n);
      if (ad !== undefined) return { ad };
      const dot = n.indexOf('.');
      if (dot === -1) return null;
      n = n.slice(dot + 1);
    }
  };
  return {
    query(rawName, type, qopts = {}) {
      const cd = Boolean(qopts.cd);
      const name = normalizeQueryName(rawName);
      if (!name) return resolver.query(rawName, type, qopts);
      const key = `${name}|${type}|${cd ? 1 : 0}`;
      const known = memo.get(key);
      if (known) {
        hits++;
        return known;
      }
      const denied = deniedAncestor(name, cd);
      if (denied) {
        hits++;
        const r: DnsResult = { outcome: 'nxdomain', name, type, answers: [], ad: denied.ad, rcode: 'NXDOMAIN', ede: [], cnameChain: [], cd };
        memo.set(key, Promise.resolve(r));
        return Promise.resolve(r);
      }
      const p = resolver.query(name, type, qopts).then((r) => {
        // RFC 6604 §3: the RCODE is that of the last name of a CNAME chain, so that is the name denied.
        if (r.outcome === 'nxdomain') nonexistent[cd ? 1 : 0].set(r.cnameChain.at(-1) ?? name, r.ad);
        return r;
      });
      memo.set(key, p);
      return p;
    },
    stats: () => {
      const s = resolver.stats();
      return { queries: s.queries, cacheHits: s.cacheHits + hits };
    },
  };
}
