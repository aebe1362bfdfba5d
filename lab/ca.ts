// The lab's certificate authority: generated at start-up, it signs the certificate of every lab SMTP host
// that serves STARTTLS, in the kind its world asks for (valid, self-signed, expired, wrong-name). The checker
// trusts the CA through MAILCENSUS_EXTRA_CA_FILE in lab mode, so `valid` verifies like a public certificate.
//
// Scale: a world may have tens of thousands of hosts. Certificates are made lazily on a host's first TLS
// handshake and cached, and every host certificate carries the same RSA-2048 key (generated once by Node's
// native crypto): only the signature differs, computed by Node's native RSA (about a millisecond).
import { generateKeyPairSync, randomBytes, sign as nativeSign } from 'node:crypto';
import forge from 'node-forge';
import type { LabHost } from './model.ts';

export interface LabCa {
  caCertPem: string;
  caKeyPem: string;
  /** The certificate (PEM, leaf only) and key a host presents, of the kind `host.smtp.tls.cert`. Cached. */
  certFor(host: LabHost): { certPem: string; keyPem: string };
}

/** The name a `wrong-name` certificate is issued for: valid, CA-signed, but not the host's name. */
export const WRONG_NAME = 'wrong-name.invalid';

// Fixed validity windows, so a certificate's kind holds both at real time and at any lab clock of the
// worlds we ship (observedAt 2020 or later): `expired` ended before 2020, the others run from 2019 to
// real time + 2 years.
const VALID_FROM = new Date('2019-01-01T00:00:00Z');
const EXPIRED_FROM = new Date('2018-01-01T00:00:00Z');
const EXPIRED_UNTIL = new Date('2019-06-30T23:59:59Z');

function rsaKeyPair(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { privatePem: privateKey, publicPem: publicKey };
}

/** RFC 5280 §4.1.2.2: a positive serial of at most 20 octets, unique per issuer (random 16 bytes). */
function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString('hex');
}

/**
 * Signs a forge certificate with Node's native RSA (about 1 ms instead of forge's 25 ms in JavaScript): forge
 * hands the DER of the TBSCertificate to `md.update`, then asks `key.sign(md)` for the signature bytes.
 */
function signNative(cert: forge.pki.Certificate, privatePem: string): void {
  const md = {
    algorithm: 'sha256',
    data: '',
    update(bytes: string) {
      this.data += bytes;
      return this;
    },
  };
  const key = {
    sign: (m: typeof md) => nativeSign('sha256', Buffer.from(m.data, 'binary'), privatePem).toString('binary'),
  };
  cert.sign(key as unknown as forge.pki.rsa.PrivateKey, md as unknown as forge.md.MessageDigest);
}

function yearsFromNow(years: number): Date {
  const d = new Date();
  d.setUTCFullYear(d.getUTCFullYear() + years);
  return d;
}

/**
 * A new lab CA, or (with `existing`) the CA of another lab process, so SMTP hosts served by several processes
 * (lab/smtp-shard.ts) all chain to the one CA that `lab up` publishes.
 */
export async function createLabCa(existing?: { caCertPem: string; caKeyPem: string }): Promise<LabCa> {
  if (existing) return labCaFrom(forge.pki.certificateFromPem(existing.caCertPem), existing.caCertPem, existing.caKeyPem);
  const caPair = rsaKeyPair();
  const caCert = forge.pki.createCertificate();
  caCert.publicKey = forge.pki.publicKeyFromPem(caPair.publicPem);
  caCert.serialNumber = serial();
  caCert.validity.notBefore = new Date('2018-01-01T00:00:00Z');
  caCert.validity.notAfter = yearsFromNow(10);
  const caSubject = [
    { name: 'commonName', value: 'mailcensus lab CA' },
    { name: 'organizationName', value: 'mailcensus lab' },
  ];
  caCert.setSubject(caSubject);
  caCert.setIssuer(caSubject);
  caCert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  signNative(caCert, caPair.privatePem);
  return labCaFrom(caCert, forge.pki.certificateToPem(caCert), caPair.privatePem);
}

function labCaFrom(caCert: forge.pki.Certificate, caCertPem: string, caKeyPem: string): LabCa {
  const caPair = { privatePem: caKeyPem };
  // One key for every host certificate (see the header).
  const hostPair = rsaKeyPair();
  const hostPublic = forge.pki.publicKeyFromPem(hostPair.publicPem);

  const issue = (name: string, selfSigned: boolean, from: Date, until: Date): string => {
    const cert = forge.pki.createCertificate();
    cert.publicKey = hostPublic;
    cert.serialNumber = serial();
    cert.validity.notBefore = from;
    cert.validity.notAfter = until;
    const subject = [{ name: 'commonName', value: name }];
    cert.setSubject(subject);
    cert.setIssuer(selfSigned ? subject : caCert.subject.attributes);
    cert.setExtensions([
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      // RFC 6125 §6.4.4: clients match the DNS-ID of subjectAltName, not the CN.
      { name: 'subjectAltName', altNames: [{ type: 2, value: name }] },
    ]);
    signNative(cert, selfSigned ? hostPair.privatePem : caPair.privatePem);
    return forge.pki.certificateToPem(cert);
  };

  const cache = new Map<string, { certPem: string; keyPem: string }>();
  return {
    caCertPem,
    caKeyPem: caPair.privatePem,
    certFor(host: LabHost) {
      const kind = host.smtp.tls.cert;
      const key = `${kind}\0${host.name}`;
      let entry = cache.get(key);
      if (entry === undefined) {
        const until = yearsFromNow(2);
        let certPem: string;
        switch (kind) {
          case 'valid':
            certPem = issue(host.name, false, VALID_FROM, until);
            break;
          case 'self-signed':
            certPem = issue(host.name, true, VALID_FROM, until);
            break;
          case 'expired':
            certPem = issue(host.name, false, EXPIRED_FROM, EXPIRED_UNTIL);
            break;
          case 'wrong-name':
            certPem = issue(WRONG_NAME, false, VALID_FROM, until);
            break;
          default:
            throw new Error(`lab CA: host ${host.id}: unknown certificate kind "${String(kind)}"`);
        }
        entry = { certPem, keyPem: hostPair.privatePem };
        cache.set(key, entry);
      }
      return entry;
    },
  };
}
