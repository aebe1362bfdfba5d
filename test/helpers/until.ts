// Waiting for a condition in a test, bounded in time: polls `cond` until it holds, fails naming what it
// waited for when `ms` pass. `tolerateErrors`: a throwing check counts as not yet (a service being restarted).
import assert from 'node:assert/strict';

export async function until(
  what: string,
  cond: () => Promise<boolean>,
  ms: number,
  opts: { pollMs?: number; tolerateErrors?: boolean } = {},
): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await (opts.tolerateErrors ? cond().catch(() => false) : cond())) return;
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 250));
  }
  assert.fail(`timed out after ${ms} ms waiting for ${what}`);
}
