// spf (CRITERIA.md): scan — the published policy judged statically (RFC 7208 §4.5, §4.6.4); test mail —
// check_host() for the client IP and MAIL FROM as mailauth computed it (pass only is ok).
import { defineCriterion, dnsGatherer, reason } from '../contract.ts';
import { DNS_FAILURE_REASONS } from '../reasons.ts';
import { collectSpf, evaluateSpfScan, evaluateSpfTestMail } from './spf.ts';

export const spfCheck = defineCriterion({
  id: 'spf',
  level: 'needs_improvement',
  rule: 'Scan: exactly one well-formed v=spf1 record, at most 10 DNS-querying terms and 2 void lookups over it and its includes (RFC 7208 §4.6.4), and not +all. Test mail: check_host() passes for the client IP and MAIL FROM (RFC 7208 §2.6).',
  scope: 'domain',
  reasons: {
    spf_valid: reason('one well-formed SPF record within the limits', '正しいSPFレコードが1つある'),
    no_spf_record: reason('no SPF record', 'SPFレコードがない'),
    multiple_spf_records: reason('more than one SPF record (RFC 7208 §4.5)', 'SPFレコードが複数ある'),
    include_multiple_spf_records: reason('an include target has several SPF records', 'includeの先にSPFレコードが複数ある'),
    include_without_spf: reason('an include or redirect target has no SPF record', 'include/redirectの先にSPFレコードがない'),
    spf_syntax_error: reason('an SPF syntax error', 'SPFの構文エラー'),
    include_loop: reason('include/redirect loops', 'include/redirectがループしている'),
    too_many_mx: reason('an mx term with more than 10 MX records', 'mx指定のMXが10件を超える'),
    too_many_lookups: reason('more than 10 DNS-querying terms (RFC 7208 §4.6.4)', 'DNS参照が10回を超える'),
    too_many_void_lookups: reason('more than 2 void lookups (RFC 7208 §4.6.4)', '空のDNS参照が2回を超える'),
    plus_all: reason('"+all" lets every host pass', '「+all」で誰でも通過する'),
    pass: reason('SPF pass for the sending IP', '送信元IPでSPFがpass'),
    fail: reason('SPF fail', 'SPFがfail'),
    softfail: reason('SPF softfail', 'SPFがsoftfail'),
    neutral: reason('SPF neutral', 'SPFがneutral'),
    none: reason('no SPF policy for the sender', '送信者のSPFがない'),
    permerror: reason('SPF permerror', 'SPFがpermerror'),
    temperror: reason('SPF temperror (DNS)', 'SPFがtemperror（DNS）', true),
    unexpected_result: reason('an unexpected SPF result', '想定外のSPF結果'),
    ...DNS_FAILURE_REASONS,
  },
  gather: dnsGatherer('spf', collectSpf),
  judge(input) {
    if (input.mail) return evaluateSpfTestMail(input.mail.spf);
    return input.dns.valid ? evaluateSpfScan(input.dns.spf) : input.invalid!;
  },
});
