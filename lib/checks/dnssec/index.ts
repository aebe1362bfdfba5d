// dnssec (CRITERIA.md): the validating resolver sets AD on the domain's MX answer or denial (RFC 4035 §3.2.3); bogus when the
// query fails but succeeds with CD (§3.2.2). Collected first: a bogus domain's other records are read with CD.
import { defineCriterion, reason } from '../contract.ts';
import { DNS_FAILURE_REASONS } from '../reasons.ts';
import { collectDnssec, evaluateDnssec } from './dnssec.ts';

export const dnssecCheck = defineCriterion({
  id: 'dnssec',
  level: 'review',
  rule: 'The validating resolver sets AD on the MX answer of the domain, or on its denial (RFC 4035 §3.2.3; observations before issue 18: on its SOA); SERVFAIL that succeeds with CD is bogus (§3.2.2).',
  scope: 'domain',
  reasons: {
    secure: reason('signed and validated (AD)', '署名が検証された（AD）'),
    insecure: reason('not signed, or no chain of trust', '署名がない、または信頼の連鎖がない'),
    bogus: reason('signatures do not validate', '署名の検証に失敗する'),
    ...DNS_FAILURE_REASONS,
  },
  // The domain gatherer runs before all others (lib/probes/dns.ts): it decides whether they read with CD.
  gather: { key: 'dnssec', retrieve: (domain, deps) => collectDnssec(domain, deps.resolver) },
  judge(input) {
    return input.dns.valid ? evaluateDnssec(input.dns.dnssec) : input.invalid!;
  },
});
