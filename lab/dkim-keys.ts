// The lab's DKIM key pair. `lab up` publishes it in DNS and `lab send`, in another process, signs with it, so
// every process must hold the same key without sharing state: it is derived deterministically from a fixed
// seed (a SHA-256 counter stream feeding node-forge's pure-JS RSA generator) and cached as PEM in os.tmpdir(),
// because pure-JS RSA-2048 generation takes seconds. One key serves every selector of every lab domain.
// v2 (`dkim.keys`): one key per kind — RSA of another size (its own seed and cache file) or Ed25519 (RFC 8463;
// the 32-byte seed is a hash, so deriving it is instant) — shared by every selector of that kind.
// They are test keys, public by construction: never use them outside the lab.
import { createHash, createPrivateKey, createPublicKey } from 'node:crypto';
import type { LabDkimKeySpec } from './model.ts';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import forge from 'node-forge';

/** Changing the seed changes the key every lab process agrees on; bump the file name with it. */
const SEED = 'mailcensus lab dkim key v1';
const CACHE_FILE = 'mailcensus-lab-dkim-v1.pem';

export interface LabDkimKey {
  privateKeyPem: string;
  /** The base64 SubjectPublicKeyInfo: the `p=` value of the DKIM key record (RFC 6376 §3.6.1). */
  publicKeyBase64: string;
}

/** A deterministic byte stream: SHA-256(seed || counter), the interface forge's prng option expects. */
function seededPrng(seed: string) {
  let counter = 0;
  let pool = Buffer.alloc(0);
  return {
    getBytesSync(n: number): string {
      while (pool.length < n) {
        const block = createHash('sha256').update(seed).update(String(counter++)).digest();
        pool = Buffer.concat([pool, block]);
      }
      const out = pool.subarray(0, n);
      pool = pool.subarray(n);
      return out.toString('binary');
    },
  };
}

function derive(bits = 2048): string {
  const seed = bits === 2048 ? SEED : `${SEED} rsa-${bits}`;
  const pair = forge.pki.rsa.generateKeyPair({ bits, e: 0x10001, prng: seededPrng(seed), workers: -1 });
  return forge.pki.privateKeyToPem(pair.privateKey);
}

function fromPem(privateKeyPem: string): LabDkimKey {
  const spki = createPublicKey(createPrivateKey(privateKeyPem)).export({ type: 'spki', format: 'der' });
  return { privateKeyPem, publicKeyBase64: spki.toString('base64') };
}

let cached: LabDkimKey | undefined;
const cachedRsa = new Map<number, LabDkimKey>();
let cachedEd25519: LabDkimKey | undefined;

/** The lab DKIM key, the same in every process (derived once, then read from the cache file). */
export function labDkimKey(): LabDkimKey {
  cached ??= rsaKey(2048);
  return cached;
}

function rsaKey(bits: number): LabDkimKey {
  const hit = cachedRsa.get(bits);
  if (hit) return hit;
  const file = path.join(os.tmpdir(), bits === 2048 ? CACHE_FILE : CACHE_FILE.replace('.pem', `-rsa-${bits}.pem`));
  try {
    const pem = readFileSync(file, 'utf8');
    const k = fromPem(pem);
    if (createPrivateKey(pem).asymmetricKeyDetails?.modulusLength === bits) {
      cachedRsa.set(bits, k);
      return k;
    }
  } catch {
    // Missing or unreadable: derive it again (the result is the same).
  }
  const pem = derive(bits);
  const key = fromPem(pem);
  cachedRsa.set(bits, key);
  try {
    mkdirSync(path.dirname(file), { recursive: true });
    // Write then rename, so a concurrent reader never sees half a PEM.
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, pem, { mode: 0o644 });
    renameSync(tmp, file);
  } catch {
    // A read-only tmpdir only costs the next process the derivation time.
  }
  return key;
}

/** RFC 8410 §7: PKCS#8 of an Ed25519 private key is this prefix and the 32-byte seed. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

function ed25519Key(): LabDkimKey {
  if (cachedEd25519) return cachedEd25519;
  const seed = createHash('sha256').update(`${SEED} ed25519`).digest();
  const priv = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  // RFC 8463 §4.2: p= is the base64 of the raw 32-byte public key, not of a SubjectPublicKeyInfo.
  const raw = Buffer.from(createPublicKey(priv).export({ format: 'jwk' }).x as string, 'base64url');
  cachedEd25519 = { privateKeyPem: priv.export({ type: 'pkcs8', format: 'pem' }) as string, publicKeyBase64: raw.toString('base64') };
  return cachedEd25519;
}

/** The key of a `dkim.keys` entry: the same for every selector of that kind, in every process. */
export function labDkimKeyFor(spec: Pick<LabDkimKeySpec, 'type' | 'bits'>): LabDkimKey {
  return spec.type === 'ed25519' ? ed25519Key() : rsaKey(spec.bits);
}

/**
 * The DKIM key record of a selector (RFC 6376 §3.6.1): `k=` its type, `t=y` when testing, and an empty `p=`
 * when revoked. The default key (RSA-2048, not testing, not revoked) gives labDkimRecord().
 */
export function dkimRecordFor(spec: LabDkimKeySpec): string {
  const p = spec.revoked ? '' : labDkimKeyFor(spec).publicKeyBase64;
  return `v=DKIM1; k=${spec.type}; ${spec.testing ? 't=y; ' : ''}p=${p}`;
}

/**
 * The DKIM key record for the lab key (RFC 6376 §3.6.1), as the TXT strings to publish: the record is longer
 * than 255 bytes, so it is split into several character-strings of one TXT record (RFC 6376 §3.6.2.2).
 */
export function labDkimRecord(): string {
  return `v=DKIM1; k=rsa; p=${labDkimKey().publicKeyBase64}`;
}
