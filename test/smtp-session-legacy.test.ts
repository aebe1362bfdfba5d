// The session class and the relay outcomes are judgements (lib/checks/smtp-session.ts), no longer stored by the
// probe. Observations stored before that change still carry the old probe's judgements; these fixtures were
// produced by the old probe (git main before issue 14) against the scripted servers of smtp-probe-wire.test.ts,
// the lab hosts of smtp-probe-lab.test.ts (lab/worlds/test-smtp-probe.json) and a few more scripted corners
// (greylisting, deadline, 421 to EHLO, reset during MAIL). The pure functions must re-derive every stored
// judgement from the recorded facts alone: the judgements are removed before judging.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import type { SmtpObservation } from '../lib/probes/smtp/index.ts';
import { relayAttemptOutcome, relayOutcome, smtpSession } from '../lib/checks/smtp-session.ts';

const DIR = new URL('./fixtures/smtp-legacy/', import.meta.url).pathname;

interface Old {
  session: string;
  reason: string | null;
  relay: { outcome: string; reason: string | null; attempts: { outcome: string; reason: string | null }[] };
}

/** The observation without the old judgements (`reason` stays: it is the only record of the I/O error). */
function withoutJudgements(old: Old): SmtpObservation {
  const o = structuredClone(old) as { session?: string; relay: { outcome?: string; reason?: string | null; attempts: { outcome?: string }[] } };
  delete o.session;
  delete o.relay.outcome;
  delete o.relay.reason;
  for (const a of o.relay.attempts) delete a.outcome;
  return o as unknown as SmtpObservation;
}

const files = readdirSync(DIR).filter((f) => f.endsWith('.json')).sort();

test('the legacy fixtures cover every session class the old probe produced', () => {
  const classes = new Set(files.map((f) => (JSON.parse(readFileSync(DIR + f, 'utf8')) as Old).session));
  assert.deepEqual([...classes].sort(), ['forbidden_address', 'greets_421', 'greylisted', 'handshake_failed', 'no_greeting', 'no_starttls', 'ok', 'session_failed', 'unreachable']);
  const outcomes = new Set(files.map((f) => (JSON.parse(readFileSync(DIR + f, 'utf8')) as Old).relay.outcome));
  assert.deepEqual([...outcomes].sort(), ['not_tested', 'open', 'refused', 'unknown']);
});

for (const f of files) {
  test(`old observation ${f}: the same session class, relay outcome and attempt outcomes`, () => {
    const old = JSON.parse(readFileSync(DIR + f, 'utf8')) as Old;
    const obs = withoutJudgements(old);
    assert.deepEqual(smtpSession(obs), { session: old.session, reason: old.reason });
    assert.deepEqual(relayOutcome(obs), { outcome: old.relay.outcome, reason: old.relay.reason });
    assert.deepEqual(obs.relay.attempts.map(relayAttemptOutcome), old.relay.attempts.map((a) => ({ outcome: a.outcome, reason: a.reason })));
  });
}
