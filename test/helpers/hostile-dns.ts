// A tiny DNS server on 127.0.0.1 for resolver tests: each test declares how it misbehaves (wrong answers,
// garbage bytes, silence). It is a hostile peer on a real socket, not a mock of our code.
import dgram from 'node:dgram';
import net from 'node:net';
import * as dnsPacket from 'dns-packet';

export type Reply = Buffer | Buffer[] | null;
/** A decoded query; the fields a query always has are required. */
export type Query = dnsPacket.DecodedPacket & { id: number; questions: dnsPacket.Question[]; additionals: dnsPacket.Answer[] };
export type Handler = (query: Query, transport: 'udp' | 'tcp', raw: Buffer) => Reply | Promise<Reply>;

export interface HostileDns {
  host: '127.0.0.1';
  port: number;
  /** Queries received (UDP and TCP). */
  queries: { name: string; type: string; cd: boolean; transport: 'udp' | 'tcp' }[];
  /** Where each UDP query came from, with its bytes (for spoofing tests). */
  sources: { address: string; port: number; raw: Buffer }[];
  close(): Promise<void>;
}

export async function startHostileDns(handler: Handler): Promise<HostileDns> {
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', () => resolve()));
  const port = (udp.address() as net.AddressInfo).port;
  const queries: HostileDns['queries'] = [];
  const sockets = new Set<net.Socket>();
  const handle = async (raw: Buffer, transport: 'udp' | 'tcp'): Promise<Buffer[]> => {
    let q: dnsPacket.DecodedPacket;
    try {
      q = dnsPacket.decode(raw);
    } catch {
      return [];
    }
    const question = q.questions?.[0];
    if (question) queries.push({ name: question.name, type: question.type, cd: Boolean((q as { flag_cd?: boolean }).flag_cd), transport });
    const r = await handler({ ...q, id: q.id ?? 0, questions: q.questions ?? [], additionals: q.additionals ?? [] } as Query, transport, raw);
    return r === null ? [] : Array.isArray(r) ? r : [r];
  };
  const sources: HostileDns['sources'] = [];
  udp.on('message', async (msg, rinfo) => {
    if (sources.length < 10_000) sources.push({ address: rinfo.address, port: rinfo.port, raw: Buffer.from(msg) });
    for (const b of await handle(msg, 'udp')) udp.send(b, rinfo.port, rinfo.address);
  });
  const tcp = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    sock.on('data', async (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        for (const b of await handle(msg, 'tcp')) {
          const len = Buffer.alloc(2);
          len.writeUInt16BE(b.length);
          if (!sock.destroyed) sock.write(Buffer.concat([len, b]));
        }
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    host: '127.0.0.1',
    port,
    queries,
    sources,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => udp.close(() => r()));
      await new Promise<void>((r) => tcp.close(() => r()));
    },
  };
}

/** A response to `q` with the given sections (defaults: NOERROR, the question echoed). */
export function respond(
  q: Query,
  opts: { rcode?: number; answers?: dnsPacket.Answer[]; authorities?: dnsPacket.Answer[]; additionals?: dnsPacket.Answer[]; flags?: number; id?: number; questions?: dnsPacket.Question[] } = {},
): Buffer {
  return dnsPacket.encode({
    type: 'response',
    id: opts.id ?? q.id,
    flags: (opts.flags ?? 0) | dnsPacket.RECURSION_AVAILABLE | (opts.rcode ?? 0),
    questions: opts.questions ?? q.questions,
    answers: opts.answers ?? [],
    authorities: opts.authorities ?? [],
    additionals: opts.additionals ?? [],
  });
}

export const soa = (zone: string, minimum = 60): dnsPacket.Answer => ({
  name: zone,
  type: 'SOA',
  ttl: 60,
  data: { mname: `ns.${zone}`, rname: `hostmaster.${zone}`, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum },
});
