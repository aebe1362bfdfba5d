// The lab's DNS server: answers, over UDP and TCP on one port, as a recursive validating resolver would for
// every name of a lab world. Every record is built and indexed in Maps at start-up, so a 50,000-domain world
// answers each query with a few Map look-ups. Packets are encoded and decoded by dns-packet only.
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import type { Answer, EncodableOpt, Packet, Question } from 'dns-packet';
import { createHash, X509Certificate } from 'node:crypto';
import type { DnssecState, LabDomain, LabHost, LabTlsa, LabWorld } from './model.ts';
import { dkimRecordFor, labDkimRecord } from './dkim-keys.ts';
import type { LabCa } from './ca.ts';
import { MISMATCH_ADDRESS } from './world.ts';
import { InputError } from '../lib/errors.ts';
import { closeServer, listenOn } from './listen.ts';

export interface DnsServerOptions {
  /** @defaultValue 127.0.0.1 */
  host?: string;
  /** 0 picks a free ephemeral port (the same one for UDP and TCP). */
  port: number;
  /** The lab CA: TLSA records (v2) are computed from the certificates it issues. Required when a host has `tlsa`. */
  ca?: LabCa;
}

export interface DnsServer {
  port: number;
  stop(): Promise<void>;
  /** Queries received so far (every transport, answered or not). */
  readonly queries: number;
}

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
const OPCODE_QUERY = 0;
const QR = 1 << 15;
const FLAG_TC = dnsPacket.TRUNCATED_RESPONSE;
const FLAG_RD = dnsPacket.RECURSION_DESIRED;
const FLAG_RA = dnsPacket.RECURSION_AVAILABLE;
const FLAG_AD = dnsPacket.AUTHENTIC_DATA;
const FLAG_CD = dnsPacket.CHECKING_DISABLED;
const EDNS_DO = dnsPacket.DNSSEC_OK;
/** RFC 8914 §4: the Extended DNS Error option code and info code 6, DNSSEC Bogus. */
const OPTION_EDE = 15;
const EDE_DNSSEC_BOGUS = 6;
/** RFC 1035 §4.2.1: the UDP limit without EDNS0. */
const CLASSIC_UDP_LIMIT = 512;
/** What we advertise in our OPT record (the DNS Flag Day 2020 value). */
const OUR_UDP_PAYLOAD = 1232;
const TTL = 300;
const TCP_IDLE_MS = 30_000;

type Zone = {
  apex: string;
  /** The domain whose dnssec/dnsFault apply; null for the lab's own zones. */
  domain: LabDomain | null;
  soa: Answer;
};

/** An RRset per type; an empty map is an empty non-terminal (exists, no data: NOERROR/NODATA). */
type Node = Map<string, Answer[]>;

/** Longest CNAME chain the resolver follows (RFC 1034 §3.6.2 says chains should be short; loops end here). */
const MAX_CNAME_CHAIN = 8;

/**
 * RFC 6698 §2.1: the association data of a TLSA record for what a host presents. Usages 1 and 3 match the
 * leaf, 0 and 2 its issuer (the intermediate, or the leaf itself when self-signed); selector 0 is the whole
 * certificate, 1 its SubjectPublicKeyInfo; matching 0 is the data itself, 1 SHA-256, 2 SHA-512.
 * `matches: false` inverts every bit: same length, matches nothing.
 */
export function tlsaData(t: LabTlsa, presented: { leafDer: Buffer; issuerDer: Buffer }): Buffer {
  const der = t.usage === 1 || t.usage === 3 ? presented.leafDer : presented.issuerDer;
  const selected = t.selector === 0 ? der : new X509Certificate(der).publicKey.export({ type: 'spki', format: 'der' });
  const data = t.matching === 0 ? Buffer.from(selected) : createHash(t.matching === 1 ? 'sha256' : 'sha512').update(selected).digest();
  return t.matches ? data : Buffer.from(data.map((b) => b ^ 0xff));
}

/** A TXT value split into character-strings of at most 255 bytes (RFC 1035 §3.3.14, RFC 7208 §3.3). */
export function txtStrings(text: string): Buffer[] {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length === 0) return [Buffer.alloc(0)];
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 255) out.push(bytes.subarray(i, i + 255));
  return out;
}

export function reverseName(ip: string): string {
  return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
}

function soaFor(apex: string): Answer {
  return {
    name: apex,
    type: 'SOA',
    // RFC 2308 §3: a negative answer's SOA TTL is min(SOA TTL, MINIMUM); both are 300 here.
    ttl: TTL,
    data: {
      mname: 'ns1.lab.test',
      rname: 'hostmaster.lab.test',
      serial: 2021063001,
      refresh: 3600,
      retry: 600,
      expire: 604800,
      minimum: TTL,
    },
  } as Answer;
}

/** The world's DNS data, indexed for O(1) answers. Exported for tests and for tools that inspect a world. */
export class LabZoneIndex {
  readonly names = new Map<string, Node>();
  readonly zones = new Map<string, Zone>();
  readonly rootSoa = soaFor('');
  /** The DKIM key record's strings, built once per distinct record and shared by every selector using it. */
  private readonly dkimStrings = new Map<string, Buffer[]>();
  /** v2: the DNSSEC state of names that do not take their zone's (hosts with `dnssec`). */
  readonly nameState = new Map<string, DnssecState>();
  /** Extension: the answer delay of a host's own names (`latency.dnsMs` of a host), by name. */
  readonly nameDelay = new Map<string, number>();
  /** The world's `latency.dnsMs`: the delay of every other answer not under a domain with its own. */
  readonly defaultDelay: number;

  constructor(world: LabWorld, ca?: LabCa) {
    this.defaultDelay = world.latency.dnsMs;
    this.addZone('lab.test', null);
    this.addZone('127.in-addr.arpa', null);
    for (const d of world.domains) this.addZone(d.name, d);
    for (const z of world.dnsbls) this.addZone(z, null);
    this.add({ name: 'ns1.lab.test', type: 'A', ttl: TTL, data: '127.0.0.1' } as Answer);

    for (const d of world.domains) this.addDomain(d, world);

    const forward = new Set<string>();
    for (const h of world.hosts.values()) {
      this.ensureZoneFor(h.name);
      this.add({ name: h.name, type: 'A', ttl: TTL, data: h.ip } as Answer);
      forward.add(h.name);
      if (h.tlsa.length > 0) this.addTlsa(h, ca);
      if (h.dnssec !== null) {
        this.nameState.set(h.name, h.dnssec);
        this.nameState.set(`_25._tcp.${h.name}`, h.dnssec);
      }
    }
    for (const r of world.records) this.addRecord(r);
    for (const h of world.hosts.values()) {
      const ms = h.latency?.dnsMs;
      if (ms === null || ms === undefined) continue;
      // Several hosts may share a name (several A records for one MX name): the first one's delay holds.
      for (const n of [h.name, `_25._tcp.${h.name}`, reverseName(h.ip), ...(h.ptr ? [h.ptr] : [])]) {
        if (!this.nameDelay.has(n)) this.nameDelay.set(n, ms);
      }
    }
    for (const h of world.hosts.values()) {
      if (h.ptr === null) continue; // no PTR record: the reverse name does not exist
      this.add({ name: reverseName(h.ip), type: 'PTR', ttl: TTL, data: h.ptr } as Answer);
      if (forward.has(h.ptr)) continue; // it resolves to whatever that host's name resolves to
      this.ensureZoneFor(h.ptr);
      // ptrMismatch: the PTR name resolves elsewhere, so forward-confirmed rDNS fails; otherwise it confirms.
      this.add({ name: h.ptr, type: 'A', ttl: TTL, data: h.ptrMismatch ? MISMATCH_ADDRESS : h.ip } as Answer);
      forward.add(h.ptr);
    }

    // RFC 5782 §2.1: an IPv4 DNSBL entry is the reversed octets under the zone; §5: 127.0.0.2 is always listed
    // (test entry) and 127.0.0.1 never is.
    for (const zone of world.dnsbls) {
      this.addDnsbl(zone, '127.0.0.2', '127.0.0.2', `RFC 5782 test entry, listed in ${zone}`);
      for (const h of world.hosts.values()) {
        if (h.dnsbl === true) this.addDnsbl(zone, h.ip, '127.0.0.2', `${h.ip} is listed in ${zone} (lab world ${world.name})`);
        // 127.255.255.254: the list refuses this query (as Spamhaus answers open resolvers); no TXT.
        else if (h.dnsbl === 'error') this.addDnsbl(zone, h.ip, '127.255.255.254', null);
      }
    }
  }

  private addZone(apex: string, domain: LabDomain | null): void {
    const soa = soaFor(apex);
    this.zones.set(apex, { apex, domain, soa });
    this.add(soa);
    this.add({ name: apex, type: 'NS', ttl: TTL, data: 'ns1.lab.test' } as Answer);
  }

  /** Names outside every zone (a provider host like mx.bigmail.test) get an implicit zone at their last two labels. */
  private ensureZoneFor(name: string): void {
    if (this.findZone(name)) return;
    const labels = name.split('.');
    this.addZone(labels.slice(-2).join('.'), null);
  }

  private addDomain(d: LabDomain, world: LabWorld): void {
    const n = d.name;
    if (d.mx === 'null') {
      // RFC 7505 §3: a single MX with preference 0 and the root as exchange.
      this.add({ name: n, type: 'MX', ttl: TTL, data: { preference: 0, exchange: '.' } } as Answer);
    } else {
      d.mx.forEach((id, k) => {
        const h = world.hosts.get(id);
        if (h) this.add({ name: n, type: 'MX', ttl: TTL, data: { preference: 10 * (k + 1), exchange: h.name } } as Answer);
      });
    }
    if (d.spf !== null) this.txt(n, d.spf);
    for (const t of d.extraTxt) this.txt(n, t);
    if (d.dmarc !== null) this.txt(`_dmarc.${n}`, d.dmarc);
    if (d.mtaSts !== null) this.txt(`_mta-sts.${n}`, d.mtaSts);
    if (d.tlsRpt !== null) this.txt(`_smtp._tls.${n}`, d.tlsRpt);
    if (d.mtaStsPolicy) this.add({ name: d.mtaStsPolicy.name, type: 'A', ttl: TTL, data: d.mtaStsPolicy.ip } as Answer);
    if (d.dkim) {
      // One key per kind of key (v2 `dkim.keys`; RSA-2048 by default); `_domainkey.<n>` becomes an empty
      // non-terminal through add().
      for (const s of d.dkim.selectors) {
        const spec = d.dkim.keys?.[s];
        const isDefault = !spec || (spec.type === 'rsa' && spec.bits === 2048 && !spec.testing && !spec.revoked);
        const record = isDefault ? labDkimRecord() : dkimRecordFor(spec);
        let strings = this.dkimStrings.get(record);
        if (!strings) {
          strings = txtStrings(record);
          this.dkimStrings.set(record, strings);
        }
        this.add({ name: `${s}._domainkey.${n}`, type: 'TXT', ttl: TTL, data: strings } as Answer);
      }
    }
  }

  /** RFC 7672 §2.2: the TLSA RRset of an SMTP host is at `_25._tcp.<MX host name>`. */
  private addTlsa(h: LabHost, ca: LabCa | undefined): void {
    if (!ca) throw new Error(`lab DNS: host ${h.id} has tlsa records, which need the lab CA (startDnsServer's ca option)`);
    const issued = ca.certFor(h);
    const presented = { leafDer: issued.chainDer[0]!, issuerDer: issued.issuerDer };
    for (const t of h.tlsa) {
      this.add({
        name: `_25._tcp.${h.name}`,
        type: 'TLSA',
        ttl: TTL,
        data: { usage: t.usage, selector: t.selector, matchingType: t.matching, certificate: tlsaData(t, presented) },
      });
    }
  }

  /** v2 `records`: served verbatim (values were checked and normalized by lab/world.ts). */
  private addRecord(r: LabWorld['records'][number]): void {
    this.ensureZoneFor(r.name.replace(/^\*\./, ''));
    switch (r.type) {
      case 'A':
      case 'CNAME':
        this.add({ name: r.name, type: r.type, ttl: TTL, data: r.value } as Answer);
        break;
      case 'TXT':
        this.txt(r.name, r.value);
        break;
      case 'MX': {
        const [pref, exchange] = r.value.split(' ');
        this.add({ name: r.name, type: 'MX', ttl: TTL, data: { preference: Number(pref), exchange } } as Answer);
        break;
      }
      case 'TLSA': {
        const [u, sel, m, hex] = r.value.split(' ');
        this.add({
          name: r.name,
          type: 'TLSA',
          ttl: TTL,
          data: { usage: Number(u), selector: Number(sel), matchingType: Number(m), certificate: Buffer.from(hex!, 'hex') },
        });
        break;
      }
    }
  }

  /**
   * The delay before the answer for a query name (lower case, no trailing dot): the name's own (a host's
   * `latency.dnsMs`), else that of the domain it falls under, else the world's `latency.dnsMs`.
   */
  delayOf(qname: string): number {
    const own = this.nameDelay.get(qname);
    if (own !== undefined) return own;
    return this.findZone(qname)?.domain?.latency?.dnsMs ?? this.defaultDelay;
  }

  /** The DNSSEC state a name is served with: its own (a v2 host's), else its zone's domain's, else insecure. */
  stateOf(name: string, zone: Zone | null): DnssecState {
    return this.nameState.get(name) ?? zone?.domain?.dnssec ?? 'insecure';
  }

  /**
   * The node that answers for a name: the name's own, or (RFC 4592 §3.3.1) the wildcard `*.<closest encloser>`
   * when the name does not exist. An existing name — an empty non-terminal too — is never matched by a wildcard.
   */
  lookup(name: string): Node | undefined {
    const own = this.names.get(name);
    if (own) return own;
    let encloser = name;
    for (let dot = encloser.indexOf('.'); dot !== -1; dot = encloser.indexOf('.')) {
      encloser = encloser.slice(dot + 1);
      if (this.names.has(encloser)) return this.names.get(`*.${encloser}`);
    }
    return undefined;
  }

  private addDnsbl(zone: string, ip: string, answer: string, reason: string | null): void {
    const name = `${ip.split('.').reverse().join('.')}.${zone}`;
    if (this.names.get(name)?.has('A')) return;
    this.add({ name, type: 'A', ttl: TTL, data: answer } as Answer);
    if (reason) this.txt(name, reason);
  }

  private txt(name: string, text: string): void {
    this.add({ name, type: 'TXT', ttl: TTL, data: txtStrings(text) } as Answer);
  }

  /** Adds a record and makes every ancestor name exist (empty non-terminals, RFC 8020). */
  add(rr: Answer): void {
    const name = rr.name;
    let node = this.names.get(name);
    if (!node) {
      node = new Map();
      this.names.set(name, node);
      let parent = name;
      for (let dot = parent.indexOf('.'); dot !== -1; dot = parent.indexOf('.')) {
        parent = parent.slice(dot + 1);
        if (this.names.has(parent)) break;
        this.names.set(parent, new Map());
      }
    }
    const set = node.get(rr.type);
    if (set) {
      const data = (x: Answer) => JSON.stringify((x as { data?: unknown }).data);
      const same = set.some((r) => data(r) === data(rr));
      if (!same) set.push(rr);
    } else node.set(rr.type, [rr]);
  }

  /** The closest enclosing zone of a name, or null (outside the lab: the root). */
  findZone(name: string): Zone | null {
    let n = name;
    for (;;) {
      const z = this.zones.get(n);
      if (z) return z;
      const dot = n.indexOf('.');
      if (dot === -1) return null;
      n = n.slice(dot + 1);
    }
  }
}

type Outcome =
  | { kind: 'drop' }
  | { kind: 'answer'; buffer: Buffer; qname?: string };

interface Decoded extends Packet {
  flags: number;
  questions: Question[];
  additionals: Answer[];
}

/** Decides the answer to one query message; pure apart from the index, so both transports share it. */
export function answerQuery(index: LabZoneIndex, msg: Buffer, transport: 'udp' | 'tcp'): Outcome {
  let q: Decoded;
  try {
    q = dnsPacket.decode(msg) as Decoded;
  } catch {
    // RFC 1035 §4.1.1: FORMERR for a message we cannot parse, if there is a header to answer with.
    if (msg.length < 12 || (msg.readUInt16BE(2) & QR) !== 0) return { kind: 'drop' };
    return { kind: 'answer', buffer: encodeHeaderOnly(msg.readUInt16BE(0), (msg.readUInt16BE(2) & 0x7800) | RCODE.FORMERR) };
  }
  if (q.type === 'response') return { kind: 'drop' }; // never answer answers (loops)
  const opcode = (q.flags >> 11) & 0xf;
  const opt = q.additionals.find((a) => a.type === 'OPT') as (Answer & { udpPayloadSize?: number; flags?: number; ednsVersion?: number }) | undefined;
  const baseFlags = (opcode << 11) | (q.flags & (FLAG_RD | FLAG_CD)) | FLAG_RA;
  const dnssecOk = opt !== undefined && ((opt.flags ?? 0) & EDNS_DO) !== 0;
  const checkingDisabled = (q.flags & FLAG_CD) !== 0;
  const wantsAd = dnssecOk || (q.flags & FLAG_AD) !== 0; // RFC 6840 §5.7-5.8

  const reply = (rcode: number, r: { answers?: Answer[]; authorities?: Answer[]; ad?: boolean; ede?: { code: number; text: string } } = {}): Outcome => {
    const additionals: (Answer | EncodableOpt)[] = [];
    if (opt) {
      const options = r.ede
        ? [{ code: OPTION_EDE, data: Buffer.concat([Buffer.from([r.ede.code >> 8, r.ede.code & 255]), Buffer.from(r.ede.text)]) }]
        : [];
      // RFC 3225 §3: the DO bit is copied into the response.
      additionals.push({ name: '.', type: 'OPT', udpPayloadSize: OUR_UDP_PAYLOAD, extendedRcode: rcode >> 4, flags: dnssecOk ? EDNS_DO : 0, options });
    }
    const flags = baseFlags | (rcode & 0xf) | (r.ad ? FLAG_AD : 0);
    const packet = { type: 'response' as const, id: q.id, flags, questions: q.questions, answers: r.answers ?? [], authorities: r.authorities ?? [], additionals };
    let buffer = dnsPacket.encode(packet);
    // RFC 1035 §4.2.1 / RFC 6891 §6.2.5: over UDP, an answer larger than the requester can take is truncated
    // (TC set, sections emptied) and the requester retries over TCP (RFC 7766).
    const limit = transport === 'tcp' ? 65535 : opt ? Math.max(CLASSIC_UDP_LIMIT, opt.udpPayloadSize ?? CLASSIC_UDP_LIMIT) : CLASSIC_UDP_LIMIT;
    if (buffer.length > limit) {
      buffer = dnsPacket.encode({ ...packet, flags: flags | FLAG_TC, answers: [], authorities: [] });
    }
    const qn = q.questions?.[0]?.name;
    return { kind: 'answer', buffer, ...(qn !== undefined ? { qname: qn.toLowerCase().replace(/\.$/, '') } : {}) };
  };

  if (opcode !== OPCODE_QUERY) return reply(RCODE.NOTIMP);
  if (q.questions.length !== 1) return reply(RCODE.FORMERR);
  if (opt && (opt.ednsVersion ?? 0) > 0) return reply(16); // RFC 6891 §6.1.3: BADVERS
  const question = q.questions[0];
  if ((question.class ?? 'IN') !== 'IN') return reply(RCODE.REFUSED);

  const qname = question.name.toLowerCase().replace(/\.$/, '');
  const qtype = question.type;
  const answers: Answer[] = [];
  let name = qname;
  let ad = wantsAd;
  // Follows CNAMEs as a recursive resolver does (RFC 1034 §4.3.2 step 3a), each name under its own zone's
  // faults and DNSSEC state; the RCODE is that of the last name (RFC 6604 §2.1).
  for (let step = 0; ; step++) {
    const zone = index.findZone(name);
    const domain = zone?.domain ?? null;
    if (domain?.dnsFault === 'timeout') return { kind: 'drop' };
    if (domain?.dnsFault === 'servfail') return reply(RCODE.SERVFAIL);
    if (domain?.dnsFault === 'refused') return reply(RCODE.REFUSED);
    const state = index.stateOf(name, zone);
    if (state === 'bogus' && !checkingDisabled) {
      // A validating resolver that cannot validate says SERVFAIL; RFC 8914 §4.7 tells why.
      return reply(RCODE.SERVFAIL, { ede: { code: EDE_DNSSEC_BOGUS, text: 'DNSSEC Bogus' } });
    }
    ad &&= state === 'secure';
    const soa = zone ? zone.soa : index.rootSoa;
    const node = index.lookup(name);
    // RFC 2308 §2.1/§2.2: NXDOMAIN and NODATA carry the zone's SOA in the authority section.
    if (!node) return reply(RCODE.NXDOMAIN, { answers, authorities: [soa], ad });
    let rrs: Answer[] | undefined;
    if ((qtype as string) === 'ANY') rrs = [...node.values()].flat();
    else rrs = node.get(qtype);
    const cname = qtype === 'CNAME' || (qtype as string) === 'ANY' ? undefined : node.get('CNAME')?.[0];
    if ((!rrs || rrs.length === 0) && cname && step < MAX_CNAME_CHAIN) {
      answers.push({ ...cname, name: step === 0 ? question.name : name } as Answer);
      name = String((cname as { data: unknown }).data);
      continue;
    }
    if (!rrs || rrs.length === 0) return reply(RCODE.NOERROR, { answers, authorities: [soa], ad });
    // Answer under the spelling the client asked for (DNS names are case-insensitive; some clients check),
    // and under the query name for a wildcard's records (RFC 4592 §3.3.1 synthesis).
    const owner = step === 0 ? question.name : name;
    answers.push(...(rrs[0]!.name === owner ? rrs : rrs.map((r) => ({ ...r, name: owner }) as Answer)));
    return reply(RCODE.NOERROR, { answers, ad });
  }
}

function encodeHeaderOnly(id: number, flags: number): Buffer {
  return dnsPacket.encode({ type: 'response', id, flags: flags | FLAG_RA, questions: [], answers: [], authorities: [], additionals: [] });
}

/** Starts the lab DNS server on UDP and TCP at the same port. */
export async function startDnsServer(world: LabWorld, opts: DnsServerOptions): Promise<DnsServer> {
  const index = new LabZoneIndex(world, opts.ca);
  const host = opts.host ?? '127.0.0.1';
  let queries = 0;
  let stopped = false;
  const timers = new Set<NodeJS.Timeout>();
  const sockets = new Set<net.Socket>();

  // Per answer: the query name's delay (host, domain or world latency; see LabZoneIndex.delayOf). Every
  // pending answer is one timer, cleared at stop.
  const later = (qname: string | undefined, fn: () => void) => {
    const delay = qname === undefined ? index.defaultDelay : index.delayOf(qname);
    if (delay <= 0) return fn();
    const t = setTimeout(() => {
      timers.delete(t);
      if (!stopped) fn();
    }, delay);
    timers.add(t);
  };

  const onUdp = (udp: dgram.Socket) => {
    udp.on('message', (msg, rinfo) => {
      queries++;
      const out = answerQuery(index, msg, 'udp');
      if (out.kind === 'drop') return;
      later(out.qname, () => udp.send(out.buffer, rinfo.port, rinfo.address, () => {}));
    });
    udp.on('error', () => {}); // a send to a vanished client must not kill the lab
  };

  const tcp = net.createServer((sock) => {
    sockets.add(sock);
    sock.setTimeout(TCP_IDLE_MS, () => sock.destroy());
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    sock.on('data', (chunk) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      // RFC 1035 §4.2.2 / RFC 7766 §8: two-byte length prefix; several queries may share one connection.
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        queries++;
        const out = answerQuery(index, msg, 'tcp');
        if (out.kind === 'drop') continue;
        const framed = Buffer.alloc(2 + out.buffer.length);
        framed.writeUInt16BE(out.buffer.length, 0);
        out.buffer.copy(framed, 2);
        later(out.qname, () => {
          if (!sock.destroyed) sock.write(framed);
        });
      }
    });
  });

  const { port, udp } = await bindBoth(onUdp, tcp, host, opts.port);

  return {
    port,
    get queries() {
      return queries;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const s of sockets) s.destroy();
      await Promise.all([closeServer(udp), closeServer(tcp)]);
    },
  };
}

/** Binds TCP and UDP on the same port; with port 0, retries while the OS's free TCP port is taken on UDP. */
async function bindBoth(
  setup: (udp: dgram.Socket) => void,
  tcp: net.Server,
  host: string,
  port: number,
): Promise<{ port: number; udp: dgram.Socket }> {
  const bindUdp = (p: number) =>
    new Promise<dgram.Socket>((resolve, reject) => {
      // A survey sends thousands of queries a second in bursts; with the default receive buffer (about 200 KB)
      // the kernel dropped them while the event loop was busy, and the checker saw timeouts the world does not
      // describe (issue 9). Linux caps the request at net.core.rmem_max.
      const udp = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 * 2 ** 20 });
      const onError = (err: Error) => {
        try {
          udp.close();
        } catch {
          // never bound: nothing to close
        }
        reject(err);
      };
      udp.once('error', onError);
      udp.bind({ port: p, address: host, exclusive: true }, () => {
        udp.off('error', onError);
        setup(udp);
        resolve(udp);
      });
    });
  const explain = (err: unknown, proto: string, p: number) => {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') return new PortInUseError(`DNS port ${p} on ${host} (${proto}) is already in use`);
    if (e.code === 'EACCES') return new PortInUseError(`no permission to listen on DNS port ${p} on ${host} (${proto})`);
    if (e.code === 'EADDRNOTAVAIL') return new PortInUseError(`cannot listen on ${host}: address not available`);
    return e;
  };

  for (let attempt = 0; attempt < 20; attempt++) {
    let p: number;
    try {
      p = await listenOn(tcp, { port, host, exclusive: true });
    } catch (err) {
      throw explain(err, 'tcp', port);
    }
    try {
      return { port: p, udp: await bindUdp(p) };
    } catch (err) {
      await closeServer(tcp);
      // Only an ephemeral pick may be retried: a fixed port taken on UDP is the user's error to fix.
      if (port !== 0 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw explain(err, 'udp', p);
    }
  }
  throw new PortInUseError(`could not find a port free on both UDP and TCP on ${host}`);
}

/** A listening port was taken (or forbidden): bad input, exit 2. */
export class PortInUseError extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'PortInUseError';
  }
}
