// The period a report covers and the previous period it is compared with. Dates are calendar dates in the
// report's time zone (default Asia/Tokyo: the release counts "2021年1月〜12月" in Japan); the bounds handed to
// SQL are the half-open [from 00:00, day after `to` 00:00) in that zone, converted by Postgres.
import dayjs, { type Dayjs } from 'dayjs';
import customParseFormat from 'dayjs/plugin/customParseFormat.js';
import timezone from 'dayjs/plugin/timezone.js';
import utc from 'dayjs/plugin/utc.js';
import { InputError } from '../lib/errors.ts';

export type PeriodKind = 'year' | 'fiscal-year' | 'range';

export interface Period {
  kind: PeriodKind;
  /** First day, inclusive, YYYY-MM-DD. */
  from: string;
  /** Last day, inclusive, YYYY-MM-DD. */
  to: string;
  /** The calendar year or fiscal year (April–March, named by the year it starts in), for labels. */
  year: number | null;
}

// Calendar dates are dayjs values at UTC midnight: a date's arithmetic never crosses a DST change. Time zones
// (dayjs.tz) come in only where a date becomes an instant, in periodBounds.
dayjs.extend(utc);
dayjs.extend(timezone);
dayjs.extend(customParseFormat);

const DATE_FORMAT = 'YYYY-MM-DD';
/** Japan's fiscal year starts on April 1 (会計年度, Public Finance Act art. 11). */
const FISCAL_YEAR_START = '04-01';

/** Parses YYYY-MM-DD strictly (2021-02-30 is an error, not March 2nd). */
function parseDay(raw: string, option: string): Dayjs {
  const d = dayjs.utc(raw.trim(), DATE_FORMAT, true);
  if (!d.isValid()) throw new InputError(`${option} must be a date YYYY-MM-DD, got "${raw}"`);
  return d;
}

function parseYear(raw: string, option: string): number {
  if (!/^\d{4}$/.test(raw.trim())) throw new InputError(`${option} must be a year YYYY, got "${raw}"`);
  return Number(raw);
}

const iso = (d: Dayjs) => d.format(DATE_FORMAT);
const isFirstOfMonth = (d: Dayjs) => d.date() === 1;
const isLastOfMonth = (d: Dayjs) => d.date() === d.daysInMonth();

export function yearPeriod(year: number): Period {
  const start = dayjs.utc(`${String(year).padStart(4, '0')}-01-01`, DATE_FORMAT, true);
  return { kind: 'year', from: iso(start), to: iso(start.endOf('year')), year };
}

/** Japan's fiscal year: April 1 to March 31 of the next year, named by the year it starts in. */
export function fiscalYearPeriod(year: number): Period {
  const start = dayjs.utc(`${String(year).padStart(4, '0')}-${FISCAL_YEAR_START}`, DATE_FORMAT, true);
  return { kind: 'fiscal-year', from: iso(start), to: iso(start.add(1, 'year').subtract(1, 'day')), year };
}

export function rangePeriod(from: string, to: string): Period {
  const f = parseDay(from, '--from');
  const t = parseDay(to, '--to');
  if (t.isBefore(f)) throw new InputError(`--to (${to}) is before --from (${from})`);
  return { kind: 'range', from: iso(f), to: iso(t), year: null };
}

/** Builds the period from the command's options; exactly one of --year, --fiscal-year, --from/--to. */
export function periodFromOptions(o: { year?: string; fiscalYear?: string; from?: string; to?: string }): Period {
  const given = [o.year !== undefined, o.fiscalYear !== undefined, o.from !== undefined || o.to !== undefined].filter(Boolean).length;
  if (given !== 1) throw new InputError('give exactly one period: --year YYYY, --fiscal-year YYYY, or --from DATE --to DATE');
  if (o.year !== undefined) return yearPeriod(parseYear(o.year, '--year'));
  if (o.fiscalYear !== undefined) return fiscalYearPeriod(parseYear(o.fiscalYear, '--fiscal-year'));
  if (o.from === undefined || o.to === undefined) throw new InputError('--from and --to must be given together');
  return rangePeriod(o.from, o.to);
}

/**
 * The previous period of the same length: the previous year or fiscal year; for a range of whole months,
 * the same number of months before; otherwise the same number of days immediately before.
 */
export function previousPeriod(p: Period): Period {
  if (p.kind === 'year') return yearPeriod(p.year! - 1);
  if (p.kind === 'fiscal-year') return fiscalYearPeriod(p.year! - 1);
  const f = parseDay(p.from, 'from');
  const t = parseDay(p.to, 'to');
  const before = f.subtract(1, 'day');
  if (isFirstOfMonth(f) && isLastOfMonth(t)) {
    const months = t.add(1, 'day').diff(f, 'month');
    return { kind: 'range', from: iso(f.subtract(months, 'month')), to: iso(before), year: null };
  }
  const days = t.diff(f, 'day') + 1;
  return { kind: 'range', from: iso(f.subtract(days, 'day')), to: iso(before), year: null };
}

/** The exclusive end date (the day after `to`), the upper bound handed to SQL. */
export function endExclusive(p: Period): string {
  return iso(parseDay(p.to, 'to').add(1, 'day'));
}

/**
 * The period as instants: [`from` 00:00, the day after `to` 00:00) in `timeZone`, an IANA name. A day in a
 * DST zone is 23 or 25 hours long at the changes (America/New_York, 2021-03-14: 05:00Z to 04:00Z next day).
 */
export function periodBounds(p: Period, timeZone: string): { start: Date; endExclusive: Date } {
  const at = (date: string) => {
    try {
      return dayjs.tz(date, DATE_FORMAT, timeZone).toDate();
    } catch {
      // Intl (through dayjs) throws a RangeError for a name it does not know.
      throw new InputError(`--timezone: unknown time zone "${timeZone}" (use an IANA name such as Asia/Tokyo or UTC)`);
    }
  };
  return { start: at(iso(parseDay(p.from, 'from'))), endExclusive: at(endExclusive(p)) };
}

/** A human label: "2021年1月〜2021年12月" / "January–December 2021", or the dates. */
export function periodLabel(p: Period, lang: 'ja' | 'en'): string {
  const f = parseDay(p.from, 'from');
  const t = parseDay(p.to, 'to');
  const wholeMonths = isFirstOfMonth(f) && isLastOfMonth(t);
  if (lang === 'ja') {
    const month = (d: Dayjs) => d.format('YYYY[年]M[月]');
    if (p.kind === 'fiscal-year') return `${p.year}年度（${month(f)}〜${month(t)}）`;
    if (wholeMonths) return `${month(f)}〜${month(t)}`;
    return `${p.from}〜${p.to}`;
  }
  const month = (d: Dayjs) => d.format('MMMM YYYY');
  if (p.kind === 'fiscal-year') return `fiscal year ${p.year} (${month(f)} – ${month(t)})`;
  if (wholeMonths) return `${month(f)} – ${month(t)}`;
  return `${p.from} – ${p.to}`;
}

/** The short name of the previous period in a sentence: "前年" / "the previous year". */
export function previousLabel(p: Period, lang: 'ja' | 'en'): string {
  if (p.kind === 'year') return lang === 'ja' ? '前年' : 'the previous year';
  if (p.kind === 'fiscal-year') return lang === 'ja' ? '前年度' : 'the previous fiscal year';
  return lang === 'ja' ? '前期間' : 'the previous period';
}

const MAX_TREND_PERIODS = 50;

/** A survey run instead of a period: each domain's latest diagnosis of that run. */
export interface RunSpan {
  kind: 'run';
  run: number;
}
export type Span = Period | RunSpan;
export const isRun = (s: Span): s is RunSpan => s.kind === 'run';

function parseRunId(raw: string, option: string): number {
  if (!/^\d{1,9}$/.test(raw.trim())) throw new InputError(`${option}: a run is a number (see \`mailcensus status\`), got "${raw}"`);
  return Number(raw);
}

/**
 * `--trend`: `2017..2024` (calendar years), `fy2017..fy2024` (fiscal years, April–March), oldest first, or
 * `runs:12,15,19` (survey runs, in the order given).
 */
export function parseTrend(raw: string): { kind: 'year' | 'fiscal-year' | 'run'; periods: Span[] } {
  const runs = /^\s*runs?:(.+)$/i.exec(raw);
  if (runs) {
    const ids = runs[1]!.split(',').map((x) => parseRunId(x, '--trend'));
    if (ids.length < 2) throw new InputError(`--trend ${raw}: give at least two runs, e.g. runs:12,15`);
    if (new Set(ids).size !== ids.length) throw new InputError(`--trend ${raw}: a run is listed twice`);
    if (ids.length > MAX_TREND_PERIODS) throw new InputError(`--trend ${raw}: at most ${MAX_TREND_PERIODS} runs`);
    return { kind: 'run', periods: ids.map((run) => ({ kind: 'run', run })) };
  }
  const m = /^\s*(fy)?(\d{4})\s*\.\.\s*(fy)?(\d{4})\s*$/i.exec(raw);
  if (!m || Boolean(m[1]) !== Boolean(m[3])) throw new InputError(`--trend must be YYYY..YYYY (years), fyYYYY..fyYYYY (fiscal years) or runs:ID,ID,… got "${raw}"`);
  const [a, b] = [Number(m[2]), Number(m[4])];
  if (b <= a) throw new InputError(`--trend ${raw}: the last year must come after the first`);
  if (b - a + 1 > MAX_TREND_PERIODS) throw new InputError(`--trend ${raw}: at most ${MAX_TREND_PERIODS} periods`);
  const fiscal = Boolean(m[1]);
  const periods: Period[] = [];
  for (let y = a; y <= b; y++) periods.push(fiscal ? fiscalYearPeriod(y) : yearPeriod(y));
  return { kind: fiscal ? 'fiscal-year' : 'year', periods };
}

/** One period written in one option: `2020`, `fy2020`, `2020-01-01..2020-06-30`, or a run: `run:12`. */
export function parsePeriodSpec(raw: string, option: string): Span {
  const s = raw.trim();
  const run = /^run:(.*)$/i.exec(s);
  if (run) return { kind: 'run', run: parseRunId(run[1]!, option) };
  if (/^\d{4}$/.test(s)) return yearPeriod(Number(s));
  const fy = /^fy(\d{4})$/i.exec(s);
  if (fy) return fiscalYearPeriod(Number(fy[1]));
  const r = /^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$/.exec(s);
  if (r) {
    const f = parseDay(r[1]!, option);
    const t = parseDay(r[2]!, option);
    if (t.isBefore(f)) throw new InputError(`${option} ${raw}: the end is before the start`);
    return { kind: 'range', from: r[1]!, to: r[2]!, year: null };
  }
  throw new InputError(`${option} must be YYYY, fyYYYY, YYYY-MM-DD..YYYY-MM-DD or run:ID, got "${raw}"`);
}

/** A short label for series and tables: "2021", "2021年度" / "FY2021", or the dates. */
export function shortLabel(p: Span, lang: 'ja' | 'en'): string {
  if (p.kind === 'run') return `run ${p.run}`;
  if (p.kind === 'year') return String(p.year);
  if (p.kind === 'fiscal-year') return lang === 'ja' ? `${p.year}年度` : `FY${p.year}`;
  return `${p.from}..${p.to}`;
}
