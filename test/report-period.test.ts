// The calendar of reports (reports/period.ts, dayjs): fiscal years across the new year, leap days, a DST time
// zone at its changes, and bad input refused with an error naming it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { InputError } from '../lib/errors.ts';
import {
  endExclusive,
  fiscalYearPeriod,
  parsePeriodSpec,
  parseTrend,
  periodBounds,
  periodFromOptions,
  periodLabel,
  previousPeriod,
  rangePeriod,
  shortLabel,
  yearPeriod,
} from '../reports/period.ts';
import { createTestDatabase } from './helpers/db.ts';

test('a fiscal year runs April to March across the new year, is named by its first year, and follows the one before', () => {
  const fy = fiscalYearPeriod(2023);
  assert.deepEqual(fy, { kind: 'fiscal-year', from: '2023-04-01', to: '2024-03-31', year: 2023 });
  assert.equal(endExclusive(fy), '2024-04-01');
  assert.deepEqual(previousPeriod(fy), { kind: 'fiscal-year', from: '2022-04-01', to: '2023-03-31', year: 2022 });
  assert.equal(periodLabel(fy, 'ja'), '2023年度（2023年4月〜2024年3月）');
  assert.equal(periodLabel(fy, 'en'), 'fiscal year 2023 (April 2023 – March 2024)');
  assert.equal(shortLabel(fy, 'ja'), '2023年度');
  assert.equal(shortLabel(fy, 'en'), 'FY2023');
  assert.deepEqual(parsePeriodSpec('FY2023', '--changes-from'), fy);
  assert.deepEqual(periodFromOptions({ fiscalYear: '2023' }), fy);
  assert.deepEqual(parseTrend('fy2022..fy2023').periods, [fiscalYearPeriod(2022), fy]);
  // A calendar year, for comparison: one label per language, the previous year before it.
  assert.equal(periodLabel(yearPeriod(2021), 'ja'), '2021年1月〜2021年12月');
  assert.equal(periodLabel(yearPeriod(2021), 'en'), 'January 2021 – December 2021');
  assert.deepEqual(previousPeriod(yearPeriod(2021)), yearPeriod(2020));
});

test('a leap day is a date in a leap year only, and months of 29 days are whole months', () => {
  const leapDay = rangePeriod('2024-02-29', '2024-02-29');
  assert.equal(endExclusive(leapDay), '2024-03-01');
  assert.deepEqual(previousPeriod(leapDay), { kind: 'range', from: '2024-02-28', to: '2024-02-28', year: null });
  assert.equal(endExclusive(rangePeriod('2024-02-28', '2024-02-28')), '2024-02-29');
  assert.equal(endExclusive(rangePeriod('2023-02-28', '2023-02-28')), '2023-03-01');
  // February 2024 ends on the 29th: a whole month, so the period before is January, and March's is February.
  const feb = rangePeriod('2024-02-01', '2024-02-29');
  assert.equal(periodLabel(feb, 'en'), 'February 2024 – February 2024');
  assert.equal(periodLabel(feb, 'ja'), '2024年2月〜2024年2月');
  assert.deepEqual(previousPeriod(feb), { kind: 'range', from: '2024-01-01', to: '2024-01-31', year: null });
  assert.deepEqual(previousPeriod(rangePeriod('2024-03-01', '2024-03-31')), { kind: 'range', from: '2024-02-01', to: '2024-02-29', year: null });
  // Ending on the 28th of a leap February is not a whole month: the same number of days before.
  assert.equal(periodLabel(rangePeriod('2024-02-01', '2024-02-28'), 'en'), '2024-02-01 – 2024-02-28');
  assert.deepEqual(previousPeriod(rangePeriod('2024-03-01', '2024-03-10')), { kind: 'range', from: '2024-02-20', to: '2024-02-29', year: null });
  // The fiscal year 2023 holds the leap day; 2024-02-29 exists, 2023-02-29 and 2100-02-29 do not.
  assert.ok(fiscalYearPeriod(2023).from < '2024-02-29' && '2024-02-29' < fiscalYearPeriod(2023).to);
  assert.throws(() => rangePeriod('2023-02-29', '2023-03-01'), /--from must be a date YYYY-MM-DD, got "2023-02-29"/);
  assert.throws(() => rangePeriod('2100-02-01', '2100-02-29'), /--to must be a date YYYY-MM-DD, got "2100-02-29"/);
});

test('in America/New_York the days of the DST changes are 23 and 25 hours long', () => {
  const hours = (b: { start: Date; endExclusive: Date }) => (b.endExclusive.getTime() - b.start.getTime()) / 3_600_000;
  // 2021-03-14 02:00 EST becomes 03:00 EDT; 2021-11-07 02:00 EDT becomes 01:00 EST.
  const spring = periodBounds(rangePeriod('2021-03-14', '2021-03-14'), 'America/New_York');
  assert.equal(spring.start.toISOString(), '2021-03-14T05:00:00.000Z');
  assert.equal(spring.endExclusive.toISOString(), '2021-03-15T04:00:00.000Z');
  assert.equal(hours(spring), 23);
  const autumn = periodBounds(rangePeriod('2021-11-07', '2021-11-07'), 'America/New_York');
  assert.equal(autumn.start.toISOString(), '2021-11-07T04:00:00.000Z');
  assert.equal(autumn.endExclusive.toISOString(), '2021-11-08T05:00:00.000Z');
  assert.equal(hours(autumn), 25);
  // A calendar year holds both changes: 365 days of 24 hours.
  assert.equal(hours(periodBounds(yearPeriod(2021), 'America/New_York')), 365 * 24);
  // Japan has no DST: the fiscal year 2021 starts at 2021-03-31 15:00 UTC.
  const fy = periodBounds(fiscalYearPeriod(2021), 'Asia/Tokyo');
  assert.equal(fy.start.toISOString(), '2021-03-31T15:00:00.000Z');
  assert.equal(fy.endExclusive.toISOString(), '2022-03-31T15:00:00.000Z');
});

test('the bounds are the instants Postgres gives the report queries for the same dates and zone', async () => {
  const t = await createTestDatabase({ migrate: false });
  try {
    for (const [p, tz] of [
      [rangePeriod('2021-03-14', '2021-03-14'), 'America/New_York'],
      [rangePeriod('2021-11-07', '2021-11-07'), 'America/New_York'],
      [rangePeriod('2024-02-29', '2024-03-10'), 'America/New_York'],
      [fiscalYearPeriod(2023), 'Asia/Tokyo'],
      [yearPeriod(2021), 'UTC'],
    ] as const) {
      const { rows } = await sql<{ start: Date; end: Date }>`
        SELECT (${p.from}::timestamp AT TIME ZONE ${tz}) AS start, (${endExclusive(p)}::timestamp AT TIME ZONE ${tz}) AS end`.execute(t.db);
      const b = periodBounds(p, tz);
      assert.deepEqual([b.start.toISOString(), b.endExclusive.toISOString()], [rows[0]!.start.toISOString(), rows[0]!.end.toISOString()], `${p.from}..${p.to} ${tz}`);
    }
  } finally {
    await t.drop();
  }
});

test('bad dates, years, periods and time zones are refused with an error naming the input', () => {
  const refused = (f: () => unknown, message: RegExp) =>
    assert.throws(f, (err: unknown) => err instanceof InputError && message.test(err.message));
  refused(() => rangePeriod('2021-13-01', '2021-12-31'), /^--from must be a date YYYY-MM-DD, got "2021-13-01"$/);
  refused(() => rangePeriod('2021-01-01', '2021-1-31'), /^--to must be a date YYYY-MM-DD, got "2021-1-31"$/);
  refused(() => rangePeriod('2021-01-01', '31.01.2021'), /got "31\.01\.2021"/);
  refused(() => rangePeriod('2021-03-01', '2021-02-28'), /--to \(2021-02-28\) is before --from \(2021-03-01\)/);
  refused(() => periodFromOptions({ year: '21' }), /^--year must be a year YYYY, got "21"$/);
  refused(() => periodFromOptions({ fiscalYear: 'FY2021' }), /^--fiscal-year must be a year YYYY, got "FY2021"$/);
  refused(() => parsePeriodSpec('2021-02-30..2021-03-31', '--changes-from'), /^--changes-from must be a date YYYY-MM-DD, got "2021-02-30"$/);
  refused(() => parsePeriodSpec('spring 2021', '--changes-to'), /--changes-to must be YYYY, fyYYYY.*got "spring 2021"/);
  refused(() => parseTrend('fy2020..2021'), /got "fy2020\.\.2021"/);
  refused(() => periodBounds(yearPeriod(2021), 'Mars/Olympus_Mons'), /^--timezone: unknown time zone "Mars\/Olympus_Mons"/);
});
