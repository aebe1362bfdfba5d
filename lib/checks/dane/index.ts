// dane, a finding beyond MSchecker: DANE for SMTP (RFC 7672). Once the MX set is known, the gatherer asks for
// the TLSA RRset at `_25._tcp.<mx>` of every MX host that DANE applies to (one query per MX name, at most
// MAX_MX_HOSTS; a second, with CD, only after a SERVFAIL), and stores it with its DNSSEC state under
// `dns.dane`. RFC 7672 §2.2.1 and §2.2.3: DANE applies only to a host reached through a DNSSEC-secure MX RRset
// whose own address records are secure; for any other host the TLSA records could not be used, so they are
// not asked, and the host is recorded as not applicable with the reason. The judgement matches the TLSA
// records against the chain the host presented in the SMTP session the scan already makes (no extra
// connection): per MX (host, address) row, then the domain (../shared/CRITERIA.md).
import { finding, type Status } from '../../criteria.ts';
import { isFact } from '../../dns/resolver.ts';
import type { Lookup } from '../../dns/observation.ts';
import { defineFinding, labelledReasons, reason, type GatherDeps, type GatherOptions, type Label, type ReasonMeta, UNKNOWN_VALUE_LABEL } from '../contract.ts';
import { noMxHosts, type JudgeInput } from '../judge-input.ts';
import type { MxObservation } from '../mx/mx.ts';
import { NO_MX_HOST_REASONS } from '../reasons.ts';
import { DANE_REASONS, evaluateDane, retrieveTlsa, type DaneEvaluation, type DaneReason, type DaneValue, type TlsaObservation } from './tlsa.ts';

/** Why DANE does not apply to an MX host, so its TLSA records were not asked (RFC 7672 §2.2). */
export type DaneNotApplicable = 'mx_insecure' | 'address_insecure';

/** What the gatherer stores under `dns.dane`. */
export interface DaneGathered {
  /** One TLSA observation per MX host name DANE applies to, in MX order. */
  hosts: TlsaObservation[];
  /**
   * The MX host names whose TLSA records were not asked, and why. Absent in observations made before the
   * lookups were restricted to secure hosts (every host was asked then).
   */
  notApplicable?: { mxHost: string; reason: DaneNotApplicable }[];
}

const hostKey = (h: string) => h.toLowerCase().replace(/\.$/, '');

/** A fact the validating resolver did not authenticate: provably insecure, not merely unknown. */
const insecureFact = (l: Lookup | undefined) => l !== undefined && isFact(l.outcome) && !l.ad;

/**
 * The MX host names, distinct, in MX order (already capped at MAX_MX_HOSTS by collectMx), each with whether
 * its TLSA records are asked. RFC 7672 §2.2.1: an insecure MX RRset (for the implicit MX of a domain without
 * one, its insecure denial: §2.2.2) means DANE does not apply to any of its hosts; §2.2.3: nor to a host whose
 * address records are insecure. Only proven insecurity skips the lookup: a host whose address lookup failed
 * is asked (its TLSA may be what is bogus: the same broken zone), and so is every host of a domain read with
 * CD (a bogus domain: AD says nothing there, CRITERIA.md).
 */
export function tlsaHosts(mx: MxObservation | undefined, opts: { cd?: boolean } = {}): { host: string; notApplicable: DaneNotApplicable | null }[] {
  const out = new Map<string, DaneNotApplicable | null>();
  const mxInsecure = !opts.cd && insecureFact(mx?.mx);
  for (const h of mx?.hosts ?? []) {
    if (typeof h.exchange !== 'string' || !h.exchange || out.has(hostKey(h.exchange))) continue;
    const addressInsecure = !opts.cd && insecureFact(h.a) && insecureFact(h.aaaa);
    out.set(hostKey(h.exchange), mxInsecure ? 'mx_insecure' : addressInsecure ? 'address_insecure' : null);
  }
  return [...out].map(([host, notApplicable]) => ({ host, notApplicable }));
}

export async function gatherDane(_domain: string, deps: GatherDeps, opts: GatherOptions): Promise<DaneGathered> {
  const hosts = tlsaHosts(opts.gathered?.mx as MxObservation | undefined, { cd: opts.cd });
  return {
    hosts: await Promise.all(hosts.filter((h) => h.notApplicable === null).map((h) => retrieveTlsa(h.host, deps.resolver))),
    notApplicable: hosts.flatMap((h) => (h.notApplicable ? [{ mxHost: h.host, reason: h.notApplicable }] : [])),
  };
}

/** Domain values, best first (../shared/CRITERIA.md `dane`, plus `unusable` and `no_mx`). */
export const DANE_VALUES = ['valid', 'partial', 'mismatch', 'unusable', 'bogus', 'insecure', 'none', 'no_mx', 'unknown'] as const;
export type DaneDomainValue = (typeof DANE_VALUES)[number];

/** Worst first: what a domain without a valid MX shows when its MX hosts differ. */
const WORST: DaneValue[] = ['bogus', 'mismatch', 'unusable', 'insecure', 'none'];

/** ja/en labels of the TLSA reasons (their value and transient flag are in tlsa.ts DANE_REASONS). */
const REASON_LABELS: Record<DaneReason, Label> = {
  tlsa_match: { en: 'a usable TLSA record matches the presented certificate or chain', ja: '利用可能なTLSAレコードが提示された証明書に一致する' },
  tlsa_mismatch: { en: 'secure TLSA records, none matches the presented chain', ja: 'DNSSECで検証済みのTLSAがあるが、提示された証明書に一致しない' },
  tlsa_unusable: { en: 'secure TLSA records, none usable for SMTP (PKIX usages, unknown types: RFC 7672 §3.1.3)', ja: 'TLSAはあるがSMTPで使えるものがない（PKIX用途・未知の種別）' },
  no_tlsa: { en: 'no TLSA record at _25._tcp.<mx>', ja: 'TLSAレコードがない' },
  tlsa_insecure: { en: 'TLSA records that are not DNSSEC-secure: unusable (RFC 7672 §2.2)', ja: 'TLSAがDNSSECで保護されていない（使えない）' },
  tlsa_bogus: { en: 'the TLSA lookup fails DNSSEC validation (bogus)', ja: 'TLSAのDNSSEC検証に失敗する（bogus）' },
  dns_failure: { en: 'the TLSA lookup failed', ja: 'TLSAの問い合わせに失敗した' },
  tlsa_malformed: { en: 'TLSA answers that do not parse', ja: 'TLSAの応答を解釈できない' },
  no_handshake: { en: 'secure TLSA records, but no STARTTLS handshake to match them against', ja: 'TLSAはあるが照合するTLSハンドシェイクがない' },
};
const NOT_APPLICABLE_REASONS: Record<DaneNotApplicable, ReasonMeta> = {
  mx_insecure: reason(
    'DANE does not apply: the MX RRset is not DNSSEC-secure, so no TLSA lookup (RFC 7672 §2.2.1)',
    'MXレコードがDNSSECで保護されていないためDANEは適用されない（TLSAを調べない）',
  ),
  address_insecure: reason(
    "DANE does not apply: the MX host's address records are not DNSSEC-secure, so no TLSA lookup (RFC 7672 §2.2.3)",
    'MXホストのアドレスがDNSSECで保護されていないためDANEは適用されない（TLSAを調べない）',
  ),
};

const STATUS: Record<DaneDomainValue, Status> = {
  valid: 'ok', partial: 'ng', mismatch: 'ng', unusable: 'ng', bogus: 'ng', insecure: 'ng', none: 'na', no_mx: 'na', unknown: 'unknown',
};

interface RowResult {
  host: string;
  ip: string;
  value: DaneValue;
  reason: DaneReason | DaneNotApplicable | 'chain_not_recorded';
  detail: string;
}

function row(host: string, ip: string, e: DaneEvaluation): RowResult {
  return { host, ip, value: e.value, reason: e.reason, detail: e.detail };
}

/** Every MX (host, address) row with its DANE value; null when the TLSA lookups were not recorded (older observations). */
export function daneRows(input: JudgeInput): RowResult[] | null {
  const gathered = input.dns.valid ? (input.dns.dane as DaneGathered | undefined) : undefined;
  if (!gathered || !Array.isArray(gathered.hosts)) return null;
  const byHost = new Map(gathered.hosts.map((t) => [hostKey(t.mxHost), t]));
  const notApplicable = new Map((Array.isArray(gathered.notApplicable) ? gathered.notApplicable : []).map((n) => [hostKey(n.mxHost), n.reason]));
  const out: RowResult[] = [];
  for (const p of input.mx.probes) {
    const skipped = notApplicable.get(hostKey(p.host));
    if (skipped) {
      // No TLSA to judge: the host counts as one without DANE (`none`), with the reason it does not apply.
      const why = skipped === 'mx_insecure' ? 'MX RRset not DNSSEC-secure' : 'address records not DNSSEC-secure';
      out.push({ host: p.host, ip: p.ip ?? '-', value: 'none', reason: skipped, detail: `${p.host}: ${why}, DANE does not apply (RFC 7672 §2.2), TLSA not looked up` });
      continue;
    }
    const tlsa = byHost.get(hostKey(p.host));
    if (!p.ip) {
      // No address to deliver to: the row counts only for what its TLSA says without a handshake (a bogus
      // zone fails the address and the TLSA alike), never as a missing handshake.
      const e = tlsa ? evaluateDane(tlsa, null) : null;
      if (e && e.reason !== 'no_handshake') out.push(row(p.host, '-', e));
      continue;
    }
    if (!tlsa) {
      out.push({ host: p.host, ip: p.ip, value: 'unknown', reason: 'dns_failure', detail: `${p.host}: no TLSA lookup recorded` });
      continue;
    }
    const tls = p.obs?.tls;
    const done = tls?.handshake === 'ok';
    const e = evaluateDane(tlsa, done && Array.isArray(tls.chain) ? tls.chain : null, done ? tls.cert?.nameMatch ?? null : null);
    if (e.reason === 'no_handshake' && done && !Array.isArray(tls.chain)) {
      out.push({ host: p.host, ip: p.ip, value: 'unknown', reason: 'chain_not_recorded', detail: `${tlsa.name}: secure TLSA; the presented chain was not recorded` });
    } else {
      out.push(row(p.host, p.ip, e));
    }
  }
  return out;
}

export const daneCheck = defineFinding({
  id: 'dane',
  label: { ja: 'DANE（SMTP）', en: 'DANE for SMTP' },
  rule:
    'Per MX host: DANE applies only to a host reached through a DNSSEC-secure MX RRset whose address records are secure (RFC 7672 §2.2.1, §2.2.3): for any other host no TLSA is looked up and the host counts as none (not applicable). The TLSA RRset at _25._tcp.<mx> counts only when DNSSEC-secure; a usable DANE-EE (3) record must match the leaf, a DANE-TA (2) record a certificate above it in the chain the host presented, which signed the chain below it, with the leaf carrying the MX host name (§3.1.2, §3.2.2). The domain is valid if every MX is, partial if some are, else its worst MX value; unknown if a lookup or the handshake could not be made.',
  scope: 'mx_ip',
  sources: ['scan', 'test-mail'],
  values: DANE_VALUES,
  valueLabels: {
    valid: { ja: '有効（全MXで一致）', en: 'valid (every MX matches)' },
    partial: { ja: '一部のMXのみ有効', en: 'partial (some MX valid)' },
    mismatch: { ja: 'TLSAが証明書に一致しない', en: 'TLSA does not match' },
    unusable: { ja: 'SMTPで使えるTLSAがない', en: 'no TLSA usable for SMTP' },
    bogus: { ja: 'DNSSEC検証失敗（bogus）', en: 'DNSSEC bogus' },
    insecure: { ja: 'TLSAがDNSSECで保護されていない', en: 'TLSA not DNSSEC-secure' },
    none: { ja: 'TLSAなし、またはDANE非適用（MXがDNSSECで保護されていない）', en: 'no TLSA, or DANE not applicable (MX not DNSSEC-secure)' },
    no_mx: { ja: '対象のMXなし', en: 'no MX host' },
    unknown: UNKNOWN_VALUE_LABEL,
  },
  reasons: {
    ...labelledReasons(REASON_LABELS, DANE_REASONS),
    ...NOT_APPLICABLE_REASONS,
    dane_partial: reason('some MX hosts are DANE-valid, others are not', '一部のMXのみDANEが有効'),
    chain_not_recorded: reason('secure TLSA records; the presented chain was not recorded when this was measured', 'TLSAはあるが測定時に証明書チェーンを記録していない'),
    not_recorded: reason('the TLSA records were not looked up when this was measured', '測定時にTLSAを調べていない'),
    ...NO_MX_HOST_REASONS,
  },
  gather: { key: 'dane', after: ['mx'], retrieve: gatherDane },
  judge(input) {
    const none = noMxHosts(input);
    if (none) return { ...none, value: none.status === 'na' ? 'no_mx' : 'unknown' };
    const rows = daneRows(input);
    if (rows === null) return { ...finding('unknown', 'not_recorded'), value: 'unknown' };
    if (rows.length === 0) return { ...finding('na', 'mx_without_address', 'no MX host has an address or a TLSA answer to judge'), value: 'no_mx' };
    const detail = rows.map((r) => `${r.host} (${r.ip}): ${r.value}, ${r.detail}`).join('; ').slice(0, 800);
    const unknown = rows.find((r) => r.value === 'unknown');
    if (unknown) return { ...finding('unknown', unknown.reason, detail), value: 'unknown' };
    const valid = rows.filter((r) => r.value === 'valid').length;
    if (valid === rows.length) return { ...finding('ok', 'tlsa_match', detail), value: 'valid' };
    if (valid > 0) return { ...finding('ng', 'dane_partial', `${valid} of ${rows.length} MX rows valid; ${detail}`.slice(0, 800)), value: 'partial' };
    const worst = rows.reduce((a, b) => (WORST.indexOf(b.value) < WORST.indexOf(a.value) ? b : a));
    const value = worst.value as DaneDomainValue;
    return { ...finding(STATUS[value], worst.reason, detail), value };
  },
});
