// dmarc_policy, a finding beyond MSchecker: the `p=` of the domain's DMARC record (RFC 7489 §6.3), or of its
// organizational domain when it has none (§6.6.3).
import { defineFinding, reason, RECORD_VALUE_LABELS } from '../contract.ts';
import { DNS_FAILURE_REASONS } from '../reasons.ts';
import { collectDmarc, evaluateDmarc } from './dmarc.ts';

export const dmarcPolicyCheck = defineFinding({
  id: 'dmarc_policy',
  label: { ja: 'DMARCポリシー', en: 'DMARC policy' },
  rule: 'The p= of the _dmarc TXT record of the domain, or of its organizational domain (RFC 7489 §6.3, §6.6.3); several records or no valid p= is invalid.',
  scope: 'domain',
  sources: ['scan', 'test-mail'],
  column: 'dmarc_policy',
  values: ['reject', 'quarantine', 'none', 'absent', 'invalid', 'unknown'],
  valueLabels: {
    reject: { ja: 'reject', en: 'reject' },
    quarantine: { ja: 'quarantine', en: 'quarantine' },
    none: { ja: 'none（監視のみ）', en: 'none (monitor only)' },
    absent: RECORD_VALUE_LABELS.absent,
    invalid: RECORD_VALUE_LABELS.invalid,
    unknown: RECORD_VALUE_LABELS.unknown,
  },
  reasons: {
    p_reject: reason('p=reject', 'p=reject'),
    p_quarantine: reason('p=quarantine', 'p=quarantine'),
    p_none: reason('p=none (monitoring only)', 'p=none（監視のみ）'),
    no_dmarc_record: reason('no DMARC record', 'DMARCレコードがない'),
    multiple_dmarc_records: reason('more than one DMARC record', 'DMARCレコードが複数ある'),
    invalid_dmarc_record: reason('a DMARC record without a valid p=', 'p=が正しくないDMARCレコード'),
    ...DNS_FAILURE_REASONS,
  },
  gather: { key: 'dmarc', retrieve: (domain, deps, { cd }) => collectDmarc(domain, deps.resolver, { cd }) },
  judge(input) {
    if (!input.dns.valid) return { ...input.invalid!, value: 'unknown' };
    const f = evaluateDmarc(input.dns.dmarc);
    return { status: f.status, reason: f.reason, ...(f.detail ? { detail: f.detail } : {}), value: f.value };
  },
});
