// The lab's outbound servers: every domain with a `sender` sends one test mail to a receiver (MSchecker's
// flow: the domain owner's server mails a per-diagnosis address). The client socket is bound to the sender
// host's lab address, so the receiver sees the IP whose SPF, PTR and DNSBL entries the world declares; EHLO
// names the host; STARTTLS is used when the receiver offers it and the world says the sender does TLS; the
// mail is DKIM-signed with the lab key under the sender's selector (an unpublished selector yields a
// signature no verifier can check, as in the wild).
import { createPrivateKey, randomBytes } from 'node:crypto';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import type { LabDomain, LabWorld } from './model.ts';

export interface SendResult {
  domain: string;
  ok: boolean;
  /** The sender host's address, the client IP of the session. */
  clientIp: string;
  /** The session was upgraded with STARTTLS before MAIL FROM. */
  tls: boolean;
  /** The receiver's reply, or what failed (connect, TLS, a 4xx/5xx reply, timeout). */
  error?: string;
  /** The receiver's final reply on success (e.g. `250 2.0.0 Ok: queued as …`). */
  response?: string;
}

export interface SendOptions {
  to: { host: string; port: number };
  /** @defaultValue `check@<to.host>` */
  rcpt?: string;
  /** Mails in flight at once. @defaultValue 8 */
  concurrency?: number;
  /** The DKIM private key. @defaultValue the lab key of lab/dkim-keys.ts (the one the lab DNS publishes) */
  dkimKey?: { privateKeyPem: string };
  /** Per mail: connect, every reply, the whole session. @defaultValue 30000 */
  timeoutMs?: number;
  /** Called after each mail, for progress output. */
  onResult?: (r: SendResult) => void;
}

/** The test mail of one domain, as its server would compose it (RFC 5322 header, plain text body). */
async function compose(domain: LabDomain, from: string, to: string, date: Date): Promise<Buffer> {
  const mail = new MailComposer({
    from,
    to,
    subject: `mailcensus lab test mail from ${domain.name}`,
    date,
    messageId: `<${randomBytes(8).toString('hex')}.${date.getTime()}@${domain.name}>`,
    text: `This is the test mail of ${domain.name}, sent by the mailcensus lab.\r\n`,
    headers: { 'X-Mailer': 'mailcensus lab sender' },
  });
  return await mail.compile().build();
}

/** RFC 6376 §5: a DKIM-Signature header over the composed message, prepended to it. */
async function sign(message: Buffer, domain: string, selector: string, privateKeyPem: string): Promise<Buffer> {
  // RFC 8463 §3: an Ed25519 key signs with ed25519-sha256; RSA keys with rsa-sha256 (RFC 8301).
  const algorithm = createPrivateKey(privateKeyPem).asymmetricKeyType === 'ed25519' ? 'ed25519-sha256' : 'rsa-sha256';
  const options = {
    canonicalization: 'relaxed/relaxed',
    algorithm,
    // One timestamp: without signTime mailauth reads the clock twice (hashed t= vs written t=), and a
    // signature made across a second boundary never verifies (~1% of mails; issue 7).
    signTime: new Date(),
    // mailauth's signer takes its keys in signatureData (types/mailauth.d.ts).
    signatureData: [{ signingDomain: domain, selector, privateKey: privateKeyPem }],
  };
  const result = await dkimSign(message, options);
  const errors = result.errors ?? [];
  if (errors.length > 0) throw new Error(`DKIM signing failed: ${String(errors[0])}`);
  return Buffer.concat([Buffer.from(result.signatures), message]);
}

type SmtpError = Error & { response?: string; code?: string };

function describe(err: unknown): string {
  const e = err as SmtpError;
  return (e.response ?? e.message ?? String(err)).trim().replace(/\s+/g, ' ');
}

async function sendOne(
  world: LabWorld,
  domain: LabDomain,
  opts: SendOptions,
  privateKeyPem: string | null,
): Promise<SendResult> {
  const sender = domain.sender!;
  const host = world.hosts.get(sender.hostId);
  if (host === undefined) {
    return { domain: domain.name, ok: false, clientIp: '', tls: false, error: `unknown sender host ${sender.hostId}` };
  }
  const result: SendResult = { domain: domain.name, ok: false, clientIp: host.ip, tls: false };
  const timeout = opts.timeoutMs ?? 30_000;
  const rcpt = opts.rcpt ?? `check@${opts.to.host}`;
  const connection = new SMTPConnection({
    host: opts.to.host,
    port: opts.to.port,
    secure: false,
    localAddress: host.ip,
    name: host.name,
    // The sender never uses TLS, even if offered (an old MTA without smtp_tls_security_level).
    ignoreTLS: !sender.starttls,
    opportunisticTLS: sender.starttls,
    // SMTP TLS between MTAs is opportunistic (RFC 3207 §4.1): no certificate check.
    tls: { rejectUnauthorized: false },
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
  });
  const session = new Promise<void>((resolve, reject) => {
    connection.once('error', reject);
    connection.connect(() => {
      result.tls = connection.secure;
      resolve();
    });
  });
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout after ${timeout} ms`)), timeout * 2);
  });
  try {
    const message = await compose(domain, sender.mailFrom, rcpt, new Date());
    const signed =
      sender.dkimSign !== null && privateKeyPem !== null
        ? await sign(message, domain.name, sender.dkimSign, privateKeyPem)
        : message;
    await Promise.race([session, deadline]);
    result.tls = connection.secure;
    const info = await Promise.race([
      new Promise<SMTPConnection.SentMessageInfo>((resolve, reject) => {
        connection.send({ from: sender.mailFrom, to: [rcpt] }, signed, (err, info) => (err ? reject(err) : resolve(info)));
      }),
      deadline,
    ]);
    result.ok = true;
    result.response = info.response;
    connection.quit();
  } catch (err) {
    result.error = describe(err);
    connection.close();
  } finally {
    clearTimeout(timer);
  }
  return result;
}

/**
 * Makes every domain with a sender send one test mail to `opts.to`, at most `concurrency` at a time.
 * Failures are results, not exceptions: a receiver that refuses one mail must not stop the others.
 */
export async function sendTestMails(world: LabWorld, opts: SendOptions): Promise<SendResult[]> {
  const domains = world.domains.filter((d) => d.sender !== null);
  // The key of the selector a sender signs with (v2 `dkim.keys`: its type and size; a revoked selector's key
  // still signs). A selector the domain does not publish signs with the default key: it cannot verify.
  const keyFor = async (d: LabDomain): Promise<string | null> => {
    const selector = d.sender!.dkimSign;
    if (selector === null) return null;
    if (opts.dkimKey) return opts.dkimKey.privateKeyPem;
    // Heavy on first use (it may derive the key), so only when a sender signs.
    const { labDkimKeyFor } = await import('./dkim-keys.ts');
    return labDkimKeyFor(d.dkim?.keys[selector.toLowerCase()] ?? { type: 'rsa', bits: 2048 }).privateKeyPem;
  };
  const concurrency = Math.max(1, opts.concurrency ?? 8);
  const results: SendResult[] = new Array(domains.length);
  let next = 0;
  const worker = async () => {
    while (next < domains.length) {
      const i = next++;
      const r = await sendOne(world, domains[i]!, opts, await keyFor(domains[i]!));
      results[i] = r;
      opts.onResult?.(r);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, domains.length) }, worker));
  return results;
}
