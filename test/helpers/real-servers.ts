// Real, independently written servers from Debian packages for integration tests (issue 15): nginx serving
// MTA-STS policies over HTTPS, NSD authoritative for DNSSEC-signed / unsigned / bogus zones behind a
// validating unbound, and Postfix's smtpd with RSA-2048, RSA-1024, ECDSA P-256 and leaf-only chains.
//
// Every server gets its own temporary directory and its own configuration files (nothing under /etc is read
// or written), listens only on the 127.60.0.0/14 (127.60–127.63) addresses a test gives it, runs in the foreground as a child
// in its own process group, and is killed (group and all) by `stop()` or when the test process exits. Every
// wait has a deadline and a failure names the server and shows the tail of its log. Certificates and keys
// are made with the openssl CLI, DNSSEC keys with dnssec-keygen and signatures with dnssec-signzone, all at
// test time, into the temporary directories: nothing generated is committed.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

// ---------------------------------------------------------------------------------------------------------
// Binaries

/** Where each binary the harness runs lives in Debian's packages. */
export const BINARIES = {
  nginx: '/usr/sbin/nginx',
  nsd: '/usr/sbin/nsd',
  unbound: '/usr/sbin/unbound',
  postfix: '/usr/sbin/postfix',
  'dnssec-keygen': '/usr/bin/dnssec-keygen',
  'dnssec-signzone': '/usr/bin/dnssec-signzone',
  dig: '/usr/bin/dig',
  openssl: '/usr/bin/openssl',
  'posttls-finger': '/usr/sbin/posttls-finger',
} as const;
export type Binary = keyof typeof BINARIES;

/** The binaries of `names` that are not installed (tests skip with this list; `.ci/run` installs them). */
export function missingBinaries(names: readonly Binary[]): string[] {
  return names.filter((n) => !existsSync(BINARIES[n])).map((n) => `${n} (${BINARIES[n]})`);
}

/** A skip message for node:test, or false when everything is there. */
export function skipUnless(names: readonly Binary[]): string | false {
  const missing = missingBinaries(names);
  return missing.length ? `real servers not installed: ${missing.join(', ')} (.ci/run installs them)` : false;
}

/** Postfix runs as root-started daemons that drop privileges: it needs root and the postfix user. */
export function postfixUnavailable(): string | false {
  const missing = skipUnless(['postfix']);
  if (missing) return missing;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'Postfix needs root (its master starts as root and drops to the postfix user)';
  return false;
}

function run(bin: string, args: string[], opts: { cwd?: string; input?: string; timeoutMs?: number } = {}): string {
  try {
    return execFileSync(bin, args, { cwd: opts.cwd, input: opts.input, timeout: opts.timeoutMs ?? 90_000, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${path.basename(bin)} ${args.join(' ')} failed: ${(e.stderr || e.stdout || e.message).toString().slice(-2000)}`);
  }
}

function openssl(args: string[], cwd: string): string {
  return run(BINARIES.openssl, args, { cwd });
}

/** A fresh temporary directory, readable by the daemons' unprivileged users (Postfix, nginx workers). */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `mailcensus-rs-${prefix}-`));
  chmodSync(dir, 0o755);
  return dir;
}

// ---------------------------------------------------------------------------------------------------------
// Certificates (openssl CLI)

export type LeafKey = 'rsa2048' | 'rsa1024' | 'ec256';
export interface LeafSpec {
  /** File-name-safe id. */
  id: string;
  /** The DNS name the certificate is for. */
  name: string;
  /** @defaultValue 'rsa2048' */
  key?: LeafKey;
  /** good: issued by the intermediate; self-signed; expired (issued by the intermediate, notAfter last year); wrong-name (issued for `wrongName`). @defaultValue 'good' */
  kind?: 'good' | 'self-signed' | 'expired' | 'wrong-name';
  /** @defaultValue 'wrong-name.invalid' */
  wrongName?: string;
}

export interface Leaf {
  spec: Required<LeafSpec>;
  keyPath: string;
  /** The leaf alone (PEM). */
  certPath: string;
  /** The leaf then the intermediate (PEM), as a server should send it; the leaf alone when self-signed. */
  chainPath: string;
  leafPem: string;
}

export interface Pki {
  dir: string;
  rootPath: string;
  rootPem: string;
  intermediatePath: string;
  intermediatePem: string;
  issue(spec: LeafSpec): Leaf;
}

const CA_CNF = (dir: string) => `[ ca ]
default_ca = ca_default
[ ca_default ]
dir = ${dir}
database = ${dir}/index.txt
new_certs_dir = ${dir}/issued
serial = ${dir}/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
default_days = 30
[ policy_any ]
commonName = supplied
`;

function keyArgs(key: LeafKey): string[] {
  switch (key) {
    case 'rsa2048': return ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'];
    case 'rsa1024': return ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024'];
    case 'ec256': return ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  }
}

/** A root CA and an intermediate under it (both RSA-2048, 30 days), issuing leaf certificates on demand. */
export function createPki(dir: string): Pki {
  mkdirSync(path.join(dir, 'issued'), { recursive: true });
  writeFileSync(path.join(dir, 'index.txt'), '');
  writeFileSync(path.join(dir, 'serial'), '1000\n');
  writeFileSync(path.join(dir, 'ca.cnf'), CA_CNF(dir));
  writeFileSync(path.join(dir, 'ca-ext.cnf'), [
    '[ req ]', 'distinguished_name = dn', '[ dn ]',
    '[ root ]', 'basicConstraints = critical,CA:TRUE', 'keyUsage = critical,keyCertSign,cRLSign', 'subjectKeyIdentifier = hash',
    '[ intermediate ]', 'basicConstraints = critical,CA:TRUE,pathlen:0', 'keyUsage = critical,keyCertSign,cRLSign', 'subjectKeyIdentifier = hash', 'authorityKeyIdentifier = keyid',
    '',
  ].join('\n'));
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'root.key', '-out', 'root.pem', '-days', '30', '-subj', '/O=mailcensus real-servers test/CN=Test Root CA', '-config', 'ca-ext.cnf', '-extensions', 'root'], dir);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'intermediate.key', '-out', 'intermediate.csr', '-subj', '/O=mailcensus real-servers test/CN=Test Intermediate CA'], dir);
  openssl(['x509', '-req', '-in', 'intermediate.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-set_serial', '2', '-days', '30', '-sha256', '-extfile', 'ca-ext.cnf', '-extensions', 'intermediate', '-out', 'intermediate.pem'], dir);
  const rootPath = path.join(dir, 'root.pem');
  const intermediatePath = path.join(dir, 'intermediate.pem');
  const intermediatePem = readFileSync(intermediatePath, 'utf8');
  const issued = new Map<string, Leaf>();

  const issue = (raw: LeafSpec): Leaf => {
    const spec: Required<LeafSpec> = { key: 'rsa2048', kind: 'good', wrongName: 'wrong-name.invalid', ...raw };
    if (!/^[a-z0-9-]+$/.test(spec.id)) throw new Error(`leaf id must be [a-z0-9-]+, got ${spec.id}`);
    const known = issued.get(spec.id);
    if (known) return known;
    const base = path.join(dir, spec.id);
    const certName = spec.kind === 'wrong-name' ? spec.wrongName : spec.name;
    openssl(['genpkey', ...keyArgs(spec.key), '-out', `${base}.key`], dir);
    writeFileSync(`${base}.ext`, [
      '[ leaf ]', 'basicConstraints = critical,CA:FALSE', `keyUsage = critical,digitalSignature${spec.key === 'ec256' ? '' : ',keyEncipherment'}`,
      'extendedKeyUsage = serverAuth', `subjectAltName = DNS:${certName}`, '',
    ].join('\n'));
    if (spec.kind === 'self-signed') {
      writeFileSync(`${base}.cnf`, `[ req ]\ndistinguished_name = dn\n[ dn ]\n${readFileSync(`${base}.ext`, 'utf8')}`);
      openssl(['req', '-x509', '-key', `${base}.key`, '-out', `${base}.pem`, '-days', '30', '-subj', `/CN=${certName}`, '-config', `${base}.cnf`, '-extensions', 'leaf'], dir);
    } else {
      openssl(['req', '-new', '-key', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${certName}`], dir);
      const dates = spec.kind === 'expired'
        ? ['-startdate', utcTime(-400), '-enddate', utcTime(-35)]
        : ['-startdate', utcTime(-1), '-enddate', utcTime(30)];
      openssl(['ca', '-batch', '-notext', '-config', 'ca.cnf', '-cert', 'intermediate.pem', '-keyfile', 'intermediate.key', '-in', `${base}.csr`, '-out', `${base}.pem`, ...dates, '-extfile', `${base}.ext`, '-extensions', 'leaf'], dir);
    }
    const leafPem = readFileSync(`${base}.pem`, 'utf8');
    writeFileSync(`${base}.chain.pem`, spec.kind === 'self-signed' ? leafPem : leafPem + intermediatePem);
    // Postfix and nginx read keys as root before dropping privileges; keep them private anyway.
    chmodSync(`${base}.key`, 0o600);
    const leaf: Leaf = { spec, keyPath: `${base}.key`, certPath: `${base}.pem`, chainPath: `${base}.chain.pem`, leafPem };
    issued.set(spec.id, leaf);
    return leaf;
  };
  return { dir, rootPath, rootPem: readFileSync(rootPath, 'utf8'), intermediatePath, intermediatePem, issue };
}

/** openssl ca's date format, `days` from now. */
function utcTime(days: number): string {
  return new Date(Date.now() + days * 86_400_000).toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
}

/** Hex of a digest the openssl CLI computes: `sha256`/`sha512` of a certificate's DER or of its SPKI's DER. */
export function opensslDigest(certPath: string, what: 'cert' | 'spki', alg: 'sha256' | 'sha512' | 'full'): string {
  const der = what === 'cert'
    ? execFileSync(BINARIES.openssl, ['x509', '-in', certPath, '-outform', 'DER'], { timeout: 10_000 })
    : execFileSync(BINARIES.openssl, ['pkey', '-pubin', '-outform', 'DER'], { input: execFileSync(BINARIES.openssl, ['x509', '-in', certPath, '-noout', '-pubkey'], { timeout: 10_000 }), timeout: 10_000 });
  if (alg === 'full') return der.toString('hex');
  return execFileSync(BINARIES.openssl, ['dgst', `-${alg}`, '-r'], { input: der, timeout: 10_000 }).toString().split(' ')[0].trim().toLowerCase();
}

// ---------------------------------------------------------------------------------------------------------
// Processes

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  /** Everything it wrote to stdout/stderr so far (bounded) plus `extraLog`, for error messages. */
  log(): string;
  /** SIGTERM to its process group, SIGKILL after the deadline; resolves once it exited. */
  stop(): Promise<void>;
}

const LOG_CAP = 200_000;
const live = new Set<ChildProcess>();
/** Daemons that left our process group (Postfix's master calls setsid): killed by pid. */
const detachedPids = new Set<number>();
process.once('exit', () => {
  // Last resort when a test forgot stop() or crashed: no daemon outlives the test process.
  for (const c of live) {
    try {
      if (c.pid) process.kill(-c.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const pid of detachedPids) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

// A crash of the test process (a segfault runs no exit handler) must not orphan the daemons: a small shell
// watchdog polls this process once a second (at most 12 hours) and, once it is gone, kills every process group
// listed in the groups file, which is kept up to date as daemons start and stop.
let groupsFile: string | null = null;
function recordGroups(): void {
  if (!groupsFile) {
    groupsFile = path.join(os.tmpdir(), `mailcensus-rs-groups-${process.pid}`);
    const watchdog = spawn('/bin/sh', ['-c', `n=0; while kill -0 ${process.pid} 2>/dev/null && [ $n -lt 43200 ]; do sleep 1; n=$((n+1)); done; for g in $(cat '${groupsFile}' 2>/dev/null); do kill -KILL -- -$g 2>/dev/null; done; rm -f '${groupsFile}'`], { detached: true, stdio: 'ignore' });
    watchdog.unref();
  }
  const groups = [...[...live].map((c) => c.pid).filter((p): p is number => typeof p === 'number'), ...detachedPids];
  writeFileSync(groupsFile, groups.join('\n') + '\n');
}

function spawnDaemon(name: string, bin: string, args: string[], opts: { cwd: string; extraLog?: () => string; env?: NodeJS.ProcessEnv }): ManagedProcess {
  const child = spawn(bin, args, { cwd: opts.cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' } });
  if (!child.pid) throw new Error(`${name}: could not start ${bin}`);
  live.add(child);
  recordGroups();
  let out = '';
  const add = (b: Buffer) => {
    if (out.length < LOG_CAP) out += b.toString('utf8');
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', (code, signal) => {
    exited = true;
    live.delete(child);
    recordGroups();
    out += `\n[${name} exited: ${signal ?? code}]\n`;
    resolve();
  }));
  const pid = child.pid;
  let stopping: Promise<void> | undefined;
  return {
    name,
    pid,
    log: () => out + (opts.extraLog?.() ?? ''),
    stop() {
      stopping ??= (async () => {
        const signal = (s: NodeJS.Signals) => {
          try {
            process.kill(-pid, s);
          } catch {
            // group gone
          }
        };
        if (!exited) signal('SIGTERM');
        const timer = setTimeout(() => signal('SIGKILL'), 5_000);
        await Promise.race([exit, new Promise((r) => setTimeout(r, 8_000))]);
        clearTimeout(timer);
        signal('SIGKILL');
      })();
      return stopping;
    },
  };
}

/** Resolves once `ip:port` accepts TCP; rejects after `deadlineMs` or when the process exits first. */
async function waitForPort(proc: ManagedProcess, ip: string, port: number, deadlineMs = 15_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (let attempt = 0; Date.now() < end && attempt < 1000; attempt++) {
    if (proc.log().includes(`[${proc.name} exited:`)) break;
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: ip, port });
      const t = setTimeout(() => { s.destroy(); resolve(false); }, 500);
      s.once('connect', () => { clearTimeout(t); s.destroy(); resolve(true); });
      s.once('error', () => { clearTimeout(t); resolve(false); });
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  await proc.stop();
  throw new Error(`${proc.name} did not listen on ${ip}:${port} within ${deadlineMs} ms. Log tail:\n${proc.log().slice(-3000)}`);
}

/** Throws when something already listens on ip:port (a daemon left over from a crashed run would otherwise answer for the new one). */
async function assertPortFree(what: string, ip: string, port: number): Promise<void> {
  const busy = await new Promise<boolean>((resolve) => {
    const s = net.connect({ host: ip, port });
    const t = setTimeout(() => { s.destroy(); resolve(true); }, 1000);
    s.once('connect', () => { clearTimeout(t); s.destroy(); resolve(true); });
    s.once('error', () => { clearTimeout(t); resolve(false); });
  });
  if (busy) throw new Error(`${what}: ${ip}:${port} is already in use (a server left over from an earlier run? see \`ss -ltnp | grep ${ip}\`)`);
}

/** The harness's loopback space: 127.60.0.0/14 (127.60–127.63; each test file has its own /24 in it)… */
function assertLab(ip: string): void {
  // …and 127.64.0.0/16, the DMARC test's (test/dmarc-real-servers.test.ts: NSD 127.64.0.54, unbound 127.64.0.53).
  if (!/^127\.6[0-4]\.\d{1,3}\.\d{1,3}$/.test(ip)) throw new Error(`real-servers: ${ip} is outside 127.60.0.0/14 and 127.64.0.0/16`);
}

// ---------------------------------------------------------------------------------------------------------
// nginx

export type PolicyBehaviour =
  | { status: 200; body: string; contentType: string }
  | { status: 404 }
  | { status: 301; location: string };

export interface NginxVhost {
  serverName: string;
  leaf: Leaf;
  /** What GET /.well-known/mta-sts.txt returns. */
  policy: PolicyBehaviour;
}

export interface RunningNginx {
  ip: string;
  port: number;
  dir: string;
  process: ManagedProcess;
  /** The access log's lines. */
  accessLog(): string[];
  /**
   * The lines logged after the first `before`, once there are `count` of them or after 2 s: nginx writes a line in
   * its log phase, after the response has gone out, so a client that has read the response can be faster.
   */
  accessLogAfter(before: number, count: number): Promise<string[]>;
  stop(): Promise<void>;
}

/** nginx (single process, foreground) serving one HTTPS vhost per `serverName` (SNI) on `ip:port`. */
export async function startNginx(opts: { ip: string; port: number; vhosts: NginxVhost[] }): Promise<RunningNginx> {
  assertLab(opts.ip);
  await assertPortFree('nginx', opts.ip, opts.port);
  const dir = tempDir('nginx');
  for (const sub of ['logs', 'tmp', 'www']) mkdirSync(path.join(dir, sub), { recursive: true });
  const servers = opts.vhosts.map((v, i) => {
    if (!/^[a-z0-9.-]+$/.test(v.serverName)) throw new Error(`nginx: bad server name ${v.serverName}`);
    const root = path.join(dir, 'www', String(i));
    mkdirSync(path.join(root, '.well-known'), { recursive: true });
    let location: string;
    if (v.policy.status === 200) {
      writeFileSync(path.join(root, '.well-known', 'mta-sts.txt'), v.policy.body);
      // `types {}` turns off the extension mapping, so default_type is the Content-Type sent.
      location = `types { } default_type "${v.policy.contentType.replace(/"/g, '')}"; try_files $uri =404;`;
    } else if (v.policy.status === 404) {
      location = 'return 404;';
    } else {
      location = `return 301 ${v.policy.location};`;
    }
    return `
    server {
      listen ${opts.ip}:${opts.port} ssl${i === 0 ? ' default_server' : ''};
      server_name ${v.serverName};
      ssl_certificate ${v.leaf.chainPath};
      ssl_certificate_key ${v.leaf.keyPath};
      root ${root};
      location = /.well-known/mta-sts.txt { ${location} }
      location / { return 404; }
    }`;
  });
  const t = path.join(dir, 'tmp');
  const conf = `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log info;
events { worker_connections 64; }
http {
  access_log ${dir}/logs/access.log;
  client_body_temp_path ${t}/body;
  proxy_temp_path ${t}/proxy;
  fastcgi_temp_path ${t}/fastcgi;
  uwsgi_temp_path ${t}/uwsgi;
  scgi_temp_path ${t}/scgi;
  server_tokens off;
  keepalive_timeout 5s;
  ${servers.join('\n')}
}
`;
  const confPath = path.join(dir, 'nginx.conf');
  writeFileSync(confPath, conf);
  let proc: ManagedProcess;
  try {
    run(BINARIES.nginx, ['-t', '-q', '-p', dir, '-e', `${dir}/logs/error.log`, '-c', confPath]);
    proc = spawnDaemon('nginx', BINARIES.nginx, ['-p', dir, '-e', `${dir}/logs/error.log`, '-c', confPath], {
      cwd: dir,
      extraLog: () => tail(path.join(dir, 'logs', 'error.log')),
    });
    await waitForPort(proc, opts.ip, opts.port);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const accessLog = () => readFileSync(path.join(dir, 'logs', 'access.log'), 'utf8').split('\n').filter(Boolean);
  const accessLogAfter = async (before: number, count: number) => {
    for (let i = 0; i < 100 && accessLog().length < before + count; i++) await new Promise((r) => setTimeout(r, 20));
    return accessLog().slice(before);
  };
  return {
    ip: opts.ip,
    port: opts.port,
    dir,
    process: proc,
    accessLog,
    accessLogAfter,
    stop: () => proc.stop().then(() => rmSync(dir, { recursive: true, force: true })),
  };
}

function tail(file: string, bytes = 3000): string {
  try {
    const s = readFileSync(file, 'utf8');
    return `\n--- ${path.basename(file)}\n${s.slice(-bytes)}`;
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------------------------------------------------
// DNS: NSD (authoritative) + unbound (validating recursive)

export interface ZoneSpec {
  /** e.g. `dane.test` (no trailing dot). */
  name: string;
  /** Zone-file lines after the SOA and NS (owner names relative to the zone or absolute with a dot). */
  records: string[];
  /**
   * signed: KSK + ZSK (ECDSA P-256), signed with dnssec-signzone, its KSK a trust anchor of unbound;
   * unsigned: no DNSSEC (insecure: no trust anchor covers it); bogus: signed and anchored, then the RDATA of
   * the records whose owner is `bogusOwner` changed after signing, so their RRSIG no longer verifies.
   */
  dnssec: 'signed' | 'unsigned' | 'bogus';
  bogusOwner?: string;
}

export interface RunningDns {
  nsd: { ip: string; port: number; process: ManagedProcess };
  unbound: { ip: string; port: number; process: ManagedProcess };
  dir: string;
  /** The zone files as served (signed ones after signing). */
  zoneFile(name: string): string;
  stop(): Promise<void>;
}

function zoneText(z: ZoneSpec, nsIp: string): string {
  return [
    `$ORIGIN ${z.name}.`,
    '$TTL 300',
    `@ IN SOA ns1.${z.name}. hostmaster.${z.name}. 2026010101 3600 900 604800 60`,
    `@ IN NS ns1.${z.name}.`,
    `ns1 IN A ${nsIp}`,
    ...z.records,
    '',
  ].join('\n');
}

/** Alters the RDATA of `owner`'s non-RRSIG records in a signed zone file, keeping their signatures: bogus. */
function corrupt(signed: string, owner: string): string {
  const fqdn = owner.endsWith('.') ? owner.toLowerCase() : `${owner.toLowerCase()}.`;
  let changed = 0;
  let current = '';
  const out = signed.split('\n').map((line) => {
    const m = /^(\S+)\s/.exec(line);
    if (m) current = m[1].toLowerCase();
    if (current !== fqdn || /\sRRSIG\s/.test(line) || /\sNSEC\s/.test(line) || line.trim().startsWith(';')) return line;
    // Flip the last hex digit of a TLSA/TXT/A RDATA: a different record under the same signature.
    const tlsa = /(\sTLSA\s+\d+\s+\d+\s+\d+\s+[0-9A-Fa-f ]*)([0-9A-Fa-f])(\s*)$/.exec(line);
    if (tlsa) {
      changed++;
      return line.slice(0, tlsa.index) + tlsa[1] + (tlsa[2].toLowerCase() === '0' ? '1' : '0') + tlsa[3];
    }
    const a = /(\sA\s+\d+\.\d+\.\d+\.)(\d+)(\s*)$/.exec(line);
    if (a) {
      changed++;
      return line.slice(0, a.index) + a[1] + String((Number(a[2]) + 1) % 255) + a[3];
    }
    return line;
  });
  if (changed === 0) throw new Error(`bogus zone: no A or TLSA record of ${fqdn} to corrupt`);
  return out.join('\n');
}

/** NSD on `nsd` serving `zones`, unbound on `unbound` validating them (stub zones to NSD, KSKs as anchors). */
export async function startDns(opts: { nsd: { ip: string; port: number }; unbound: { ip: string; port: number }; zones: ZoneSpec[] }): Promise<RunningDns> {
  assertLab(opts.nsd.ip);
  assertLab(opts.unbound.ip);
  await assertPortFree('nsd', opts.nsd.ip, opts.nsd.port);
  await assertPortFree('unbound', opts.unbound.ip, opts.unbound.port);
  const dir = tempDir('dns');
  const zonesDir = path.join(dir, 'zones');
  const keysDir = path.join(dir, 'keys');
  mkdirSync(zonesDir);
  mkdirSync(keysDir);
  const anchors: string[] = [];
  const files = new Map<string, string>();
  try {
    prepareZones(opts.zones, opts.nsd.ip, zonesDir, keysDir, anchors, files);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  writeFileSync(path.join(dir, 'anchors.keys'), anchors.join('\n') + '\n');
  return launchDns(opts, dir, zonesDir, files);
}

function prepareZones(zones: ZoneSpec[], nsIp: string, zonesDir: string, keysDir: string, anchors: string[], files: Map<string, string>): void {
  for (const z of zones) {
    if (!/^[a-z0-9.-]+$/.test(z.name)) throw new Error(`dns: bad zone name ${z.name}`);
    const plain = path.join(zonesDir, `${z.name}.zone`);
    writeFileSync(plain, zoneText(z, nsIp));
    if (z.dnssec === 'unsigned') {
      files.set(z.name, plain);
      continue;
    }
    // ECDSAP256SHA256 (algorithm 13, RFC 6605): fast to make, what most signed zones use today.
    const ksk = run(BINARIES['dnssec-keygen'], ['-q', '-K', keysDir, '-a', 'ECDSAP256SHA256', '-f', 'KSK', '-n', 'ZONE', z.name]).trim();
    const zsk = run(BINARIES['dnssec-keygen'], ['-q', '-K', keysDir, '-a', 'ECDSAP256SHA256', '-n', 'ZONE', z.name]).trim();
    const signedPath = path.join(zonesDir, `${z.name}.signed`);
    // -S: smart signing with the keys in -K (includes the DNSKEYs); -o origin; -f output; -e end +30 days.
    run(BINARIES['dnssec-signzone'], ['-S', '-O', 'full', '-K', keysDir, '-o', z.name, '-f', signedPath, '-e', '+2592000', '-d', keysDir, plain], { cwd: keysDir });
    if (z.dnssec === 'bogus') {
      if (!z.bogusOwner) throw new Error(`bogus zone ${z.name} needs bogusOwner`);
      writeFileSync(signedPath, corrupt(readFileSync(signedPath, 'utf8'), z.bogusOwner));
    }
    files.set(z.name, signedPath);
    // The KSK's DNSKEY as unbound's trust anchor for this zone (no parent delegation exists).
    const keyLine = readFileSync(path.join(keysDir, `${ksk}.key`), 'utf8').split('\n').find((l) => /\sDNSKEY\s/.test(l) && !l.startsWith(';'));
    if (!keyLine) throw new Error(`dns: no DNSKEY in ${ksk}.key`);
    anchors.push(keyLine.trim());
    void zsk;
  }
}

async function launchDns(
  opts: { nsd: { ip: string; port: number }; unbound: { ip: string; port: number }; zones: ZoneSpec[] },
  dir: string,
  zonesDir: string,
  files: Map<string, string>,
): Promise<RunningDns> {

  const nsdConf = `server:
  ip-address: ${opts.nsd.ip}@${opts.nsd.port}
  port: ${opts.nsd.port}
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: "${zonesDir}"
  database: ""
  zonelistfile: "${dir}/nsd-zone.list"
  xfrdfile: "${dir}/nsd-xfrd.state"
  xfrdir: "${dir}"
  pidfile: "${dir}/nsd.pid"
  logfile: "${dir}/nsd.log"
  server-count: 1
  reuseport: no
  hide-version: yes
  verbosity: 1
remote-control:
  control-enable: no
${opts.zones.map((z) => `zone:\n  name: "${z.name}"\n  zonefile: "${files.get(z.name)}"\n`).join('')}`;
  writeFileSync(path.join(dir, 'nsd.conf'), nsdConf);
  try {
    run('/usr/sbin/nsd-checkconf', [path.join(dir, 'nsd.conf')]);
    for (const z of opts.zones) run('/usr/sbin/nsd-checkzone', [z.name, files.get(z.name) as string]);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const nsd = spawnDaemon('nsd', BINARIES.nsd, ['-d', '-c', path.join(dir, 'nsd.conf')], { cwd: dir, extraLog: () => tail(path.join(dir, 'nsd.log')) });
  try {
    await waitForPort(nsd, opts.nsd.ip, opts.nsd.port);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  const unboundConf = `server:
  interface: ${opts.unbound.ip}
  port: ${opts.unbound.port}
  outgoing-interface: ${opts.unbound.ip}
  do-ip6: no
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "${dir}"
  pidfile: "${dir}/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 1
  val-log-level: 2
  num-threads: 1
  so-reuseport: no
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  module-config: "validator iterator"
  trust-anchor-file: "${dir}/anchors.keys"
  ede: yes
  cache-max-ttl: 5
  cache-max-negative-ttl: 5
${opts.zones.map((z) => `  local-zone: "${z.name}." nodefault\n  domain-insecure: "${z.dnssec === 'unsigned' ? z.name : 'invalid.'}"\n`).join('')}  local-zone: "test." nodefault
remote-control:
  control-enable: no
${opts.zones.map((z) => `stub-zone:\n  name: "${z.name}"\n  stub-addr: ${opts.nsd.ip}@${opts.nsd.port}\n`).join('')}`;
  writeFileSync(path.join(dir, 'unbound.conf'), unboundConf);
  try {
    run('/usr/sbin/unbound-checkconf', [path.join(dir, 'unbound.conf')]);
  } catch (err) {
    await nsd.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const unbound = spawnDaemon('unbound', BINARIES.unbound, ['-d', '-c', path.join(dir, 'unbound.conf')], { cwd: dir });
  try {
    await waitForPort(unbound, opts.unbound.ip, opts.unbound.port);
  } catch (err) {
    await nsd.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    nsd: { ...opts.nsd, process: nsd },
    unbound: { ...opts.unbound, process: unbound },
    dir,
    zoneFile: (name) => readFileSync(files.get(name) ?? '', 'utf8'),
    async stop() {
      await Promise.all([unbound.stop(), nsd.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `dig` at a server; returns its full output (`+dnssec +norec` etc. are the caller's). */
export function dig(server: { ip: string; port: number }, args: string[]): string {
  return run(BINARIES.dig, [`@${server.ip}`, '-p', String(server.port), '+time=2', '+tries=2', ...args], { timeoutMs: 15_000 });
}

/** The flags and rcode of a dig answer: `{ rcode: 'NOERROR', flags: ['qr','rd','ra','ad'] }`. */
export function digHeader(out: string): { rcode: string; flags: string[] } {
  const rcode = /status: ([A-Z]+)/.exec(out)?.[1] ?? '';
  const flags = (/flags: ([a-z ]+);/.exec(out)?.[1] ?? '').trim().split(/\s+/).filter(Boolean);
  return { rcode, flags };
}

// ---------------------------------------------------------------------------------------------------------
// Postfix (smtpd only)

export interface PostfixListener {
  ip: string;
  port: number;
  leaf: Leaf;
  /** Send the leaf alone, without its intermediate. @defaultValue false */
  leafOnly?: boolean;
}

export interface RunningPostfix {
  dir: string;
  listeners: PostfixListener[];
  process: ManagedProcess;
  /** Postfix's own log (maillog_file). */
  log(): string;
  stop(): Promise<void>;
}

/**
 * Postfix's master with one smtpd per listener (each its own certificate chain), in its own config and queue
 * directories. It delivers nothing anywhere: no relaying (reject_unauth_destination, empty mynetworks and
 * relay_domains), no local domains (empty mydestination), every transport `error:`, no postmaster notices.
 */
export async function startPostfix(opts: { hostname: string; listeners: PostfixListener[] }): Promise<RunningPostfix> {
  for (const l of opts.listeners) {
    assertLab(l.ip);
    await assertPortFree('postfix', l.ip, l.port);
  }
  const dir = tempDir('postfix');
  const conf = path.join(dir, 'conf');
  const queue = path.join(dir, 'queue');
  const data = path.join(dir, 'data');
  for (const d of [conf, queue, data]) mkdirSync(d);
  chownSync(data, uid('postfix'), 0);
  const maillog = path.join(dir, 'maillog');
  const main = `compatibility_level = 3.6
queue_directory = ${queue}
data_directory = ${data}
mail_owner = postfix
setgid_group = postdrop
myhostname = ${opts.hostname}
mydomain = ${opts.hostname}
myorigin = ${opts.hostname}
mydestination =
mynetworks =
relay_domains =
relayhost =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
smtp_bind_address = 127.0.0.1
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = reject_unauth_destination
default_transport = error:the real-servers test harness delivers nothing
relay_transport = error:the real-servers test harness delivers nothing
local_transport = error:the real-servers test harness delivers nothing
virtual_transport = error:the real-servers test harness delivers nothing
notify_classes =
alias_maps =
alias_database =
local_recipient_maps =
biff = no
maillog_file_prefixes = ${dir}
maillog_file = ${maillog}
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtpd_tls_session_cache_database =
smtpd_banner = $myhostname ESMTP
`;
  writeFileSync(path.join(conf, 'main.cf'), main);
  const services = opts.listeners.map((l, i) => {
    const chain = l.leafOnly ? l.leaf.certPath : l.leaf.chainPath;
    // smtpd_tls_chain_files: the key, then the certificates leaf first (Postfix ≥ 3.4).
    const chainFile = path.join(dir, `chain-${i}.pem`);
    writeFileSync(chainFile, readFileSync(l.leaf.keyPath, 'utf8') + readFileSync(chain, 'utf8'));
    chmodSync(chainFile, 0o600);
    return `${l.ip}:${l.port} inet n - n - - smtpd -o smtpd_tls_chain_files=${chainFile} -o syslog_name=postfix/l${i}`;
  });
  writeFileSync(path.join(conf, 'master.cf'), `${services.join('\n')}
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
defer unix - - n - 0 bounce
bounce unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
proxymap unix - - n - - proxymap
postlog unix-dgram n - n - 1 postlogd
`);
  // `postfix check` creates the queue directories with their owners (postfix-files).
  try {
    run(BINARIES.postfix, ['-c', conf, 'check']);
  } catch (err) {
    const log = tail(maillog);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}${log}`);
  }
  const proc = spawnDaemon('postfix', BINARIES.postfix, ['-c', conf, 'start-fg'], {
    cwd: dir,
    extraLog: () => tail(maillog),
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', MAIL_CONFIG: conf },
  });
  const stopAll = async () => {
    // start-fg runs master as a child of postfix-script in our process group; master's own children stay in
    // it too. Ask Postfix to stop first (clean), then the group.
    try {
      run(BINARIES.postfix, ['-c', conf, 'stop'], { timeoutMs: 10_000 });
    } catch {
      // not running any more
    }
    await proc.stop();
    // master is a session leader of its own (setsid): its group holds the smtpd and the other daemons.
    const masterPid = readMasterPid();
    if (masterPid !== null) {
      try {
        process.kill(-masterPid, 'SIGKILL');
      } catch {
        // gone
      }
      detachedPids.delete(masterPid);
      recordGroups();
    }
  };
  const readMasterPid = (): number | null => {
    const pidFile = path.join(queue, 'pid', 'master.pid');
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : NaN;
    return Number.isInteger(pid) && pid > 1 ? pid : null;
  };
  try {
    for (const l of opts.listeners) await waitForPort(proc, l.ip, l.port);
    const masterPid = readMasterPid();
    if (masterPid !== null) {
      detachedPids.add(masterPid);
      recordGroups();
    }
  } catch (err) {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    dir,
    listeners: opts.listeners,
    process: proc,
    log: () => (existsSync(maillog) ? readFileSync(maillog, 'utf8') : ''),
    async stop() {
      await stopAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function uid(user: string): number {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${user}:`));
  if (!line) throw new Error(`no ${user} user (is the postfix package installed?)`);
  return Number(line.split(':')[2]);
}

/** `openssl s_client` (STARTTLS for smtp) and the PEM certificates it shows, leaf first. */
export function sClientChain(ip: string, port: number, opts: { starttls?: 'smtp'; servername?: string } = {}): { output: string; pems: string[] } {
  const args = ['s_client', '-connect', `${ip}:${port}`, '-showcerts'];
  if (opts.starttls) args.push('-starttls', opts.starttls);
  if (opts.servername) args.push('-servername', opts.servername);
  const output = run(BINARIES.openssl, args, { input: 'QUIT\r\n', timeoutMs: 15_000 });
  const pems = output.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return { output, pems: pems.map((p) => `${p}\n`) };
}
