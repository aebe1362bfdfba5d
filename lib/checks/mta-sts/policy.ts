// MTA-STS policy (RFC 8461): the HTTPS half. `retrieveMtaStsPolicy` resolves `mta-sts.<domain>` through our
// resolver and fetches `/.well-known/mta-sts.txt` through the outbound gate (lib/net/https-fetch.ts); the
// rest is pure: `parseMtaStsPolicy` (§3.2, on top of mailauth's parser), `mxMatchesPolicy` (§4.1) and
// `evaluateMtaStsPolicy`, which combines the `_mta-sts` TXT finding (lib/checks/mta-sts.ts), the fetch and
// the domain's MX names into one value with a closed reason code.
import { domainToASCII } from 'node:url';
import { parsePolicy as mailauthParsePolicy } from 'mailauth/lib/mta-sts.js';
import type { Resolver } from '../../dns/resolver.ts';
import { isAbsent, isFact } from '../../dns/resolver.ts';
import { failureReason, lookup, type Lookup } from '../../dns/observation.ts';
import { httpsFetch, type HttpsFetchObservation, type HttpsFetchReason } from '../../net/https-fetch.ts';
import type { OutboundGate } from '../../net/outbound.ts';
import type { Status } from '../../criteria.ts';
import { evaluateMtaSts, type MtaStsFinding, type MtaStsObservation } from './mta-sts.ts';

export const POLICY_PATH = '/.well-known/mta-sts.txt';
/** RFC 8461 §3.3 sets no size limit; no real policy comes near this. */
export const MAX_POLICY_BYTES = 65_536;
/** RFC 8461 §3.2: max_age is at most 31557600 (about one year). */
export const MAX_AGE_LIMIT = 31_557_600;

// ---------------------------------------------------------------------------------------------------------
// Retrieval

export interface MtaStsPolicyDeps {
  resolver: Resolver;
  gate: OutboundGate;
  /** The HTTPS port: `httpsPort(config)` (443, or the lab's). */
  port: number;
  /** Extra trusted CAs (PEM), the lab CA in lab mode. @defaultValue [] */
  extraCaPems?: readonly string[];
  /** Deadline of one fetch. @defaultValue 15000 */
  deadlineMs?: number;
  /** @defaultValue 5000 */
  connectTimeoutMs?: number;
  /** Addresses of the policy host tried, in A-then-AAAA order, while connecting fails. @defaultValue 2 */
  maxAddresses?: number;
  /** Read the policy host's addresses with checking disabled (the domain is DNSSEC-bogus, CRITERIA.md). @defaultValue false */
  cd?: boolean;
  now?: () => Date;
}

export interface MtaStsPolicyObservation {
  domain: string;
  /** `mta-sts.<domain>` (RFC 8461 §3.3). */
  host: string;
  a: Lookup;
  aaaa: Lookup;
  /** One per address tried (at most maxAddresses); the last one is the one judged. */
  fetches: HttpsFetchObservation[];
}

/**
 * What the mta_sts gatherer stores under `dns.mtaSts` (lib/checks/mta-sts/index.ts): the TXT lookup and, only
 * when it holds a valid v=STSv1 record, the policy fetch. `policy`: null when no valid record asked for one;
 * `not_measured` when the probe had no outbound gate (DNS-only callers) and fetched nothing; absent in
 * observations stored before the policy was fetched (issue 15), which are judged on their TXT record alone.
 */
export interface MtaStsGathered extends MtaStsObservation {
  policy?: MtaStsPolicyObservation | null | 'not_measured';
}

const CONNECT_FAILURES: ReadonlySet<HttpsFetchReason | null> = new Set<HttpsFetchReason | null>(['connect_timeout', 'connection_refused', 'network_error', 'forbidden_address']);

export async function retrieveMtaStsPolicy(domain: string, deps: MtaStsPolicyDeps): Promise<MtaStsPolicyObservation> {
  const d = domain.toLowerCase().replace(/\.$/, '');
  const host = `mta-sts.${d}`;
  const [a, aaaa] = await Promise.all([lookup(deps.resolver, host, 'A', deps.cd ?? false), lookup(deps.resolver, host, 'AAAA', deps.cd ?? false)]);
  const ips = [...(a.outcome === 'answer' ? a.data : []), ...(aaaa.outcome === 'answer' ? aaaa.data : [])].filter((x): x is string => typeof x === 'string');
  const fetches: HttpsFetchObservation[] = [];
  for (const ip of ips.slice(0, Math.max(1, deps.maxAddresses ?? 2))) {
    const f = await httpsFetch({ host, ip, port: deps.port, path: POLICY_PATH }, {
      gate: deps.gate,
      extraCaPems: deps.extraCaPems,
      deadlineMs: deps.deadlineMs,
      connectTimeoutMs: deps.connectTimeoutMs,
      maxBodyBytes: MAX_POLICY_BYTES,
      // RFC 8461 §3.2: the policy is served as "text/plain".
      expectContentType: 'text/plain',
      now: deps.now,
    });
    fetches.push(f);
    if (!CONNECT_FAILURES.has(f.reason)) break;
  }
  return { domain: d, host, a, aaaa, fetches };
}

// ---------------------------------------------------------------------------------------------------------
// Parsing (RFC 8461 §3.2)

export type MtaStsMode = 'enforce' | 'testing' | 'none';

export interface MtaStsPolicy {
  version: 'STSv1';
  mode: MtaStsMode;
  /** Lower case, A-labels, deduplicated, in order. */
  mx: string[];
  maxAge: number;
}

export type PolicyParseError = 'invalid_version' | 'invalid_mode' | 'invalid_max_age' | 'missing_mx' | 'invalid_mx_pattern';

export type PolicyParse =
  | { ok: true; policy: MtaStsPolicy; warnings: string[] }
  | { ok: false; error: PolicyParseError; detail: string };

const MAILAUTH_ERRORS: Record<string, PolicyParseError> = {
  invalid_sts_version: 'invalid_version',
  invalid_sts_mode: 'invalid_mode',
  invalid_sts_max_age: 'invalid_max_age',
  invalid_sts_mx: 'missing_mx',
};

/** `["*."] Domain` of §3.2 (sts-policy-mx-value), LDH labels of 1-63, at least two labels. */
const MX_PATTERN = /^(\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Parses a policy body. mailauth's parsePolicy does the key/value split and the version, mode, max_age range
 * and mx-presence checks; on top of it: `mode` must be present (mailauth defaults it to none), max_age must be
 * 1-10 digits (§3.2 ABNF; mailauth takes anything Number() takes, "1e3" or "0x10"), every mx value must be a
 * domain or a `*.` wildcard pattern.
 */
export function parseMtaStsPolicy(body: string): PolicyParse {
  const text = body.length > MAX_POLICY_BYTES ? body.slice(0, MAX_POLICY_BYTES) : body;
  let p: { version?: string; mode?: string; maxAge?: number; mx?: string[] };
  try {
    p = mailauthParsePolicy(text) as typeof p;
  } catch (err) {
    const code = (err as { code?: string }).code ?? '';
    return { ok: false, error: MAILAUTH_ERRORS[code] ?? 'invalid_version', detail: (err as Error).message };
  }
  // The same key/value split as mailauth (§3.2: lines of "key: value", LF or CRLF), to see what it hides.
  const fields = text.split(/\r?\n/).map((l) => {
    const i = l.indexOf(':');
    return i < 0 ? null : { key: l.slice(0, i).trim().toLowerCase(), value: l.slice(i + 1).trim() };
  }).filter((f): f is { key: string; value: string } => f !== null);
  const values = (k: string) => fields.filter((f) => f.key === k).map((f) => f.value);
  const warnings: string[] = [];
  for (const k of ['version', 'mode', 'max_age']) if (values(k).length > 1) warnings.push(`${k} appears ${values(k).length} times`);
  if (values('mode').length === 0) return { ok: false, error: 'invalid_mode', detail: 'no mode field' };
  const maxAgeRaw = values('max_age').at(-1) ?? '';
  if (!/^\d{1,10}$/.test(maxAgeRaw)) return { ok: false, error: 'invalid_max_age', detail: `max_age "${maxAgeRaw.slice(0, 40)}" is not 1-10 digits` };
  const mx: string[] = [];
  for (const raw of p.mx ?? []) {
    const wildcard = raw.startsWith('*.');
    const ascii = wildcard ? `*.${domainToASCII(raw.slice(2))}` : domainToASCII(raw);
    const pattern = ascii.replace(/\.$/, '');
    if (!MX_PATTERN.test(pattern)) return { ok: false, error: 'invalid_mx_pattern', detail: `mx "${raw.slice(0, 80)}" is not a domain or *.domain pattern` };
    if (!mx.includes(pattern)) mx.push(pattern);
  }
  const mode = p.mode as MtaStsMode;
  if (mode !== 'none' && mx.length === 0) return { ok: false, error: 'missing_mx', detail: `mode ${mode} without mx` };
  return { ok: true, policy: { version: 'STSv1', mode, mx, maxAge: Number(maxAgeRaw) }, warnings };
}

/**
 * The policy pattern an MX host name matches, or null (RFC 8461 §4.1): exact, case-insensitive; a `*.`
 * wildcard only as the leftmost label and matching exactly one label (`*.example.com` matches
 * `mx.example.com`, not `example.com` nor `a.b.example.com`). (mailauth's validateMx lets a wildcard match
 * several labels, so it is not used.)
 */
export function mxMatchesPolicy(mxHost: string, patterns: readonly string[]): string | null {
  const host = domainToASCII(mxHost.trim().replace(/\.$/, '')).toLowerCase();
  if (!host) return null;
  for (const raw of patterns) {
    const p = raw.trim().toLowerCase().replace(/\.$/, '');
    if (p.startsWith('*.')) {
      const suffix = p.slice(1); // ".example.com"
      if (host.endsWith(suffix)) {
        const label = host.slice(0, -suffix.length);
        if (label.length > 0 && !label.includes('.')) return raw;
      }
    } else if (p === host) {
      return raw;
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------
// Evaluation

/** ../shared/CRITERIA.md `mta_sts`. */
export type MtaStsValue = 'absent' | 'invalid' | 'policy_missing' | 'policy_cert_invalid' | 'none' | 'testing' | 'enforce' | 'unknown';

/** Every reason code, with the value it gives and whether asking again later may change it. */
export const MTA_STS_POLICY_REASONS = {
  // the _mta-sts TXT record (lib/checks/mta-sts.ts)
  no_mta_sts_record: { value: 'absent', transient: false },
  multiple_mta_sts_records: { value: 'invalid', transient: false },
  invalid_mta_sts_record: { value: 'invalid', transient: false },
  txt_dns_failure: { value: 'unknown', transient: true },
  // the policy host
  policy_host_not_found: { value: 'policy_missing', transient: false },
  policy_host_dns_failure: { value: 'unknown', transient: true },
  not_fetched: { value: 'unknown', transient: true },
  https_unreachable: { value: 'unknown', transient: true },
  https_timeout: { value: 'unknown', transient: true },
  https_tls_error: { value: 'unknown', transient: true },
  https_refused_by_policy: { value: 'unknown', transient: false },
  policy_cert_untrusted: { value: 'policy_cert_invalid', transient: false },
  policy_cert_expired: { value: 'policy_cert_invalid', transient: false },
  policy_cert_wrong_name: { value: 'policy_cert_invalid', transient: false },
  policy_not_found: { value: 'policy_missing', transient: false },
  policy_redirect: { value: 'policy_missing', transient: false },
  policy_server_error: { value: 'unknown', transient: true },
  policy_wrong_content_type: { value: 'policy_missing', transient: false },
  policy_bad_response: { value: 'policy_missing', transient: false },
  policy_too_large: { value: 'invalid', transient: false },
  // the policy body
  invalid_version: { value: 'invalid', transient: false },
  invalid_mode: { value: 'invalid', transient: false },
  invalid_max_age: { value: 'invalid', transient: false },
  missing_mx: { value: 'invalid', transient: false },
  invalid_mx_pattern: { value: 'invalid', transient: false },
  // a policy in force (value: its mode)
  policy_enforce: { value: 'enforce', transient: false },
  policy_testing: { value: 'testing', transient: false },
  policy_none: { value: 'none', transient: false },
  mx_not_covered: { value: null, transient: false },
} as const satisfies Record<string, { value: MtaStsValue | null; transient: boolean }>;
export type MtaStsPolicyReason = keyof typeof MTA_STS_POLICY_REASONS;

export interface MtaStsPolicyEvaluation {
  value: MtaStsValue;
  status: Status;
  reason: MtaStsPolicyReason;
  detail: string;
  /** The TXT record's id=, when valid. */
  id: string | null;
  policy: MtaStsPolicy | null;
  /** MX names matching none of the policy's mx patterns (enforce and testing only). */
  mxNotCovered: string[];
}

const FETCH_REASON: Record<HttpsFetchReason, MtaStsPolicyReason> = {
  forbidden_address: 'https_refused_by_policy',
  opted_out: 'https_refused_by_policy',
  connect_timeout: 'https_unreachable',
  connection_refused: 'https_unreachable',
  network_error: 'https_unreachable',
  tls_error: 'https_tls_error',
  untrusted_certificate: 'policy_cert_untrusted',
  certificate_expired: 'policy_cert_expired',
  certificate_name_mismatch: 'policy_cert_wrong_name',
  http_status: 'policy_not_found',
  wrong_content_type: 'policy_wrong_content_type',
  too_large: 'policy_too_large',
  bad_response: 'policy_bad_response',
  timeout: 'https_timeout',
};

function statusOf(value: MtaStsValue, reason: MtaStsPolicyReason): Status {
  if (value === 'unknown') return 'unknown';
  if (reason === 'mx_not_covered') return 'ng';
  return value === 'enforce' || value === 'testing' ? 'ok' : 'ng';
}

function isFinding(x: MtaStsObservation | MtaStsFinding): x is MtaStsFinding {
  return 'value' in x && 'reason' in x;
}

/**
 * One MTA-STS value for a domain: the TXT record first (no record: `absent`, whatever HTTPS says), then the
 * policy host, its certificate, the HTTP answer, the policy, and every MX name against the policy's patterns.
 * `txt` is the TXT observation or its evaluation (lib/checks/mta-sts.ts); `policy` null means not fetched.
 */
export function evaluateMtaStsPolicy(
  txt: MtaStsObservation | MtaStsFinding,
  policyObs: MtaStsPolicyObservation | null,
  mxHosts: readonly string[],
): MtaStsPolicyEvaluation {
  const t = isFinding(txt) ? txt : evaluateMtaSts(txt);
  const id = t.value === 'present' ? t.id ?? null : null;
  const out = (reason: MtaStsPolicyReason, detail: string, extra: Partial<Pick<MtaStsPolicyEvaluation, 'policy' | 'mxNotCovered' | 'value'>> = {}): MtaStsPolicyEvaluation => {
    const value = (extra.value ?? MTA_STS_POLICY_REASONS[reason].value) as MtaStsValue;
    return { value, status: statusOf(value, reason), reason, detail: detail.slice(0, 500), id, policy: extra.policy ?? null, mxNotCovered: extra.mxNotCovered ?? [] };
  };
  if (t.value === 'unknown') return out('txt_dns_failure', t.detail ?? t.reason);
  if (t.value === 'absent') return out('no_mta_sts_record', t.detail ?? 'no v=STSv1 TXT record');
  if (t.value === 'invalid') return out(t.reason === 'multiple_mta_sts_records' ? 'multiple_mta_sts_records' : 'invalid_mta_sts_record', t.detail ?? t.reason);
  if (!policyObs) return out('not_fetched', 'the policy was not fetched');

  const { a, aaaa, host } = policyObs;
  if (policyObs.fetches.length === 0) {
    if (isAbsent(a.outcome) && isAbsent(aaaa.outcome)) return out('policy_host_not_found', `${host}: A ${a.outcome}, AAAA ${aaaa.outcome}`);
    const failed = [a, aaaa].filter((l) => !isFact(l.outcome));
    return out(failed.length ? 'policy_host_dns_failure' : 'policy_host_not_found', `${host}: A ${failureReason(a)}, AAAA ${failureReason(aaaa)}`);
  }
  const f = policyObs.fetches[policyObs.fetches.length - 1];
  if (!f.ok) {
    let reason = FETCH_REASON[f.reason ?? 'bad_response'];
    const status = f.http?.status ?? 0;
    if (f.reason === 'http_status') reason = status >= 300 && status < 400 ? 'policy_redirect' : status >= 500 ? 'policy_server_error' : 'policy_not_found';
    return out(reason, `${f.url} via ${f.ip}: ${f.reason}${f.detail ? ` (${f.detail})` : ''}`);
  }
  const parsed = parseMtaStsPolicy(f.body ?? '');
  if (!parsed.ok) return out(parsed.error, `${f.url}: ${parsed.detail}`);
  const policy = parsed.policy;
  const modeReason: MtaStsPolicyReason = policy.mode === 'enforce' ? 'policy_enforce' : policy.mode === 'testing' ? 'policy_testing' : 'policy_none';
  if (policy.mode === 'none') return out(modeReason, `mode none, max_age ${policy.maxAge}`, { policy });
  const notCovered = mxHosts.map((m) => m.toLowerCase().replace(/\.$/, '')).filter((m) => m && m !== '.' && mxMatchesPolicy(m, policy.mx) === null);
  if (notCovered.length > 0) {
    return out('mx_not_covered', `mode ${policy.mode}: ${notCovered.join(', ').slice(0, 300)} match none of ${policy.mx.join(', ').slice(0, 150)}`, { policy, mxNotCovered: notCovered, value: policy.mode });
  }
  return out(modeReason, `mode ${policy.mode}, max_age ${policy.maxAge}, mx ${policy.mx.join(', ').slice(0, 300)}`, { policy });
}
