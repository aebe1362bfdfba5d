// The lab's MTA-STS policy hosts (LAB-WORLD.md v2 `mtaStsPolicy`, RFC 8461 §3.3): for every domain with a
// policy, an HTTPS server on the address the lab DNS gives `mta-sts.<domain>`, at the lab HTTPS port, that
// answers `GET /.well-known/mta-sts.txt` as the world says:
//   ok          valid certificate (lab intermediate, names the host), 200 with `body` and `contentType`
//   refuse      nothing listens: connection refused
//   timeout     accepts TCP, never answers (not even the TLS handshake); closed after HOLD_MS
//   404         valid certificate, 404 for every path
//   self-signed / expired / wrong-name   that certificate, then 200 with the body, as `ok`
// Everything from the client is bounded: header size and time, whole-request time, idle keep-alive,
// requests per connection, no request bodies, connections per host.
import https from 'node:https';
import net from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LabMtaStsPolicy, LabWorld } from './model.ts';
import type { CertSpec, LabCa } from './ca.ts';
import { closeServer, listenOn } from './listen.ts';

export const POLICY_PATH = '/.well-known/mta-sts.txt';
/** How long a `timeout` host holds a connection it never answers. */
const HOLD_MS = 60_000;
const MAX_HEADER_BYTES = 8192;
const HEADERS_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 10_000;
const IDLE_MS = 5_000;
const MAX_CONNECTIONS_PER_HOST = 64;
const MAX_REQUESTS_PER_SOCKET = 16;
const LOG_LIMIT = 100_000;

export interface HttpsLogEntry {
  ip: string;
  at: string;
  event: 'connect' | 'request';
  method?: string;
  /** The request target, at most 200 characters. */
  path?: string;
  host?: string;
  status?: number;
}

export interface PolicyHosts {
  /** The port every policy host listens on (the one picked, when 0 was asked). */
  port: number;
  /** Requests and connections received, per policy host address, or all. */
  log(ip?: string): HttpsLogEntry[];
  stop(): Promise<void>;
}

/** The certificate a policy host presents for its `https` behaviour. */
export function policyCertSpec(p: LabMtaStsPolicy): CertSpec {
  const kind = p.https === 'self-signed' || p.https === 'expired' || p.https === 'wrong-name' ? p.https : 'valid';
  return { name: p.name, kind, key: 'rsa-2048', notAfterDays: null, chain: 'complete' };
}

export async function startPolicyHosts(world: LabWorld, opts: { port: number; ca: LabCa; host?: string }): Promise<PolicyHosts> {
  const policies = world.domains.map((d) => d.mtaStsPolicy).filter((p): p is LabMtaStsPolicy => p !== null && p.https !== 'refuse');
  const logAll: HttpsLogEntry[] = [];
  const record = (e: HttpsLogEntry) => {
    if (logAll.length < LOG_LIMIT) logAll.push(e);
  };
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  };

  const serverFor = (p: LabMtaStsPolicy): net.Server => {
    if (p.https === 'timeout') {
      const server = net.createServer((socket) => {
        track(socket);
        record({ ip: p.ip, at: new Date().toISOString(), event: 'connect' });
        // Read and discard (a client's ClientHello must not fill buffers), never write.
        socket.resume();
        socket.setTimeout(HOLD_MS, () => socket.destroy());
      });
      server.maxConnections = MAX_CONNECTIONS_PER_HOST;
      return server;
    }
    const { certPem, keyPem } = opts.ca.issue(policyCertSpec(p));
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      const target = (req.url ?? '').slice(0, 200);
      const reply = (status: number, body: string, type = 'text/plain') => {
        record({ ip: p.ip, at: new Date().toISOString(), event: 'request', method: req.method, path: target, host: String(req.headers.host ?? '').slice(0, 200), status });
        res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'max-age=0' });
        res.end(req.method === 'HEAD' ? undefined : body);
      };
      // No request bodies: a policy fetch is a GET (RFC 8461 §3.3); anything else is refused unread.
      if (req.headers['content-length'] && req.headers['content-length'] !== '0') {
        res.shouldKeepAlive = false;
        return reply(413, 'request bodies are not accepted\n');
      }
      if (req.headers['transfer-encoding']) {
        res.shouldKeepAlive = false;
        return reply(400, 'request bodies are not accepted\n');
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'method not allowed\n');
      const pathOnly = target.split('?')[0];
      if (p.https === '404' || pathOnly !== POLICY_PATH) return reply(404, 'not found\n');
      return reply(200, p.body, p.contentType);
    };
    const server = https.createServer(
      { cert: certPem, key: keyPem, minVersion: 'TLSv1.2', maxHeaderSize: MAX_HEADER_BYTES, requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: HEADERS_TIMEOUT_MS, keepAliveTimeout: IDLE_MS },
      handler,
    );
    server.maxRequestsPerSocket = MAX_REQUESTS_PER_SOCKET;
    server.maxConnections = MAX_CONNECTIONS_PER_HOST;
    server.setTimeout(REQUEST_TIMEOUT_MS, (s: net.Socket) => s.destroy());
    server.on('connection', (s: net.Socket) => {
      track(s);
      record({ ip: p.ip, at: new Date().toISOString(), event: 'connect' });
    });
    server.on('tlsClientError', () => {}); // a failed handshake (the client rejected our certificate) is normal here
    // A malformed or oversized request: say so (as Node would without this handler), then close.
    server.on('clientError', (err: NodeJS.ErrnoException, s: net.Socket) => {
      if (!s.writable) return s.destroy();
      const line = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
      s.end(`HTTP/1.1 ${line}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    });
    return server;
  };

  const listen = (server: net.Server, ip: string, port: number) =>
    listenOn(server, { host: ip, port, exclusive: true }).catch((err: NodeJS.ErrnoException) => {
      throw new Error(`lab HTTPS: cannot listen on ${ip}:${port}: ${err.code === 'EADDRINUSE' ? 'port in use' : err.message}`);
    });

  let port = opts.port;
  try {
    for (const p of policies) {
      if (!p.ip.startsWith('127.')) throw new Error(`lab HTTPS: ${p.ip} is outside 127/8`);
      const server = serverFor(p);
      servers.push(server);
      port = await listen(server, p.ip, port);
      // A listening server's errors (an accept failing with EMFILE) fail that one connection, not the lab.
      server.on('error', () => {});
    }
    if (policies.length === 0 && port === 0) {
      // Nothing listens, yet the environment must name a port: take a free one (connections to it are refused).
      const probe = net.createServer();
      port = await listen(probe, opts.host ?? '127.0.0.1', 0);
      await closeServer(probe);
    }
  } catch (err) {
    await closeAll(servers, sockets);
    throw err;
  }

  let stopped: Promise<void> | undefined;
  return {
    port,
    log: (ip) => (ip === undefined ? [...logAll] : logAll.filter((e) => e.ip === ip)),
    stop() {
      stopped ??= closeAll(servers, sockets);
      return stopped;
    },
  };
}

async function closeAll(servers: net.Server[], sockets: Set<net.Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  await Promise.all(servers.filter((s) => s.listening).map(closeServer));
}
