// The lab world after loading: every default of ../shared/LAB-WORLD.md applied, populations expanded, inline
// hosts given ids and addresses, names in A-label form. The DNS server, the SMTP hosts and the senders all
// read this model; only lab/world.ts reads the world file.

export type SmtpBehavior = 'normal' | 'refuse' | 'silent' | 'tempfail' | 'greylist' | 'slow';
export type CertKind = 'valid' | 'self-signed' | 'expired' | 'wrong-name';
export type TlsVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
/** v2: the key of a host certificate. */
export type CertKeyType = 'rsa-1024' | 'rsa-2048' | 'rsa-4096' | 'ecdsa-p256';
export type DnssecState = 'secure' | 'insecure' | 'bogus';

/** v2: one TLSA record at `_25._tcp.<host name>` (RFC 6698 §2.1, RFC 7672). */
export interface LabTlsa {
  usage: 0 | 1 | 2 | 3;
  selector: 0 | 1;
  matching: 0 | 1 | 2;
  /** true: the data is computed from what the host presents; false: it matches nothing. */
  matches: boolean;
}

/** v2: an extra record of `records`, served verbatim. */
export interface LabRecord {
  /** A-label, lower case; may start with `*.` (RFC 4592 wildcard). */
  name: string;
  type: 'A' | 'TXT' | 'CNAME' | 'MX' | 'TLSA';
  value: string;
}

/** v2: the key of one DKIM selector (RFC 6376 §3.6.1, RFC 8463). */
export interface LabDkimKeySpec {
  type: 'rsa' | 'ed25519';
  /** RSA modulus length; ignored for ed25519. */
  bits: number;
  testing: boolean;
  revoked: boolean;
}

/** v2: the MTA-STS policy host `mta-sts.<domain>` (RFC 8461 §3.3). */
export interface LabMtaStsPolicy {
  https: 'ok' | 'refuse' | 'timeout' | '404' | 'self-signed' | 'expired' | 'wrong-name';
  body: string;
  contentType: string;
  /** `mta-sts.<domain>` (A-label). */
  name: string;
  /** Allocated like host addresses. */
  ip: string;
}

export interface LabHost {
  /** The id in `hosts`, or a generated one for inline hosts (e.g. `alpha.test#mx1`, `alpha.test#out`). */
  id: string;
  ip: string;
  /** Forward name (A-label); the lab serves `A name -> ip`. */
  name: string;
  /** PTR of `ip`; null = no PTR record. */
  ptr: string | null;
  /** The PTR name's A record points to another address (FCrDNS fails). */
  ptrMismatch: boolean;
  smtp: {
    behavior: SmtpBehavior;
    bannerDelayMs: number;
    starttls: boolean;
    tls: {
      cert: CertKind;
      minVersion: TlsVersion;
      /** v2 */
      key: CertKeyType;
      /** v2: days after the world clock; null = the default (365, `expired`: -30), see lab/ca.ts. */
      notAfterDays: number | null;
      /** v2: complete = leaf + intermediate, leaf-only = the leaf alone. */
      chain: 'complete' | 'leaf-only';
    };
    openRelay: boolean;
    relayDenyCode: 550 | 554 | 530;
  };
  dnsbl: boolean | 'error';
  /** v2: TLSA records at `_25._tcp.<name>`. */
  tlsa: LabTlsa[];
  /** v2: DNSSEC state of the host's own names; null = that of the lab domain its name falls under, else insecure. */
  dnssec: DnssecState | null;
  /**
   * Extension (v2 worlds, docs/lab.md "Per-host and per-domain latency"): this host's own latencies, overriding
   * the world's `latency`. `dnsMs`: before every answer for its own names (A, PTR, TLSA); `smtpRttMs`: before
   * every SMTP reply. null (or absent) = the world's.
   */
  latency?: { dnsMs: number | null; smtpRttMs: number | null };
}

export interface LabSender {
  hostId: string;
  starttls: boolean;
  dkimSign: string | null;
  mailFrom: string;
}

export interface LabDomain {
  /** A-label form, lower case: what goes on the wire. */
  name: string;
  /** As written in the world file (may be a U-label). */
  displayName: string;
  /** Host ids in preference order, or 'null' for a null MX (RFC 7505). [] = no MX record. */
  mx: string[] | 'null';
  spf: string | null;
  extraTxt: string[];
  /** `keys` has an entry for every selector (v2 defaults applied: RSA-2048). */
  dkim: { selectors: string[]; keys: Record<string, LabDkimKeySpec> } | null;
  dmarc: string | null;
  mtaSts: string | null;
  /** v2 */
  mtaStsPolicy: LabMtaStsPolicy | null;
  tlsRpt: string | null;
  dnssec: DnssecState;
  dnsFault: 'servfail' | 'timeout' | 'refused' | null;
  sender: LabSender | null;
  /** Extension (v2): delay before every DNS answer for a name under this domain; null (or absent) = the world's. */
  latency?: { dnsMs: number | null };
}

export interface LabWorld {
  version: 1 | 2;
  name: string;
  observedAt: string | null;
  latency: { dnsMs: number; smtpRttMs: number };
  dnsbls: string[];
  hosts: Map<string, LabHost>;
  domains: LabDomain[];
  /** v2: extra records, served verbatim. */
  records: LabRecord[];
}
