// Every check, in the order `check`, `show`, reports and CSV list them: MSchecker's criteria first (in the
// order of lib/criteria.ts), then the findings beyond it. Adding a check is one folder and one line here.
import { CRITERIA } from '../criteria.ts';
import type { Check, CriterionCheck, DomainGatherer, FindingCheck, ReasonMeta } from './contract.ts';
import { openRelayCheck } from './open-relay/index.ts';
import { spfCheck } from './spf/index.ts';
import { dkimCheck } from './dkim/index.ts';
import { tlsReceiveCheck } from './tls-receive/index.ts';
import { tlsSendCheck } from './tls-send/index.ts';
import { reverseDnsCheck } from './reverse-dns/index.ts';
import { dnssecCheck } from './dnssec/index.ts';
import { dnsblCheck } from './dnsbl/index.ts';
import { mxCheck } from './mx/index.ts';
import { dmarcPolicyCheck, dmarcSubdomainPolicyCheck, dmarcFlagsCheck, dmarcReportsCheck } from './dmarc/index.ts';
import { mtaStsCheck } from './mta-sts/index.ts';
import { tlsRptCheck } from './tls-rpt/index.ts';
import { tlsVersionsCheck } from './tls-versions/index.ts';
import { certProblemsCheck } from './cert-problems/index.ts';
import { dkimKeyCheck } from './dkim-key/index.ts';
import { nonMailCheck } from './non-mail/index.ts';
import { tlsCertCheck, tlsKeyCheck } from './tls-cert/index.ts';
import { daneCheck } from './dane/index.ts';

export const CHECKS: readonly Check[] = [
  openRelayCheck,
  spfCheck,
  dkimCheck,
  tlsReceiveCheck,
  tlsSendCheck,
  reverseDnsCheck,
  dnssecCheck,
  dnsblCheck,
  mxCheck,
  dmarcPolicyCheck,
  dmarcSubdomainPolicyCheck,
  dmarcFlagsCheck,
  dmarcReportsCheck,
  mtaStsCheck,
  tlsRptCheck,
  tlsVersionsCheck,
  certProblemsCheck,
  dkimKeyCheck,
  nonMailCheck,
  tlsCertCheck,
  tlsKeyCheck,
  daneCheck,
];

/**
 * The version of the rules the registry implements: bump it when any check or the verdict judges differently,
 * so re-judged diagnoses record which rules judged them (`diagnoses.rules_version`).
 */
// 2: DKIM in scans, the wildcard test (CRITERIA.md "DKIM in scans: wildcards"): a `_domainkey` that exists only
// through a DNS wildcard is no evidence of DKIM (observations made before the test judge as under 1).
export const RULES_VERSION = 2;

/** A set of rules: the checks and the version they are recorded under. Re-judging can take another one. */
export interface Rules {
  version: number;
  checks: readonly Check[];
}

export const CURRENT_RULES: Rules = { version: RULES_VERSION, checks: CHECKS };

export const CRITERION_CHECKS = CHECKS.filter((c): c is CriterionCheck => c.kind === 'criterion');
export const FINDING_CHECKS = CHECKS.filter((c): c is FindingCheck => c.kind === 'finding');
/** The findings reports count (the MX set is shown by `check` but counted by the verdict's n/a instead). */
export const REPORTED_FINDINGS = FINDING_CHECKS.filter((c) => c.reported !== false);


export function checkById(id: string): Check | undefined {
  return CHECKS.find((c) => c.id === id);
}

/** The domain gatherers, each once; the DNSSEC one first (it decides whether the others read with CD). */
export const DOMAIN_GATHERERS: readonly DomainGatherer[] = (() => {
  const seen = new Map<string, DomainGatherer>();
  for (const c of CHECKS) {
    if (!c.gather || seen.has(c.gather.key)) continue;
    // A gatherer reads only observations gathered before it (lib/probes/dns.ts runs them in this order).
    for (const k of c.gather.after ?? []) if (!seen.has(k)) throw new Error(`gatherer ${c.gather.key} needs ${k}, which no check before it gathers`);
    seen.set(c.gather.key, c.gather);
  }
  return [...seen.values()];
})();

/** The DNSSEC gatherer, which runs before the others: whether the domain is bogus decides if they read with CD. */
export const DNSSEC_GATHERER: DomainGatherer = (() => {
  const g = DOMAIN_GATHERERS.find((x) => x.key === 'dnssec');
  if (!g) throw new Error('the check registry has no dnssec gatherer');
  return g;
})();

/** What a reason code of a check means (undefined for a code the check does not declare). */
export function reasonMeta(checkId: string, reason: string): ReasonMeta | undefined {
  const c = checkById(checkId);
  return c && Object.hasOwn(c.reasons, reason) ? (c.reasons as Record<string, ReasonMeta>)[reason] : undefined;
}

// The registry and lib/criteria.ts name the same criteria in the same order (reports and columns rely on it).
if (CRITERION_CHECKS.map((c) => c.id).join() !== CRITERIA.join()) {
  throw new Error(`the check registry's criteria (${CRITERION_CHECKS.map((c) => c.id).join()}) differ from lib/criteria.ts (${CRITERIA.join()})`);
}
