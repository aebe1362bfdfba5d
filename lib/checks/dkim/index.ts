// dkim (CRITERIA.md): scan — a key under a probed selector (the domain's known selectors first, then the
// common ones), or `_domainkey.<domain>` exists and is no wildcard artefact (RFC 8020: NXDOMAIN means nothing
// below it; "DKIM in scans: wildcards"); test mail — a signature aligned with the domain verifies (RFC 6376 §6).
import { defineCriterion, reason } from '../contract.ts';
import { DNS_FAILURE_REASONS } from '../reasons.ts';
import { collectDkim, evaluateDkimScan, evaluateDkimTestMail } from './dkim.ts';

export const dkimCheck = defineCriterion({
  id: 'dkim',
  level: 'needs_improvement',
  rule: 'Scan: a DKIM key under one of the probed selectors (the domain\'s known selectors, from the survey list and its test mails, first; then the common ones), or _domainkey.<domain> exists (NOERROR) and a random label under it is NXDOMAIN (else a wildcard answers, internet.nl#1025); RFC 8020 makes an NXDOMAIN _domainkey mean no selector at all and ends the search. Test mail: a DKIM signature whose d= is the domain or a parent verifies (RFC 6376 §6).',
  scope: 'domain',
  reasons: {
    key_found: reason('a DKIM key under a probed selector', '調べたセレクタにDKIM鍵がある'),
    domainkey_exists: reason('_domainkey exists (selectors not among those probed)', '_domainkeyが存在する（セレクタは未確認）'),
    no_dkim_key: reason('_domainkey does not exist (NXDOMAIN)', '_domainkeyが存在しない（NXDOMAIN）'),
    domainkey_wildcard: reason('_domainkey exists only through a DNS wildcard, and no probed selector has a key', '_domainkeyはワイルドカードによるもので、調べたセレクタに鍵がない'),
    pass: reason('an aligned DKIM signature verifies', '署名ドメインが一致するDKIM署名を検証できた'),
    temperror: reason('a temporary DNS error while verifying', '検証中に一時的なDNSエラー', true),
    no_signature: reason('the mail carries no DKIM signature', 'DKIM署名がない'),
    no_aligned_signature: reason('signatures only from other domains', '他ドメインの署名しかない'),
    signature_fail: reason('the aligned signature does not verify', '署名の検証に失敗した'),
    signature_not_verified: reason('the aligned signature could not be verified', '署名を検証できなかった'),
    ...DNS_FAILURE_REASONS,
  },
  gather: {
    key: 'dkim',
    retrieve: (domain, deps, { cd, dkimSelectors }) => collectDkim(domain, deps.config.dkimSelectors, deps.resolver, { cd, given: dkimSelectors }),
  },
  judge(input) {
    if (input.mail) return evaluateDkimTestMail(input.mail.dkim);
    return input.dns.valid ? evaluateDkimScan(input.dns.dkim) : input.invalid!;
  },
});
