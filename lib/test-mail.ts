// The diagnosis of a received test mail (MSchecker's own flow), in two halves as STYLE.md §1 asks:
//   collectTestMailObservations: everything measured — mailauth's SPF/DKIM/DMARC over the stored bytes, the
//     client IP's PTR/FCrDNS and DNSBL listings, the sender's domain from outside (DNS, every MX IP's SMTP
//     session) and one SMTP session with the sending host (is it an open relay?);
//   judgeTestMail: pure, the `test-mail` column of ../shared/CRITERIA.md over those observations, so a stored
//     diagnosis can be re-judged (lib/diagnose.ts `rejudge`) without receiving the mail again.
import type { ProbeDeps } from './diagnose.ts';
import { collectDomain, mxTargets, observeIp } from './diagnose.ts';
import { collectIpDnsObservations } from './probes/dns.ts';
import { asDnsResolver, mailauthSpfResolver } from './dns/mailauth.ts';
import type { AuthenticateResult } from 'mailauth';
import type { Resolver } from './dns/resolver.ts';
import { lookupOf, type Lookup } from './dns/observation.ts';
import type { SpfTestMailObservation } from './checks/spf/spf.ts';
import { dkimTestMailObservation, evaluateDkimTestMail } from './checks/dkim/dkim.ts';
import { addressToALabels, toALabels } from './dns/names.ts';
import { concurrencyLimit } from './concurrency.ts';
import type { DmarcTestMailObservation, Provenance, TestMailEnvelope, TestMailObservations } from './observations.ts';

export { judgeTestMail } from './checks/judge.ts';
export { PROVENANCES } from './observations.ts';
export type { DmarcTestMailObservation, Provenance, TestMailObservations };

/** The stored test mail as the collection needs it (receiver/store.ts `TestMailRow` satisfies it). */
export interface ReceivedTestMail extends TestMailEnvelope {
  id: string;
  receivedAt: Date;
  /** The diagnosed domain (A-label): MAIL FROM domain, or From: domain for a null reverse-path. */
  domain: string | null;
  raw: Buffer;
}

/** RFC 7208 §4.6.4 bounds SPF at 10 + 2 lookups and a few per include; DKIM adds one per verified signature. */
const MAX_AUTH_LOOKUPS = 200;

type MailauthDkimResult = { signingDomain?: string; selector?: string; status?: { result?: string; comment?: string } };
interface MailauthAuthResult {
  dkim?: { results?: MailauthDkimResult[]; headerFrom?: string[] };
  spf?: { status?: { result?: string; comment?: string }; rr?: string; lookups?: { count: number; void: number } } | false;
  dmarc?: { status?: { result?: string; comment?: string; header?: { from?: string } }; policy?: string; domain?: string } | false;
}

/**
 * Measures everything the judgement needs. Throws only when our own infrastructure fails (so BullMQ retries);
 * every failure of the sender's side (DNS errors, unreachable hosts) is recorded as an observation.
 */
export async function collectTestMailObservations(
  mail: ReceivedTestMail,
  deps: ProbeDeps,
  opts: { requestDomain?: string | null; mta?: string } = {},
): Promise<TestMailObservations> {
  if (!mail.domain) throw new Error(`test mail ${mail.id} has no sender domain to diagnose`);
  const domain = mail.domain;
  const dns = await collectDomain(domain, deps);
  // A DNSSEC-bogus domain's records are read with CD (CRITERIA.md), for SPF and DKIM keys as for the rest.
  const cd = dns.valid ? dns.cd : false;
  // mailauth asks our resolver; every answer it got is kept with the observations (bounded), so the SPF and
  // DMARC results can be computed again from what the DNS said then.
  const authDns: Lookup[] = [];
  const recording: Resolver = {
    query: async (name, type, o) => {
      const r = await deps.resolver.query(name, type, o);
      if (authDns.length < MAX_AUTH_LOOKUPS) authDns.push(lookupOf(r));
      return r;
    },
    stats: () => deps.resolver.stats(),
  };
  const resolver = mailauthSpfResolver(recording, { cd });
  // RFC 7208 §2.4: with a null reverse-path, check_host() uses postmaster@<HELO>. mailauth does exactly that
  // when sender is empty.
  const { authenticate } = await import('mailauth');
  // At most N DKIM signatures are verified (each costs a key lookup and an RSA verify): 500 signatures must
  // not mean 500 lookups.
  const maxDkim = deps.config.maxDkimSignatures ?? 5;
  const dkimCap = capDkimSignatures(mail.raw, maxDkim);
  // RFC 8616 §4: every identity is looked up as A-labels (the resolver converts any name it is given too).
  const auth = (await authenticate(dkimCap.raw, {
    ip: mail.clientIp,
    helo: mail.helo ? (toALabels(mail.helo) ?? mail.helo) : undefined,
    sender: mail.mailFrom ? addressToALabels(mail.mailFrom) : undefined,
    mta: opts.mta ?? deps.config.ehloName,
    resolver: asDnsResolver(resolver),
    disableArc: true,
    disableBimi: true,
  })) as AuthenticateResult & MailauthAuthResult;

  const spfRes = auth.spf || null;
  const spf: SpfTestMailObservation = {
    ip: mail.clientIp,
    mailFrom: mail.mailFrom ?? `postmaster@${mail.helo ?? ''}`,
    helo: mail.helo,
    result: spfRes?.status?.result ?? 'none',
    comment: spfRes?.status?.comment ?? null,
    record: spfRes?.rr ?? null,
    lookups: spfRes?.lookups ? { count: spfRes.lookups.count, void: spfRes.lookups.void } : null,
  };
  const dkim = dkimTestMailObservation(domain, auth.dkim?.results);
  const dm = auth.dmarc || null;
  const dmarc: DmarcTestMailObservation | null = dm
    ? {
        result: dm.status?.result ?? 'none',
        policy: dm.policy ?? null,
        headerFromDomain: dm.domain ?? null,
        comment: dm.status?.comment ?? null,
      }
    : null;

  const targets = mxTargets(dns);
  const byIp = new Map<string, string[]>();
  for (const t of targets) byIp.set(t.ip, [...(byIp.get(t.ip) ?? []), t.host]);
  // The sending host's PTR name is usually in the (bogus) domain itself: read it with CD too, or a broken
  // signature would hide its FCrDNS (CRITERIA.md: "so one broken signature does not hide the rest").
  const ipResolver: Resolver = cd
    ? { query: (name, type, o) => deps.resolver.query(name, type, { ...o, cd: true }), stats: () => deps.resolver.stats() }
    : deps.resolver;
  // At most N probes at once per job, and none started after the job's deadline (the ones left are recorded):
  // a sender-chosen MX set decides how many hosts there are, not how long or how wide we go.
  const limit = concurrencyLimit(deps.config.maxConcurrentProbesPerJob ?? 4);
  const deadline = Date.now() + (deps.config.jobDeadlineMs ?? 300_000);
  const skippedByDeadline: string[] = [];
  const [client, ipEntries, senderSmtp] = await Promise.all([
    collectIpDnsObservations(mail.clientIp, { resolver: ipResolver, config: deps.config }),
    Promise.all(
      [...byIp].map(([ip, names]) =>
        limit(async () => {
          if (Date.now() >= deadline) {
            skippedByDeadline.push(ip);
            return null;
          }
          return [ip, await observeIp(ip, names, deps)] as const;
        }),
      ),
    ),
    // The sending host gets its own session unless it is also an MX (then that session is reused).
    byIp.has(mail.clientIp)
      ? Promise.resolve(null)
      : limit(() => deps.ipGate.run(mail.clientIp, () => deps.probe(mail.clientIp, { ...deps.smtpOptions, host: mail.helo }))),
  ]);
  const ips = Object.fromEntries(ipEntries.filter((e): e is NonNullable<typeof e> => e !== null));
  return {
    version: 1,
    kind: 'test-mail',
    testMailId: mail.id,
    domain,
    receivedAt: mail.receivedAt.toISOString(),
    mail: {
      clientIp: mail.clientIp,
      helo: mail.helo,
      mailFrom: mail.mailFrom,
      headerFrom: mail.headerFrom,
      rcptTo: mail.rcptTo,
      token: mail.token,
      requestDomain: opts.requestDomain ?? null,
      size: mail.size,
      tls: mail.tls,
    },
    spf,
    dkim,
    dmarc,
    authDns,
    dns,
    client,
    sender: { ip: mail.clientIp, smtp: senderSmtp ?? ips[mail.clientIp]!.smtp },
    ips,
    limits: { dkimSignatures: dkimCap.total, dkimVerified: Math.min(dkimCap.total, maxDkim), skippedByDeadline },
  };
}

/**
 * The mail with only its first `max` DKIM-Signature header fields left as such (later ones renamed
 * X-Mailcensus-Unverified-DKIM-Signature so no verifier looks at them), and how many there were. Linear in the
 * header size; the body is untouched.
 */
export function capDkimSignatures(raw: Buffer, max: number): { raw: Buffer; total: number } {
  let end = raw.indexOf('\r\n\r\n');
  if (end < 0) end = raw.length;
  const head = raw.subarray(0, end).toString('latin1');
  const re = /(^|\n)dkim-signature[ \t]*:/gi;
  let total = 0;
  const cut: number[] = [];
  for (let m = re.exec(head); m; m = re.exec(head)) {
    total++;
    if (total > max) cut.push(m.index + m[1].length);
  }
  if (cut.length === 0) return { raw, total };
  const buf = Buffer.from(raw);
  const prefix = 'X-Mailcensus-Unverified-';
  const parts: Buffer[] = [];
  let from = 0;
  for (const at of cut) {
    parts.push(buf.subarray(from, at), Buffer.from(prefix, 'latin1'));
    from = at;
  }
  parts.push(buf.subarray(from));
  return { raw: Buffer.concat(parts), total };
}

/**
 * CRITERIA.md "Test-mail provenance": `requested` when the mail went to a per-request address whose request
 * named this domain; `authenticated` when SPF passed for the MAIL FROM domain (not the HELO of a null
 * reverse-path) or a verifying DKIM signature is aligned with the domain; `unverified` otherwise.
 */
export function testMailProvenance(obs: TestMailObservations): Provenance {
  if (obs.mail.token && obs.mail.requestDomain && obs.mail.requestDomain === obs.domain) return 'requested';
  return isAuthenticated(obs) ? 'authenticated' : 'unverified';
}

/** The sender proved it speaks for the domain: SPF pass for its MAIL FROM domain, or an aligned passing DKIM. */
export function isAuthenticated(obs: TestMailObservations): boolean {
  const mailFromDomain = obs.mail.mailFrom ? toALabels(obs.mail.mailFrom.slice(obs.mail.mailFrom.lastIndexOf('@') + 1)) : null;
  if (obs.spf.result === 'pass' && mailFromDomain && mailFromDomain === obs.domain) return true;
  return evaluateDkimTestMail(obs.dkim).status === 'ok';
}
