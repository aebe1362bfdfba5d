// The lab's SMTP hosts: every host of the world whose behaviour is not `refuse` listens on its own 127.x.y.z
// address at the lab SMTP port and answers as a Postfix server configured per LAB-WORLD.md would. The
// protocol is implemented here on raw sockets (a small line-based state machine) so that every reply, delay
// and failure is under the world's control, and every command line received is logged: tests prove from the
// log that a probe never sent DATA, and count connections per IP.
//
// Scale: one net.Server per IP (a socket can listen on one address only, and we never listen beyond
// loopback), all sharing one connection handler that dispatches on socket.localAddress. Each listener costs a
// file descriptor, so the number of listening hosts is bounded by `ulimit -n` minus a reserve for sessions;
// a bigger world fails at start with a message naming both numbers.
import net from 'node:net';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import { domainToASCII } from 'node:url';
import { openFileLimit } from '../lib/concurrency.ts';
import type { LabCa } from './ca.ts';
import type { LabHost, LabWorld } from './model.ts';
import { closeServer, listenOn } from './listen.ts';

export interface SmtpLogEntry {
  /** The lab host's address (the server side of the connection). */
  ip: string;
  /** ISO time. */
  at: string;
  event: 'connect' | 'command' | 'close';
  /** The command line as received (command), or why the session ended (close). */
  line?: string;
  /** The client's address. */
  remoteIp?: string;
}

/** A message accepted for at least one local recipient, kept in memory (see MESSAGE_STORE_LIMIT). */
export interface LabMessage {
  ip: string;
  hostId: string;
  at: string;
  remoteIp: string;
  helo: string | null;
  tls: boolean;
  mailFrom: string;
  /** Local recipients only (relayed ones are accepted and dropped). */
  rcptTo: string[];
  /** The message as received, dot-unstuffed, CRLF line ends, truncated to MESSAGE_SIZE_LIMIT. */
  data: string;
}

export interface SmtpHosts {
  port: number;
  /** The log of one host (by IP), or of every host in arrival order. */
  log(ip?: string): SmtpLogEntry[];
  /** TCP connections accepted so far at this IP. */
  connections(ip: string): number;
  /** Messages accepted for local recipients, oldest first. */
  messages?(): LabMessage[];
  stop(): Promise<void>;
}

export interface SmtpHostsOptions {
  /** The lab SMTP port on every host IP; 0 picks a free port on the first host and uses it for all. */
  port: number;
  ca: LabCa;
  /** Delay before every reply (a multi-line reply counts once, as it travels in one segment). */
  smtpRttMs: number;
  onLog?: (e: SmtpLogEntry) => void;
  /** A session with no input for this long gets `421 4.4.2` and is closed. @defaultValue 60000 */
  idleTimeoutMs?: number;
  /** Concurrent sessions over all hosts; beyond it a client gets `421 4.7.0`. @defaultValue 1000 */
  maxSessions?: number;
  /** Concurrent sessions per host IP (Postfix smtpd_client_connection_count_limit). @defaultValue 50 */
  maxSessionsPerHost?: number;
  /**
   * Serve only every `count`-th listening host, starting at `index` (in world order): a world with more hosts
   * than one process can listen on is served by `count` processes (lab/index.ts, lab/smtp-shard.ts).
   * @defaultValue all hosts
   */
  shard?: { index: number; count: number };
}

/** Postfix's default message_size_limit, advertised in EHLO SIZE (RFC 1870). */
const SIZE_LIMIT = 10_240_000;
/** Stored bytes per message; the rest is dropped (the lab is for checking, not for archiving mail). */
export const MESSAGE_SIZE_LIMIT = 1_000_000;
/** Stored messages over all hosts; older ones are dropped first. */
export const MESSAGE_STORE_LIMIT = 10_000;
/** Log entries kept; beyond this the log stops growing and `log()` ends with a note (never silently). */
const LOG_LIMIT = 2_000_000;
/** Postfix line_length_limit: a longer command line is refused. */
const LINE_LIMIT = 2048;
/** Bytes buffered while waiting for the end of one line (commands or message content). */
const BUFFER_LIMIT = 1_000_000;
/** File descriptors kept free for sessions, DNS, logs and the process itself. */
const FD_RESERVE = 1500;

function plainIp(address: string | undefined): string {
  if (address === undefined) return '';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

function isLoopbackV4(ip: string): boolean {
  return net.isIPv4(ip) && ip.startsWith('127.');
}

/** How many hosts can listen at once under the current `ulimit -n`. */
export function listeningHostBudget(): number {
  const limit = openFileLimit();
  return limit === null ? Number.MAX_SAFE_INTEGER : Math.max(0, limit - FD_RESERVE);
}

/** Parses `MAIL FROM:<a> params` / `RCPT TO:<a> params` (RFC 5321 §4.1.1.2-3); null on bad syntax. */
function parsePath(arg: string, keyword: 'FROM' | 'TO'): { address: string; params: string } | null {
  const m = new RegExp(`^${keyword}:\\s*<([^<>\\s]*)>(?:\\s+(.*))?$`, 'i').exec(arg);
  if (m === null) return null;
  return { address: m[1]!, params: m[2] ?? '' };
}

/** The A-label, lower-case domain of an address; '' when it has none (`<postmaster>`). */
function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0) return '';
  const domain = address.slice(at + 1).replace(/\.$/, '').toLowerCase();
  return domainToASCII(domain) || domain;
}

interface SharedState {
  world: LabWorld;
  opts: Required<Omit<SmtpHostsOptions, 'onLog' | 'shard'>> & Pick<SmtpHostsOptions, 'onLog'>;
  byIp: Map<string, LabHost>;
  /** Domains whose MX list contains the host: recipients there are local. */
  localDomains: Map<string, Set<string>>;
  logAll: SmtpLogEntry[];
  logByIp: Map<string, SmtpLogEntry[]>;
  logDropped: number;
  connectionCount: Map<string, number>;
  activeByIp: Map<string, number>;
  sessions: Set<net.Socket>;
  contexts: Map<string, tls.SecureContext>;
  messages: LabMessage[];
  stopping: boolean;
}

function record(state: SharedState, entry: SmtpLogEntry): void {
  if (state.logAll.length >= LOG_LIMIT) {
    state.logDropped++;
  } else {
    state.logAll.push(entry);
    let list = state.logByIp.get(entry.ip);
    if (list === undefined) {
      list = [];
      state.logByIp.set(entry.ip, list);
    }
    list.push(entry);
  }
  state.opts.onLog?.(entry);
}

function secureContextFor(state: SharedState, host: LabHost): tls.SecureContext {
  let ctx = state.contexts.get(host.id);
  if (ctx === undefined) {
    const { certPem, keyPem } = state.opts.ca.certFor(host);
    ctx = tls.createSecureContext({ cert: certPem, key: keyPem, minVersion: host.smtp.tls.minVersion });
    state.contexts.set(host.id, ctx);
  }
  return ctx;
}

/** One SMTP session: the state machine of RFC 5321 §4.1.4 with Postfix's reply texts. */
class Session {
  private socket: net.Socket;
  private readonly raw: net.Socket;
  private buffer = '';
  private overflow = false;
  private queue: string[] = [];
  private running = false;
  /** Commands are answered only after the greeting; earlier ones wait in the queue. */
  private ready = false;
  private closed = false;
  private helo: string | null = null;
  private esmtp = false;
  private tls = false;
  private mailFrom: string | null = null;
  private rcpts: { address: string; local: boolean }[] = [];
  private inData = false;
  private dataParts: string[] = [];
  private dataSize = 0;
  private readonly onData = (chunk: Buffer) => this.receive(chunk);
  /** The one pending delay (greeting delay or reply latency); cleared, and its waiter released, at close. */
  private timer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;

  constructor(
    private readonly state: SharedState,
    private readonly host: LabHost,
    socket: net.Socket,
    private readonly ip: string,
    private readonly remoteIp: string,
  ) {
    this.socket = socket;
    this.raw = socket;
  }

  start(): void {
    const { host, raw } = this;
    raw.setTimeout(this.state.opts.idleTimeoutMs, () => this.timeout());
    raw.on('data', this.onData);
    raw.on('error', () => this.end('socket error'));
    raw.on('close', () => this.end('closed by client'));
    if (host.smtp.behavior === 'silent') return; // Accepts TCP, never greets: the client's banner timeout decides.
    void this.greet();
  }

  private async greet(): Promise<void> {
    const { smtp } = this.host;
    // A postscreen-like or tarpit delay: a timer of this session, gone when the client goes or the lab stops.
    if (smtp.behavior === 'slow' && smtp.bannerDelayMs > 0) await this.wait(smtp.bannerDelayMs);
    if (this.closed) return;
    if (smtp.behavior === 'tempfail') {
      // RFC 5321 §3.1: a server may answer 421 instead of 220 and close.
      await this.reply(['421 4.3.2 Service not available']);
      this.close('tempfail greeting');
      return;
    }
    await this.reply([`220 ${this.host.name} ESMTP`]);
    this.ready = true;
    this.pump();
  }

  private timeout(): void {
    if (this.closed) return;
    if (this.host.smtp.behavior !== 'silent') {
      this.socket.write(`421 4.4.2 ${this.host.name} Error: timeout exceeded\r\n`);
    }
    this.close('idle timeout');
  }

  private receive(chunk: Buffer): void {
    if (this.closed) return;
    // latin1 keeps every byte as one char, so sizes are octets and 8BITMIME/SMTPUTF8 bytes survive intact.
    this.buffer += chunk.toString('latin1');
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      let line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (this.overflow) {
        this.overflow = false;
        this.queue.push('\0overflow');
      } else {
        this.queue.push(line);
      }
    }
    // A line without end is dropped past BUFFER_LIMIT (memory bound); the command, or data line, it was
    // becomes one overflow marker.
    if (this.buffer.length > BUFFER_LIMIT) {
      this.overflow = true;
      this.buffer = '';
    }
    this.pump();
  }

  /** Handles queued lines one at a time (pipelined commands, RFC 2920, are answered in order). */
  private pump(): void {
    if (this.running || this.closed) return;
    // A silent host logs what it receives and never answers.
    if (this.host.smtp.behavior === 'silent') {
      for (const line of this.queue.splice(0)) this.log('command', line);
      return;
    }
    if (!this.ready) return;
    this.running = true;
    void (async () => {
      try {
        while (this.queue.length > 0 && !this.closed) {
          const line = this.queue.shift()!;
          if (!this.inData) await this.command(line);
          else if (this.dataLine(line)) await this.endData();
        }
      } finally {
        this.running = false;
      }
    })();
  }

  private log(event: SmtpLogEntry['event'], line?: string): void {
    const entry: SmtpLogEntry = { ip: this.ip, at: new Date().toISOString(), event, remoteIp: this.remoteIp };
    if (line !== undefined) entry.line = line;
    record(this.state, entry);
  }

  /** Waits `ms` unless the session closes first (then it resolves at once; callers check `closed`). */
  private wait(ms: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(() => {
        this.timer = null;
        this.wake = null;
        resolve();
      }, ms);
    });
  }

  private async reply(lines: string[]): Promise<void> {
    // The host's own round-trip time (extension `latency.smtpRttMs`), else the world's.
    const rtt = this.host.latency?.smtpRttMs ?? this.state.opts.smtpRttMs;
    if (rtt > 0) await this.wait(rtt);
    if (this.closed || this.socket.destroyed) return;
    this.socket.write(lines.join('\r\n') + '\r\n');
  }

  private resetTransaction(): void {
    this.mailFrom = null;
    this.rcpts = [];
    this.dataParts = [];
    this.dataSize = 0;
  }

  private isLocal(address: string): boolean {
    const domain = domainOf(address);
    // RFC 5321 §4.5.1: every server accepts `postmaster` without a domain; its own name is local too.
    if (domain === '') return address.toLowerCase() === 'postmaster';
    if (domain === this.host.name.toLowerCase()) return true;
    return this.state.localDomains.get(this.host.id)?.has(domain) ?? false;
  }

  private relayDenied(address: string): string {
    const { relayDenyCode, starttls } = this.host.smtp;
    switch (relayDenyCode) {
      case 530:
        // Postfix with smtpd_tls_security_level=encrypt; after TLS (or without it) the client still has to
        // authenticate before relaying.
        return starttls && !this.tls
          ? '530 5.7.0 Must issue a STARTTLS command first'
          : '530 5.7.0 Authentication required';
      case 554:
        return `554 5.7.1 <${address}>: Relay access denied`;
      default:
        return `550 5.7.1 <${address}>: Relay access denied`;
    }
  }

  private async command(line: string): Promise<void> {
    if (line === '\0overflow' || line.length > LINE_LIMIT) {
      this.log('command', `[line of more than ${LINE_LIMIT} octets] ${line.slice(0, 64)}`);
      await this.reply(['500 5.5.0 Error: line too long']);
      return;
    }
    this.log('command', line);
    const m = /^(\S+)(?:\s+(.*))?$/.exec(line.trim());
    const verb = (m?.[1] ?? '').toUpperCase();
    const arg = (m?.[2] ?? '').trim();
    const name = this.host.name;
    switch (verb) {
      case 'EHLO':
      case 'HELO': {
        if (arg === '') {
          await this.reply([`501 Syntax: ${verb} hostname`]);
          return;
        }
        this.resetTransaction();
        this.helo = arg;
        this.esmtp = verb === 'EHLO';
        if (verb === 'HELO') {
          await this.reply([`250 ${name}`]);
          return;
        }
        const ext = ['PIPELINING', `SIZE ${SIZE_LIMIT}`, 'VRFY', 'ETRN'];
        // RFC 3207 §4.2: STARTTLS is not offered again once TLS is active.
        if (this.host.smtp.starttls && !this.tls) ext.push('STARTTLS');
        ext.push('ENHANCEDSTATUSCODES', '8BITMIME', 'DSN', 'SMTPUTF8');
        const lines = [name, ...ext].map((text, i, all) => `250${i === all.length - 1 ? ' ' : '-'}${text}`);
        await this.reply(lines);
        return;
      }
      case 'STARTTLS': {
        if (!this.host.smtp.starttls) {
          await this.reply(['502 5.5.1 Error: command not implemented']);
          return;
        }
        if (this.tls) {
          await this.reply(['554 5.5.1 Error: TLS already active']);
          return;
        }
        if (arg !== '') {
          await this.reply(['501 5.5.4 Syntax: STARTTLS']);
          return;
        }
        await this.reply(['220 2.0.0 Ready to start TLS']);
        this.upgrade();
        return;
      }
      case 'MAIL': {
        if (this.helo === null) {
          await this.reply(['503 5.5.1 Error: send HELO/EHLO first']);
          return;
        }
        if (this.mailFrom !== null) {
          await this.reply(['503 5.5.1 Error: nested MAIL command']);
          return;
        }
        const path = parsePath(arg, 'FROM');
        if (path === null) {
          await this.reply(['501 5.5.4 Syntax: MAIL FROM:<address>']);
          return;
        }
        const size = /(?:^|\s)SIZE=(\d+)/i.exec(path.params);
        if (size !== null && Number(size[1]) > SIZE_LIMIT) {
          await this.reply(['552 5.3.4 Message size exceeds fixed limit']);
          return;
        }
        this.mailFrom = path.address;
        await this.reply(['250 2.1.0 Ok']);
        return;
      }
      case 'RCPT': {
        if (this.mailFrom === null) {
          await this.reply(['503 5.5.1 Error: need MAIL command']);
          return;
        }
        const path = parsePath(arg, 'TO');
        if (path === null || path.address === '') {
          await this.reply(['501 5.5.4 Syntax: RCPT TO:<address>']);
          return;
        }
        if (this.host.smtp.behavior === 'greylist') {
          // postgrey's reply: a temporary failure for every first-seen triplet.
          await this.reply([`450 4.2.0 <${path.address}>: Recipient address rejected: Greylisted`]);
          return;
        }
        const local = this.isLocal(path.address);
        if (!local && !this.host.smtp.openRelay) {
          await this.reply([this.relayDenied(path.address)]);
          return;
        }
        this.rcpts.push({ address: path.address, local });
        await this.reply(['250 2.1.5 Ok']);
        return;
      }
      case 'DATA': {
        if (arg !== '') {
          await this.reply(['501 5.5.4 Syntax: DATA']);
          return;
        }
        if (this.mailFrom === null || this.rcpts.length === 0) {
          await this.reply(['503 5.5.1 Error: need RCPT command']);
          return;
        }
        this.inData = true;
        this.dataParts = [];
        this.dataSize = 0;
        await this.reply(['354 End data with <CR><LF>.<CR><LF>']);
        return;
      }
      case 'RSET':
        this.resetTransaction();
        await this.reply(['250 2.0.0 Ok']);
        return;
      case 'NOOP':
        await this.reply(['250 2.0.0 Ok']);
        return;
      case 'VRFY':
        if (arg === '') await this.reply(['501 5.5.4 Syntax: VRFY address']);
        else await this.reply([`252 2.0.0 ${arg}`]);
        return;
      case 'QUIT':
        await this.reply(['221 2.0.0 Bye']);
        this.close('quit');
        return;
      default:
        await this.reply(['502 5.5.2 Error: command not recognized']);
    }
  }

  /**
   * A line of message content (RFC 5321 §4.1.1.4): leading dots are unstuffed; returns true at the lone '.'
   * that ends it.
   */
  private dataLine(line: string): boolean {
    if (line === '.') {
      this.inData = false;
      return true;
    }
    if (line === '\0overflow') line = '';
    const text = line.startsWith('.') ? line.slice(1) : line;
    this.dataSize += text.length + 2;
    if (this.dataSize <= MESSAGE_SIZE_LIMIT) this.dataParts.push(text);
    return false;
  }

  private async endData(): Promise<void> {
    try {
      if (this.dataSize > SIZE_LIMIT) {
        await this.reply(['552 5.3.4 Message size exceeds fixed limit']);
      } else {
        const locals = this.rcpts.filter((r) => r.local).map((r) => r.address);
        if (locals.length > 0) {
          const store = this.state.messages;
          if (store.length >= MESSAGE_STORE_LIMIT) store.shift();
          store.push({
            ip: this.ip,
            hostId: this.host.id,
            at: new Date().toISOString(),
            remoteIp: this.remoteIp,
            helo: this.helo,
            tls: this.tls,
            mailFrom: this.mailFrom ?? '',
            rcptTo: locals,
            data: this.dataParts.join('\r\n') + '\r\n',
          });
        }
        const queueId = randomBytes(5).toString('hex').toUpperCase();
        await this.reply([`250 2.0.0 Ok: queued as ${queueId}`]);
      }
    } finally {
      this.resetTransaction();
    }
  }

  /** RFC 3207 §4.2: after `220 Ready`, the TLS handshake; the SMTP session then starts over without state. */
  private upgrade(): void {
    // RFC 3207 §6 (and CVE-2011-0411): commands pipelined after STARTTLS in clear text are discarded. They
    // were received, so they are logged, marked, since nothing acted on them.
    for (const line of this.queue) this.log('command', `[discarded after STARTTLS] ${line}`);
    this.queue = [];
    this.buffer = '';
    this.raw.removeListener('data', this.onData);
    let context: tls.SecureContext;
    try {
      context = secureContextFor(this.state, this.host);
    } catch (err) {
      this.close(`tls setup failed: ${(err as Error).message}`);
      return;
    }
    const secure = new tls.TLSSocket(this.raw, { isServer: true, secureContext: context });
    this.socket = secure;
    secure.on('secure', () => {
      this.tls = true;
      this.helo = null;
      this.esmtp = false;
      this.resetTransaction();
      this.log('command', `[tls established ${secure.getProtocol() ?? ''}]`);
    });
    secure.on('data', this.onData);
    secure.on('error', (err: Error) => this.close(`tls error: ${err.message}`));
    secure.on('close', () => this.end('closed by client'));
  }

  close(reason: string): void {
    if (this.closed) return;
    this.end(reason);
    this.socket.end();
    this.socket.destroySoon?.();
    setTimeout(() => this.raw.destroy(), 1000).unref();
  }

  private end(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.wake?.();
    this.wake = null;
    this.log('close', reason);
    this.state.sessions.delete(this.raw);
    this.state.activeByIp.set(this.ip, (this.state.activeByIp.get(this.ip) ?? 1) - 1);
  }
}

export async function startSmtpHosts(
  world: LabWorld,
  opts: { port: number; ca: LabCa; smtpRttMs: number; onLog?: (e: SmtpLogEntry) => void } & Partial<SmtpHostsOptions>,
): Promise<SmtpHosts> {
  const shard = opts.shard ?? { index: 0, count: 1 };
  const listening = [...world.hosts.values()]
    .filter((h) => h.smtp.behavior !== 'refuse')
    .filter((_, i) => i % shard.count === shard.index);
  for (const h of listening) {
    // Never listen beyond loopback: the lab must not be reachable from the network.
    if (!isLoopbackV4(h.ip)) throw new Error(`lab SMTP: host ${h.id} has address ${h.ip}, outside 127.0.0.0/8`);
  }
  const budget = listeningHostBudget();
  if (listening.length > budget) {
    throw new Error(
      `lab SMTP: the world has ${listening.length} listening hosts but only ${budget} can listen ` +
        `(ulimit -n ${openFileLimit()} minus ${FD_RESERVE} kept for sessions); raise ulimit -n or use a smaller world`,
    );
  }

  const state: SharedState = {
    world,
    opts: {
      port: opts.port,
      ca: opts.ca,
      smtpRttMs: opts.smtpRttMs,
      onLog: opts.onLog,
      idleTimeoutMs: opts.idleTimeoutMs ?? 60_000,
      maxSessions: opts.maxSessions ?? 1000,
      maxSessionsPerHost: opts.maxSessionsPerHost ?? 50,
    },
    byIp: new Map(listening.map((h) => [h.ip, h])),
    localDomains: new Map(),
    logAll: [],
    logByIp: new Map(),
    logDropped: 0,
    connectionCount: new Map(),
    activeByIp: new Map(),
    sessions: new Set(),
    contexts: new Map(),
    messages: [],
    stopping: false,
  };
  for (const d of world.domains) {
    if (d.mx === 'null') continue;
    for (const id of d.mx) {
      let set = state.localDomains.get(id);
      if (set === undefined) {
        set = new Set();
        state.localDomains.set(id, set);
      }
      set.add(d.name.toLowerCase());
    }
  }
  // Several addresses of one MX name (several A records) are hosts of their own with that name, only the
  // first in the domains' MX lists: each of them takes the name's mail.
  const byName = new Map<string, Set<string>>();
  for (const [id, set] of state.localDomains) {
    const h = world.hosts.get(id);
    if (h !== undefined && !byName.has(h.name)) byName.set(h.name, set);
  }
  for (const h of listening) {
    const set = byName.get(h.name);
    if (set !== undefined && !state.localDomains.has(h.id)) state.localDomains.set(h.id, set);
  }

  // The one handler of every listener: the host is the address the client connected to.
  const onConnection = (socket: net.Socket) => {
    const ip = plainIp(socket.localAddress);
    const remoteIp = plainIp(socket.remoteAddress);
    const host = state.byIp.get(ip);
    socket.on('error', () => {});
    if (host === undefined || state.stopping) {
      socket.destroy();
      return;
    }
    state.connectionCount.set(ip, (state.connectionCount.get(ip) ?? 0) + 1);
    record(state, { ip, at: new Date().toISOString(), event: 'connect', remoteIp });
    const active = state.activeByIp.get(ip) ?? 0;
    if (state.sessions.size >= state.opts.maxSessions || active >= state.opts.maxSessionsPerHost) {
      // Postfix's anvil limit reply; the client may retry later.
      socket.end(`421 4.7.0 ${host.name} Error: too many connections from ${remoteIp}\r\n`);
      record(state, { ip, at: new Date().toISOString(), event: 'close', line: 'too many connections', remoteIp });
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    state.activeByIp.set(ip, active + 1);
    state.sessions.add(socket);
    new Session(state, host, socket, ip, remoteIp).start();
  };

  const servers: net.Server[] = [];
  const listen = async (ip: string, port: number): Promise<net.Server> => {
    const server = net.createServer(onConnection);
    try {
      await listenOn(server, { host: ip, port, backlog: 511 });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why =
        err.code === 'EADDRINUSE' ? 'port in use' : err.code === 'EMFILE' ? 'too many open files (ulimit -n)' : err.message;
      throw new Error(`lab SMTP: cannot listen on ${ip}:${port}: ${why}`);
    }
    server.on('error', () => {});
    return server;
  };

  let port = opts.port;
  try {
    if (listening.length > 0 && port === 0) {
      const first = await listen(listening[0]!.ip, 0);
      servers.push(first);
      port = (first.address() as net.AddressInfo).port;
    }
    const rest = servers.length > 0 ? listening.slice(1) : listening;
    // Bounded parallelism: thousands of listen() calls at once would only queue in libuv.
    const BATCH = 256;
    for (let i = 0; i < rest.length; i += BATCH) {
      const batch = await Promise.allSettled(rest.slice(i, i + BATCH).map((h) => listen(h.ip, port)));
      for (const r of batch) if (r.status === 'fulfilled') servers.push(r.value);
      const failed = batch.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
    }
  } catch (err) {
    await Promise.all(servers.map(closeServer));
    throw err;
  }

  return {
    port,
    log(ip?: string) {
      const list = ip === undefined ? state.logAll : state.logByIp.get(ip) ?? [];
      return [...list];
    },
    connections(ip: string) {
      return state.connectionCount.get(ip) ?? 0;
    },
    messages() {
      return [...state.messages];
    },
    async stop() {
      state.stopping = true;
      const closing = servers.map(closeServer);
      for (const socket of state.sessions) socket.destroy();
      state.sessions.clear();
      await Promise.all(closing);
    },
  };
}
