// Brings a lab world up in this process: the DNS server (lab/dns-server.ts), the lab CA and the SMTP hosts
// (lab/ca.ts, lab/smtp-server.ts), and the environment that points mailcensus at them. `mailcensus lab up`
// is a thin wrapper around startLab(); tests call it directly.
import { createWriteStream, mkdirSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { InputError } from '../lib/errors.ts';
import { stopProcess } from '../lib/stop-process.ts';
import type { LabWorld } from './model.ts';
import { loadWorld } from './world.ts';
import { startDnsServer } from './dns-server.ts';
import { createLabCa } from './ca.ts';
import { startPolicyHosts, type PolicyHosts } from './https-server.ts';
import { listeningHostBudget, startSmtpHosts, type SmtpHosts, type SmtpLogEntry } from './smtp-server.ts';
import { fork, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ShardStart } from './smtp-shard.ts';

/** Most SMTP processes one lab may start (each listens on up to `ulimit -n` - 1500 host addresses). */
const MAX_SMTP_PROCESSES = 16;

/**
 * Starts the SMTP shards 1..count-1 as child processes (shard 0 runs in this process): `ulimit -n` is per
 * process, so a world with more listening hosts than one process may open is spread over several. They share
 * the lab CA and append to the same smtp-log.jsonl.
 */
async function startShardProcesses(start: Omit<ShardStart, 'shard'>, count: number): Promise<ChildProcess[]> {
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  const entry = fileURLToPath(new URL('./smtp-shard.ts', import.meta.url));
  const children: ChildProcess[] = [];
  const started = Array.from({ length: count - 1 }, (_, k) => {
    const child = fork(entry, [], { execArgv: ['--import', tsx], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(child);
    return new Promise<void>((resolve, reject) => {
      child.once('message', (m: { ready?: boolean; error?: string }) => (m.ready ? resolve() : reject(new Error(m.error ?? 'lab SMTP shard failed'))));
      child.once('exit', (code) => reject(new Error(`lab SMTP shard ${k + 1} exited with ${code} before it was ready`)));
      child.send({ ...start, shard: { index: k + 1, count } } satisfies ShardStart);
    });
  });
  try {
    await Promise.all(started);
  } catch (err) {
    await stopShardProcesses(children);
    throw err;
  }
  return children;
}

async function stopShardProcesses(children: ChildProcess[]): Promise<void> {
  await Promise.all(children.map((c) => stopProcess(c, 5000)));
}

export const DEFAULT_DNS_PORT = 5300;
export const DEFAULT_SMTP_PORT = 2525;
export const DEFAULT_HTTPS_PORT = 8443;
export const LAB_HOST = '127.0.0.1';

export interface LabOptions {
  /** UDP+TCP port of the lab resolver on 127.0.0.1; 0 = ephemeral. @defaultValue 5300 */
  dnsPort?: number;
  /** The SMTP port on every host address; 0 = ephemeral (one port for all hosts). @defaultValue 2525 */
  smtpPort?: number;
  /** The HTTPS port of every MTA-STS policy host (v2); 0 = ephemeral. @defaultValue 8443 */
  httpsPort?: number;
  /** Where the CA PEM, the SMTP log and lab.json go. @defaultValue `.lab/` in the working directory */
  stateDir?: string;
  /**
   * Concurrent SMTP sessions per lab process (each shard its own); beyond it a client gets `421 4.7.0`. The
   * sessions bench (bench/sessions.ts) holds thousands of slow sessions at once. @defaultValue 1000
   */
  maxSessions?: number;
}

export interface Lab {
  world: LabWorld;
  dns: { host: '127.0.0.1'; port: number; readonly queries: number };
  smtpPort: number;
  httpsPort: number;
  caPem: string;
  /** The variables that point mailcensus at this lab (see docs/lab.md). */
  env: Record<string, string>;
  smtp: SmtpHosts;
  /** The MTA-STS policy hosts (v2). */
  https: PolicyHosts;
  stateDir: string;
  stop(): Promise<void>;
}

/** The env lines as `lab up` prints them and writes them to --env-file. */
export function formatEnv(env: Record<string, string>): string {
  return Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join('');
}

/** Starts every service of a world; on any failure, stops what it started and throws (InputError if it was the user's). */
export async function startLab(worldOrPath: LabWorld | string, opts: LabOptions = {}): Promise<Lab> {
  const world = typeof worldOrPath === 'string' ? loadWorld(worldOrPath) : worldOrPath;
  const stateDir = path.resolve(opts.stateDir ?? '.lab');
  const dnsPort = opts.dnsPort ?? DEFAULT_DNS_PORT;
  const smtpPort = opts.smtpPort ?? DEFAULT_SMTP_PORT;
  const httpsPort = opts.httpsPort ?? DEFAULT_HTTPS_PORT;
  for (const [name, p] of [['DNS port', dnsPort], ['SMTP port', smtpPort], ['HTTPS port', httpsPort]] as const) {
    if (!Number.isInteger(p) || p < 0 || p > 65535) throw new InputError(`${name} must be 0..65535, got ${p}`);
  }
  try {
    mkdirSync(stateDir, { recursive: true });
  } catch (err) {
    throw new InputError(`cannot create the lab state directory ${stateDir}: ${(err as Error).message}`);
  }

  // Every key type the world's certificates need, ready before any process issues (the shards get them).
  const keyTypes = new Set([...world.hosts.values()].filter((h) => (h.smtp.starttls && h.smtp.behavior !== 'refuse') || h.tlsa.length > 0).map((h) => h.smtp.tls.key));
  if (world.domains.some((d) => d.mtaStsPolicy)) keyTypes.add('rsa-2048');
  const ca = await createLabCa({ observedAt: world.observedAt, stateDir, keyTypes });
  const caFile = path.join(stateDir, 'lab-ca.pem');
  writeFileSync(caFile, ca.caCertPem);
  // The intermediate that issues host certificates: what a `complete` chain sends after the leaf (for tools
  // that check a `leaf-only` host or a DANE-TA record by hand).
  writeFileSync(path.join(stateDir, 'lab-intermediate.pem'), ca.intermediateCertPem);

  const dns = await startDnsServer(world, { host: LAB_HOST, port: dnsPort, ca });
  let log: WriteStream | undefined;
  let smtp: SmtpHosts;
  let shardProcesses: ChildProcess[] = [];
  // More listening hosts than this process may open: spread them over child processes (only for a world
  // given as a file, which the children load themselves). `smtp.log()` then covers this process's shard only;
  // smtp-log.jsonl has every host.
  const listeningCount = [...world.hosts.values()].filter((h) => h.smtp.behavior !== 'refuse').length;
  const budget = Math.max(1, listeningHostBudget());
  const shards = typeof worldOrPath === 'string' ? Math.min(MAX_SMTP_PROCESSES, Math.ceil(listeningCount / budget)) || 1 : 1;
  try {
    const logFile = path.join(stateDir, 'smtp-log.jsonl');
    log = createWriteStream(logFile, { flags: 'a' });
    log.on('error', () => {}); // a full disk must not take the lab down
    const sink = log;
    smtp = await startSmtpHosts(world, {
      port: smtpPort,
      ca,
      smtpRttMs: world.latency.smtpRttMs,
      onLog: (e: SmtpLogEntry) => sink.write(`${JSON.stringify(e)}\n`),
      ...(opts.maxSessions !== undefined ? { maxSessions: opts.maxSessions } : {}),
      ...(shards > 1 ? { shard: { index: 0, count: shards } } : {}),
    });
    if (shards > 1) {
      try {
        shardProcesses = await startShardProcesses(
          { worldPath: path.resolve(worldOrPath as string), port: smtp.port, ca: ca.material(), logFile, maxSessions: opts.maxSessions },
          shards,
        );
      } catch (err) {
        await smtp.stop();
        throw err;
      }
    }
  } catch (err) {
    await dns.stop();
    log?.end();
    const msg = (err as Error).message;
    // The SMTP hosts report a taken port or a too-large world as a plain Error: both are the user's to fix.
    if (/port in use|EADDRINUSE|ulimit|outside 127/.test(msg)) throw new InputError(msg);
    throw err;
  }
  let https: PolicyHosts;
  try {
    https = await startPolicyHosts(world, { port: httpsPort, ca, host: LAB_HOST });
  } catch (err) {
    await Promise.all([dns.stop(), smtp.stop(), stopShardProcesses(shardProcesses)]);
    log?.end();
    const msg = (err as Error).message;
    // A taken HTTPS port is the user's to fix.
    if (/port in use|EADDRINUSE|ulimit|outside 127/.test(msg)) throw new InputError(msg);
    throw err;
  }

  const env: Record<string, string> = {
    MAILCENSUS_LAB: '1',
    MAILCENSUS_RESOLVER: `${LAB_HOST}:${dns.port}`,
    MAILCENSUS_SMTP_PORT: String(smtp.port),
    MAILCENSUS_HTTPS_PORT: String(https.port),
    MAILCENSUS_DNSBL_ZONES: world.dnsbls.join(','),
    ...(world.observedAt ? { MAILCENSUS_CLOCK: world.observedAt } : {}),
    MAILCENSUS_EXTRA_CA: caFile,
    MAILCENSUS_LAB_STATE: stateDir,
  };
  const stateFile = path.join(stateDir, 'lab.json');
  writeFileSync(
    stateFile,
    `${JSON.stringify({ pid: process.pid, smtpPids: shardProcesses.map((c) => c.pid), world: world.name, dnsPort: dns.port, smtpPort: smtp.port, httpsPort: https.port, startedAt: new Date().toISOString(), env }, null, 2)}\n`,
  );

  // dns-stats.json: the lab DNS server's query count, for tools in other processes (the bench's DNS queries per
  // domain). Rewritten at most once a second, only when it changed; the timer does not keep the process alive.
  const dnsStatsFile = path.join(stateDir, 'dns-stats.json');
  let lastQueries = -1;
  const writeDnsStats = () => {
    if (dns.queries === lastQueries) return;
    lastQueries = dns.queries;
    try {
      writeFileSync(dnsStatsFile, `${JSON.stringify({ queries: lastQueries, at: new Date().toISOString() })}\n`);
    } catch {
      // a full disk must not take the lab down
    }
  };
  writeDnsStats();
  const statsTimer = setInterval(writeDnsStats, 1000);
  statsTimer.unref();

  let stopping: Promise<void> | undefined;
  return {
    world,
    dns: {
      host: LAB_HOST,
      port: dns.port,
      get queries() {
        return dns.queries;
      },
    },
    smtpPort: smtp.port,
    httpsPort: https.port,
    caPem: ca.caCertPem,
    env,
    smtp,
    https,
    stateDir,
    stop() {
      stopping ??= (async () => {
        clearInterval(statsTimer);
        await Promise.all([dns.stop(), smtp.stop(), https.stop(), stopShardProcesses(shardProcesses)]);
        await new Promise<void>((resolve) => (log ? log.end(() => resolve()) : resolve()));
        rmSync(stateFile, { force: true }); // lab.json says a lab is running: not any more
      })();
      return stopping;
    },
  };
}
