// reverse_dns (CRITERIA.md): every judged IP has a PTR whose name resolves back to it (FCrDNS, the `iprev` of
// RFC 8601 §3): the MX IPs of a scan, the client IP of a test mail.
import { defineCriterion, reason } from '../contract.ts';
import { overJudgedIps } from '../judge-input.ts';
import { JUDGED_IP_REASONS } from '../reasons.ts';
import { evaluateReverseDns } from './reverse-dns.ts';

export const reverseDnsCheck = defineCriterion({
  id: 'reverse_dns',
  level: 'needs_improvement',
  rule: 'Every MX IP (scan) or the client IP (test mail) has a PTR whose name resolves back to the same IP (forward-confirmed reverse DNS, RFC 8601 §3 iprev).',
  scope: 'mx_ip',
  reasons: {
    fcrdns: reason('the PTR name resolves back to the IP', 'PTR名が同じIPに解決される'),
    no_ptr: reason('no PTR record', 'PTRレコードがない'),
    ptr_mismatch: reason('the PTR name does not resolve back', 'PTR名が元のIPに解決されない'),
    ...JUDGED_IP_REASONS,
  },
  judge: (input) => overJudgedIps(input, (o) => evaluateReverseDns(o.reverseDns)),
});
