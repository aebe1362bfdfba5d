// The MX set (RFC 5321 §5.1, RFC 7505 null MX): shown by `check` and stored; the SMTP criteria, reverse DNS
// and DNSBL are judged over its hosts (lib/checks/judge-input.ts reads it once for all of them).
import { defineFinding, dnsGatherer, reason, UNKNOWN_VALUE_LABEL } from '../contract.ts';
import { DNS_FAILURE_REASONS, MX_SET_REASONS } from '../reasons.ts';
import { collectMx } from './mx.ts';

export const mxCheck = defineFinding({
  id: 'mx',
  label: { ja: 'MX', en: 'MX' },
  rule: 'The MX set: usable hosts (ok), null or no MX (n/a, the domain receives no mail), a broken set (NG), DNS failure (unknown).',
  scope: 'domain',
  values: ['mx', 'implicit', 'null', 'none', 'unknown', 'invalid'],
  valueLabels: {
    mx: { ja: 'MXあり', en: 'MX records' },
    implicit: { ja: '暗黙のMX', en: 'implicit MX' },
    null: { ja: 'ヌルMX', en: 'null MX' },
    none: { ja: 'MXなし', en: 'no MX' },
    unknown: UNKNOWN_VALUE_LABEL,
    invalid: { ja: '不正な名前', en: 'invalid name' },
  },
  reported: false,
  reasons: {
    mx_present: reason('MX hosts with addresses', 'アドレスのあるMXホスト'),
    mx_truncated: reason('more MX hosts or addresses than are probed', '調べる上限を超えるMXホスト・アドレス'),
    implicit_mx: reason("no MX: the domain's own address receives mail (RFC 5321 §5.1)", 'MXなし：ドメイン自身のアドレスが受信する'),
    some_mx_without_address: reason('some MX hosts have no address', '一部のMXホストにアドレスがない'),
    ...MX_SET_REASONS,
    ...DNS_FAILURE_REASONS,
  },
  gather: dnsGatherer('mx', collectMx),
  judge(input) {
    return { ...input.mx.finding, value: input.mx.kind };
  },
});
