// What a diagnosis stores as its observations: plain JSON, every lookup and session with its outcome, enough
// to judge it again without probing (lib/checks/judge.ts). Types only, so every layer can name them.
import type { DnsObservations, IpDnsObservations } from './probes/dns.ts';
import type { SmtpObservation } from './probes/smtp/index.ts';
import type { SpfTestMailObservation } from './checks/spf/spf.ts';
import type { DkimTestMailObservation } from './checks/dkim/dkim.ts';
import type { Lookup } from './dns/observation.ts';

export type { DnsObservations, IpDnsObservations };

/** Everything one MX IP told us: its SMTP session and its reverse DNS and DNSBL listings. */
export interface IpObservation {
  ip: string;
  hostNames: string[];
  smtp: SmtpObservation;
  dns: IpDnsObservations;
}

/** A scan: the domain's DNS and every MX IP. */
export interface ScanObservations {
  version: 1;
  kind: 'scan';
  dns: DnsObservations;
  ips: Record<string, IpObservation>;
}

/** How a test mail reached us (CRITERIA.md "Test-mail provenance"). */
export type Provenance = 'requested' | 'authenticated' | 'unverified';
export const PROVENANCES: readonly Provenance[] = ['requested', 'authenticated', 'unverified'];

/** The TLS facts of the SMTP session in which the test mail reached us. */
export interface ReceivedTls {
  used: boolean;
  offered: boolean;
  protocol: string | null;
  cipher: string | null;
}

/** DMARC as mailauth evaluated it for this message (RFC 7489); a finding beyond MSchecker's criteria. */
export interface DmarcTestMailObservation {
  result: string;
  policy: string | null;
  headerFromDomain: string | null;
  comment: string | null;
}

/** The SMTP envelope and session facts of a received test mail, as the receiver stored them. */
export interface TestMailEnvelope {
  clientIp: string;
  helo: string | null;
  mailFrom: string | null;
  headerFrom: string | null;
  rcptTo: string[];
  token: string | null;
  size: number;
  tls: ReceivedTls;
}

export interface TestMailObservations {
  version: 1;
  kind: 'test-mail';
  testMailId: string;
  domain: string;
  receivedAt: string;
  mail: TestMailEnvelope & {
    /** The domain named in `mailcensus request` for this token, if the token was known. */
    requestDomain: string | null;
  };
  /**
   * SPF, DKIM and DMARC of the message as mailauth computed them over the received bytes with our resolver.
   * These are computations, not raw facts: `authDns` holds the DNS answers they were computed from (the DKIM
   * key finding reads the keys from it), and DKIM's per-signature crypto results stand as the measurement
   * of the message.
   */
  spf: SpfTestMailObservation;
  dkim: DkimTestMailObservation;
  dmarc: DmarcTestMailObservation | null;
  /** Every DNS answer mailauth's SPF/DKIM/DMARC evaluation asked our resolver for (absent before issue 14). */
  authDns?: Lookup[];
  /** The domain from outside: MX, DNSSEC, DMARC/MTA-STS/TLS-RPT records. */
  dns: DnsObservations;
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
