// The lab's SMTP hosts, proven with independent clients (node:net, node:tls, swaks) against the world
// lab/worlds/test-smtp.json: one host per behaviour and certificate kind.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { loadWorld } from '../lab/world.ts';
import { createLabCa, WRONG_NAME, type LabCa } from '../lab/ca.ts';
import { startSmtpHosts, type SmtpHosts } from '../lab/smtp-server.ts';
import type { LabHost, LabWorld } from '../lab/model.ts';

const WORLD = fileURLToPath(new URL('../lab/worlds/test-smtp.json', import.meta.url));
const execFileP = promisify(execFile);

/** A minimal SMTP client: reads whole replies (RFC 5321 §4.2.1 multi-line form), sends raw lines. */
class Client {
  private buffer = '';
  private waiters: Array<() => void> = [];
  closed = false;
  constructor(public socket: net.Socket | tls.TLSSocket) {
    this.attach(socket);
  }

  private attach(socket: net.Socket | tls.TLSSocket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString('latin1');
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  private wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  static connect(ip: string, port: number): Promise<Client> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: ip, port });
      socket.once('connect', () => resolve(new Client(socket)));
      socket.once('error', reject);
    });
  }

  /** The next complete reply, or null if the server closed first or nothing came within `ms`. */
  async reply(ms = 5000): Promise<string[] | null> {
    const deadline = Date.now() + ms;
    for (;;) {
      const lines = this.buffer.split('\r\n');
      for (let i = 0; i < lines.length - 1; i++) {
        if (/^\d{3} /.test(lines[i]!) || /^\d{3}$/.test(lines[i]!)) {
          const reply = lines.slice(0, i + 1);
          this.buffer = lines.slice(i + 1).join('\r\n');
          return reply;
        }
      }
      if (this.closed || Date.now() >= deadline) return null;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  write(text: string) {
    this.socket.write(text);
  }

  async cmd(line: string): Promise<string[]> {
    this.write(line + '\r\n');
    const r = await this.reply();
    assert.ok(r, `no reply to ${line}`);
    return r;
  }

  /** STARTTLS (already answered 220) then the handshake with the given client options. */
  async handshake(options: tls.ConnectionOptions): Promise<tls.TLSSocket> {
    const raw = this.socket as net.Socket;
    raw.removeAllListeners('data');
    const secure = tls.connect({ socket: raw, ...options });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.socket = secure;
    this.buffer = '';
    this.attach(secure);
    return secure;
  }

  close() {
    this.socket.destroy();
  }
}

const code = (r: string[] | null) => (r === null ? null : Number(r[r.length - 1]!.slice(0, 3)));

describe('lab SMTP hosts', () => {
  let world: LabWorld;
  let ca: LabCa;
  let smtp: SmtpHosts;
  let port: number;
  const clients: Client[] = [];
  const host = (id: string): LabHost => world.hosts.get(id)!;
  const open = async (id: string) => {
    const c = await Client.connect(host(id).ip, port);
    clients.push(c);
    return c;
  };
  /** Connects, reads the greeting, says EHLO. */
  const session = async (id: string) => {
    const c = await open(id);
    assert.equal(code(await c.reply()), 220);
    assert.equal(code(await c.cmd('EHLO probe.example')), 250);
    return c;
  };

  before(async () => {
    world = loadWorld(WORLD);
    ca = await createLabCa();
    smtp = await startSmtpHosts(world, { port: 0, ca, smtpRttMs: 0 });
    port = smtp.port;
  });
  after(async () => {
    for (const c of clients) c.close();
    await smtp.stop();
  });

  test('a normal host greets with 220 <name> ESMTP and lists Postfix extensions in EHLO', async () => {
    const c = await open('normal');
    assert.deepEqual(await c.reply(), ['220 normal.hosts.smtp.test ESMTP']);
    const ehlo = await c.cmd('EHLO probe.example');
    assert.equal(ehlo[0], '250-normal.hosts.smtp.test');
    for (const ext of ['PIPELINING', 'SIZE 10240000', 'STARTTLS', '8BITMIME', 'ENHANCEDSTATUSCODES']) {
      assert.ok(ehlo.some((l) => l.slice(4) === ext), `EHLO lacks ${ext}: ${ehlo.join(' | ')}`);
    }
    assert.match(ehlo[ehlo.length - 1]!, /^250 /);
    assert.deepEqual(await c.cmd('HELO probe.example'), ['250 normal.hosts.smtp.test']);
    assert.deepEqual(await c.cmd('QUIT'), ['221 2.0.0 Bye']);
  });

  test('a host without STARTTLS does not offer it and answers 502 to it', async () => {
    const c = await open('notls');
    await c.reply();
    const ehlo = await c.cmd('EHLO probe.example');
    assert.ok(!ehlo.some((l) => l.includes('STARTTLS')), ehlo.join(' | '));
    assert.equal(code(await c.cmd('STARTTLS')), 502);
  });

  test('a valid certificate chains to the lab CA and names the host; the session resets after STARTTLS', async () => {
    const c = await session('normal');
    assert.equal(code(await c.cmd('MAIL FROM:<a@probe.example>')), 250);
    assert.deepEqual(await c.cmd('STARTTLS'), ['220 2.0.0 Ready to start TLS']);
    const s = await c.handshake({ servername: host('normal').name, ca: [ca.caCertPem], rejectUnauthorized: false });
    assert.equal(s.authorized, true, String(s.authorizationError));
    assert.equal(s.getPeerCertificate().subjectaltname, `DNS:${host('normal').name}`);
    // RFC 3207 §4.2: the client must start over with EHLO; the MAIL before STARTTLS is forgotten.
    assert.equal(code(await c.cmd('MAIL FROM:<a@probe.example>')), 503);
    const ehlo = await c.cmd('EHLO probe.example');
    assert.ok(!ehlo.some((l) => l.includes('STARTTLS')), 'STARTTLS offered again inside TLS');
    assert.equal(code(await c.cmd('STARTTLS')), 554);
  });

  for (const [id, expected] of [
    ['selfsigned', 'DEPTH_ZERO_SELF_SIGNED_CERT'],
    ['expired', 'CERT_HAS_EXPIRED'],
    ['wrongname', 'ERR_TLS_CERT_ALTNAME_INVALID'],
  ] as const) {
    test(`a ${id} certificate fails verification against the lab CA with ${expected}`, async () => {
      const c = await session(id);
      assert.equal(code(await c.cmd('STARTTLS')), 220);
      const s = await c.handshake({ servername: host(id).name, ca: [ca.caCertPem], rejectUnauthorized: false });
      assert.equal(s.authorized, false);
      assert.equal(s.authorizationError, expected);
      if (id === 'wrongname') assert.equal(s.getPeerCertificate().subject.CN, WRONG_NAME);
      // Opportunistic TLS goes on despite the certificate.
      assert.equal(code(await c.cmd('EHLO probe.example')), 250);
    });
  }

  test('a TLSv1.3-minimum host refuses a TLSv1.2-only client and accepts TLSv1.3', async () => {
    const c = await session('tls13');
    assert.equal(code(await c.cmd('STARTTLS')), 220);
    await assert.rejects(
      c.handshake({ servername: host('tls13').name, rejectUnauthorized: false, maxVersion: 'TLSv1.2' }),
    );
    const d = await session('tls13');
    assert.equal(code(await d.cmd('STARTTLS')), 220);
    const s = await d.handshake({ servername: host('tls13').name, rejectUnauthorized: false });
    assert.equal(s.getProtocol(), 'TLSv1.3');
    // The default minimum is TLSv1.2: a TLSv1.2 client gets through.
    const e = await session('normal');
    assert.equal(code(await e.cmd('STARTTLS')), 220);
    const s2 = await e.handshake({ servername: host('normal').name, rejectUnauthorized: false, maxVersion: 'TLSv1.2' });
    assert.equal(s2.getProtocol(), 'TLSv1.2');
  });

  test('recipients at a domain this host is MX for are local; foreign ones get the relay refusal', async () => {
    const c = await session('normal');
    assert.equal(code(await c.cmd('MAIL FROM:<a@probe.example>')), 250);
    assert.deepEqual(await c.cmd('RCPT TO:<user@normal.smtp.test>'), ['250 2.1.5 Ok']);
    assert.deepEqual(await c.cmd('RCPT TO:<postmaster>'), ['250 2.1.5 Ok']);
    assert.deepEqual(await c.cmd('RCPT TO:<x@relay-test.example>'), [
      '550 5.7.1 <x@relay-test.example>: Relay access denied',
    ]);
    // Another domain of the world, whose MX is not this host, is foreign too.
    assert.equal(code(await c.cmd('RCPT TO:<x@relay.smtp.test>')), 550);
  });

  test('relay refusal uses the configured code: 554, 530 before STARTTLS, 530 without TLS support', async () => {
    const expectations: Array<[string, string]> = [
      ['deny554', '554 5.7.1 <x@relay-test.example>: Relay access denied'],
      ['deny530', '530 5.7.0 Must issue a STARTTLS command first'],
      ['deny530-notls', '530 5.7.0 Authentication required'],
    ];
    for (const [id, text] of expectations) {
      const c = await session(id);
      assert.equal(code(await c.cmd('MAIL FROM:<a@probe.example>')), 250);
      assert.deepEqual(await c.cmd('RCPT TO:<x@relay-test.example>'), [text], id);
    }
  });

  test('an open relay accepts a foreign recipient with 250', async () => {
    const c = await session('openrelay');
    assert.equal(code(await c.cmd('MAIL FROM:<a@probe.example>')), 250);
    assert.deepEqual(await c.cmd('RCPT TO:<x@relay-test.example>'), ['250 2.1.5 Ok']);
    assert.equal(code(await c.cmd('RCPT TO:<x@relay.smtp.test>')), 250);
  });

  test('swaks sees the relay refusal as a RCPT failure and a local recipient as accepted', async () => {
    const args = (to: string) => [
      '--server', host('normal').ip, '--port', String(port), '--from', 'a@probe.example', '--to', to,
      '--quit-after', 'RCPT', '--timeout', '10',
    ];
    const ok = await execFileP('swaks', args('user@normal.smtp.test'), { timeout: 20000 });
    assert.match(ok.stdout, /<- {2}250 2\.1\.5 Ok/);
    const refused = await execFileP('swaks', args('x@relay-test.example'), { timeout: 20000 }).then(
      () => assert.fail('swaks succeeded against a relay refusal'),
      (err: { code: number; stdout: string }) => err,
    );
    assert.equal(refused.code, 24); // swaks: "error after RCPT"
    assert.match(refused.stdout, /550 5\.7\.1 <x@relay-test\.example>: Relay access denied/);
  });

  test('a greylisting host answers 450 4.2.0 to every RCPT, local or foreign', async () => {
    const c = await session('greylist');
    assert.equal(code(await c.cmd('MAIL FROM:<a@probe.example>')), 250);
    const local = await c.cmd('RCPT TO:<x@grey.smtp.test>');
    assert.match(local[0]!, /^450 4\.2\.0 .*Greylisted/);
    assert.equal(code(await c.cmd('RCPT TO:<x@relay-test.example>')), 450);
    // No valid recipient: DATA is a bad sequence.
    assert.equal(code(await c.cmd('DATA')), 503);
  });

  test('a tempfail host greets 421 4.3.2 and closes the connection', async () => {
    const c = await open('tempfail');
    assert.deepEqual(await c.reply(), ['421 4.3.2 Service not available']);
    assert.equal(await c.reply(2000), null);
    assert.equal(c.closed, true);
  });

  test('a silent host accepts the connection and never sends a byte', async () => {
    const c = await open('silent');
    assert.equal(await c.reply(500), null);
    assert.equal(c.closed, false);
    c.write('EHLO probe.example\r\n');
    assert.equal(await c.reply(300), null);
    assert.ok(smtp.connections(host('silent').ip) >= 1);
  });

  test('a slow host greets only after its banner delay', async () => {
    const started = Date.now();
    const c = await open('slow');
    const greeting = await c.reply(10000);
    assert.deepEqual(greeting, [`220 ${host('slow').name} ESMTP`]);
    assert.ok(Date.now() - started >= host('slow').smtp.bannerDelayMs - 20, 'greeting came before the delay');
  });

  test('a refusing host has nothing listening: ECONNREFUSED', async () => {
    await assert.rejects(Client.connect(host('refuse').ip, port), { code: 'ECONNREFUSED' });
  });

  test('protocol errors get Postfix replies: 503 bad sequence, 502 unknown, 252 VRFY, 500 line too long', async () => {
    const c = await open('normal');
    await c.reply();
    assert.deepEqual(await c.cmd('MAIL FROM:<a@probe.example>'), ['503 5.5.1 Error: send HELO/EHLO first']);
    assert.equal(code(await c.cmd('EHLO')), 501);
    assert.equal(code(await c.cmd('EHLO probe.example')), 250);
    assert.deepEqual(await c.cmd('RCPT TO:<x@normal.smtp.test>'), ['503 5.5.1 Error: need MAIL command']);
    assert.deepEqual(await c.cmd('DATA'), ['503 5.5.1 Error: need RCPT command']);
    assert.equal(code(await c.cmd('MAIL FROM:a@probe.example')), 501);
    assert.equal(code(await c.cmd('MAIL FROM:<a@probe.example>')), 250);
    assert.deepEqual(await c.cmd('MAIL FROM:<a@probe.example>'), ['503 5.5.1 Error: nested MAIL command']);
    assert.deepEqual(await c.cmd('RSET'), ['250 2.0.0 Ok']);
    assert.deepEqual(await c.cmd('NOOP'), ['250 2.0.0 Ok']);
    assert.deepEqual(await c.cmd('VRFY postmaster'), ['252 2.0.0 postmaster']);
    assert.deepEqual(await c.cmd('XYZZY'), ['502 5.5.2 Error: command not recognized']);
    assert.deepEqual(await c.cmd('NOOP ' + 'x'.repeat(3000)), ['500 5.5.0 Error: line too long']);
    assert.deepEqual(await c.cmd('NOOP'), ['250 2.0.0 Ok']);
  });

  test('pipelined commands are answered in order and a message is stored for its local recipient', async () => {
    const c = await session('normal');
    c.write('MAIL FROM:<a@probe.example>\r\nRCPT TO:<x@relay-test.example>\r\nRCPT TO:<pipe@normal.smtp.test>\r\nDATA\r\n');
    assert.equal(code(await c.reply()), 250);
    assert.equal(code(await c.reply()), 550);
    assert.equal(code(await c.reply()), 250);
    assert.equal(code(await c.reply()), 354);
    c.write('Subject: pipelined\r\n\r\n..leading dot\r\nbody\r\n.\r\n');
    assert.match((await c.reply())![0]!, /^250 2\.0\.0 Ok: queued as [0-9A-F]+$/);
    const stored = smtp.messages!().find((m) => m.rcptTo.includes('pipe@normal.smtp.test'));
    assert.ok(stored, 'message not stored');
    assert.equal(stored.data, 'Subject: pipelined\r\n\r\n.leading dot\r\nbody\r\n');
    assert.equal(stored.tls, false);
    // Message content is not logged as commands.
    assert.ok(!smtp.log(host('normal').ip).some((e) => e.line === 'body'));
  });

  test('commands pipelined after STARTTLS in clear text are discarded (RFC 3207 §6)', async () => {
    const c = await session('normal');
    c.write('STARTTLS\r\nMAIL FROM:<injected@probe.example>\r\n');
    assert.equal(code(await c.reply()), 220);
    await c.handshake({ servername: host('normal').name, rejectUnauthorized: false });
    // Had the injected MAIL been kept, this would be 503 nested MAIL after EHLO... it must be a fresh session.
    assert.equal(code(await c.cmd('EHLO probe.example')), 250);
    assert.equal(code(await c.cmd('MAIL FROM:<a@probe.example>')), 250);
    assert.ok(smtp.log(host('normal').ip).some((e) => e.line === '[discarded after STARTTLS] MAIL FROM:<injected@probe.example>'));
  });

  test('each host logs its connections and commands; a probe that stops at RCPT leaves no DATA in the log', async () => {
    const ip = host('deny554').ip;
    const before = smtp.connections(ip);
    const c = await session('deny554');
    await c.cmd('MAIL FROM:<probe@probe.example>');
    await c.cmd('RCPT TO:<x@relay-test.example>');
    await c.cmd('QUIT');
    const d = await open('deny554');
    await d.reply();
    d.close();
    assert.equal(smtp.connections(ip), before + 2);
    const log = smtp.log(ip);
    assert.ok(log.every((e) => e.ip === ip && e.remoteIp === '127.0.0.1'));
    const commands = log.filter((e) => e.event === 'command').map((e) => e.line);
    assert.ok(commands.includes('MAIL FROM:<probe@probe.example>'));
    assert.ok(commands.includes('RCPT TO:<x@relay-test.example>'));
    assert.ok(!commands.some((l) => /^DATA\b/i.test(l ?? '')), 'DATA reached the host');
    assert.equal(log.filter((e) => e.event === 'connect').length, smtp.connections(ip));
    // The whole log holds this host's entries too, and DATA does show up where a client sent it.
    assert.ok(smtp.log().some((e) => e.ip === host('normal').ip && e.line === 'DATA'));
    assert.equal(smtp.connections('127.201.0.250'), 0);
  });
});

describe('lab SMTP hosts: latency, limits, start and stop', () => {
  let ca: LabCa;
  let world: LabWorld;
  const started: SmtpHosts[] = [];
  before(async () => {
    ca = await createLabCa();
    world = loadWorld(WORLD);
  });
  after(async () => {
    for (const s of started) await s.stop();
  });
  const start = async (w: LabWorld, extra: Record<string, number> = {}) => {
    const s = await startSmtpHosts(w, { port: 0, ca, smtpRttMs: 0, ...extra });
    started.push(s);
    return s;
  };
  const one = (id: string): LabWorld => ({ ...world, hosts: new Map([[id, world.hosts.get(id)!]]), domains: [] });

  test('the configured latency is added before every reply', async () => {
    const s = await start(one('normal'), { smtpRttMs: 250 });
    const c = await Client.connect(world.hosts.get('normal')!.ip, s.port);
    await c.reply();
    const t0 = Date.now();
    await c.cmd('EHLO probe.example');
    await c.cmd('NOOP');
    assert.ok(Date.now() - t0 >= 2 * 250 - 20, `two replies took ${Date.now() - t0} ms`);
    c.close();
  });

  test('an idle session gets 421 4.4.2 and is closed', async () => {
    const s = await start(one('normal'), { idleTimeoutMs: 300 });
    const c = await Client.connect(world.hosts.get('normal')!.ip, s.port);
    await c.reply();
    const r = await c.reply(5000);
    assert.match(r![0]!, /^421 4\.4\.2 /);
    assert.equal(await c.reply(2000), null);
    assert.equal(c.closed, true);
  });

  test('sessions beyond the per-host cap get 421 4.7.0 and are closed', async () => {
    const s = await start(one('normal'), { maxSessionsPerHost: 2 });
    const ip = world.hosts.get('normal')!.ip;
    const a = await Client.connect(ip, s.port);
    const b = await Client.connect(ip, s.port);
    assert.equal(code(await a.reply()), 220);
    assert.equal(code(await b.reply()), 220);
    const c = await Client.connect(ip, s.port);
    assert.match((await c.reply())![0]!, /^421 4\.7\.0 .*too many connections/);
    a.close();
    b.close();
    c.close();
  });

  test('a port already in use on a host address is a clear error naming it', async () => {
    const s = await start(one('normal'));
    await assert.rejects(startSmtpHosts(one('normal'), { port: s.port, ca, smtpRttMs: 0 }), {
      message: `lab SMTP: cannot listen on ${world.hosts.get('normal')!.ip}:${s.port}: port in use`,
    });
  });

  test('a host outside 127.0.0.0/8 is refused before anything listens', async () => {
    const h = { ...world.hosts.get('normal')!, id: 'outside', ip: '10.0.0.1' };
    const w: LabWorld = { ...world, hosts: new Map([['outside', h]]), domains: [] };
    await assert.rejects(startSmtpHosts(w, { port: 0, ca, smtpRttMs: 0 }), /outside has address 10\.0\.0\.1, outside 127\.0\.0\.0\/8/);
  });

  test('stop() closes every listener and destroys open sessions', async () => {
    const s = await startSmtpHosts(one('normal'), { port: 0, ca, smtpRttMs: 0 });
    const ip = world.hosts.get('normal')!.ip;
    const c = await Client.connect(ip, s.port);
    await c.reply();
    await s.stop();
    assert.equal(await c.reply(2000), null);
    assert.equal(c.closed, true);
    await assert.rejects(Client.connect(ip, s.port), { code: 'ECONNREFUSED' });
  });
});
