// The two real-server scenarios the integration tests share (issue 15), each on its own 127.60.<net>.0/24 so
// test files can run at the same time: MTA-STS policy hosts on nginx, and DANE (TLSA in signed, unsigned and
// bogus zones) in front of Postfix. Every expected digest is computed by the openssl CLI, not by our code.
import { createPki, opensslDigest, startDns, startNginx, startPostfix, tempDir, type Leaf, type NginxVhost, type Pki, type RunningDns, type RunningNginx, type RunningPostfix } from './real-servers.ts';
import { rmSync } from 'node:fs';

export const DNS_PORT = 20053;
export const HTTPS_PORT = 20443;

/**
 * A world's two servers, started one after the other, with its PKI in `pkiDir`: `stop` stops both and removes
 * `pkiDir`. If one does not start, the one already running is stopped and `pkiDir` removed before the error
 * goes on, so a failed start leaves nothing behind.
 */
async function startServers<A extends { stop(): Promise<void> }, B extends { stop(): Promise<void> }>(
  pkiDir: string,
  startFirst: () => Promise<A>,
  startSecond: () => Promise<B>,
): Promise<{ first: A; second: B; stop(): Promise<void> }> {
  let first: A | undefined;
  try {
    first = await startFirst();
    const second = await startSecond();
    const a = first;
    return {
      first: a,
      second,
      async stop() {
        await Promise.all([a.stop(), second.stop()]);
        rmSync(pkiDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await first?.stop();
    rmSync(pkiDir, { recursive: true, force: true });
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------------------
// MTA-STS

export const STS_ZONE = 'sts.test';
export const GOOD_POLICY = 'version: STSv1\r\nmode: enforce\r\nmx: mx1.good.sts.test\r\nmx: *.mx.sts.test\r\nmax_age: 604800\r\n';

/** Each MTA-STS domain under sts.test and how its policy host behaves. */
export interface StsCase {
  label: string;
  /** null: no `_mta-sts` TXT record. */
  txt: string | null;
  /** `nginx` (a vhost), `refused` (an address nothing listens on), `silent` (accepts TCP, never answers), null (no A record). */
  host: 'nginx' | 'refused' | 'silent' | null;
  cert?: 'good' | 'self-signed' | 'expired' | 'wrong-name';
  policy?: NginxVhost['policy'];
}

export const STS_CASES: StsCase[] = [
  { label: 'good', txt: 'v=STSv1; id=20260101', host: 'nginx', cert: 'good', policy: { status: 200, body: GOOD_POLICY, contentType: 'text/plain' } },
  { label: 'testing', txt: 'v=STSv1; id=2', host: 'nginx', cert: 'good', policy: { status: 200, body: 'version: STSv1\nmode: testing\nmx: mx.testing.sts.test\nmax_age: 86400\n', contentType: 'text/plain; charset=utf-8' } },
  { label: 'none', txt: 'v=STSv1; id=3', host: 'nginx', cert: 'good', policy: { status: 200, body: 'version: STSv1\r\nmode: none\r\nmax_age: 86400\r\n', contentType: 'text/plain' } },
  { label: 'selfsigned', txt: 'v=STSv1; id=1', host: 'nginx', cert: 'self-signed', policy: { status: 200, body: GOOD_POLICY, contentType: 'text/plain' } },
  { label: 'expired', txt: 'v=STSv1; id=1', host: 'nginx', cert: 'expired', policy: { status: 200, body: GOOD_POLICY, contentType: 'text/plain' } },
  { label: 'wrongname', txt: 'v=STSv1; id=1', host: 'nginx', cert: 'wrong-name', policy: { status: 200, body: GOOD_POLICY, contentType: 'text/plain' } },
  { label: 'notfound', txt: 'v=STSv1; id=1', host: 'nginx', cert: 'good', policy: { status: 404 } },
  { label: 'redirect', txt: 'v=STSv1; id=1', host: 'nginx', cert: 'good', policy: { status: 301, location: 'https://mta-sts.good.sts.test/.well-known/mta-sts.txt' } },
  { label: 'oversize', txt: 'v=STSv1; id=1', host: 'nginx', cert: 'good', policy: { status: 200, body: `version: STSv1\nmode: enforce\nmx: mx.oversize.sts.test\nmax_age: 86400\n${'# padding\n'.repeat(10_000)}`, contentType: 'text/plain' } },
  { label: 'wrongtype', txt: 'v=STSv1; id=1', host: 'nginx', cert: 'good', policy: { status: 200, body: GOOD_POLICY, contentType: 'text/html' } },
  { label: 'badmaxage', txt: 'v=STSv1; id=1', host: 'nginx', cert: 'good', policy: { status: 200, body: 'version: STSv1\nmode: enforce\nmx: mx.badmaxage.sts.test\nmax_age: 1e5\n', contentType: 'text/plain' } },
  { label: 'refused', txt: 'v=STSv1; id=1', host: 'refused' },
  { label: 'silent', txt: 'v=STSv1; id=1', host: 'silent' },
  { label: 'nohost', txt: 'v=STSv1; id=1', host: null },
  { label: 'notxt', txt: null, host: 'nginx', cert: 'good', policy: { status: 200, body: GOOD_POLICY, contentType: 'text/plain' } },
];

export interface StsWorld {
  net: number;
  pki: Pki;
  nginx: RunningNginx;
  dns: RunningDns;
  /** unbound, the validating resolver to point createResolver at. */
  resolver: { host: string; port: number };
  ips: { nginx: string; refused: string; silent: string };
  stop(): Promise<void>;
}

/** nginx with one vhost per case, NSD+unbound serving sts.test (unsigned), on 127.60.<net>.0/24. */
export async function startStsWorld(net: number): Promise<StsWorld> {
  const p = `127.60.${net}`;
  const ips = { nginx: `${p}.1`, refused: `${p}.9`, silent: `${p}.8` };
  const pkiDir = tempDir('sts-pki');
  const pki = createPki(pkiDir);
  const vhosts: NginxVhost[] = STS_CASES.filter((c) => c.host === 'nginx').map((c) => {
    const name = `mta-sts.${c.label}.${STS_ZONE}`;
    const leaf: Leaf = pki.issue({ id: `sts-${c.label}`, name, kind: c.cert ?? 'good', wrongName: `mta-sts.other.${STS_ZONE}` });
    return { serverName: name, leaf, policy: c.policy as NginxVhost['policy'] };
  });
  const records: string[] = [];
  for (const c of STS_CASES) {
    if (c.txt) records.push(`_mta-sts.${c.label} IN TXT "${c.txt}"`);
    records.push(`${c.label} IN MX 10 mx1.${c.label}.${STS_ZONE}.`);
    if (c.host) records.push(`mta-sts.${c.label} IN A ${ips[c.host]}`);
  }
  const { first: nginx, second: dns, stop } = await startServers(
    pkiDir,
    () => startNginx({ ip: ips.nginx, port: HTTPS_PORT, vhosts }),
    () => startDns({ nsd: { ip: `${p}.54`, port: DNS_PORT }, unbound: { ip: `${p}.53`, port: DNS_PORT }, zones: [{ name: STS_ZONE, dnssec: 'unsigned', records }] }),
  );
  return {
    net,
    pki,
    nginx,
    dns,
    resolver: { host: dns.unbound.ip, port: dns.unbound.port },
    ips,
    stop,
  };
}

// ---------------------------------------------------------------------------------------------------------
// DANE

export const SMTP_PORTS = { rsa2048: 20025, rsa1024: 20026, ec256: 20027, leafOnly: 20028 } as const;
export type SmtpListener = keyof typeof SMTP_PORTS;

/** A TLSA lookup case: the MX name, the Postfix listener its session goes to, and what DANE should say. */
export interface DaneCase {
  mx: string;
  listener: SmtpListener;
  expect: 'valid' | 'mismatch' | 'unusable' | 'none' | 'insecure' | 'bogus';
  /** What the case proves. */
  about: string;
}

export const DANE_CASES: DaneCase[] = [
  { mx: 'mx-ee.dane.test', listener: 'rsa2048', expect: 'valid', about: 'DANE-EE SPKI SHA-256 (3 1 1) next to a non-matching 3 1 1' },
  { mx: 'mx-cert.dane.test', listener: 'rsa2048', expect: 'valid', about: 'DANE-EE full certificate SHA-256 (3 0 1)' },
  { mx: 'mx-ec512.dane.test', listener: 'ec256', expect: 'valid', about: 'DANE-EE SPKI SHA-512 (3 1 2) of an ECDSA P-256 key' },
  { mx: 'mx-ecfull.dane.test', listener: 'ec256', expect: 'valid', about: 'DANE-EE full SPKI, matching type 0 (3 1 0)' },
  { mx: 'mx-rsa1024.dane.test', listener: 'rsa1024', expect: 'valid', about: 'DANE-EE of an RSA-1024 key (DANE says nothing of key size)' },
  { mx: 'mx-ta.dane.test', listener: 'rsa2048', expect: 'valid', about: 'DANE-TA of the intermediate (2 0 1), which the server sends' },
  { mx: 'mx-ta.dane.test', listener: 'leafOnly', expect: 'mismatch', about: 'DANE-TA of the intermediate when the server sends the leaf alone' },
  { mx: 'mx-bad.dane.test', listener: 'rsa2048', expect: 'mismatch', about: 'a secure 3 1 1 of another key' },
  { mx: 'mx-pkix.dane.test', listener: 'rsa2048', expect: 'unusable', about: 'PKIX-EE (1 1 1) is unusable for SMTP, RFC 7672 §3.1.3' },
  { mx: 'mx-none.dane.test', listener: 'rsa2048', expect: 'none', about: 'a signed zone without TLSA (secure NXDOMAIN)' },
  { mx: 'mx.insecure.test', listener: 'rsa2048', expect: 'insecure', about: 'a matching TLSA in an unsigned zone does not count (RFC 7672 §2.2)' },
  { mx: 'mx.bogus.test', listener: 'rsa2048', expect: 'bogus', about: 'a TLSA whose signature does not verify: SERVFAIL' },
];

export interface DaneWorld {
  net: number;
  pki: Pki;
  leaves: Record<'rsa2048' | 'rsa1024' | 'ec256', Leaf>;
  postfix: RunningPostfix;
  dns: RunningDns;
  resolver: { host: string; port: number };
  smtpIp: string;
  stop(): Promise<void>;
}

export async function startDaneWorld(net: number): Promise<DaneWorld> {
  const p = `127.60.${net}`;
  const smtpIp = `${p}.25`;
  const pkiDir = tempDir('dane-pki');
  const pki = createPki(pkiDir);
  const leaves = {
    rsa2048: pki.issue({ id: 'smtp-rsa2048', name: 'mx-ee.dane.test', key: 'rsa2048' }),
    rsa1024: pki.issue({ id: 'smtp-rsa1024', name: 'mx-rsa1024.dane.test', key: 'rsa1024' }),
    ec256: pki.issue({ id: 'smtp-ec256', name: 'mx-ec512.dane.test', key: 'ec256' }),
  };
  const spki256 = (l: Leaf) => opensslDigest(l.certPath, 'spki', 'sha256');
  const rsa = spki256(leaves.rsa2048);
  const a = (h: string) => `${h} IN A ${smtpIp}`;
  const tlsa = (h: string, rdata: string) => `_25._tcp.${h} IN TLSA ${rdata}`;
  const dane = [
    a('mx-ee'), tlsa('mx-ee', `3 1 1 ${rsa}`), tlsa('mx-ee', `3 1 1 ${'ab'.repeat(32)}`),
    a('mx-cert'), tlsa('mx-cert', `3 0 1 ${opensslDigest(leaves.rsa2048.certPath, 'cert', 'sha256')}`),
    a('mx-ec512'), tlsa('mx-ec512', `3 1 2 ${opensslDigest(leaves.ec256.certPath, 'spki', 'sha512')}`),
    a('mx-ecfull'), tlsa('mx-ecfull', `3 1 0 ${opensslDigest(leaves.ec256.certPath, 'spki', 'full')}`),
    a('mx-rsa1024'), tlsa('mx-rsa1024', `3 1 1 ${spki256(leaves.rsa1024)}`),
    a('mx-ta'), tlsa('mx-ta', `2 0 1 ${opensslDigest(pki.intermediatePath, 'cert', 'sha256')}`),
    a('mx-bad'), tlsa('mx-bad', `3 1 1 ${spki256(leaves.rsa1024)}`),
    a('mx-pkix'), tlsa('mx-pkix', `1 1 1 ${rsa}`),
    a('mx-none'),
  ];
  const { first: dns, second: postfix, stop } = await startServers(
    pkiDir,
    () =>
      startDns({
        nsd: { ip: `${p}.54`, port: DNS_PORT },
        unbound: { ip: `${p}.53`, port: DNS_PORT },
        zones: [
          { name: 'dane.test', dnssec: 'signed', records: dane },
          { name: 'insecure.test', dnssec: 'unsigned', records: [a('mx'), tlsa('mx', `3 1 1 ${rsa}`)] },
          { name: 'bogus.test', dnssec: 'bogus', bogusOwner: '_25._tcp.mx.bogus.test', records: [a('mx'), tlsa('mx', `3 1 1 ${rsa}`)] },
        ],
      }),
    () =>
      startPostfix({
        hostname: 'mx-ee.dane.test',
        listeners: [
          { ip: smtpIp, port: SMTP_PORTS.rsa2048, leaf: leaves.rsa2048 },
          { ip: smtpIp, port: SMTP_PORTS.rsa1024, leaf: leaves.rsa1024 },
          { ip: smtpIp, port: SMTP_PORTS.ec256, leaf: leaves.ec256 },
          { ip: smtpIp, port: SMTP_PORTS.leafOnly, leaf: leaves.rsa2048, leafOnly: true },
        ],
      }),
  );
  return {
    net,
    pki,
    leaves,
    postfix,
    dns,
    resolver: { host: dns.unbound.ip, port: dns.unbound.port },
    smtpIp,
    stop,
  };
}
