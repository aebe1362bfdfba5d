// The diagnosis of a received test mail (MSchecker's own flow), in two halves as STYLE.md §1 asks:
//   collectTestMailObservations: everything measured — mailauth's SPF/DKIM/DMARC over the stored bytes, the
//     client IP's PTR/FCrDNS and DNSBL listings, the sender's domain from outside (DNS, every MX IP's SMTP
//     session) and one SMTP session with the sending host (is it an open relay?);
//   judgeTestMail: pure, the `test-mail` column of ../shared/CRITERIA.md over those observations, so a stored
//     diagnosis can be re-judged (lib/diagnose.ts `rejudge`) without receiving the mail again.
import { finding, type CriterionFindings, type Finding } from './criteria.ts';
import { judgeVerdict } from './verdict.ts';
import type { Diagnosis } from './diagnosis.ts';
// Types only: lib/diagnose.ts imports this module (rejudge), so its functions are loaded lazily below.
import type { DomainDnsObservations, IpObservation, ProbeDeps } from './diagnose.ts';
import { collectIpDnsObservations, judgeDns, type IpDnsObservations } from './probes/dns.ts';
import { mailauthSpfResolver } from './dns/mailauth.ts';
import type { Resolver } from './dns/resolver.ts';
import { mxRows } from './checks/mx/mx.ts';
import { evaluateSpfTestMail, type SpfTestMailObservation } from './checks/spf/spf.ts';
import { dkimTestMailObservation, evaluateDkimTestMail, type DkimTestMailObservation } from './checks/dkim/dkim.ts';
import { evaluateTlsReceive, type MxProbe } from './checks/tls-receive/tls-receive.ts';
import { evaluateOpenRelay, type RelayProbe } from './checks/open-relay/open-relay.ts';
import { tlsFindings } from './checks/cert-problems/tls-findings.ts';
import type { SmtpObservation } from './probes/smtp.ts';
import { addressToALabels, toALabels } from './dns/names.ts';
import { concurrencyLimit } from './concurrency.ts';

/** How a test mail reached us (CRITERIA.md "Test-mail provenance"). */
export type Provenance = 'requested' | 'authenticated' | 'unverified';
export const PROVENANCES: readonly Provenance[] = ['requested', 'authenticated', 'unverified'];

/** The stored test mail as the collection needs it (receiver/store.ts `TestMailRow` satisfies it). */
export interface ReceivedTestMail {
  id: string;
  receivedAt: Date;
  clientIp: string;
  helo: string | null;
  mailFrom: string | null;
  headerFrom: string | null;
  rcptTo: string[];
  token: string | null;
  /** The diagnosed domain (A-label): MAIL FROM domain, or From: domain for a null reverse-path. */
  domain: string | null;
  tls: { used: boolean; offered: boolean; protocol: string | null; cipher: string | null };
  raw: Buffer;
  size: number;
}

/** DMARC as mailauth evaluated it for this message (RFC 7489); a finding beyond MSchecker's criteria. */
export interface DmarcTestMailObservation {
  result: string;
  policy: string | null;
  headerFromDomain: string | null;
  comment: string | null;
}

export interface TestMailObservations {
  version: 1;
  kind: 'test-mail';
  testMailId: string;
  domain: string;
  receivedAt: string;
  mail: {
    clientIp: string;
    helo: string | null;
    mailFrom: string | null;
    headerFrom: string | null;
    rcptTo: string[];
    token: string | null;
    /** The domain named in `mailcensus request` for this token, if the token was known. */
    requestDomain: string | null;
    size: number;
    tls: ReceivedTestMail['tls'];
  };
  spf: SpfTestMailObservation;
  dkim: DkimTestMailObservation;
  dmarc: DmarcTestMailObservation | null;
  /** The domain from outside: MX, DNSSEC, DMARC/MTA-STS/TLS-RPT records. */
  dns: DomainDnsObservations;
  /** PTR/FCrDNS and DNSBL of the client IP. */
  client: IpDnsObservations;
  /** One SMTP session with the sending host (open relay; outbound-only hosts do not answer). */
  sender: { ip: string; smtp: SmtpObservation };
  /** Every MX IP: its SMTP session (receive TLS, open relay) and its PTR/DNSBL. */
  ips: Record<string, IpObservation>;
  /** Bounds that cut the collection short (absent in diagnoses stored before issue 12). */
  limits?: {
    /** DKIM-Signature headers in the mail, and how many were verified (the first N). */
    dkimSignatures: number;
    dkimVerified: number;
    /** MX addresses left unprobed because the job deadline passed. */
    skippedByDeadline: string[];
  };
}

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
  const { collectDomain, mxTargets, observeIp } = await import('./diagnose.ts');
  const dns = await collectDomain(domain, deps);
  // A DNSSEC-bogus domain's records are read with CD (CRITERIA.md), for SPF and DKIM keys as for the rest.
  const cd = dns.valid ? dns.cd : false;
  const resolver = mailauthSpfResolver(deps.resolver, { cd });
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
    resolver: resolver as never,
    disableArc: true,
    disableBimi: true,
  } as never)) as unknown as MailauthAuthResult;

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

/** tls_send (CRITERIA.md): ok if the mail arrived over TLS; ng if in clear although we offered STARTTLS. */
export function evaluateTlsSend(tls: TestMailObservations['mail']['tls']): Finding {
  if (tls.used) return finding('ok', 'tls', `received over ${tls.protocol ?? 'TLS'}${tls.cipher ? ` (${tls.cipher})` : ''}`);
  if (tls.offered) return finding('ng', 'cleartext', 'the test mail arrived in clear although we offered STARTTLS');
  return finding('unknown', 'starttls_not_offered', 'the receiver did not offer STARTTLS, so send TLS was not measured');
}

/** The MX-judged criteria when the MX set itself could not be read: the same reason, never ok/ng. */
function fromMx(mx: Finding): Finding {
  return { ...mx, status: mx.status === 'ok' || mx.status === 'ng' ? 'unknown' : mx.status };
}

/** Pure: the test-mail diagnosis from its observations, judged with the current rules. */
export function judgeTestMail(obs: TestMailObservations, observedAt: Date = new Date(obs.receivedAt)): Diagnosis {
  if (obs?.kind !== 'test-mail' || obs.version !== 1) throw new Error('stored observations are not a version-1 test mail\'s');
  const clientIp = obs.mail.clientIp;
  const j = judgeDns(obs.dns, { [clientIp]: obs.client }, 'test-mail');
  const rows = obs.dns.valid ? mxRows(obs.dns.mx) : [];
  const nullMx = j.mxKind === 'null';
  const noMx = j.mxKind === 'none';
  const senderProbe: RelayProbe = { ip: clientIp, role: 'sender', host: obs.mail.helo, obs: obs.sender.smtp };

  let tlsReceive: Finding;
  let openRelay: Finding;
  if (j.mxKind === 'unknown' || j.mxKind === 'invalid') {
    tlsReceive = fromMx(j.mx);
    const s = evaluateOpenRelay([senderProbe]);
    openRelay = s.status === 'ng' ? s : fromMx(j.mx);
  } else {
    const probes: MxProbe[] = rows.map((r) => ({
      host: r.host,
      ip: r.ip,
      obs: r.ip ? obs.ips[r.ip]?.smtp ?? null : null,
      ...(r.ip ? (obs.ips[r.ip] ? {} : { unmeasured: 'not_probed' }) : { unmeasured: 'no_address' }),
    }));
    tlsReceive = evaluateTlsReceive(probes, { nullMx, noMx });
    const mxRelay: RelayProbe[] = probes
      .filter((p): p is MxProbe & { ip: string; obs: SmtpObservation } => !!p.ip && !!p.obs)
      .map((p) => ({ ip: p.ip, role: 'mx', host: p.host, obs: p.obs }));
    // An MX IP that is also the sender is judged as an MX (it must answer SMTP).
    const relayHosts = mxRelay.some((p) => p.ip === clientIp) ? mxRelay : [...mxRelay, senderProbe];
    if (mxRelay.length === 0 && !nullMx && !noMx) {
      const s = evaluateOpenRelay([senderProbe]);
      openRelay = s.status === 'ng' ? s : finding('unknown', probes[0]?.unmeasured ?? 'not_probed', 'no MX host could be probed');
    } else {
      openRelay = evaluateOpenRelay(relayHosts, { nullMx, noMx });
    }
  }

  const criteria: CriterionFindings = {
    open_relay: openRelay,
    spf: evaluateSpfTestMail(obs.spf),
    dkim: evaluateDkimTestMail(obs.dkim),
    tls_receive: tlsReceive,
    tls_send: evaluateTlsSend(obs.mail.tls),
    reverse_dns: j.criteria.reverse_dns!,
    dnssec: j.criteria.dnssec!,
    dnsbl: j.criteria.dnsbl!,
  };
  const tls = tlsFindings(rows.filter((r) => r.ip && obs.ips[r.ip]).map((r) => ({ host: r.host, obs: obs.ips[r.ip!]!.smtp })));
  const tlsVersions = [...new Set([...tls.tlsVersions, ...(obs.mail.tls.used && obs.mail.tls.protocol ? [obs.mail.tls.protocol] : [])])].sort();
  return {
    source: 'test-mail',
    domain: obs.domain,
    observedAt,
    criteria,
    verdict: judgeVerdict(criteria, 'test-mail'),
    findings: { ...j.findings, tlsVersions, certProblems: tls.certProblems },
    observations: obs,
    mx: rows,
  };
}
