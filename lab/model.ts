// The lab world after loading: every default of ../shared/LAB-WORLD.md applied, populations expanded, inline
// hosts given ids and addresses, names in A-label form. The DNS server, the SMTP hosts and the senders all
// read this model; only lab/world.ts reads the world file.

export type SmtpBehavior = 'normal' | 'refuse' | 'silent' | 'tempfail' | 'greylist' | 'slow';
export type CertKind = 'valid' | 'self-signed' | 'expired' | 'wrong-name';
export type TlsVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

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
    tls: { cert: CertKind; minVersion: TlsVersion };
    openRelay: boolean;
    relayDenyCode: 550 | 554 | 530;
  };
  dnsbl: boolean | 'error';
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
  dkim: { selectors: string[] } | null;
  dmarc: string | null;
  mtaSts: string | null;
  tlsRpt: string | null;
  dnssec: 'secure' | 'insecure' | 'bogus';
  dnsFault: 'servfail' | 'timeout' | 'refused' | null;
  sender: LabSender | null;
}

export interface LabWorld {
  version: 1;
  name: string;
  observedAt: string | null;
  latency: { dnsMs: number; smtpRttMs: number };
  dnsbls: string[];
  hosts: Map<string, LabHost>;
  domains: LabDomain[];
}
