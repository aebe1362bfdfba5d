// Judging is a loop over the registry: every check's pure `evaluate` over one diagnosis's stored observations,
// scan or test mail alike, then the verdict over the criteria. Re-judging runs exactly this, without probing.
import type { CriterionFindings } from '../criteria.ts';
import type { Diagnosis, FindingResults } from '../diagnosis.ts';
import type { IpObservation, ScanObservations, TestMailObservations, DnsObservations } from '../observations.ts';
import { judgeVerdict } from '../verdict.ts';
import { asFinding } from './contract.ts';
import { scanInput, testMailInput, type JudgeInput } from './judge-input.ts';
import { CURRENT_RULES, reasonMeta, type Rules } from './registry.ts';

function judge(input: JudgeInput, observations: ScanObservations | TestMailObservations, observedAt: Date, rules: Rules): Diagnosis {
  const criteria = {} as CriterionFindings;
  const findings: FindingResults = {};
  for (const check of rules.checks) {
    if (!check.sources.includes(input.source)) continue;
    const r = check.evaluate(input);
    if (check.kind === 'criterion') criteria[check.id] = asFinding(r);
    else findings[check.id] = r;
  }
  return {
    source: input.source,
    domain: input.domain,
    observedAt,
    criteria,
    verdict: judgeVerdict(criteria, input.source, rules.version),
    findings,
    observations,
    mx: input.mx.rows,
  };
}

/** Pure: a scan diagnosis from its observations, judged with the current rules. */
export function judgeScan(domain: string, dns: DnsObservations, ips: Record<string, IpObservation>, observedAt: Date, rules: Rules = CURRENT_RULES): Diagnosis {
  return judge(scanInput(domain, dns, ips, observedAt), { version: 1, kind: 'scan', dns, ips }, observedAt, rules);
}

/** Pure: the test-mail diagnosis from its observations, judged with the current rules. */
export function judgeTestMail(obs: TestMailObservations, observedAt: Date = new Date(obs.receivedAt), rules: Rules = CURRENT_RULES): Diagnosis {
  return judge(testMailInput(obs, observedAt), obs, observedAt, rules);
}

/** Pure: a stored diagnosis judged again with the current rules, or the ones given (no probing). */
export function rejudge(stored: { source: 'scan' | 'test-mail'; domain: string; observations: unknown; observed_at: Date }, rules: Rules = CURRENT_RULES): Diagnosis {
  const obs = stored.observations as { kind?: string } | null;
  if (stored.source === 'scan') {
    if (obs?.kind !== 'scan') throw new Error(`diagnosis of ${stored.domain}: stored observations are not a scan's`);
    const s = obs as ScanObservations;
    return judgeScan(stored.domain, s.dns, s.ips, new Date(stored.observed_at), rules);
  }
  return judgeTestMail(stored.observations as TestMailObservations, new Date(stored.observed_at), rules);
}

/**
 * The criteria whose unknown a later attempt may well not repeat (each reason code's `transient` flag in its
 * check's table): the workers retry such a domain, spaced out, before the unknown is final. `criterion:reason`.
 */
export function transientUnknowns(d: Pick<Diagnosis, 'criteria'>): string[] {
  const out: string[] = [];
  for (const [criterion, f] of Object.entries(d.criteria)) {
    if (f.status === 'unknown' && reasonMeta(criterion, f.reason)?.transient) out.push(`${criterion}:${f.reason}`);
  }
  return out;
}
