// dnsbl (CRITERIA.md): no judged IP is listed in the configured DNS blocklists (RFC 5782 §2.1); a 127.255.255.x
// answer is the operator's error signal, never "listed".
import { defineCriterion, reason } from '../contract.ts';
import { overJudgedIps } from '../judge-input.ts';
import { JUDGED_IP_REASONS } from '../reasons.ts';
import { evaluateDnsbl } from './dnsbl.ts';

export const dnsblCheck = defineCriterion({
  id: 'dnsbl',
  level: 'review',
  rule: 'No MX IP (scan) or client IP (test mail) is listed in a configured DNS blocklist (an A record in 127.0.0.0/24, RFC 5782 §2.1).',
  scope: 'mx_ip',
  reasons: {
    not_listed: reason('listed in no zone', 'どのリストにも載っていない'),
    listed: reason('listed', 'リストに載っている'),
    dnsbl_error: reason('the DNSBL answered with its error signal', 'DNSBLがエラーを返した'),
    unexpected_answer: reason('an answer outside 127.0.0.0/24', '想定外の応答'),
    no_zones: reason('no DNSBL zone configured', 'DNSBLが設定されていない'),
    ...JUDGED_IP_REASONS,
  },
  judge: (input) => overJudgedIps(input, (o) => evaluateDnsbl(o.dnsbl)),
});
