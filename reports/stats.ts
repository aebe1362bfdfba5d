// The interval statistics of the reports, each in one place: Wilson's score interval for a share, Newcombe's
// hybrid score interval for the difference of two independent shares (Newcombe 1998, method 10), and the
// exact McNemar test for paired domains (a two-sided binomial test on the discordant pairs).

export const Z95 = 1.959963984540054;

/** Wilson score interval (Wilson 1927) as proportions, unrounded; null when total = 0. */
export function wilsonRaw(n: number, total: number, z = Z95): { low: number; high: number } | null {
  if (total === 0) return null;
  const p = n / total;
  const z2 = z * z;
  const denom = 1 + z2 / total;
  const centre = (p + z2 / (2 * total)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / total + z2 / (4 * total * total))) / denom;
  return { low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

/** Percent with one decimal. */
export const pct1 = (x: number) => Math.round(x * 1000) / 10;

export interface Difference {
  /** p1 − p2 in percentage points, one decimal. */
  points: number;
  /** Newcombe 95% interval of the difference, in points, one decimal. */
  low: number;
  high: number;
  /** True when the interval excludes 0: the difference is distinguishable from no difference. */
  distinguishable: boolean;
}

/**
 * Newcombe's interval for p1 − p2 of two independent samples (n1 of total1, n2 of total2), from the two Wilson
 * intervals; null when either total is 0.
 */
export function newcombe(n1: number, total1: number, n2: number, total2: number, z = Z95): Difference | null {
  const w1 = wilsonRaw(n1, total1, z);
  const w2 = wilsonRaw(n2, total2, z);
  if (!w1 || !w2) return null;
  const p1 = n1 / total1;
  const p2 = n2 / total2;
  const d = p1 - p2;
  const low = d - Math.sqrt((p1 - w1.low) ** 2 + (w2.high - p2) ** 2);
  const high = d + Math.sqrt((w1.high - p1) ** 2 + (p2 - w2.low) ** 2);
  // Compared unrounded: a bound that rounds to 0.0 may still lie on either side of it.
  return { points: pct1(d), low: pct1(low), high: pct1(high), distinguishable: low > 0 || high < 0 };
}

export interface McNemar {
  /** Discordant pairs one way (e.g. NG → OK, fixed) and the other (OK → NG, broken). */
  b: number;
  c: number;
  /** Exact two-sided p-value: P(X ≤ min(b, c)) × 2 for X ~ Binomial(b + c, ½), capped at 1; null without discordant pairs. */
  p: number | null;
  /** p < 0.05. */
  significant: boolean;
}

/** McNemar's exact test on paired binary outcomes: only the discordant pairs b and c carry information. */
export function mcnemar(b: number, c: number): McNemar {
  const m = b + c;
  if (m === 0) return { b, c, p: null, significant: false };
  const k = Math.min(b, c);
  // Σ_{i ≤ k} C(m, i) / 2^m, with log C(m, i) built up term by term.
  let tail = 0;
  let logC = 0;
  for (let i = 0; i <= k; i++) {
    if (i > 0) logC += Math.log(m - i + 1) - Math.log(i);
    tail += Math.exp(logC - m * Math.LN2);
  }
  const p = Math.min(1, 2 * tail);
  return { b, c, p: Math.round(p * 1e6) / 1e6, significant: p < 0.05 };
}
