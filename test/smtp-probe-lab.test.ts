// Integration: the SMTP probe against the lab's real SMTP hosts (lab/worlds/test-smtp-probe.json), one host
// per behaviour and certificate kind, judged by the real checks.
import { createOutboundGate } from '../lib/net/outbound.ts';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { loadWorld } from '../lab/world.ts';
import { createLabCa, type LabCa } from '../lab/ca.ts';
import { startSmtpHosts, type SmtpHosts } from '../lab/smtp-server.ts';
import type { LabWorld } from '../lab/model.ts';
import { HandshakeSlots, probeSmtp, type SmtpObservation, type SmtpProbeOptions } from '../lib/probes/smtp/index.ts';
import { evaluateTlsReceive } from '../lib/checks/tls-receive/tls-receive.ts';
import { relayAttemptOutcome, relayOutcome, smtpSession, smtpSessionClass, type RelayOutcome, type SmtpSessionClass } from '../lib/checks/smtp-session.ts';
import { evaluateOpenRelay } from '../lib/checks/open-relay/open-relay.ts';
import { tlsFindings } from '../lib/checks/cert-problems/tls-findings.ts';

const WORLD = new URL('../lab/worlds/test-smtp-probe.json', import.meta.url).pathname;
let world: LabWorld;
let ca: LabCa;
let lab: SmtpHosts;
const seen = new Map<string, SmtpObservation>();

// Generous timeouts (the machine is shared) except the banner timeout, which the slow hosts are about.
function options(extra: Partial<SmtpProbeOptions> = {}): SmtpProbeOptions {
  return {
    port: lab.port,
    lab: true,
    extraCaPems: [ca.caCertPem],
    connectTimeoutMs: 5000,
    bannerTimeoutMs: 1500,
    commandTimeoutMs: 10_000,
    ...extra,
  };
}

function host(id: string) {
  const h = world.hosts.get(id);
  assert.ok(h, `host ${id} in the world`);
  return h;
}

async function probe(id: string, extra: Partial<SmtpProbeOptions> = {}): Promise<SmtpObservation> {
  const h = host(id);
  const obs = await probeSmtp(h.ip, options({ host: h.name, ...extra }));
  seen.set(id, obs);
  return obs;
}

before(async () => {
  world = loadWorld(WORLD);
  ca = await createLabCa();
  lab = await startSmtpHosts(world, { port: 0, ca, smtpRttMs: 0 });
});

after(async () => {
  await lab?.stop();
});

interface Expect {
  session: SmtpSessionClass;
  reason: string | null;
  tls: 'ok' | 'ng' | 'unknown';
  relay: 'ok' | 'ng' | 'unknown' | 'na';
  relayOutcome: RelayOutcome;
  certProblems?: string[];
  tlsVersion?: string;
}

const CASES: [string, string, Expect][] = [
  ['normal', 'a normal host offers STARTTLS with a trusted certificate and refuses relaying',
    { session: 'ok', reason: null, tls: 'ok', relay: 'ok', relayOutcome: 'refused', certProblems: [] }],
  ['refuse', 'a host where nothing listens is unreachable (connection refused): tls unknown, relay unknown',
    { session: 'unreachable', reason: 'connection_refused', tls: 'unknown', relay: 'unknown', relayOutcome: 'not_tested' }],
  ['silent', 'a host that never greets is no_greeting after the banner timeout: unknown, not NG',
    { session: 'no_greeting', reason: 'banner_timeout', tls: 'unknown', relay: 'unknown', relayOutcome: 'not_tested' }],
  ['tempfail', 'an MX that answers 421 is unknown, not NG',
    { session: 'greets_421', reason: 'greeting_421', tls: 'unknown', relay: 'unknown', relayOutcome: 'not_tested' }],
  ['greylist', 'a greylisting host (450 on RCPT) leaves the relay test unknown but its TLS is measured',
    { session: 'greylisted', reason: 'rcpt_tempfail', tls: 'ok', relay: 'unknown', relayOutcome: 'unknown' }],
  ['slow-too-slow', 'a greeting slower than the banner timeout is no_greeting: unknown',
    { session: 'no_greeting', reason: 'banner_timeout', tls: 'unknown', relay: 'unknown', relayOutcome: 'not_tested' }],
  ['slow-in-time', 'a slow greeting within the banner timeout is waited for and ends ok',
    { session: 'ok', reason: null, tls: 'ok', relay: 'ok', relayOutcome: 'refused' }],
  ['no-starttls', 'an MX without STARTTLS is NG on tls_receive and its relay test still runs in clear',
    { session: 'no_starttls', reason: 'starttls_not_offered', tls: 'ng', relay: 'ok', relayOutcome: 'refused' }],
  ['self-signed', 'a self-signed certificate is a finding, not a tls_receive NG',
    { session: 'ok', reason: null, tls: 'ok', relay: 'ok', relayOutcome: 'refused', certProblems: ['self_signed'] }],
  ['expired', 'an expired certificate is a finding, not a tls_receive NG',
    { session: 'ok', reason: null, tls: 'ok', relay: 'ok', relayOutcome: 'refused', certProblems: ['expired'] }],
  ['wrong-name', 'a certificate for another name is a wrong_name finding with a trusted chain',
    { session: 'ok', reason: null, tls: 'ok', relay: 'ok', relayOutcome: 'refused', certProblems: ['wrong_name'] }],
  ['tls13', 'a TLS 1.3-only host completes the handshake and records TLSv1.3',
    { session: 'ok', reason: null, tls: 'ok', relay: 'ok', relayOutcome: 'refused', certProblems: [], tlsVersion: 'TLSv1.3' }],
  ['open-relay', 'an open relay accepts the foreign RCPT: open_relay NG, proven at the first attempt',
    { session: 'ok', reason: null, tls: 'ok', relay: 'ng', relayOutcome: 'open' }],
  ['open-plain', 'an open relay without STARTTLS is NG on both criteria',
    { session: 'no_starttls', reason: 'starttls_not_offered', tls: 'ng', relay: 'ng', relayOutcome: 'open' }],
  ['deny-550', 'relay denied with 550 is refused: ok',
    { session: 'ok', reason: null, tls: 'ok', relay: 'ok', relayOutcome: 'refused' }],
  ['deny-554', 'relay denied with 554 is refused: ok',
    { session: 'ok', reason: null, tls: 'ok', relay: 'ok', relayOutcome: 'refused' }],
  ['deny-530', 'relay denied with 530 (authentication required) is refused: ok',
    { session: 'ok', reason: null, tls: 'ok', relay: 'ok', relayOutcome: 'refused' }],
];

for (const [id, behaviour, want] of CASES) {
  test(behaviour, async () => {
    const h = host(id);
    const obs = await probe(id);
    assert.equal(smtpSessionClass(obs), want.session, `session of ${id}: ${JSON.stringify(obs.transcript.slice(-4))}`);
    assert.equal(smtpSession(obs).reason, want.reason);
    assert.equal(relayOutcome(obs).outcome, want.relayOutcome);
    const tlsF = evaluateTlsReceive([{ host: h.name, ip: h.ip, obs }]);
    assert.equal(tlsF.status, want.tls, JSON.stringify(tlsF));
    if (tlsF.status !== 'ok') assert.match(tlsF.detail ?? '', new RegExp(h.ip.replace(/\./g, '\\.')));
    const relayF = evaluateOpenRelay([{ ip: h.ip, role: 'mx', host: h.name, obs }]);
    assert.equal(relayF.status, want.relay, JSON.stringify(relayF));
    if (want.relay === 'ng') assert.match(relayF.detail ?? '', new RegExp(`open relay on .*${h.ip.replace(/\./g, '\\.')}`));
    if (want.certProblems) assert.deepEqual(tlsFindings([{ host: h.name, obs }]).certProblems, want.certProblems);
    if (want.tlsVersion) assert.deepEqual(tlsFindings([obs]).tlsVersions, [want.tlsVersion]);
    // The transcript shows both sides, in order, and never a DATA/BDAT line from us.
    assert.ok(obs.transcript.length > 0);
    assert.ok(!obs.transcript.some((e) => e.dir === 'C' && /^(DATA|BDAT)\b/i.test(e.line)));
  });
}

test('a relay-denying host is tested with every relay variant, with RSET between attempts', async () => {
  const obs = await probe('deny-550');
  assert.deepEqual(obs.relay.attempts.map((a) => a.variant), ['plain', 'percent_hack', 'quoted', 'source_route', 'bang_path']);
  assert.ok(obs.relay.attempts.every((a) => a.rcptReply?.code === 550));
  const sent = obs.transcript.filter((e) => e.dir === 'C').map((e) => e.line.split(/[ :]/)[0]);
  assert.deepEqual(sent.filter((c) => c === 'RSET').length, 4);
  assert.equal(sent.at(-1), 'QUIT');
  assert.equal(obs.relay.overTls, true);
  // The relay test over TLS: the lab logs commands after the handshake too.
  const log = lab.log(host('deny-550').ip).filter((e) => e.event === 'command').map((e) => e.line ?? '');
  assert.ok(log.some((l) => l.startsWith('[tls established')));
  assert.ok(log.some((l) => l === 'RCPT TO:<relaytest%relay-test.example@[127.105.0.14]>'));
});

test('the open relay test stops at the first accepted recipient and announces the configured sender', async () => {
  const obs = await probe('open-relay', { mailFrom: 'scanner@probe.invalid', relayTestDomain: 'elsewhere.example' });
  assert.equal(obs.relay.attempts.length, 1);
  assert.equal(obs.relay.attempts[0].rcptTo, 'relaytest@elsewhere.example');
  assert.equal(obs.relay.attempts[0].rcptReply?.code, 250);
  assert.ok(lab.log(host('open-relay').ip).some((e) => e.line === 'MAIL FROM:<scanner@probe.invalid>'));
});

test('a certificate is judged against the system CAs plus the extra CAs: without the lab CA it is untrusted', async () => {
  const obs = await probe('normal', { extraCaPems: [] });
  assert.equal(obs.tls.cert?.trusted, false);
  assert.deepEqual(tlsFindings([obs]).certProblems, ['untrusted']);
  // The same host with the lab CA is trusted (and tls_receive does not care either way).
  const trusted = await probe('normal');
  assert.equal(trusted.tls.cert?.trusted, true);
});

test('the name match is re-judged for the MX name of each domain sharing a probed IP', async () => {
  const obs = await probe('shared');
  assert.deepEqual(tlsFindings([{ host: 'mx.shared.probe.test', obs }]).certProblems, []);
  assert.deepEqual(tlsFindings([{ host: 'mail.other.test', obs }]).certProblems, ['wrong_name']);
});

test('over several MX hosts one without STARTTLS makes tls_receive NG and names it', async () => {
  const a = await probe('normal');
  const b = await probe('no-starttls');
  const f = evaluateTlsReceive([
    { host: host('normal').name, ip: host('normal').ip, obs: a },
    { host: host('no-starttls').name, ip: host('no-starttls').ip, obs: b },
  ]);
  assert.equal(f.status, 'ng');
  assert.equal(f.reason, 'no_starttls');
  assert.match(f.detail ?? '', /plain\.probe\.test \(127\.105\.0\.8\)/);
});

test('a sender host that refuses connections is skipped; the MX decides open_relay', async () => {
  const sender = await probe('refuse');
  const mx = await probe('deny-554');
  const f = evaluateOpenRelay([
    { ip: host('refuse').ip, role: 'sender', obs: sender },
    { ip: host('deny-554').ip, role: 'mx', obs: mx },
  ]);
  assert.equal(f.status, 'ok');
});

test('outside lab mode a loopback lab host is refused without any connection attempt', async () => {
  const h = host('normal');
  const before = lab.connections(h.ip);
  const obs = await probeSmtp(h.ip, options({ lab: false, host: h.name }));
  assert.equal(smtpSessionClass(obs), 'forbidden_address');
  assert.equal(smtpSession(obs).reason, 'forbidden_address');
  assert.equal(obs.forbiddenRange, '127.0.0.0/8');
  assert.equal(lab.connections(h.ip), before);
  assert.equal(evaluateTlsReceive([{ host: h.name, ip: h.ip, obs }]).status, 'unknown');
  assert.equal(evaluateOpenRelay([{ ip: h.ip, role: 'mx', obs }]).reason, 'forbidden_address');
});

test('outside lab mode loopback and private targets are refused: a local listener sees no connection', async () => {
  let accepted = 0;
  const server = net.createServer((s) => {
    accepted++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  let connects = 0;
  const connect = (o: { host: string; port: number }) => {
    connects++;
    return net.connect(o);
  };
  try {
    for (const ip of ['127.0.0.1', '::ffff:127.0.0.1', '10.0.0.1', '192.168.1.1', '169.254.169.254', '::1', 'fd00::1']) {
      const obs = await probeSmtp(ip, { port, lab: false, gate: createOutboundGate({ lab: false, rawConnect: connect }), connectTimeoutMs: 1000 });
      assert.equal(smtpSessionClass(obs), 'forbidden_address', ip);
    }
    // And in lab mode, a public address is refused the same way.
    const pub = await probeSmtp('192.0.2.1', { port, lab: true, gate: createOutboundGate({ lab: true, rawConnect: connect }) });
    assert.equal(smtpSessionClass(pub), 'forbidden_address');
    assert.equal(connects, 0);
    assert.equal(accepted, 0);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});

// Issue 18: a worker runs at most MAILCENSUS_TLS_HANDSHAKES handshakes at once; the others wait for a slot.
const judged = (h: { name: string; ip: string }, obs: SmtpObservation) => ({
  session: smtpSession(obs),
  tls: evaluateTlsReceive([{ host: h.name, ip: h.ip, obs }]).status,
  relay: evaluateOpenRelay([{ ip: h.ip, role: 'mx', host: h.name, obs }]).status,
  certProblems: tlsFindings([{ host: h.name, obs }]).certProblems,
  handshake: obs.tls.handshake,
  protocol: obs.tls.protocol,
  connections: obs.connections,
});

test('sessions beyond the TLS handshake slots wait for one and are judged as without the wait', async () => {
  const h = host('normal');
  const alone = judged(h, await probe('normal'));
  const slots = new HandshakeSlots(1);
  const all = await Promise.all(Array.from({ length: 6 }, () => probeSmtp(h.ip, options({ host: h.name, handshakeSlots: slots }))));
  for (const obs of all) assert.deepEqual(judged(h, obs), alone);
  // At least one of them found the slot taken, and its transcript says it waited (our time, not the server's).
  assert.ok(all.some((obs) => obs.transcript.some((e) => e.dir === 'I' && /^waited \d+ ms for a TLS handshake slot/.test(e.line))));
  assert.equal(slots.queued, 0);
  assert.ok(slots.tryTake() !== null, 'every slot was given back');
});

test('a session whose deadline passes while it waits for a handshake slot is unknown (session_deadline), not a failed handshake', async () => {
  const h = host('normal');
  const slots = new HandshakeSlots(1, 60_000);
  const held = slots.tryTake();
  assert.ok(held);
  try {
    const obs = await probeSmtp(h.ip, options({ host: h.name, handshakeSlots: slots, sessionDeadlineMs: 1500 }));
    assert.equal(obs.deadlineReached, true);
    assert.equal(obs.tls.handshake, 'interrupted');
    assert.deepEqual(obs.connections, [{ mode: 'full', step: 'tls', code: null, error: 'session_deadline' }]);
    assert.equal(evaluateTlsReceive([{ host: h.name, ip: h.ip, obs }]).status, 'unknown');
    assert.equal(smtpSession(obs).reason, 'session_deadline');
    assert.equal(slots.queued, 0, 'the closed session left the queue');
  } finally {
    held();
  }
});

test('a handshake slot held too long is given back, so a stalled handshake does not hold the others', async () => {
  const h = host('normal');
  const slots = new HandshakeSlots(1, 300);
  const held = slots.tryTake();
  assert.ok(held);
  const obs = await probeSmtp(h.ip, options({ host: h.name, handshakeSlots: slots }));
  held();
  assert.equal(obs.tls.handshake, 'ok');
  const waited = obs.transcript.find((e) => e.dir === 'I' && e.line.startsWith('waited '));
  assert.ok(waited, 'it waited for the slot');
  assert.ok(Number(/waited (\d+) ms/.exec(waited.line)?.[1]) >= 250, waited.line);
});

test('no lab host ever received DATA or BDAT from the probe', () => {
  assert.ok(seen.size >= 10, 'the behaviour tests ran first');
  const commands = lab.log().filter((e) => e.event === 'command').map((e) => e.line ?? '');
  assert.ok(commands.length > 50);
  assert.deepEqual(commands.filter((l) => /^\s*(DATA|BDAT)\b/i.test(l)), []);
});
