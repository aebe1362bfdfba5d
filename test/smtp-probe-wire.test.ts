// The SMTP probe against small scripted servers: the protocol corners and hostile behaviour the lab hosts do
// not show (multi-line greetings, HELO fallback, 454, broken handshakes, endless or garbage replies).
import { createOutboundGate } from '../lib/net/outbound.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { assertSafeCommand, probeSmtp, type SmtpProbeOptions } from '../lib/probes/smtp/index.ts';
import { evaluateTlsReceive } from '../lib/checks/tls-receive/tls-receive.ts';
import { relayAttemptOutcome, relayOutcome, smtpSession, smtpSessionClass, type RelayOutcome, type SmtpSessionClass } from '../lib/checks/smtp-session.ts';
import { evaluateOpenRelay } from '../lib/checks/open-relay/open-relay.ts';

interface Io {
  send(text: string): void;
  /** The next command line, or null when the client closed. */
  line(): Promise<string | null>;
  socket: net.Socket;
  /** 1 for the first connection, 2 for the second, … */
  n: number;
}

async function scripted(script: (io: Io) => Promise<void>) {
  const commands: string[] = [];
  const sockets = new Set<net.Socket>();
  let n = 0;
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    let buf = '';
    const lines: string[] = [];
    let wake: (() => void) | null = null;
    let closed = false;
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const l = buf.slice(0, i).replace(/\r$/, '');
        buf = buf.slice(i + 1);
        commands.push(l);
        lines.push(l);
      }
      wake?.();
    };
    socket.on('data', onData);
    socket.on('close', () => {
      closed = true;
      wake?.();
    });
    const io: Io = {
      n: ++n,
      socket,
      send: (text) => {
        if (!socket.destroyed) socket.write(text);
      },
      async line() {
        for (let i = 0; i < 1000; i++) {
          if (lines.length > 0) return lines.shift()!;
          if (closed) return null;
          await new Promise<void>((r) => (wake = r));
          wake = null;
        }
        return null;
      },
    };
    void script(io)
      .catch(() => {})
      .finally(() => socket.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    commands,
    connections: () => n,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A plain Postfix-like dialogue after the greeting: answers EHLO (with `ext`), MAIL, RCPT (`rcpt`), RSET, QUIT. */
async function dialogue(io: Io, opts: { ehlo?: string; rcpt?: string; mail?: string } = {}): Promise<void> {
  for (;;) {
    const l = await io.line();
    if (l === null) return;
    const verb = l.split(/[ :]/)[0].toUpperCase();
    if (verb === 'EHLO') io.send(opts.ehlo ?? '250-test\r\n250 PIPELINING\r\n');
    else if (verb === 'HELO') io.send('250 test\r\n');
    else if (verb === 'MAIL') io.send(opts.mail ?? '250 ok\r\n');
    else if (verb === 'RCPT') io.send(opts.rcpt ?? '550 5.7.1 relay denied\r\n');
    else if (verb === 'RSET') io.send('250 ok\r\n');
    else if (verb === 'QUIT') {
      io.send('221 bye\r\n');
      return;
    } else io.send('502 no\r\n');
  }
}

/** After the greeting: offers STARTTLS, and when it is asked for hands the connection to `then`, which breaks the handshake its own way. */
async function breakAtStarttls(io: Io, then: () => void | Promise<void>): Promise<void> {
  for (;;) {
    const l = await io.line();
    if (l === null) return;
    if (l.startsWith('EHLO')) io.send('250-mx\r\n250 STARTTLS\r\n');
    else if (l === 'STARTTLS') return then();
  }
}

/**
 * A server whose first connection breaks the TLS handshake after the ClientHello (`afterClientHello`) and whose
 * later ones (the relay test's reconnect in clear) run `dialogue` with `rest`.
 */
function breaksHandshake(afterClientHello: (io: Io) => void | Promise<void>, rest: Parameters<typeof dialogue>[1] = {}) {
  return async (io: Io): Promise<void> => {
    io.send('220 mx\r\n');
    if (io.n === 1) {
      return breakAtStarttls(io, async () => {
        io.send('220 go ahead\r\n');
        await io.line(); // the ClientHello arrives as bytes, not a line
        await afterClientHello(io);
      });
    }
    await dialogue(io, rest);
  };
}

function opts(port: number, extra: Partial<SmtpProbeOptions> = {}): SmtpProbeOptions {
  return { port, lab: true, connectTimeoutMs: 5000, bannerTimeoutMs: 5000, commandTimeoutMs: 5000, relayVariants: ['plain'], ...extra };
}

/** Probes a scripted server once (`opts(port, extra)`) and closes it: the observation, and what the server saw. */
async function probeScripted(script: (io: Io) => Promise<void>, extra: Partial<SmtpProbeOptions> = {}) {
  const server = await scripted(script);
  try {
    return { obs: await probeSmtp('127.0.0.1', opts(server.port, extra)), server };
  } finally {
    await server.close();
  }
}

const mx = (ip: string, obs: Awaited<ReturnType<typeof probeSmtp>>) => [{ host: 'mx.test', ip, obs }];

test('a multi-line greeting is read as one reply', async () => {
  const { obs } = await probeScripted(async (io) => {
    io.send('220-mx.test ESMTP\r\n220-please be patient\r\n220 ready\r\n');
    await dialogue(io);
  });
  assert.deepEqual(obs.greeting, { code: 220, lines: ['mx.test ESMTP', 'please be patient', 'ready'] });
  // The probe records, the checks judge: no judgement is stored in the observation.
  assert.deepEqual(obs.connections, [{ mode: 'full', step: 'relay', code: null, error: null }]);
  for (const k of ['session', 'reason']) assert.ok(!(k in obs), k);
  assert.ok(!('outcome' in obs.relay) && !('reason' in obs.relay));
  assert.ok(obs.relay.attempts.every((a) => !('outcome' in a) && !('reason' in a)));
  assert.equal(smtpSessionClass(obs), 'no_starttls');
  assert.equal(relayOutcome(obs).outcome, 'refused');
});

test('a server that rejects EHLO is greeted with HELO and counts as offering no STARTTLS', async () => {
  const { obs } = await probeScripted(async (io) => {
    io.send('220 old smtpd\r\n');
    await dialogue(io, { ehlo: '500 command unrecognized\r\n' });
  });
  assert.equal(obs.helo?.verb, 'HELO');
  assert.equal(smtpSessionClass(obs), 'no_starttls');
  assert.equal(smtpSession(obs).reason, 'no_esmtp');
  assert.equal(evaluateTlsReceive(mx('127.0.0.1', obs)).status, 'ng');
  assert.equal(relayOutcome(obs).outcome, 'refused');
});

test('STARTTLS answered 454 (temporary) is unknown, and the relay test still runs in clear', async () => {
  const { obs } = await probeScripted(async (io) => {
    io.send('220 mx\r\n');
    for (;;) {
      const l = await io.line();
      if (l === null) return;
      if (l === 'STARTTLS') io.send('454 4.7.0 TLS not available due to local problem\r\n');
      else if (l.startsWith('EHLO')) io.send('250-mx\r\n250 STARTTLS\r\n');
      else if (l.startsWith('MAIL')) io.send('250 ok\r\n');
      else if (l.startsWith('RCPT')) io.send('554 5.7.1 relay denied\r\n');
      else if (l === 'QUIT') return io.send('221 bye\r\n');
      else io.send('250 ok\r\n');
    }
  });
  assert.equal(obs.tls.handshake, 'refused');
  const f = evaluateTlsReceive(mx('127.0.0.1', obs));
  assert.equal(f.status, 'unknown');
  assert.equal(f.reason, 'starttls_454');
  assert.equal(relayOutcome(obs).outcome, 'refused');
});

test('a failed TLS handshake is NG, and the relay test reconnects in clear', async () => {
  // The ClientHello is answered with garbage.
  const { obs, server } = await probeScripted(breaksHandshake((io) => io.send('this is not TLS at all\r\n'.repeat(4)), { rcpt: '250 ok, I relay\r\n' }));
  assert.equal(smtpSessionClass(obs), 'handshake_failed');
  assert.equal(obs.tls.handshake, 'failed');
  assert.equal(evaluateTlsReceive(mx('127.0.0.1', obs)).reason, 'handshake_failed');
  assert.equal(server.connections(), 2);
  assert.equal(obs.relay.overTls, false);
  assert.equal(relayOutcome(obs).outcome, 'open');
  assert.equal(evaluateOpenRelay([{ ip: '127.0.0.1', role: 'mx', obs }]).status, 'ng');
});

test('a handshake cut by the probe deadline is interrupted (TLS unknown), not a failed handshake', async () => {
  // After the ClientHello, silence longer than the session deadline.
  const { obs, server } = await probeScripted(breaksHandshake(() => new Promise((r) => setTimeout(r, 3000))), { sessionDeadlineMs: 1000 });
  assert.equal(obs.deadlineReached, true);
  assert.equal(obs.tls.handshake, 'interrupted');
  assert.equal(obs.tls.error, 'session_deadline');
  assert.deepEqual(obs.connections, [{ mode: 'full', step: 'tls', code: null, error: 'session_deadline' }]);
  assert.equal(evaluateTlsReceive(mx('127.0.0.1', obs)).status, 'unknown');
  assert.equal(smtpSession(obs).reason, 'session_deadline');
  // The deadline ended the probe: no reconnect in clear after it.
  assert.equal(server.connections(), 1);
});

test('the plain-text fallback after a failed handshake can be switched off', async () => {
  const { obs, server } = await probeScripted(async (io) => {
    io.send('220 mx\r\n');
    await breakAtStarttls(io, () => {
      io.send('220 go ahead\r\n');
      io.socket.destroy();
    });
  }, { relayFallbackPlain: false });
  assert.ok(smtpSessionClass(obs) === 'handshake_failed' || smtpSessionClass(obs) === 'session_failed');
  assert.equal(server.connections(), 1);
  assert.equal(relayOutcome(obs).outcome, 'not_tested');
});

test('a refused sender address leaves the relay test unknown, not refused', async () => {
  const { obs } = await probeScripted(async (io) => {
    io.send('220 mx\r\n');
    await dialogue(io, { mail: '553 5.1.8 sender domain does not exist\r\n' });
  }, { relayVariants: ['plain', 'quoted'] });
  assert.equal(relayOutcome(obs).outcome, 'unknown');
  assert.equal(relayOutcome(obs).reason, 'mail_from_553');
  assert.equal(obs.relay.attempts.length, 1);
  assert.equal(evaluateOpenRelay([{ ip: '127.0.0.1', role: 'mx', obs }]).status, 'unknown');
});

test('a 4xx on one relay variant and 5xx on the others is unknown (every attempt must be refused)', async () => {
  let k = 0;
  const { obs } = await probeScripted(async (io) => {
    io.send('220 mx\r\n');
    await dialogue(io, { get rcpt() { return k++ === 1 ? '451 4.3.0 try later\r\n' : '550 no\r\n'; } } as { rcpt: string });
  }, { relayVariants: ['plain', 'percent_hack', 'quoted'] });
  assert.deepEqual(obs.relay.attempts.map((a) => relayAttemptOutcome(a).outcome), ['refused', 'tempfail', 'refused']);
  assert.equal(relayOutcome(obs).outcome, 'unknown');
  assert.equal(relayOutcome(obs).reason, 'rcpt_451');
});

test('a 554 greeting means no service: TLS not measured, relay refused', async () => {
  const { obs, server } = await probeScripted(async (io) => {
    io.send('554 5.7.1 no SMTP service here\r\n');
    await dialogue(io);
  });
  assert.equal(smtpSessionClass(obs), 'session_failed');
  assert.equal(smtpSession(obs).reason, 'greeting_554');
  assert.equal(evaluateTlsReceive(mx('127.0.0.1', obs)).status, 'unknown');
  assert.equal(relayOutcome(obs).outcome, 'refused');
  assert.equal(server.commands.at(-1), 'QUIT');
});

test('hostile replies are capped: an endless line, an endless multi-line reply, garbage', async () => {
  const cases: [string, (io: Io) => Promise<void>, string][] = [
    ['endless line', async (io) => io.send('220 ' + 'x'.repeat(10_000)), 'reply_line_too_long'],
    ['endless reply', async (io) => io.send('220-spam\r\n'.repeat(500)), 'reply_too_long'],
    ['flood', async (io) => io.send(('220-' + 'y'.repeat(1000) + '\r\n').repeat(400)), 'too_much_data'],
    ['garbage', async (io) => io.send('HTTP/1.1 400 Bad Request\r\n'), 'bad_reply'],
  ];
  for (const [name, script, reason] of cases) {
    const { obs } = await probeScripted(async (io) => {
      await script(io);
      await io.line();
    }, { maxSessionBytes: 100_000 });
    assert.equal(smtpSessionClass(obs), 'no_greeting', name);
    assert.equal(smtpSession(obs).reason, reason, name);
    assert.ok(obs.transcript.every((e) => e.line.length <= 513), name);
  }
});

test('a chatty server cannot grow the transcript past maxTranscriptChars: the session still ends, truncated', async () => {
  // Within every other cap (199 lines of 400 characters, 80 KB): only the transcript's own bound stops it.
  const chatty = `${'250-'.concat('z'.repeat(400), '\r\n').repeat(199)}250 PIPELINING\r\n`;
  const s = await scripted(async (io) => {
    io.send('220 mx.test ESMTP\r\n');
    await dialogue(io, { ehlo: chatty });
  });
  try {
    const obs = await probeSmtp('127.0.0.1', opts(s.port, { maxTranscriptChars: 4096 }));
    const chars = obs.transcript.reduce((n, e) => n + e.line.length, 0);
    assert.ok(chars <= 4096 + 1, `transcript of ${chars} characters`);
    assert.equal(obs.truncated, true);
    // The observation itself is complete: the EHLO reply and the relay test were recorded.
    assert.equal(obs.helo?.reply.lines.length, 200);
    assert.equal(obs.relay.attempts.length, 1);
    assert.equal(relayOutcome(obs).outcome, 'refused');
    // The default (16,384) bounds it too; a normal session is far below it and is not truncated.
    const dflt = await probeSmtp('127.0.0.1', opts(s.port));
    assert.ok(dflt.transcript.reduce((n, e) => n + e.line.length, 0) <= 16_384 + 1);
    assert.equal(dflt.truncated, true);
  } finally {
    await s.close();
  }
  const plain = await scripted(async (io) => {
    io.send('220 mx.test ESMTP\r\n');
    await dialogue(io);
  });
  try {
    const obs = await probeSmtp('127.0.0.1', opts(plain.port, { relayVariants: undefined }));
    assert.equal(obs.truncated, false);
    assert.ok(obs.transcript.some((e) => e.line === 'closed'));
  } finally {
    await plain.close();
  }
});

test('a connection reset after EHLO ends the session as session_failed with the reason', async () => {
  const { obs } = await probeScripted(async (io) => {
    io.send('220 mx\r\n');
    await io.line();
    io.socket.resetAndDestroy();
  });
  assert.equal(smtpSessionClass(obs), 'session_failed');
  assert.match(smtpSession(obs).reason ?? '', /^ehlo_connection_(reset|closed)$/);
  assert.equal(evaluateTlsReceive(mx('127.0.0.1', obs)).status, 'unknown');
});

test('a connect that never completes is unreachable with connect_timeout (injected connect)', async () => {
  let made = 0;
  const obs = await probeSmtp('127.0.0.1', {
    lab: true,
    connectTimeoutMs: 100,
    gate: createOutboundGate({
      lab: true,
      rawConnect: () => {
        made++;
        return new net.Socket(); // never connects
      },
    }),
  });
  assert.equal(made, 1);
  assert.equal(smtpSessionClass(obs), 'unreachable');
  assert.equal(smtpSession(obs).reason, 'connect_timeout');
  assert.equal(relayOutcome(obs).outcome, 'not_tested');
});

test('bytes sent before the TLS handshake are discarded, not read as replies (RFC 3207 §5)', async () => {
  const { obs } = await probeScripted(async (io) => {
    io.send('220 mx\r\n');
    await breakAtStarttls(io, () => {
      io.send('220 go\r\n250 injected\r\n');
      io.socket.destroy();
    });
  }, { relayFallbackPlain: false });
  assert.ok(obs.transcript.some((e) => e.dir === 'I' && /discarded \d+ bytes/.test(e.line)));
  assert.ok(!obs.transcript.some((e) => e.dir === 'S' && e.line.includes('injected')));
});

test('the command writer refuses DATA and BDAT in any case, and line breaks that would smuggle them', () => {
  for (const bad of ['DATA', 'data', ' Data', 'BDAT 100 LAST', 'bdat 0', 'RCPT TO:<a@b>\r\nDATA', 'NOOP\nDATA', 'X\0']) {
    assert.throws(() => assertSafeCommand(bad), /DATA|CR, LF or NUL/, bad);
  }
  for (const ok of ['EHLO x', 'MAIL FROM:<a@b>', 'RCPT TO:<data@example>', 'RSET', 'QUIT', 'STARTTLS']) {
    assert.doesNotThrow(() => assertSafeCommand(ok), ok);
  }
});

test('an option carrying CRLF cannot smuggle a command: the probe throws before connecting, naming the option', async () => {
  const s = await scripted(async (io) => {
    io.send('220 mx\r\n');
    await dialogue(io);
  });
  try {
    await assert.rejects(probeSmtp('127.0.0.1', opts(s.port, { relayTestDomain: 'x.example>\r\nDATA' })), /relayTestDomain/);
    await assert.rejects(probeSmtp('127.0.0.1', opts(s.port, { ehloName: 'x\r\nDATA' })), /ehloName/);
    assert.equal(s.connections(), 0);
    assert.ok(!s.commands.some((c) => /^DATA/i.test(c)));
  } finally {
    await s.close();
  }
});

test('a server answering every command just before the timeout is cut off by the total session deadline', async () => {
  // Each reply comes 400 ms after its command, under the 1 s reply timeout, so no reply times out: only the
  // session deadline ends the ~16-command relay test early.
  const s = await scripted(async (io) => {
    io.send('220 slow\r\n');
    for (;;) {
      const l = await io.line();
      if (l === null) return;
      await new Promise((r) => setTimeout(r, 400));
      if (l.startsWith('EHLO')) io.send('250 slow\r\n');
      else if (l === 'QUIT') return io.send('221 bye\r\n');
      else io.send('250 ok\r\n');
    }
  });
  try {
    const t0 = Date.now();
    const obs = await probeSmtp('127.0.0.1', opts(s.port, { commandTimeoutMs: 1000, sessionDeadlineMs: 1500, relayVariants: ['plain', 'percent_hack', 'quoted', 'source_route', 'bang_path'] }));
    const took = Date.now() - t0;
    assert.ok(took < 3000, `took ${took} ms`);
    assert.equal(smtpSession(obs).reason, 'session_deadline');
    assert.ok(obs.transcript.some((e) => /session deadline/.test(e.line)));
  } finally {
    await s.close();
  }
});
