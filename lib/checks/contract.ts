// The contract every check keeps, in the spirit of Lighthouse's gatherers and audits: a check names the
// observations it reads (and, when it needs I/O of its own, the gatherer that retrieves them through the
// injected resolver), judges them in a pure `evaluate`, and declares its closed set of reason codes with
// their labels and whether an unknown with that reason may pass on a later attempt. lib/checks/registry.ts
// lists the checks; collection, judging, storage, re-judging, `check`/`show`, reports and CSV loop over it.
import type { Config } from '../config.ts';
import type { Criterion, Finding, Label, Source } from '../criteria.ts';
import { CRITERION_LABELS, SOURCES } from '../criteria.ts';
import type { Resolver } from '../dns/resolver.ts';
import type { OutboundGate } from '../net/outbound.ts';
import type { Level } from '../verdict.ts';
import type { JudgeInput } from './judge-input.ts';

export type { Label };

/** What one reason code means: its labels, and for an `unknown`, whether a later attempt may well differ. */
export interface ReasonMeta extends Label {
  /** A timeout, SERVFAIL, 4xx, reset…: the workers retry the domain before the unknown is final. */
  transient: boolean;
}

export type Reasons<R extends string> = Readonly<Record<R, ReasonMeta>>;

/** What a check concludes: a status with one of its own reason codes; findings add the value reports count. */
export interface CheckResult<R extends string = string> extends Finding {
  reason: R;
  /** Findings only: the value counted in reports (one of `values`, or several for a multi-valued finding). */
  value?: string | string[];
}

/** Where a check looks: the domain's DNS, each MX IP's SMTP session, or the received test mail. */
export type CheckScope = 'domain' | 'mx_ip' | 'mail';

/** The I/O a domain gatherer may use (STYLE.md: I/O as parameters, never imported). */
export interface GatherDeps {
  resolver: Resolver;
  /** `lab`, `httpsPort`, `extraCaFile`: where and how a gatherer that connects (the MTA-STS policy) connects. */
  config: Pick<Config, 'dkimSelectors' | 'dnsblZones'> & Partial<Pick<Config, 'lab' | 'httpsPort' | 'extraCaFile'>>;
  /**
   * The one outbound gate (lib/diagnose.ts ProbeDeps `outbound`): a gatherer connects only through it. Without
   * one (DNS-only callers), no gatherer connects: what it would have fetched is recorded as not measured.
   */
  outbound?: OutboundGate;
  /** Deadlines of a gatherer's HTTPS fetch (tests shorten them). @defaultValue 15000 / 5000 ms */
  https?: { deadlineMs?: number; connectTimeoutMs?: number };
}

/**
 * Retrieves one domain-scope observation (plain JSON, every lookup with its outcome). `cd`: the domain is
 * DNSSEC-bogus, so read with checking disabled (CRITERIA.md). Stored under `key` in the scan's `dns`.
 */
export interface DomainGatherer<O = unknown> {
  key: string;
  /**
   * Keys of gatherers whose observations this one reads (DANE reads the MX hosts): it starts when they are
   * done and gets them in `opts.gathered`. Each must be a gatherer listed before it in the registry.
   */
  after?: readonly string[];
  retrieve(domain: string, deps: GatherDeps, opts: GatherOptions): Promise<O>;
}

/**
 * The gatherer of a check whose observation is DNS lookups alone: `collect` reads `domain` through the
 * injected resolver, with checking disabled when the domain is DNSSEC-bogus.
 */
export function dnsGatherer<O>(key: string, collect: (domain: string, resolver: Resolver, opts: { cd: boolean }) => Promise<O>): DomainGatherer<O> {
  return { key, retrieve: (domain, deps, { cd }) => collect(domain, deps.resolver, { cd }) };
}

export interface GatherOptions extends DomainHints {
  cd: boolean;
  /** The observations of the gatherers named in `after`, under their keys (empty without `after`). */
  gathered?: Readonly<Record<string, unknown>>;
}

/** What the survey already knows of one domain, passed to its gatherers (all optional; each bounded by the gatherer). */
export interface DomainHints {
  /** DKIM selectors to try first: the survey list's `selectors` column, then those its test mails were signed with. */
  dkimSelectors?: readonly string[];
}

interface CheckBase<R extends string> {
  /** Stable snake_case id: the criterion name, or the finding's key in reports, CSV and `diagnoses.findings`. */
  id: string;
  label: Label;
  /** One sentence for docs/criteria.md and `check --explain`: what is judged, with the RFC. */
  rule: string;
  scope: CheckScope;
  sources: readonly Source[];
  reasons: Reasons<R>;
  /** A gatherer of its own (new I/O); checks reading another check's observations have none. */
  gather?: DomainGatherer;
  /** Pure: judges the stored observations. Never does I/O. */
  evaluate(input: JudgeInput): CheckResult<R>;
}

/** One of MSchecker's criteria: stored in its own column, and it counts in the verdict at `level`. */
export interface CriterionCheck<R extends string = string> extends CheckBase<R> {
  kind: 'criterion';
  id: Criterion;
  /** The level an `ng` proves (SPF and DKIM prove it only together: lib/verdict.ts). */
  level: Level;
}

/** A finding beyond MSchecker: stored under `findings.<id>`, counted in reports by value; never in the verdict. */
export interface FindingCheck<R extends string = string> extends CheckBase<R> {
  kind: 'finding';
  /** The values reports count, in the order they show them (multi-valued findings may add more at runtime). */
  values: readonly string[];
  valueLabels: Readonly<Record<string, Label>>;
  /** The value is a list (TLS versions seen): a domain counts under each. */
  multi?: { empty: string | null; any: string | null; sort?: 'desc' };
  /** Legacy column of `diagnoses` that holds the value too (kept for the SQL views and old queries). */
  column?: 'dmarc_policy' | 'mta_sts' | 'tls_rpt' | 'tls_versions' | 'cert_problems';
  /** Not counted in reports (shown by `check` and stored). */
  reported?: boolean;
}

export type Check = CriterionCheck | FindingCheck;

/**
 * A check as its folder writes it: `judge` may return any Finding (the contract checks its reason); `sources`
 * defaults to both, and a criterion's label is the one lib/criteria.ts gives it.
 */
type Definition<C extends Check> = Omit<C, 'kind' | 'evaluate' | 'sources' | 'label'> &
  Partial<Pick<C, 'sources' | 'label'>> & { judge(input: JudgeInput): Finding & { value?: string | string[] } };

/** Thrown when a check returns a reason code its table does not declare (the tests run every check on every stored observation). */
export class UndeclaredReasonError extends Error {}

function narrowed<R extends string>(id: string, reasons: Reasons<R>, f: Finding & { value?: string | string[] }): CheckResult<R> {
  if (!Object.hasOwn(reasons, f.reason)) throw new UndeclaredReasonError(`check ${id} returned reason "${f.reason}", which it does not declare`);
  return f as CheckResult<R>;
}

export function defineCriterion<R extends string>(def: Definition<CriterionCheck<R>>): CriterionCheck<R> {
  const { judge, ...rest } = def;
  return { sources: SOURCES, label: CRITERION_LABELS[def.id], ...rest, kind: 'criterion', evaluate: (input) => narrowed(def.id, def.reasons, judge(input)) };
}

export function defineFinding<R extends string>(def: Definition<FindingCheck<R>> & { label: Label }): FindingCheck<R> {
  const { judge, ...rest } = def;
  return { sources: SOURCES, ...rest, kind: 'finding', evaluate: (input) => narrowed(def.id, def.reasons, judge(input)) };
}

/** Builds a reason table; `t` marks the codes whose unknown may pass on a retry. */
export function reason(en: string, ja: string, transient = false): ReasonMeta {
  return { en, ja, transient };
}

/**
 * The reason table of codes an evaluator declares with their transient flag (dane/tlsa.ts DANE_REASONS,
 * mta-sts/policy.ts MTA_STS_POLICY_REASONS) and a check labels in its own folder: one entry per label, in
 * the labels' order.
 */
export function labelledReasons<R extends string>(labels: Readonly<Record<R, Label>>, evaluator: Readonly<Record<NoInfer<R>, { transient: boolean }>>): Reasons<R> {
  return Object.fromEntries((Object.keys(labels) as R[]).map((k) => [k, reason(labels[k].en, labels[k].ja, evaluator[k].transient)])) as Record<R, ReasonMeta>;
}

/** The status/reason/detail of a result, without the value. */
export function asFinding(r: CheckResult): Finding {
  return r.detail === undefined ? { status: r.status, reason: r.reason } : { status: r.status, reason: r.reason, detail: r.detail };
}

/** The `unknown` value of every finding (a lookup or a session that gave no fact): one wording in all reports. */
export const UNKNOWN_VALUE_LABEL = { ja: '測定不能', en: 'unknown' } as const satisfies Label;

/** The `no_tls` value of the findings judged over the MX hosts' TLS: no handshake completed. */
export const NO_TLS_VALUE_LABEL = { ja: 'TLS接続なし', en: 'no TLS seen' } as const satisfies Label;

/** Labels of the values a record-based finding takes (MTA-STS, TLS-RPT, DMARC). */
export const RECORD_VALUE_LABELS = {
  present: { ja: 'あり', en: 'published' },
  absent: { ja: 'レコードなし', en: 'no record' },
  invalid: { ja: '不正なレコード', en: 'invalid record' },
  unknown: UNKNOWN_VALUE_LABEL,
} as const satisfies Record<string, Label>;
