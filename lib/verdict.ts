// MSchecker's four levels and our `incomplete`, exactly as ../shared/CRITERIA.md states them. The ordering and
// every rule live in this one file (as internet.nl keeps its scoring in scoring.py); bump RULES_VERSION when a
// rule changes so re-judged diagnoses record which rules judged them.
import type { Criterion, CriterionFindings, Label, Source, Status } from './criteria.ts';
import { CRITERION_CHECKS, RULES_VERSION } from './checks/registry.ts';

export { RULES_VERSION };


/** The levels, worst first; `incomplete` is not a level but the answer when an unknown could raise it. */
export const LEVELS = ['danger', 'needs_improvement', 'review', 'safe'] as const;
export type Level = (typeof LEVELS)[number];
export const VERDICTS = [...LEVELS, 'incomplete'] as const;
export type Verdict = (typeof VERDICTS)[number];

export const VERDICT_LABELS: Record<Verdict, Label> = {
  danger: { ja: '危険', en: 'Danger' },
  needs_improvement: { ja: '改善が必要', en: 'Needs improvement' },
  review: { ja: '見直しを推奨', en: 'Review recommended' },
  safe: { ja: '安全', en: 'Safe' },
  incomplete: { ja: '判定不能', en: 'Incomplete' },
};

const SEVERITY: Record<Level, number> = { safe: 0, review: 1, needs_improvement: 2, danger: 3 };

/** The level each single criterion can prove: its check's `level` (SPF and DKIM prove it only together). */
const LEVEL_OF = Object.fromEntries(CRITERION_CHECKS.map((c) => [c.id, c.level])) as Record<Criterion, Level>;

export interface VerdictReason {
  criterion: Criterion;
  status: Status;
  reason: string;
  detail?: string;
}

export interface VerdictResult {
  verdict: Verdict;
  /** The worst level the `ng` criteria prove (also for `incomplete`: "at least this bad"). */
  proven: Level;
  /** The findings that made the verdict: the `ng`s at the proven level, or the `unknown`s that left it open. */
  reasons: VerdictReason[];
  /** Criteria left out of the verdict, with why (a scan cannot see send TLS). */
  ignored: Criterion[];
  rulesVersion: number;
}

function reasonOf(criterion: Criterion, findings: CriterionFindings): VerdictReason {
  const f = findings[criterion];
  return f.detail === undefined
    ? { criterion, status: f.status, reason: f.reason }
    : { criterion, status: f.status, reason: f.reason, detail: f.detail };
}

/**
 * The verdict of one diagnosis: the worst level proven by `ng` criteria, unless an `unknown` criterion could
 * still prove a worse one, in which case it is `incomplete`. A scan ignores `tls_send` (only a received mail
 * shows it).
 */
export function judgeVerdict(findings: CriterionFindings, source: Source, rulesVersion: number = RULES_VERSION): VerdictResult {
  const ignored: Criterion[] = source === 'scan' ? ['tls_send'] : [];
  const counted = (Object.keys(LEVEL_OF) as Criterion[]).filter((c) => !ignored.includes(c));
  const is = (c: Criterion, s: Status) => findings[c].status === s;

  // The SPF/DKIM pair proves needs_improvement only when both are NG; it is undecided while one is unknown
  // and the other is not OK.
  const pairNg = is('spf', 'ng') && is('dkim', 'ng');
  const pairUndecided =
    !pairNg &&
    (is('spf', 'unknown') || is('dkim', 'unknown')) &&
    !is('spf', 'ok') && !is('dkim', 'ok') && !is('spf', 'na') && !is('dkim', 'na');

  const provenBy: Criterion[] = [];
  let proven: Level = 'safe';
  const prove = (level: Level, criteria: Criterion[]) => {
    if (SEVERITY[level] > SEVERITY[proven]) {
      proven = level;
      provenBy.length = 0;
    }
    if (level === proven) provenBy.push(...criteria);
  };
  for (const c of counted) {
    if (c === 'spf' || c === 'dkim') continue;
    if (is(c, 'ng')) prove(LEVEL_OF[c], [c]);
  }
  if (pairNg) prove('needs_improvement', ['spf', 'dkim']);

  const open: Criterion[] = [];
  for (const c of counted) {
    if (c === 'spf' || c === 'dkim') continue;
    if (is(c, 'unknown') && SEVERITY[LEVEL_OF[c]] > SEVERITY[proven]) open.push(c);
  }
  if (pairUndecided && SEVERITY.needs_improvement > SEVERITY[proven]) {
    open.push(...(['spf', 'dkim'] as const).filter((c) => is(c, 'unknown')));
  }

  const order = (list: Criterion[]) => counted.filter((c) => list.includes(c));
  if (open.length > 0) {
    return {
      verdict: 'incomplete',
      proven,
      reasons: order(open).map((c) => reasonOf(c, findings)),
      ignored,
      rulesVersion,
    };
  }
  return {
    verdict: proven,
    proven,
    reasons: order(provenBy).map((c) => reasonOf(c, findings)),
    ignored,
    rulesVersion,
  };
}
