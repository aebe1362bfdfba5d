// Per-diagnosis addresses, as MSchecker's web form hands them out: `check-<token>@<our domain>`. A token only
// links a mail to a request; the diagnosed domain is always the sender's, so the bare `check@` works too.
import { randomBytes } from 'node:crypto';
import { domainToASCII } from 'node:url';
import type { Db } from '../lib/db.ts';

/** The local part every test address starts with. */
export const CHECK_LOCAL = 'check';

// Lower-case base32 without padding (RFC 4648 §6 alphabet, lower-cased): safe in a local part, unambiguous
// when read aloud, 16 characters = 80 bits.
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
export function generateToken(bytes = 10): string {
  const buf = randomBytes(bytes);
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of buf) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

export type RecipientKind =
  /** `check@` or `check-<token>@` our domain: a test mail. */
  | { kind: 'check'; token: string | null }
  /** RFC 5321 §4.5.1: every SMTP server must accept mail to postmaster. */
  | { kind: 'postmaster' }
  /** Our domain, but no such mailbox. */
  | { kind: 'unknown_user' }
  /** Any other domain: accepting it would make us a relay. */
  | { kind: 'foreign' };

/** Lower-cased A-label form of a domain, or null when it is not a valid host name. */
export function normalizeDomain(raw: string): string | null {
  const trimmed = raw.trim().replace(/\.$/, '');
  if (!trimmed || trimmed.startsWith('[')) return null;
  const ascii = domainToASCII(trimmed.toLowerCase());
  if (!ascii || !/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(ascii) || ascii.length > 253) return null;
  return ascii;
}

/** The domain of an address (`local@domain`), normalized, or null. */
export function domainOfAddress(address: string | null | undefined): string | null {
  if (!address) return null;
  const at = address.lastIndexOf('@');
  if (at < 1) return null;
  return normalizeDomain(address.slice(at + 1));
}

/** Classifies a RCPT TO address against our recipient domain. */
export function classifyRecipient(address: string, ourDomain: string): RecipientKind {
  const at = address.lastIndexOf('@');
  if (at < 0) {
    // RFC 5321 §4.1.1.3: a bare "Postmaster" (no domain) must be accepted.
    return address.toLowerCase() === 'postmaster' ? { kind: 'postmaster' } : { kind: 'foreign' };
  }
  const domain = normalizeDomain(address.slice(at + 1));
  if (domain === null || domain !== normalizeDomain(ourDomain)) return { kind: 'foreign' };
  const local = address.slice(0, at).toLowerCase();
  if (local === 'postmaster') return { kind: 'postmaster' };
  if (local === CHECK_LOCAL) return { kind: 'check', token: null };
  const m = /^check[-+]([a-z0-9]{1,64})$/.exec(local);
  if (m) return { kind: 'check', token: m[1] };
  return { kind: 'unknown_user' };
}

export function addressFor(token: string | null, ourDomain: string): string {
  return token ? `${CHECK_LOCAL}-${token}@${ourDomain}` : `${CHECK_LOCAL}@${ourDomain}`;
}

/** Stores a fresh request and returns its address. */
/**
 * Stores a fresh request and returns its address. `replyTo`: the address the result mail goes to, when the
 * requester proved it (the web front's confirmation); without it the result goes only to an authenticated sender.
 */
export async function createRequest(
  db: Db,
  domain: string,
  ourDomain: string,
  opts: { replyTo?: string | null } = {},
): Promise<{ token: string; address: string; domain: string }> {
  const normalized = normalizeDomain(domain);
  if (!normalized) throw new Error(`not a domain name: "${domain}"`);
  const replyTo = opts.replyTo?.trim() || null;
  if (replyTo && (!/^[^\s<>@]+@[^\s<>@]+$/.test(replyTo) || !domainOfAddress(replyTo))) throw new Error(`not a mail address: "${replyTo}"`);
  const token = generateToken();
  const address = addressFor(token, ourDomain);
  await db.insertInto('diagnosis_requests').values({ token, domain: normalized, address, created_at: undefined, ...(replyTo ? { reply_to: replyTo } : {}) }).execute();
  return { token, address, domain: normalized };
}

export async function findRequest(db: Db, token: string): Promise<{ token: string; domain: string; address: string; created_at: Date; reply_to: string | null } | null> {
  const row = await db.selectFrom('diagnosis_requests').selectAll().where('token', '=', token).executeTakeFirst();
  return row ? { ...row, reply_to: row.reply_to ?? null, created_at: new Date(row.created_at as Date) } : null;
}
