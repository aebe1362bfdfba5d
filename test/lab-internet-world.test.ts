// The internet-like world (lab/generate-internet.ts, `lab generate --profile internet`): its distributions
// (provider concentration, latency quantiles, shares of slow, tarpit and greylisting hosts, determinism), and,
// against the running lab, that the behaviours are real: a postscreen host greets after its delay, a tarpit
// never greets within the probe's banner timeout (the checker says unknown, banner timeout) and still goes
// away with its client and at shutdown, greylisting answers 4xx on RCPT, a provider MX name has several A
// records that all listen, and per-host / per-domain DNS latency delays the answers.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateInternetWorld } from '../lab/generate-internet.ts';
import { loadWorld } from '../lab/world.ts';
import { startLab, type Lab } from '../lab/index.ts';
import type { LabHost, LabWorld } from '../lab/model.ts';
import { probeSmtp } from '../lib/probes/smtp/index.ts';
import { evaluateTlsReceive } from '../lib/checks/tls-receive/tls-receive.ts';
import { evaluateOpenRelay } from '../lib/checks/open-relay/open-relay.ts';
import { smtpSession, smtpSessionClass } from '../lib/checks/smtp-session.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(root, 'bin', 'mailcensus.mjs');

function quantile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** The first MX host of every domain, and whether it is a provider's (a shared host) or the domain's own. */
function firstMx(world: LabWorld): Array<{ domain: string; host: LabHost; own: boolean }> {
  return world.domains.map((d) => {
    const id = (d.mx as string[])[0]!;
    return { domain: d.name, host: world.hosts.get(id)!, own: id.includes('#') };
  });
}

test('distributions: Zipf-like providers, a long tail of own MX, log-normal latency, quota shares; deterministic', () => {
  const raw = generateInternetWorld({ domains: 4000, seed: 5 });
  assert.deepEqual(generateInternetWorld({ domains: 4000, seed: 5 }), raw, 'same seed, same world');
  assert.notDeepEqual(generateInternetWorld({ domains: 4000, seed: 6 }), raw);
  const world = loadWorld(raw);
  assert.equal(world.version, 2);
  assert.equal(world.domains.length, 4000);

  // Provider concentration: the first provider alone has a large share, the first five about half of the
  // shared domains; the rest (~25%) are self-hosted, nearly each with a host of its own.
  const mx = firstMx(world);
  const byProvider = new Map<string, number>();
  for (const m of mx) if (!m.own) byProvider.set(m.host.name.split('.')[1]!, (byProvider.get(m.host.name.split('.')[1]!) ?? 0) + 1);
  const ranked = [...byProvider.values()].sort((a, b) => b - a);
  const own = mx.filter((m) => m.own);
  assert.ok(own.length / 4000 > 0.21 && own.length / 4000 < 0.29, `own share ${own.length / 4000}`);
  assert.ok(ranked[0]! / 4000 > 0.13 && ranked[0]! / 4000 < 0.27, `largest provider ${ranked[0]! / 4000}`);
  const top5 = ranked.slice(0, 5).reduce((a, b) => a + b, 0) / 4000;
  assert.ok(top5 > 0.32 && top5 < 0.55, `first five providers ${top5}`);
  assert.ok(ranked[0]! > 3 * ranked[4]!, 'Zipf: the first provider has several times the fifth one');
  assert.ok(byProvider.size >= 40, `a tail of small providers: ${byProvider.size}`);
  assert.ok(new Set(own.map((m) => m.host.ip)).size === own.length, 'every self-hosted domain has its own MX address');

  // Latency: per host (SMTP RTT, DNS of its names) and per domain (DNS of its zone), long-tailed in 2..300 ms.
  const hosts = [...world.hosts.values()].filter((h) => h.latency);
  const smtp = hosts.map((h) => h.latency!.smtpRttMs!).sort((a, b) => a - b);
  const dns = [...hosts.map((h) => h.latency!.dnsMs!), ...world.domains.map((d) => d.latency!.dnsMs!)].sort((a, b) => a - b);
  for (const [what, xs] of [['smtp', smtp], ['dns', dns]] as const) {
    assert.ok(xs.length > 1000, `${what}: ${xs.length} draws`);
    assert.ok(xs[0]! >= 2 && xs.at(-1)! <= 300, `${what} within 2..300 ms: ${xs[0]}..${xs.at(-1)}`);
    assert.ok(quantile(xs, 0.1) <= 20, `${what} p10 ${quantile(xs, 0.1)}`);
    assert.ok(quantile(xs, 0.5) >= 28 && quantile(xs, 0.5) <= 55, `${what} p50 ${quantile(xs, 0.5)}`);
    assert.ok(quantile(xs, 0.9) >= 100 && quantile(xs, 0.9) <= 200, `${what} p90 ${quantile(xs, 0.9)}`);
    assert.ok(quantile(xs, 0.995) >= 250, `${what} long tail: p99.5 ${quantile(xs, 0.995)}`);
  }

  // Behaviours of self-hosted MX, by quota: postscreen 6%, tarpit 30 s 0.5%, never greets 0.5%, greylist 3%.
  const share = (f: (h: LabHost) => boolean) => own.filter((m) => f(m.host)).length / own.length;
  const near = (x: number, want: number, what: string) => assert.ok(Math.abs(x - want) <= 0.003, `${what}: ${x} (want ${want})`);
  near(share((h) => h.smtp.behavior === 'slow' && h.smtp.bannerDelayMs === 6000), 0.06, 'postscreen share');
  near(share((h) => h.smtp.behavior === 'slow' && h.smtp.bannerDelayMs === 30_000), 0.005, 'tarpit (30 s) share');
  near(share((h) => h.smtp.behavior === 'silent'), 0.005, 'tarpit (never) share');
  near(share((h) => h.smtp.behavior === 'greylist'), 0.03, 'greylist share');
  // Provider hosts greet at once.
  assert.ok(mx.filter((m) => !m.own).every((m) => m.host.smtp.behavior === 'normal'));

  // Several A records per provider MX name: the large providers' names have 4 addresses, the others 2.
  const perName = new Map<string, Set<string>>();
  for (const h of world.hosts.values()) if (h.name.startsWith('mx')) perName.set(h.name, (perName.get(h.name) ?? new Set()).add(h.ip));
  assert.equal(perName.get('mx1.prov1.test')?.size, 4);
  assert.equal(perName.get('mx2.prov1.test')?.size, 4);
  assert.equal(perName.get('mx1.prov60.test')?.size, 2);
});

test('lab validate accepts a generated internet world; the latency extension is refused in a version-1 world', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mc-internet-'));
  try {
    const file = path.join(dir, 'world.json');
    const gen = spawnSync(process.execPath, [bin, 'lab', 'generate', '--profile', 'internet', '--domains', '500', '--seed', '3', '--out', file], { encoding: 'utf8' });
    assert.equal(gen.status, 0, gen.stderr);
    const v = spawnSync(process.execPath, [bin, 'lab', 'validate', '--world', file], { encoding: 'utf8' });
    assert.equal(v.status, 0, v.stderr);
    assert.match(v.stdout, /ok: world "internet-500-s3": 500 domains/);
    // The extension fields are version 2 fields, and checked like the others (same loader as lab validate).
    assert.throws(
      () => loadWorld({ version: 1, name: 'v1', hosts: { a: { latency: { smtpRttMs: 5 } } }, domains: [{ name: 'a.test', mx: ['a'], latency: { dnsMs: 5 } }] }),
      (err: Error) => /\$\.hosts\.a\.latency: is a version 2 field/.test(err.message) && /\$\.domains\[0\]\.latency: is a version 2 field/.test(err.message),
    );
    assert.throws(() => loadWorld({ version: 2, name: 'u', hosts: { a: { latency: { smtpRtt: 5 } } } }), /\$\.hosts\.a\.latency\.smtpRtt: unknown field/);
    assert.throws(() => loadWorld({ version: 2, name: 'u', hosts: { a: { latency: { dnsMs: 60_001 } } } }), /\$\.hosts\.a\.latency\.dnsMs/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// The running lab: a small internet world with short delays (the behaviours, not the durations, are tested).
const POSTSCREEN_MS = 1200;
const BANNER_TIMEOUT_MS = 1500;
let lab: Lab;
let world: LabWorld;
let stateDir: string;

before(async () => {
  stateDir = mkdtempSync(path.join(tmpdir(), 'mc-internet-lab-'));
  world = loadWorld(
    generateInternetWorld({
      domains: 120,
      seed: 11,
      providers: 6,
      latencyMedianMs: 15,
      latencyMaxMs: 120,
      postscreenShare: 0.2,
      postscreenDelayMs: POSTSCREEN_MS,
      tarpitShare: 0.1,
      tarpitDelayMs: 60_000,
      silentShare: 0.1,
      greylistShare: 0.1,
    }),
  );
  lab = await startLab(world, { dnsPort: 0, smtpPort: 0, httpsPort: 0, stateDir });
});

after(async () => {
  await lab?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

function ownHost(f: (h: LabHost) => boolean): LabHost {
  const h = firstMx(world).find((m) => m.own && f(m.host))?.host;
  assert.ok(h, 'the world has such a host');
  return h;
}

/** Connects and resolves with the time to the first line (or null if none came within `waitMs`). */
function firstLine(ip: string, waitMs: number): Promise<{ ms: number | null; line: string }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const socket = net.connect({ host: ip, port: lab.smtpPort });
    let buf = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ ms: null, line: '' });
    }, waitMs);
    socket.on('data', (c) => {
      buf += c.toString('latin1');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ms: Date.now() - t0, line: buf.slice(0, nl).trim() });
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

function probeOptions(h: LabHost) {
  return { port: lab.smtpPort, lab: true, host: h.name, extraCaPems: [lab.caPem], connectTimeoutMs: 5000, bannerTimeoutMs: BANNER_TIMEOUT_MS, commandTimeoutMs: 10_000 };
}

test('a postscreen host greets after its delay, not before', async () => {
  const h = ownHost((x) => x.smtp.behavior === 'slow' && x.smtp.bannerDelayMs === POSTSCREEN_MS);
  const got = await firstLine(h.ip, POSTSCREEN_MS + 5000);
  assert.ok(got.ms !== null, 'it greets');
  assert.match(got.line, new RegExp(`^220 ${h.name.replace(/\./g, '\\.')} ESMTP`));
  // The greeting waits for the delay and then the host's own round-trip time.
  assert.ok(got.ms >= POSTSCREEN_MS + h.latency!.smtpRttMs! - 20, `greeted after ${got.ms} ms`);
});

for (const [kind, f] of [
  ['a tarpit that never greets', (x: LabHost) => x.smtp.behavior === 'silent'],
  ['a tarpit that greets after 60 s', (x: LabHost) => x.smtp.behavior === 'slow' && x.smtp.bannerDelayMs === 60_000],
] as const) {
  test(`${kind} does not greet within the banner timeout: the checker says unknown (banner timeout)`, async () => {
    const h = ownHost(f);
    const obs = await probeSmtp(h.ip, probeOptions(h));
    assert.equal(smtpSessionClass(obs), 'no_greeting');
    assert.equal(smtpSession(obs).reason, 'banner_timeout');
    const tls = evaluateTlsReceive([{ host: h.name, ip: h.ip, obs }]);
    assert.equal(tls.status, 'unknown', JSON.stringify(tls));
    assert.equal(evaluateOpenRelay([{ ip: h.ip, role: 'mx', host: h.name, obs }]).status, 'unknown');
  });
}

test('a tarpit session ends when its client goes away (no timer or session left behind)', async () => {
  const h = ownHost((x) => x.smtp.behavior === 'slow' && x.smtp.bannerDelayMs === 60_000);
  const before = lab.smtp.log(h.ip).filter((e) => e.event === 'close').length;
  const socket = net.connect({ host: h.ip, port: lab.smtpPort });
  await new Promise<void>((resolve, reject) => socket.once('connect', () => resolve()).once('error', reject));
  await new Promise((r) => setTimeout(r, 100));
  socket.destroy();
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline && lab.smtp.log(h.ip).filter((e) => e.event === 'close').length === before) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const closes = lab.smtp.log(h.ip).filter((e) => e.event === 'close');
  assert.equal(closes.length, before + 1);
  assert.equal(closes.at(-1)!.line, 'closed by client');
});

test('greylisting answers 4xx on RCPT at the first attempt (its TLS is still measured)', async () => {
  const h = ownHost((x) => x.smtp.behavior === 'greylist');
  const obs = await probeSmtp(h.ip, probeOptions(h));
  assert.equal(smtpSessionClass(obs), 'greylisted');
  assert.equal(smtpSession(obs).reason, 'rcpt_tempfail');
  const first = obs.relay.attempts[0]!;
  assert.ok(first.rcptReply && first.rcptReply.code >= 400 && first.rcptReply.code < 500, JSON.stringify(first));
  assert.equal(evaluateOpenRelay([{ ip: h.ip, role: 'mx', host: h.name, obs }]).status, 'unknown');
});

test('a provider MX name has several A records, every address listens and its PTR names the MX', async () => {
  const r = new Resolver({ timeout: 3000, tries: 1 });
  r.setServers([`127.0.0.1:${lab.dns.port}`]);
  const ips = (await r.resolve4('mx1.prov1.test')).sort();
  assert.equal(ips.length, 4);
  const hosts = [...world.hosts.values()].filter((h) => h.name === 'mx1.prov1.test').map((h) => h.ip).sort();
  assert.deepEqual(ips, hosts);
  for (const ip of ips) {
    assert.deepEqual(await r.reverse(ip), ['mx1.prov1.test']);
    const got = await firstLine(ip, 5000);
    assert.match(got.line, /^220 mx1\.prov1\.test ESMTP/, `${ip} greets as the MX`);
  }
  // A domain behind it: its MX is the name, once.
  const d = world.domains.find((x) => x.mx !== 'null' && world.hosts.get(x.mx[0]!)!.name === 'mx1.prov1.test')!;
  assert.equal((await r.resolveMx(d.name))[0]!.exchange, 'mx1.prov1.test');
});

test('DNS answers wait for the latency of the host or domain they are about', async () => {
  const r = new Resolver({ timeout: 3000, tries: 1 });
  r.setServers([`127.0.0.1:${lab.dns.port}`]);
  const slowDomain = [...world.domains].sort((a, b) => b.latency!.dnsMs! - a.latency!.dnsMs!)[0]!;
  const fastDomain = [...world.domains].sort((a, b) => a.latency!.dnsMs! - b.latency!.dnsMs!)[0]!;
  assert.ok(slowDomain.latency!.dnsMs! >= fastDomain.latency!.dnsMs! + 40, 'the world has a spread of latencies');
  const time = async (f: () => Promise<unknown>) => {
    const t0 = Date.now();
    await f().catch(() => {});
    return Date.now() - t0;
  };
  const slow = await time(() => r.resolveTxt(slowDomain.name));
  assert.ok(slow >= slowDomain.latency!.dnsMs! - 5, `${slowDomain.name}: ${slow} ms, latency ${slowDomain.latency!.dnsMs} ms`);
  const h = ownHost((x) => x.latency!.dnsMs! >= 40);
  const hostMs = await time(() => r.resolve4(h.name));
  assert.ok(hostMs >= h.latency!.dnsMs! - 5, `${h.name}: ${hostMs} ms, latency ${h.latency!.dnsMs} ms`);
});

test('lab shutdown ends tarpit sessions still waiting to greet, at once', async () => {
  const h = ownHost((x) => x.smtp.behavior === 'slow' && x.smtp.bannerDelayMs === 60_000);
  const s = ownHost((x) => x.smtp.behavior === 'silent');
  const sockets = [h, s].map((x) => net.connect({ host: x.ip, port: lab.smtpPort }));
  await Promise.all(sockets.map((so) => new Promise<void>((resolve, reject) => so.once('connect', () => resolve()).once('error', reject))));
  const closed = sockets.map((so) => new Promise<void>((resolve) => so.once('close', () => resolve())));
  for (const so of sockets) so.on('error', () => {});
  const t0 = Date.now();
  await lab.stop();
  await Promise.all(closed);
  assert.ok(Date.now() - t0 < 3000, `stopped and closed in ${Date.now() - t0} ms`);
});
