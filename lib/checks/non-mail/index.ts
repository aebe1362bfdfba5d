// non_mail, a finding beyond MSchecker (scan only): does the domain declare that it neither receives nor sends
// mail? Receiving: a null MX (RFC 7505) or no MX at all (and no address for an implicit MX, RFC 5321 §5.1).
// Sending: its only SPF record is exactly `v=spf1 -all` (RFC 7208: no host is authorised; terms compared
// case-insensitively, runs of spaces as one). Reports show such domains on a line of their own and give the
// verdict shares over mail domains too (reports/queries.ts verdictSharesMailDomains).
import { finding } from '../../criteria.ts';
import { txtRecords, unknownFrom } from '../../dns/observation.ts';
import { isFact } from '../../dns/resolver.ts';
import { isSpfRecord } from '../spf/spf.ts';
import { defineFinding, reason, UNKNOWN_VALUE_LABEL } from '../contract.ts';
import { DNS_FAILURE_REASONS } from '../reasons.ts';

/** `v=spf1 -all` and nothing else (case and spacing aside). */
export function isRejectAllSpf(record: string): boolean {
  return record.trim().toLowerCase().split(/\s+/).join(' ') === 'v=spf1 -all';
}

export const nonMailCheck = defineFinding({
  id: 'non_mail',
  label: { ja: 'メール不使用ドメイン', en: 'Non-mail domain' },
  rule: 'A domain that declares it sends and receives no mail: a null MX (RFC 7505) or no MX, and exactly one SPF record, `v=spf1 -all` (RFC 7208).',
  scope: 'domain',
  sources: ['scan'],
  values: ['non_mail', 'mail', 'unknown'],
  valueLabels: {
    non_mail: { ja: 'メール不使用（null MX/MXなし + v=spf1 -all）', en: 'non-mail (null/no MX and v=spf1 -all)' },
    mail: { ja: 'メールドメイン', en: 'mail domain' },
    unknown: UNKNOWN_VALUE_LABEL,
  },
  reasons: {
    null_mx_spf_all: reason('null MX and v=spf1 -all: no mail in or out', 'null MXかつv=spf1 -all（送受信しない）'),
    no_mx_spf_all: reason('no MX and v=spf1 -all: no mail in or out', 'MXなしかつv=spf1 -all（送受信しない）'),
    has_mx: reason('the domain has MX hosts (or an implicit MX): it receives mail', 'MXがある（メールを受信する）'),
    may_send: reason('no MX, but SPF does not forbid every sender (not exactly v=spf1 -all)', 'MXはないが、SPFが送信をすべて禁じてはいない'),
    no_spf: reason('no MX and no SPF record: no declaration either way', 'MXもSPFレコードもない（宣言がない）'),
    ...DNS_FAILURE_REASONS,
  },
  judge(input) {
    if (!input.dns.valid) return { ...input.invalid!, value: 'unknown' };
    const kind = input.mx.kind;
    if (kind === 'mx' || kind === 'implicit') return { ...finding('ok', 'has_mx', input.mx.finding.detail), value: 'mail' };
    if (kind !== 'null' && kind !== 'none') {
      const mx = input.dns.mx;
      const failed = [mx.mx, mx.implicitA, mx.implicitAaaa].find((l) => l && !isFact(l.outcome));
      return { ...(failed ? unknownFrom(failed, 'MX') : finding('unknown', 'dns_error', 'MX set unknown')), value: 'unknown' };
    }
    const txt = input.dns.spf.root.txt;
    if (!isFact(txt.outcome)) return { ...unknownFrom(txt, 'SPF'), value: 'unknown' };
    const spf = txtRecords(txt).filter(isSpfRecord);
    const mxWhat = kind === 'null' ? 'null MX' : 'no MX';
    if (spf.length === 0) return { ...finding('ok', 'no_spf', `${mxWhat}, no SPF record`), value: 'mail' };
    if (spf.length === 1 && isRejectAllSpf(spf[0])) return { ...finding('ok', kind === 'null' ? 'null_mx_spf_all' : 'no_mx_spf_all', `${mxWhat}; ${spf[0]}`), value: 'non_mail' };
    return { ...finding('ok', 'may_send', `${mxWhat}; ${spf.map((s) => s.slice(0, 120)).join(' | ')}`), value: 'mail' };
  },
});
