// mta_sts, a finding beyond MSchecker: the `_mta-sts` TXT record that announces an MTA-STS policy (RFC 8461 §3.1).
import { defineFinding, reason, RECORD_VALUE_LABELS } from '../contract.ts';
import { DNS_FAILURE_REASONS } from '../reasons.ts';
import { collectMtaSts, evaluateMtaSts } from './mta-sts.ts';

export const mtaStsCheck = defineFinding({
  id: 'mta_sts',
  label: { ja: 'MTA-STS', en: 'MTA-STS' },
  rule: 'Exactly one v=STSv1 TXT record at _mta-sts.<domain> with a valid id= (RFC 8461 §3.1).',
  scope: 'domain',
  sources: ['scan', 'test-mail'],
  column: 'mta_sts',
  values: ['present', 'absent', 'invalid', 'unknown'],
  valueLabels: RECORD_VALUE_LABELS,
  reasons: {
    mta_sts_present: reason('a valid MTA-STS record', '正しいMTA-STSレコードがある'),
    no_mta_sts_record: reason('no MTA-STS record', 'MTA-STSレコードがない'),
    multiple_mta_sts_records: reason('more than one MTA-STS record', 'MTA-STSレコードが複数ある'),
    invalid_mta_sts_record: reason('an MTA-STS record without a valid id=', 'id=が正しくないMTA-STSレコード'),
    ...DNS_FAILURE_REASONS,
  },
  gather: { key: 'mtaSts', retrieve: (domain, deps, { cd }) => collectMtaSts(domain, deps.resolver, { cd }) },
  judge(input) {
    if (!input.dns.valid) return { ...input.invalid!, value: 'unknown' };
    const f = evaluateMtaSts(input.dns.mtaSts);
    return { status: f.status, reason: f.reason, ...(f.detail ? { detail: f.detail } : {}), value: f.value };
  },
});
