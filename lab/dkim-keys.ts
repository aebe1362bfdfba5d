// The lab's DKIM key pair. `lab up` publishes it in DNS and `lab send`, in another process, signs with it, so
// every process must hold the same key without sharing state: it is derived deterministically from a fixed
// seed (a SHA-256 counter stream feeding node-forge's pure-JS RSA generator) and cached as PEM in os.tmpdir(),
// because pure-JS RSA-2048 generation takes seconds. One key serves every selector of every lab domain.
// It is a test key, public by construction: never use it outside the lab.
import { createHash, createPrivateKey, createPublicKey } from 'node:crypto';
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

function derive(): string {
  const pair = forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001, prng: seededPrng(SEED), workers: -1 });
  return forge.pki.privateKeyToPem(pair.privateKey);
}

function fromPem(privateKeyPem: string): LabDkimKey {
  const spki = createPublicKey(createPrivateKey(privateKeyPem)).export({ type: 'spki', format: 'der' });
  return { privateKeyPem, publicKeyBase64: spki.toString('base64') };
}

let cached: LabDkimKey | undefined;

/** The lab DKIM key, the same in every process (derived once, then read from the cache file). */
export function labDkimKey(): LabDkimKey {
  if (cached) return cached;
  const file = path.join(os.tmpdir(), CACHE_FILE);
  try {
    const pem = readFileSync(file, 'utf8');
    cached = fromPem(pem);
    return cached;
  } catch {
    // Missing or unreadable: derive it again (the result is the same).
  }
  const pem = derive();
  cached = fromPem(pem);
  try {
    mkdirSync(path.dirname(file), { recursive: true });
    // Write then rename, so a concurrent reader never sees half a PEM.
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, pem, { mode: 0o644 });
    renameSync(tmp, file);
  } catch {
    // A read-only tmpdir only costs the next process the derivation time.
  }
  return cached;
}

/**
 * The DKIM key record for the lab key (RFC 6376 §3.6.1), as the TXT strings to publish: the record is longer
 * than 255 bytes, so it is split into several character-strings of one TXT record (RFC 6376 §3.6.2.2).
 */
export function labDkimRecord(): string {
  return `v=DKIM1; k=rsa; p=${labDkimKey().publicKeyBase64}`;
}
