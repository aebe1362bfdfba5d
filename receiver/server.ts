// The test-mail receiver: MSchecker's inbox. It accepts mail for our own domain only (never relays), offers
// STARTTLS, bounds size, recipients, connections and rate per client IP, stores each mail's exact bytes and
// envelope, and answers 250 only once the row is committed. The diagnosis itself runs in a worker.
import { SMTPServer, type SMTPServerAddress, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import type { Db } from '../lib/db.ts';
import { insertTestMail, listUndiagnosedTestMails, pruneRawMails, StoreTimeoutError, type NewTestMail } from './store.ts';
import { classifyRecipient, domainOfAddress } from './tokens.ts';
import { selfSignedCertificate } from './cert.ts';
import { createRequire } from 'node:module';
import { concurrencyLimit } from '../lib/concurrency.ts';

// mailauth's own header splitter (the one its DKIM and DMARC code reads the message with).
const headerTools = createRequire(import.meta.url)('mailauth/lib/tools.js') as {
  parseHeaders(buf: Buffer): { parsed: { key: string | null; line: Buffer }[] };
};

export interface ReceiverLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const silentLogger: ReceiverLogger = { info() {}, warn() {}, error() {} };

export interface ReceiverOptions {
  db: Db;
  /** Our recipient domain: only `check[-token]@` and `postmaster@` it are accepted. */
  domain: string;
  /** The name we greet with. @defaultValue `domain` */
  hostname?: string;
  /** @defaultValue 127.0.0.1 */
  host?: string;
  /** 0 = an ephemeral port. @defaultValue 25 */
  port?: number;
  /** PEM certificate and key for STARTTLS; absent: a self-signed one is generated for `hostname`. */
  cert?: string | null;
  key?: string | null;
  /** Largest message accepted, advertised with SIZE (RFC 1870). @defaultValue 10 MiB */
  maxSize?: number;
  /** RFC 5321 §4.5.3.1.8 requires at least 100. @defaultValue 100 */
  maxRecipients?: number;
  /** Concurrent connections from one client IP; beyond it the greeting is 421. @defaultValue 5 */
  maxConnectionsPerIp?: number;
  /** New connections per client IP per `rateWindowMs`; beyond it the greeting is 421. @defaultValue 60 */
  maxConnectionsPerWindow?: number;
  /** Messages per client IP per `rateWindowMs`; beyond it MAIL FROM gets 450. @defaultValue 30 */
  maxMessagesPerWindow?: number;
  /** @defaultValue 60000 */
  rateWindowMs?: number;
  /** Idle timeout of a session. RFC 5321 §4.5.3.2.7 asks for 5 minutes. @defaultValue 300000 */
  socketTimeoutMs?: number;
  /** Total deadline of a session however active it is (a slow drip cannot hold it). @defaultValue 600000 */
  sessionTimeoutMs?: number;
  /** Concurrent sessions over all clients; beyond it the greeting is 421. @defaultValue 100 */
  maxClients?: number;
  /** Largest header section (Postfix header_size_limit); beyond it 552. @defaultValue 102400 */
  maxHeaderBytes?: number;
  /** Message bytes held in memory by all sessions together; beyond it the mail gets 452 4.3.1. @defaultValue 128 MiB */
  memoryBudgetBytes?: number;
  /** Days raw bytes are kept; the sweeper prunes older ones (the diagnosis stays). 0 = forever. @defaultValue 30 */
  rawRetentionDays?: number;
  /** Inserts of received mails running at once (each holds the mail again while encoding it). @defaultValue 2 */
  maxConcurrentStores?: number;
  /** How long to wait for Postgres before answering 451 4.3.0. @defaultValue 30000 */
  storeTimeoutMs?: number;
  /** The lab clock: the time recorded on received mails. @defaultValue null (now) */
  clock?: Date | null;
  /** Called after a mail is committed and acknowledged; failures are logged, the sweeper retries. */
  enqueue?: (testMailId: string) => Promise<void>;
  /** false: mark every stored mail so that no result mail is sent for it (`--no-result-mail`). @defaultValue true */
  resultMail?: boolean;
  /** Re-enqueue stored mails without a diagnosis this often (and once at start); 0 = never. @defaultValue 60000 */
  sweepIntervalMs?: number;
  logger?: ReceiverLogger;
}

export interface Receiver {
  host: string;
  port: number;
  /** Enqueues every stored mail that has no diagnosis yet; returns how many. */
  sweep(): Promise<number>;
  close(): Promise<void>;
}

/** An SMTP reply for smtp-server's callbacks. */
function reply(code: number, text: string): Error & { responseCode: number } {
  const err = new Error(text) as Error & { responseCode: number };
  err.responseCode = code;
  return err;
}

/** `::ffff:127.0.0.1` is an IPv4 client on a dual-stack socket: store it as IPv4. */
export function normalizeIp(ip: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m ? m[1] : ip;
}

/** Longest From: field accepted; mailauth parses it with a parser that is slow on huge lists. */
export const MAX_FROM_FIELD_BYTES = 4096;

/**
 * The header section of a message (up to the first empty line), or null when it is longer than `max` bytes
 * (Postfix header_size_limit) — a bounded, linear search.
 */
export function headerSection(raw: Buffer, max: number): Buffer | null {
  const end = raw.subarray(0, max + 4).indexOf('\r\n\r\n');
  if (end >= 0) return raw.subarray(0, end + 2);
  // No body: the whole message is header (still bounded).
  return raw.length <= max ? raw : null;
}

/** The unfolded value of the first From: field of a header section, or null. Linear in the header size. */
export function fromField(head: Buffer): string | null {
  const { parseHeaders } = headerTools;
  const row = parseHeaders(head).parsed.find((r) => r.key === 'from');
  if (!row) return null;
  const line = row.line.toString('latin1');
  return line.slice(line.indexOf(':') + 1).replace(/\r?\n[ \t]*/g, ' ');
}

/**
 * The address of the From: header (RFC 5322 §3.6.2), read leniently: 8-bit bytes are kept as latin1, folded
 * lines are unfolded, a display name and comments are skipped. Null when absent or unreadable. Every step
 * is a single scan (indexOf / split), so a hostile 100 KB field costs microseconds, not seconds.
 */
export function headerFromAddress(raw: Buffer, maxHeaderBytes = 102_400): string | null {
  const head = headerSection(raw, maxHeaderBytes);
  if (!head) return null;
  const value = fromField(head);
  if (value === null) return null;
  // Comments (RFC 5322 §3.2.2) without nesting: drop "(...)" pieces in one pass.
  let plain = '';
  let depth = 0;
  for (let i = 0; i < value.length && i < MAX_FROM_FIELD_BYTES * 4; i++) {
    const c = value[i];
    if (c === '(') depth++;
    else if (c === ')' && depth > 0) depth--;
    else if (depth === 0) plain += c;
  }
  const lt = plain.indexOf('<');
  if (lt >= 0) {
    const gt = plain.indexOf('>', lt);
    const inner = gt > lt ? plain.slice(lt + 1, gt).trim() : '';
    if (inner.includes('@') && !/[\s<>]/.test(inner)) return inner;
  }
  for (const token of plain.split(/[\s<>",;]+/)) {
    const at = token.indexOf('@');
    if (at > 0 && at < token.length - 1 && !token.includes(':')) return token;
  }
  return null;
}

/** The key of a client for the per-client limits: the IPv4 address, or the /64 of an IPv6 one (RFC 6177). */
export function clientKey(ip: string): string {
  const v = normalizeIp(ip);
  if (!v.includes(':')) return v;
  const [head, tail] = v.toLowerCase().split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/** A sliding-window counter per key, bounded in keys so a spoofed flood cannot grow it without limit. */
class WindowCounter {
  private hits = new Map<string, number[]>();
  constructor(private windowMs: number, private maxKeys = 10_000) {}
  /** Records a hit and returns how many hits the key had in the window, this one included. */
  hit(key: string, now = Date.now()): number {
    const list = (this.hits.get(key) ?? []).filter((t) => now - t < this.windowMs);
    list.push(now);
    this.hits.delete(key);
    this.hits.set(key, list);
    if (this.hits.size > this.maxKeys) this.hits.delete(this.hits.keys().next().value as string);
    return list.length;
  }
}

/**
 * What closeSession uses of smtp-server's per-client SMTPConnection; its typings give `connections` as a
 * `Set<any>` and do not declare the connection class.
 */
interface SessionConnection {
  id: string;
  send(code: number, text: string): void;
  close(): void;
}

interface MailState {
  token: string | null;
}

export async function startReceiver(opts: ReceiverOptions): Promise<Receiver> {
  const log = opts.logger ?? silentLogger;
  const domain = opts.domain.toLowerCase();
  const hostname = opts.hostname ?? domain;
  const maxSize = opts.maxSize ?? 10 * 1024 * 1024;
  const maxRecipients = opts.maxRecipients ?? 100;
  const maxConnPerIp = opts.maxConnectionsPerIp ?? 5;
  const windowMs = opts.rateWindowMs ?? 60_000;
  const maxConnPerWindow = opts.maxConnectionsPerWindow ?? 60;
  const maxMsgPerWindow = opts.maxMessagesPerWindow ?? 30;
  const storeTimeoutMs = opts.storeTimeoutMs ?? 30_000;
  const maxHeaderBytes = opts.maxHeaderBytes ?? 102_400;
  const memoryBudget = opts.memoryBudgetBytes ?? 128 * 1024 * 1024;
  const sessionTimeoutMs = opts.sessionTimeoutMs ?? 600_000;
  let inMemory = 0;
  const enqueue = opts.enqueue ?? (async () => {});
  let cert = opts.cert ?? null;
  let key = opts.key ?? null;
  if (!cert || !key) ({ cert, key } = selfSignedCertificate(hostname));

  const storeSlot = concurrencyLimit(opts.maxConcurrentStores ?? 2);
  const closeSession = (id: string, line: string) => {
    const connections: Set<SessionConnection> = server.connections;
    for (const c of connections) {
      if (c.id !== id) continue;
      c.send(Number(line.slice(0, 3)), line.slice(4));
      c.close();
    }
  };
  const open = new Map<string, number>();
  const accepted = new Set<string>();
  const connRate = new WindowCounter(windowMs);
  const msgRate = new WindowCounter(windowMs);
  const state = new Map<string, MailState>();
  const pendingStores = new Set<Promise<unknown>>();

  const enqueueLogged = (id: string) =>
    enqueue(id).catch((err) => log.warn({ testMailId: id, err: (err as Error).message }, 'enqueue failed; the sweeper will retry'));

  const server = new SMTPServer({
    name: hostname,
    banner: 'mailcensus test-mail receiver',
    key,
    cert,
    size: maxSize,
    authOptional: true,
    disabledCommands: ['AUTH'],
    disableReverseLookup: true,
    // Beyond this many sessions smtp-server greets with 421 and closes (RFC 5321 §3.8).
    maxClients: opts.maxClients ?? 100,
    socketTimeout: opts.socketTimeoutMs ?? 300_000,
    closeTimeout: 5_000,
    logger: false,
    onConnect(session, cb) {
      const ip = clientKey(session.remoteAddress);
      const n = open.get(ip) ?? 0;
      // RFC 5321 §3.8 / §4.2.2: 421 closes the channel; the client retries later.
      if (n >= maxConnPerIp) return cb(reply(421, `${hostname} 4.7.0 Too many connections from ${ip}, try again later`));
      if (connRate.hit(ip) > maxConnPerWindow) return cb(reply(421, `${hostname} 4.7.0 Connection rate limit exceeded for ${ip}, try again later`));
      open.set(ip, n + 1);
      accepted.add(session.id);
      state.set(session.id, { token: null });
      cb();
    },
    onClose(session) {
      state.delete(session.id);
      if (!accepted.delete(session.id)) return;
      const ip = clientKey(session.remoteAddress);
      const n = (open.get(ip) ?? 1) - 1;
      if (n <= 0) open.delete(ip);
      else open.set(ip, n);
    },
    onMailFrom(_address: SMTPServerAddress, session, cb) {
      // RFC 3463 4.3.1: no room for another message now; the sender keeps it and retries.
      if (inMemory >= memoryBudget) return cb(reply(452, '4.3.1 Insufficient system storage, try again later'));
      const ip = clientKey(session.remoteAddress);
      if (msgRate.hit(ip) > maxMsgPerWindow) return cb(reply(450, '4.7.1 Too many messages from your address, try again later'));
      const s = state.get(session.id);
      if (s) s.token = null;
      cb();
    },
    onRcptTo(address: SMTPServerAddress, session, cb) {
      const r = classifyRecipient(address.address, domain);
      // Never a relay: anything but our own domain is refused permanently (RFC 5321 §3.6.2).
      if (r.kind === 'foreign') return cb(reply(550, '5.7.1 Relaying denied: this server accepts mail for ' + domain + ' only'));
      if (r.kind === 'unknown_user') return cb(reply(550, `5.1.1 <${address.address}>: no such mailbox here; send your test mail to check@${domain}`));
      // RFC 5321 §4.5.3.1.8: 452 for recipients beyond our limit; the client sends the rest in another transaction.
      if (session.envelope.rcptTo.length >= maxRecipients) return cb(reply(452, `4.5.3 Too many recipients (at most ${maxRecipients})`));
      const s = state.get(session.id);
      if (s && r.kind === 'check' && r.token && !s.token) s.token = r.token;
      cb();
    },
    onData(stream: SMTPServerDataStream, session: SMTPServerSession, cb) {
      // A capped buffer: bytes beyond maxSize are counted (smtp-server answers 552) but never kept, and all
      // sessions together hold at most memoryBudget bytes (then 452 4.3.1: the sender retries later).
      const chunks: Buffer[] = [];
      let kept = 0;
      let overflow: null | 'size' | 'memory' | 'header' = null;
      let aborted = false;
      let headerChecked = false;
      const release = () => {
        inMemory -= kept;
        kept = 0;
        chunks.length = 0;
      };
      stream.on('data', (chunk: Buffer) => {
        if (overflow) return;
        if (kept + chunk.length > maxSize) overflow = 'size';
        else if (inMemory + chunk.length > memoryBudget) overflow = 'memory';
        if (overflow) {
          release();
          // Over the shared budget mid-DATA: RFC 5321 §3.8 lets a server close with 421 at any time, which
          // saves reading (and dot-unstuffing) the rest of a large message we could not keep anyway.
          if (overflow === 'memory') closeSession(session.id, '421 4.3.1 Insufficient system storage, try again later');
          return;
        }
        chunks.push(chunk);
        kept += chunk.length;
        inMemory += chunk.length;
        // The header section must end within maxHeaderBytes (checked once, when that much has arrived).
        if (!headerChecked && kept > maxHeaderBytes + 4) {
          headerChecked = true;
          if (!headerSection(Buffer.concat(chunks, kept), maxHeaderBytes)) {
            overflow = 'header';
            release();
          }
        }
      });
      // The client left mid-DATA: smtp-server destroys the stream with an error; nothing is stored.
      stream.on('error', () => {
        aborted = true;
        release();
      });
      stream.on('end', () => {
        if (aborted) return release();
        if (overflow === 'size' || stream.sizeExceeded) {
          release();
          return cb(reply(552, `5.3.4 Message exceeds fixed maximum message size ${maxSize}`));
        }
        if (overflow === 'memory') return cb(reply(452, '4.3.1 Insufficient system storage, try again later'));
        if (overflow === 'header') return cb(reply(552, `5.3.4 Header section exceeds ${maxHeaderBytes} bytes`));
        const held = kept;
        const raw = Buffer.concat(chunks, kept);
        chunks.length = 0;
        const from = fromField(headerSection(raw, maxHeaderBytes) ?? Buffer.alloc(0));
        if (from !== null && from.length > MAX_FROM_FIELD_BYTES) {
          inMemory -= held;
          return cb(reply(552, `5.6.0 From: header field longer than ${MAX_FROM_FIELD_BYTES} bytes`));
        }
        const mailFromAddr = session.envelope.mailFrom ? session.envelope.mailFrom.address || null : null;
        const headerFrom = headerFromAddress(raw, maxHeaderBytes);
        const recipients = session.envelope.rcptTo.map((r) => r.address);
        const isTest = recipients.some((a) => classifyRecipient(a, domain).kind === 'check');
        const mail: NewTestMail = {
          receivedAt: opts.clock ? new Date(opts.clock) : new Date(),
          clientIp: normalizeIp(session.remoteAddress),
          helo: session.hostNameAppearsAs || null,
          mailFrom: mailFromAddr,
          rcptTo: recipients,
          token: state.get(session.id)?.token ?? null,
          // The diagnosed domain: the MAIL FROM domain, or the From: domain for a null reverse-path (a bounce).
          // Mail only to postmaster is stored but not diagnosed.
          domain: isTest ? domainOfAddress(mailFromAddr) ?? domainOfAddress(headerFrom) : null,
          headerFrom,
          tls: {
            used: !!session.secure,
            offered: true,
            protocol: session.secure && session.tlsOptions ? (session.tlsOptions as { version?: string }).version ?? null : null,
            cipher: session.secure && session.tlsOptions ? session.tlsOptions.name ?? null : null,
          },
          raw,
          resultMail: opts.resultMail === false ? { status: 'disabled', to: mailFromAddr, at: new Date().toISOString(), detail: 'receive --no-result-mail' } : null,
        };
        // At most a few inserts at once: each holds the message again in the driver's encoding (hex, twice its
        // size), so the number of them bounds the memory beyond the budget; the rest wait their turn.
        // While its insert runs, a mail costs about three times its size (the bytes, the driver's hex string and
        // the wire buffer): that is charged to the budget too, so the budget bounds what the inserts hold.
        const p = storeSlot(async () => {
          inMemory += 2 * held;
          try {
            return await insertTestMail(opts.db, mail, storeTimeoutMs);
          } finally {
            inMemory -= 2 * held;
          }
        }).then(
          (id) => {
            log.info({ testMailId: id, ip: mail.clientIp, from: mail.mailFrom, domain: mail.domain, size: raw.length }, 'test mail stored');
            cb(null, `2.0.0 Ok: stored as test mail ${id}`);
            if (mail.domain) void enqueueLogged(id);
          },
          (err) => {
            log.error({ ip: mail.clientIp, err: (err as Error).message }, 'cannot store test mail');
            // RFC 3463 4.3.0: a temporary system problem; the sender keeps the mail and retries.
            const why = err instanceof StoreTimeoutError ? 'storage is slow' : 'storage is unavailable';
            cb(reply(451, `4.3.0 Temporary failure (${why}), please try again later`));
          },
        );
        pendingStores.add(p);
        void p.finally(() => {
          pendingStores.delete(p);
          inMemory -= held;
        });
      });
    },
  });
  server.on('error', (err) => log.error({ err: err.message }, 'receiver error'));
  // A total deadline per session, on top of smtp-server's idle timeout: a client dripping one byte every few
  // minutes would otherwise hold a session (and its buffer) for ever.
  const live = new Set<import('node:net').Socket>();
  server.server.on('connection', (socket: import('node:net').Socket) => {
    live.add(socket);
    const timer = setTimeout(() => {
      log.warn({ ip: socket.remoteAddress }, 'session deadline reached: closing');
      socket.destroy();
    }, sessionTimeoutMs);
    timer.unref();
    socket.once('close', () => {
      clearTimeout(timer);
      live.delete(socket);
    });
  });

  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.server.once('error', onError);
    server.listen(opts.port ?? 25, host, () => {
      server.server.off('error', onError);
      resolve();
    });
  });
  const address = server.server.address();
  const port = typeof address === 'object' && address ? address.port : (opts.port ?? 25);

  let sweeping = false;
  const sweep = async (): Promise<number> => {
    if (sweeping) return 0;
    sweeping = true;
    try {
      const days = opts.rawRetentionDays ?? 30;
      if (days > 0) {
        const pruned = await pruneRawMails(opts.db, new Date(Date.now() - days * 86_400_000));
        if (pruned > 0) log.info({ pruned, days }, 'raw bytes of old test mails pruned (retention)');
      }
      const ids = await listUndiagnosedTestMails(opts.db);
      let n = 0;
      for (const id of ids) {
        try {
          await enqueue(id);
          n++;
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'sweeper cannot enqueue; will retry');
          break;
        }
      }
      return n;
    } finally {
      sweeping = false;
    }
  };
  const sweepMs = opts.sweepIntervalMs ?? 60_000;
  let sweepTimer: NodeJS.Timeout | undefined;
  if (sweepMs > 0) {
    void sweep().catch((err) => log.warn({ err: (err as Error).message }, 'sweep failed'));
    sweepTimer = setInterval(() => void sweep().catch((err) => log.warn({ err: (err as Error).message }, 'sweep failed')), sweepMs);
    sweepTimer.unref();
  }

  return {
    host,
    port,
    sweep,
    async close() {
      clearInterval(sweepTimer);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.allSettled([...pendingStores]);
    },
  };
}
