// The wire: connecting with a timeout, reading SMTP replies with byte/line/reply caps, writing commands (never
// DATA or BDAT), and the transcript of everything said.
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { SmtpReply, TranscriptEntry } from './types.ts';

export type ConnectFn = (opts: { host: string; port: number }) => net.Socket;

/** A failure of the session that the observation records (never thrown out of probeSmtp). */
export class ProbeError extends Error {
  constructor(readonly reason: string, message?: string) {
    super(message ?? reason);
  }
}

export function reasonOfSocketError(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED': return 'connection_refused';
    case 'ECONNRESET': case 'EPIPE': return 'connection_reset';
    case 'ETIMEDOUT': return 'connect_timeout';
    case 'EHOSTUNREACH': case 'ENETUNREACH': case 'EHOSTDOWN': case 'ENETDOWN': return 'host_unreachable';
    case 'EADDRNOTAVAIL': return 'address_not_available';
    case 'EOUTBOUNDREFUSED': return 'forbidden_address';
    default: return 'network_error';
  }
}

const TRANSCRIPT_LINE_MAX = 512;

/**
 * The transcript of one session, bounded in entries and in characters: a worker holds thousands of sessions at
 * once (issue 18), and a chatty server must not make each one cost up to `max` × 512 characters. A complete
 * session (EHLO twice, STARTTLS, five relay attempts) is about 50 entries and 3,000 characters.
 */
export class Recorder {
  readonly entries: TranscriptEntry[] = [];
  truncated = false;
  private chars = 0;
  private readonly t0 = performance.now();
  constructor(private readonly max: number, private readonly maxChars = Number.POSITIVE_INFINITY) {}
  elapsed(): number {
    return Math.round(performance.now() - this.t0);
  }
  add(dir: TranscriptEntry['dir'], line: string): void {
    if (this.entries.length >= this.max || this.chars >= this.maxChars) {
      this.truncated = true;
      return;
    }
    let text = line;
    const room = Math.min(TRANSCRIPT_LINE_MAX, this.maxChars - this.chars);
    if (text.length > room) {
      text = `${text.slice(0, room)}…`;
      this.truncated = true;
    }
    this.chars += text.length;
    this.entries.push({ t: this.elapsed(), dir, line: text });
  }
}

export interface Limits {
  maxLineBytes: number;
  maxReplyLines: number;
  maxSessionBytes: number;
}

/** Reads SMTP replies (RFC 5321 §4.2: `ddd-text` continuation lines, `ddd text` last line) with byte caps. */
export class ReplyReader {
  private buf = '';
  private lines: string[] = [];
  private total = 0;
  private failure: ProbeError | null = null;
  private waiter: (() => void) | null = null;
  private socket: net.Socket | null = null;
  private readonly onData = (chunk: Buffer) => this.feed(chunk);
  private readonly onError = (err: NodeJS.ErrnoException) => this.fail(new ProbeError(reasonOfSocketError(err), err.message));
  private readonly onClose = () => this.fail(new ProbeError('connection_closed'));

  constructor(private readonly limits: Limits, private readonly rec: Recorder) {}

  attach(socket: net.Socket): void {
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  /** Stops reading from the socket; returns what was buffered and not yet consumed. */
  detach(): string {
    if (this.socket) {
      this.socket.off('data', this.onData);
      this.socket.off('error', this.onError);
      this.socket.off('close', this.onClose);
      this.socket = null;
    }
    const left = [...this.lines, this.buf].filter(Boolean).join('\n');
    this.lines = [];
    this.buf = '';
    return left;
  }

  private feed(chunk: Buffer): void {
    if (this.failure) return;
    this.total += chunk.length;
    if (this.total > this.limits.maxSessionBytes) {
      this.fail(new ProbeError('too_much_data'));
      return;
    }
    // latin1 keeps one char per byte, so the caps count bytes; lines are re-decoded as UTF-8 below.
    this.buf += chunk.toString('latin1');
    let i: number;
    while ((i = this.buf.indexOf('\n')) >= 0) {
      const raw = this.buf.slice(0, i).replace(/\r$/, '');
      this.buf = this.buf.slice(i + 1);
      if (raw.length > this.limits.maxLineBytes) {
        this.fail(new ProbeError('reply_line_too_long'));
        return;
      }
      this.lines.push(Buffer.from(raw, 'latin1').toString('utf8'));
    }
    if (this.buf.length > this.limits.maxLineBytes) {
      this.fail(new ProbeError('reply_line_too_long'));
      return;
    }
    this.wake();
  }

  private fail(err: ProbeError): void {
    if (!this.failure) this.failure = err;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** The next complete reply, or a ProbeError (`timeout`, `connection_closed`, `bad_reply`, …). */
  async read(timeoutMs: number, timeoutReason = 'timeout'): Promise<SmtpReply> {
    const deadline = performance.now() + timeoutMs;
    const reply: SmtpReply = { code: 0, lines: [] };
    for (;;) {
      while (this.lines.length > 0) {
        const line = this.lines.shift()!;
        this.rec.add('S', line);
        const m = /^(\d{3})(?:([ -])(.*))?$/.exec(line);
        if (!m || (reply.code !== 0 && Number(m[1]) !== reply.code)) throw new ProbeError('bad_reply', line.slice(0, 80));
        reply.code = Number(m[1]);
        reply.lines.push(m[3] ?? '');
        if (reply.lines.length > this.limits.maxReplyLines) throw new ProbeError('reply_too_long');
        if (m[2] !== '-') return reply;
      }
      if (this.failure) throw this.failure;
      const left = deadline - performance.now();
      if (left <= 0) throw new ProbeError(timeoutReason);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.waiter = null;
          resolve();
        }, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}

/** Commands a probe must never send: DATA/BDAT would start delivering a message (RFC 5321 §4.1.1.4, RFC 3030). */
const FORBIDDEN_COMMAND = /^\s*(DATA|BDAT)\b/i;

export class SmtpWire {
  socket: net.Socket;
  readonly reader: ReplyReader;
  constructor(socket: net.Socket, private readonly rec: Recorder, limits: Limits, private readonly commandTimeoutMs: number) {
    this.socket = socket;
    this.reader = new ReplyReader(limits, rec);
    this.reader.attach(socket);
  }

  /** Sends one command line and reads its reply. Refuses DATA/BDAT and embedded line breaks. */
  async command(line: string, timeoutMs = this.commandTimeoutMs): Promise<SmtpReply> {
    assertSafeCommand(line);
    this.rec.add('C', line);
    if (!this.socket.writable) throw new ProbeError('connection_closed');
    this.socket.write(`${line}\r\n`);
    return this.reader.read(timeoutMs);
  }
}

/** Throws (a programming error, not an observation) for DATA, BDAT, or a line that would smuggle a second command. */
export function assertSafeCommand(line: string): void {
  if (FORBIDDEN_COMMAND.test(line)) throw new Error(`refusing to send "${line.slice(0, 20)}": the probe never sends DATA or BDAT`);
  if (/[\r\n\0]/.test(line)) throw new Error('refusing to send a command containing CR, LF or NUL');
}

export function connectWithTimeout(connect: ConnectFn, host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    let socket: net.Socket;
    try {
      socket = connect({ host, port });
    } catch (err) {
      reject(new ProbeError(reasonOfSocketError(err as NodeJS.ErrnoException), (err as Error).message));
      return;
    }
    // Errors after the session is over (a late RST) must not crash the process: readers report the live ones.
    socket.on('error', () => {});
    awaitSocketEvent(socket, 'connect', timeoutMs, {
      timeout: () => new ProbeError('connect_timeout'),
      error: (err) => new ProbeError(reasonOfSocketError(err), err.message),
    }).then(() => resolve(socket), reject);
  });
}

/**
 * Waits at most `timeoutMs` for `event` (connect, secureConnect) on a socket. The deadline or an error rejects
 * with what `fail` makes of it and destroys the socket; a close, when `fail.close` is given, rejects too. Every
 * listener and the timer are removed whichever comes first.
 */
export function awaitSocketEvent(
  socket: net.Socket,
  event: 'connect' | 'secureConnect',
  timeoutMs: number,
  fail: { timeout: () => Error; error: (err: NodeJS.ErrnoException) => Error; close?: () => Error },
): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      socket.destroy();
      reject(fail.timeout());
    }, timeoutMs);
    const onEvent = () => {
      cleanup();
      resolve();
    };
    const onError = (err: NodeJS.ErrnoException) => {
      cleanup();
      socket.destroy();
      reject(fail.error(err));
    };
    const onClose = () => {
      cleanup();
      reject(fail.close!());
    };
    function cleanup() {
      clearTimeout(timer);
      socket.off(event, onEvent);
      socket.off('error', onError);
      if (fail.close) socket.off('close', onClose);
    }
    socket.once(event, onEvent);
    socket.once('error', onError);
    if (fail.close) socket.once('close', onClose);
  });
}
