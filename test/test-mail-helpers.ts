// A small SMTP client for the test-mail tests: it speaks raw commands so a test can send what no well-behaved
// client would (10,000 recipients, a half DATA, a 50 MB body) and read every reply code.
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';

export interface Reply {
  code: number;
  lines: string[];
  text: string;
}

export class SmtpDialog {
  private buf = '';
  private waiters: Array<(r: Reply) => void> = [];
  private queue: Reply[] = [];
  private pending: string[] = [];
  closed = false;
  socket: net.Socket | tls.TLSSocket;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.attach(socket);
  }

  private attach(socket: net.Socket | tls.TLSSocket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => this.onData(d));
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w({ code: 0, lines: [], text: '(closed)' });
    });
    socket.on('error', () => {});
  }

  private onData(d: string) {
    this.buf += d;
    let i: number;
    while ((i = this.buf.indexOf('\r\n')) >= 0) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 2);
      this.pending.push(line);
      if (/^\d{3} /.test(line) || /^\d{3}$/.test(line)) {
        const lines = this.pending.splice(0);
        const r = { code: Number(line.slice(0, 3)), lines, text: lines.join('\n') };
        const w = this.waiters.shift();
        if (w) w(r);
        else this.queue.push(r);
      }
    }
  }

  static async connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<SmtpDialog> {
    const socket = net.connect({ port, host, localAddress });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    return new SmtpDialog(socket);
  }

  read(timeoutMs = 20_000): Promise<Reply> {
    const q = this.queue.shift();
    if (q) return Promise.resolve(q);
    if (this.closed) return Promise.resolve({ code: 0, lines: [], text: '(closed)' });
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no SMTP reply within ' + timeoutMs + ' ms')), timeoutMs);
      this.waiters.push((r) => {
        clearTimeout(t);
        resolve(r);
      });
    });
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.write(data)) resolve();
      else this.socket.once('drain', () => resolve());
    });
  }

  async cmd(line: string): Promise<Reply> {
    await this.write(line + '\r\n');
    return this.read();
  }

  async starttls(): Promise<void> {
    const r = await this.cmd('STARTTLS');
    if (r.code !== 220) throw new Error('STARTTLS refused: ' + r.text);
    const plain = this.socket as net.Socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    const secure = tls.connect({ socket: plain, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.socket = secure;
    this.attach(secure);
  }

  destroy() {
    this.socket.destroy();
  }

  async quit() {
    if (!this.closed) {
      await this.cmd('QUIT').catch(() => {});
    }
    this.socket.destroy();
  }
}

/** Sends one complete mail; returns the final reply of DATA (or the first refusal). */
/** The first line of an SMTP server's greeting: reads it, says QUIT and waits for the server to close (10 s at most). */
export function greetingLine(ip: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: ip, port });
    let buf = '';
    let quit = false;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`${ip}: no greeting`));
    }, 10_000);
    s.on('data', (b) => {
      buf += b.toString();
      if (!quit && buf.includes('\r\n')) {
        quit = true;
        s.write('QUIT\r\n');
      }
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.on('close', () => {
      clearTimeout(timer);
      if (quit) resolve(buf.split('\r\n')[0]!);
      else reject(new Error(`${ip}: closed before the greeting`));
    });
  });
}

/**
 * Fills a connection limit: opens `n` sessions, each greeted 220, into `held` (the caller's, so that its
 * `finally` closes them however far this got).
 */
export async function holdGreetedSessions(port: number, n: number, held: SmtpDialog[]): Promise<void> {
  for (let i = 0; i < n; i++) {
    const c = await SmtpDialog.connect(port);
    held.push(c);
    assert.equal((await c.read()).code, 220);
  }
}

/** A session taken up to DATA (354): EHLO `ehlo`, MAIL FROM `from`, RCPT TO `to`; the caller writes the message, or drops it mid-way. */
export async function sessionAtData(port: number, ehlo: string, from: string, to: string): Promise<SmtpDialog> {
  const c = await SmtpDialog.connect(port);
  await c.read();
  await c.cmd(`EHLO ${ehlo}`);
  await c.cmd(`MAIL FROM:<${from}>`);
  await c.cmd(`RCPT TO:<${to}>`);
  assert.equal((await c.cmd('DATA')).code, 354);
  return c;
}

export async function sendMail(
  port: number,
  m: { helo?: string; from: string; to: string[]; data: string | Buffer; tls?: boolean; localAddress?: string },
): Promise<Reply> {
  const c = await SmtpDialog.connect(port, '127.0.0.1', m.localAddress);
  try {
    const greet = await c.read();
    if (greet.code !== 220) return greet;
    await c.cmd(`EHLO ${m.helo ?? 'client.example.test'}`);
    if (m.tls) {
      await c.starttls();
      await c.cmd(`EHLO ${m.helo ?? 'client.example.test'}`);
    }
    const mf = await c.cmd(`MAIL FROM:<${m.from}>`);
    if (mf.code !== 250) return mf;
    for (const to of m.to) {
      const r = await c.cmd(`RCPT TO:<${to}>`);
      if (r.code !== 250) return r;
    }
    const d = await c.cmd('DATA');
    if (d.code !== 354) return d;
    const body = Buffer.isBuffer(m.data) ? m.data : Buffer.from(m.data, 'utf8');
    await c.write(dotStuff(body));
    await c.write('\r\n.\r\n');
    return await c.read();
  } finally {
    await c.quit();
  }
}

/** RFC 5321 §4.5.2 transparency: a line starting with "." gets another. */
export function dotStuff(body: Buffer): Buffer {
  const s = body.toString('latin1').replace(/(^|\r\n)\./g, '$1..');
  const out = Buffer.from(s, 'latin1');
  return out.subarray(out.length - 2).toString() === '\r\n' ? out.subarray(0, out.length - 2) : out;
}
