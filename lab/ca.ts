// The lab's certificate authority: a root (the trust anchor `lab up` publishes as MAILCENSUS_EXTRA_CA) and an
// intermediate CA under it that issues every host certificate, as public CAs do. A host presents its
// certificate in the kind its world asks for (LAB-WORLD.md `smtp.tls`: valid, self-signed, expired,
// wrong-name; v2: key type, notAfter relative to the world clock, complete or leaf-only chain).
//
// Scale: a world may have tens of thousands of hosts. Certificates are made lazily on a host's first TLS
// handshake and cached, and every host certificate of one key type carries the same key (one per type,
// generated once by Node's native crypto and kept, with the two CA keys, in the state directory and a per-user
// temp directory, so even RSA-4096 costs its generation once per machine): only the signature differs,
// computed by Node's native RSA (about a millisecond). The certificates are issued anew at every start.
//
// Issuing is deterministic — the serial is a hash of the CA and the request, the dates come from the lab's
// fixed clocks — so another process holding the same material (an SMTP shard, lab/smtp-shard.ts) presents
// byte-identical certificates, and the TLSA records the DNS server computes (lab/dns-server.ts) match them.
//
// node-forge builds the certificate structure; it can only hold RSA public keys, so the
// SubjectPublicKeyInfo is spliced in from Node's DER export and the signature is made and attached natively
// (RSA PKCS#1 v1.5 or ECDSA, both with SHA-256).
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign as nativeSign, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import forge from 'node-forge';
import type { CertKeyType, CertKind, LabHost } from './model.ts';

/** The name a `wrong-name` certificate is issued for: valid, CA-signed, but not the host's name. */
export const WRONG_NAME = 'wrong-name.invalid';

const DAY_MS = 86_400_000;
/** The notAfter of a certificate without `notAfterDays`: this many days after the clock (`expired`: before it). */
export const DEFAULT_NOT_AFTER_DAYS = 365;
export const DEFAULT_EXPIRED_DAYS = -30;

export interface CertSpec {
  /** The DNS name the certificate is for (`wrong-name` issues for WRONG_NAME instead). */
  name: string;
  kind: CertKind;
  key: CertKeyType;
  /** Days after the world clock; null = the default (see certDates). */
  notAfterDays: number | null;
  chain: 'complete' | 'leaf-only';
}

export interface IssuedCert {
  /** What the server presents, PEM: the leaf, then the intermediate for a `complete` chain. */
  certPem: string;
  keyPem: string;
  /** The presented chain as DER, leaf first. */
  chainDer: Buffer[];
  /** The leaf's issuer certificate (the intermediate; the leaf itself when self-signed): a DANE trust anchor. */
  issuerDer: Buffer;
}

/** Everything another process needs to issue the same certificates. */
export interface CaMaterial {
  rootCertPem: string;
  rootKeyPem: string;
  intermediateCertPem: string;
  intermediateKeyPem: string;
  /** The world clock (observedAt, else the lab's start), ms since the epoch. */
  clockMs: number;
  /** Real time at the lab's start, ms since the epoch. */
  startedMs: number;
  /** Host keys by type (PKCS#8 PEM); a missing type is generated on first use. */
  hostKeys: Partial<Record<CertKeyType, string>>;
}

export interface LabCa {
  /** The root, the trust anchor. */
  caCertPem: string;
  caKeyPem: string;
  intermediateCertPem: string;
  material(): CaMaterial;
  /** The certificate a host presents, of the kind its `smtp.tls` asks for. Cached. */
  certFor(host: LabHost): IssuedCert;
  /** A certificate of any spec (the MTA-STS policy hosts use it). Cached. */
  issue(spec: CertSpec): IssuedCert;
}

export interface CreateCaOptions {
  /** The world clock, ISO date-time; absent = real time. */
  observedAt?: string | null;
  /** Keys are cached in `<stateDir>/keys/<type>.pem` (generated once). */
  stateDir?: string;
  /** Key types to have ready (the others are generated on first use). */
  keyTypes?: Iterable<CertKeyType>;
}

function generateKey(type: CertKeyType): string {
  const key = type === 'ecdsa-p256'
    ? generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
    : generateKeyPairSync('rsa', { modulusLength: { 'rsa-1024': 1024, 'rsa-2048': 2048, 'rsa-4096': 4096 }[type] }).privateKey;
  return key.export({ type: 'pkcs8', format: 'pem' }) as string;
}

/**
 * Where generated keys are kept: the state directory, then a per-user directory in the OS temp dir, so labs
 * started with a fresh state directory each time (the demo, the tests) do not generate keys every time.
 */
function keyDirs(stateDir: string | undefined): string[] {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  return [...(stateDir ? [path.join(stateDir, 'keys')] : []), path.join(os.tmpdir(), `mailcensus-lab-keys-${uid}`)];
}

/**
 * A key of the type, from a key directory or newly generated (and kept in each). `fileName` names it: the
 * host key type, or `root-ca-rsa-2048` / `intermediate-ca-rsa-2048` for the CAs' own keys. Lab test keys only.
 */
function hostKeyFromState(type: CertKeyType, stateDir: string | undefined, fileName: string = type): string {
  const files = keyDirs(stateDir).map((d) => path.join(d, `${fileName}.pem`));
  let pem: string | null = null;
  let found = -1;
  for (let i = 0; i < files.length && pem === null; i++) {
    try {
      const text = readFileSync(files[i]!, 'utf8');
      // A damaged or foreign file is regenerated, not trusted.
      if (keyTypeOf(text) === type) {
        pem = text;
        found = i;
      }
    } catch {
      // missing: the next directory, or generate below
    }
  }
  pem ??= generateKey(type);
  for (let i = 0; i < (found === -1 ? files.length : found); i++) {
    try {
      mkdirSync(path.dirname(files[i]!), { recursive: true, mode: 0o700 });
      const tmp = `${files[i]}.${process.pid}.tmp`;
      writeFileSync(tmp, pem, { mode: 0o600 });
      renameSync(tmp, files[i]!);
    } catch {
      // A read-only directory only costs a later start the generation time.
    }
  }
  return pem;
}

function keyTypeOf(pem: string): CertKeyType | null {
  const k = createPrivateKey(pem);
  const d = k.asymmetricKeyDetails ?? {};
  if (k.asymmetricKeyType === 'ec') return d.namedCurve === 'prime256v1' ? 'ecdsa-p256' : null;
  if (k.asymmetricKeyType === 'rsa') return ({ 1024: 'rsa-1024', 2048: 'rsa-2048', 4096: 'rsa-4096' } as Record<number, CertKeyType>)[d.modulusLength ?? 0] ?? null;
  return null;
}

function spkiDer(keyPem: string): Buffer {
  return createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
}

/** RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING's value. */
function keyIdentifier(spki: Buffer): string {
  const asn = forge.asn1.fromDer(spki.toString('binary'), { decodeBitStrings: false });
  const bits = (asn.value as forge.asn1.Asn1[])[1].value as string;
  return createHash('sha1').update(Buffer.from(bits.slice(1), 'binary')).digest('binary');
}

const OID_RSA_SHA256 = '1.2.840.113549.1.1.11';
const OID_ECDSA_SHA256 = '1.2.840.10045.4.3.2';
const asn1 = forge.asn1;

/** RFC 5280 §4.1.1.2 AlgorithmIdentifier; RFC 5758 §3.2: ECDSA has no parameters, RSA a NULL. */
function algorithmIdentifier(oid: string): forge.asn1.Asn1 {
  const v = [asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(oid).getBytes())];
  if (oid === OID_RSA_SHA256) v.push(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''));
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, v);
}

interface Signer {
  attrs: forge.pki.CertificateField[];
  keyPem: string;
  keyId: string;
}

let dummyRsaPublic: forge.pki.rsa.PublicKey | undefined;

/** Builds and signs one X.509 v3 certificate (DER). */
function buildCert(o: {
  subject: forge.pki.CertificateField[];
  issuer: Signer | 'self';
  keyPem: string;
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  extensions: object[];
}): Buffer {
  const spki = spkiDer(o.keyPem);
  const ownKeyId = keyIdentifier(spki);
  const signer: Signer = o.issuer === 'self' ? { attrs: o.subject, keyPem: o.keyPem, keyId: ownKeyId } : o.issuer;
  const signerIsEc = createPrivateKey(signer.keyPem).asymmetricKeyType === 'ec';
  const sigOid = signerIsEc ? OID_ECDSA_SHA256 : OID_RSA_SHA256;

  const cert = forge.pki.createCertificate();
  // forge only holds RSA keys; this placeholder's SPKI is replaced below.
  dummyRsaPublic ??= forge.pki.setRsaPublicKey(new forge.jsbn.BigInteger('00c5', 16), new forge.jsbn.BigInteger('10001', 16));
  cert.publicKey = dummyRsaPublic;
  cert.serialNumber = o.serialHex;
  cert.validity.notBefore = o.notBefore;
  cert.validity.notAfter = o.notAfter;
  cert.setSubject(o.subject);
  cert.setIssuer(signer.attrs);
  const octets = (bytes: string) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, bytes);
  cert.setExtensions([
    ...o.extensions,
    // Given as values: forge would derive them from the placeholder key.
    { name: 'subjectKeyIdentifier', value: octets(ownKeyId) },
    ...(o.issuer === 'self' ? [] : [{
      name: 'authorityKeyIdentifier',
      value: asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, false, signer.keyId)]),
    }]),
  ]);
  cert.siginfo.algorithmOid = sigOid;
  const tbs = forge.pki.getTBSCertificate(cert);
  const parts = tbs.value as forge.asn1.Asn1[];
  parts[2] = algorithmIdentifier(sigOid);
  parts[6] = asn1.fromDer(spki.toString('binary'));
  const tbsDer = Buffer.from(asn1.toDer(tbs).getBytes(), 'binary');
  // RSA PKCS#1 v1.5 is deterministic; ECDSA (only a self-signed ecdsa-p256 leaf signs with EC) is not.
  const signature = nativeSign('sha256', tbsDer, signer.keyPem);
  const full = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    tbs,
    algorithmIdentifier(sigOid),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, `\u0000${signature.toString('binary')}`),
  ]);
  return Buffer.from(asn1.toDer(full).getBytes(), 'binary');
}

function toPem(der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN CERTIFICATE-----\n${b64}-----END CERTIFICATE-----\n`;
}

function fromPem(pem: string): Buffer {
  return Buffer.from(new X509Certificate(pem).raw);
}

/** RFC 5280 §4.1.2.2: a positive serial of at most 20 octets, unique per issuer (a hash of the request). */
function serialFor(...parts: string[]): string {
  const bytes = createHash('sha256').update(parts.join('\u0000')).digest().subarray(0, 16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString('hex');
}

/**
 * The validity of a host certificate. notAfter is `notAfterDays` after the world clock; without it, `expired`
 * ends DEFAULT_EXPIRED_DAYS after the clock, and the others run DEFAULT_NOT_AFTER_DAYS after the clock or after
 * real time, whichever is later: TLS stacks (OpenSSL, Node) verify at real time, so a world observed in 2021
 * keeps its valid certificates valid, as in version 1. notBefore is a year before the earlier of the clocks.
 */
export function certDates(spec: Pick<CertSpec, 'kind' | 'notAfterDays'>, clockMs: number, startedMs: number): { notBefore: Date; notAfter: Date } {
  let notAfterMs: number;
  if (spec.notAfterDays !== null) notAfterMs = clockMs + spec.notAfterDays * DAY_MS;
  else if (spec.kind === 'expired') notAfterMs = clockMs + DEFAULT_EXPIRED_DAYS * DAY_MS;
  else notAfterMs = Math.max(clockMs, startedMs) + DEFAULT_NOT_AFTER_DAYS * DAY_MS;
  const notBeforeMs = Math.min(clockMs, startedMs, notAfterMs) - 365 * DAY_MS;
  return { notBefore: new Date(notBeforeMs), notAfter: new Date(notAfterMs) };
}

const ROOT_SUBJECT = [
  { name: 'commonName', value: 'mailcensus lab CA' },
  { name: 'organizationName', value: 'mailcensus lab' },
];
const INTERMEDIATE_SUBJECT = [
  { name: 'commonName', value: 'mailcensus lab intermediate CA' },
  { name: 'organizationName', value: 'mailcensus lab' },
];

function caWindow(clockMs: number, startedMs: number): { notBefore: Date; notAfter: Date } {
  return {
    notBefore: new Date(Math.min(clockMs, startedMs) - 10 * 365 * DAY_MS),
    notAfter: new Date(Math.max(clockMs, startedMs) + 10 * 365 * DAY_MS),
  };
}

/** The lab clock in ms: observedAt, else real time (to the second, so every process agrees). */
function clockOf(observedAt: string | null | undefined, startedMs: number): number {
  return observedAt ? Date.parse(observedAt) : startedMs;
}

/**
 * A new lab CA (root, intermediate and host keys), or (with `existing`) the CA of another lab process, so SMTP
 * hosts served by several processes (lab/smtp-shard.ts) present the same certificates.
 */
export async function createLabCa(opts: CreateCaOptions | { existing: CaMaterial } = {}): Promise<LabCa> {
  if ('existing' in opts) return labCaFrom({ ...opts.existing, hostKeys: { ...opts.existing.hostKeys } }, undefined);
  const startedMs = Math.floor(Date.now() / 1000) * 1000;
  const clockMs = clockOf(opts.observedAt, startedMs);
  const window = caWindow(clockMs, startedMs);
  // The CA keys are kept in the state directory too (the certificates are issued anew at every start): with
  // them, a restart generates no key at all.
  const rootKeyPem = hostKeyFromState('rsa-2048', opts.stateDir, 'root-ca-rsa-2048');
  const rootCert = buildCert({
    subject: ROOT_SUBJECT,
    issuer: 'self',
    keyPem: rootKeyPem,
    serialHex: serialFor('root', String(startedMs), spkiDer(rootKeyPem).toString('hex')),
    ...window,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  const intermediateKeyPem = hostKeyFromState('rsa-2048', opts.stateDir, 'intermediate-ca-rsa-2048');
  const root: Signer = { attrs: ROOT_SUBJECT as forge.pki.CertificateField[], keyPem: rootKeyPem, keyId: keyIdentifier(spkiDer(rootKeyPem)) };
  const intermediateCert = buildCert({
    subject: INTERMEDIATE_SUBJECT,
    issuer: root,
    keyPem: intermediateKeyPem,
    serialHex: serialFor('intermediate', rootCert.toString('hex')),
    notBefore: new Date(window.notBefore.getTime() + DAY_MS),
    notAfter: new Date(window.notAfter.getTime() - DAY_MS),
    extensions: [
      // RFC 5280 §4.2.1.9: pathLenConstraint 0, it issues end-entity certificates only.
      { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  const hostKeys: Partial<Record<CertKeyType, string>> = {};
  for (const t of new Set(opts.keyTypes ?? [])) hostKeys[t] = hostKeyFromState(t, opts.stateDir);
  return labCaFrom(
    { rootCertPem: toPem(rootCert), rootKeyPem, intermediateCertPem: toPem(intermediateCert), intermediateKeyPem, clockMs, startedMs, hostKeys },
    opts.stateDir,
  );
}

function labCaFrom(m: CaMaterial, stateDir: string | undefined): LabCa {
  const intermediateDer = fromPem(m.intermediateCertPem);
  const intermediate: Signer = {
    attrs: INTERMEDIATE_SUBJECT as forge.pki.CertificateField[],
    keyPem: m.intermediateKeyPem,
    keyId: keyIdentifier(spkiDer(m.intermediateKeyPem)),
  };
  const keyFor = (t: CertKeyType): string => (m.hostKeys[t] ??= hostKeyFromState(t, stateDir));

  const cache = new Map<string, IssuedCert>();
  const issue = (spec: CertSpec): IssuedCert => {
    const cacheKey = JSON.stringify(spec);
    let entry = cache.get(cacheKey);
    if (entry !== undefined) return entry;
    if (!['valid', 'self-signed', 'expired', 'wrong-name'].includes(spec.kind)) {
      throw new Error(`lab CA: unknown certificate kind "${String(spec.kind)}"`);
    }
    const keyPem = keyFor(spec.key);
    const cn = spec.kind === 'wrong-name' ? WRONG_NAME : spec.name;
    const subject = [{ name: 'commonName', value: cn }] as forge.pki.CertificateField[];
    const selfSigned = spec.kind === 'self-signed';
    const isEc = spec.key === 'ecdsa-p256';
    const leaf = buildCert({
      subject,
      issuer: selfSigned ? 'self' : intermediate,
      keyPem,
      serialHex: serialFor('leaf', m.intermediateCertPem, cacheKey),
      ...certDates(spec, m.clockMs, m.startedMs),
      extensions: [
        { name: 'basicConstraints', cA: false },
        // RFC 5280 §4.2.1.3: an ECDSA key signs (digitalSignature); an RSA key may also encipher (TLS 1.2 RSA kx).
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: !isEc, critical: true },
        { name: 'extKeyUsage', serverAuth: true },
        // RFC 6125 §6.4.4: clients match the DNS-ID of subjectAltName, not the CN.
        { name: 'subjectAltName', altNames: [{ type: 2, value: cn }] },
      ],
    });
    const chainDer = selfSigned || spec.chain === 'leaf-only' ? [leaf] : [leaf, intermediateDer];
    entry = { certPem: chainDer.map(toPem).join(''), keyPem, chainDer, issuerDer: selfSigned ? leaf : intermediateDer };
    cache.set(cacheKey, entry);
    return entry;
  };

  return {
    caCertPem: m.rootCertPem,
    caKeyPem: m.rootKeyPem,
    intermediateCertPem: m.intermediateCertPem,
    material: () => ({ ...m, hostKeys: { ...m.hostKeys } }),
    certFor(host: LabHost) {
      const t = host.smtp.tls;
      // Worlds built in code before v2 may lack the v2 fields: their defaults.
      return issue({ name: host.name, kind: t.cert, key: t.key ?? 'rsa-2048', notAfterDays: t.notAfterDays ?? null, chain: t.chain ?? 'complete' });
    },
    issue,
  };
}
