import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluateTlsReceive, type MxProbe } from '../lib/checks/tls-receive/tls-receive.ts';
import { obs, type Kind } from './smtp-fixtures.ts';

const mx = (kind: Kind, n = 1): MxProbe => ({ host: `mx${n}.example.test`, ip: `127.100.0.${n}`, obs: obs(kind, `127.100.0.${n}`) });

// [behaviour, MX sessions, status, reason]
const TABLE: [string, Kind[], 'ok' | 'ng' | 'unknown', string][] = [
  ['one MX with STARTTLS is ok', ['ok'], 'ok', 'starttls'],
  ['every MX with STARTTLS is ok', ['ok', 'ok', 'greylisted'], 'ok', 'starttls'],
  ['an MX without STARTTLS is ng', ['no_starttls'], 'ng', 'no_starttls'],
  ['a failed handshake is ng', ['handshake_failed'], 'ng', 'handshake_failed'],
  ['a permanent refusal of the STARTTLS command is ng', ['starttls_502'], 'ng', 'starttls_refused'],
  ['STARTTLS answered 454 is unknown (temporary)', ['starttls_454'], 'unknown', 'starttls_454'],
  ['an unreachable MX is unknown, not ng', ['unreachable'], 'unknown', 'connection_refused'],
  ['a silent MX is unknown, not ng', ['no_greeting'], 'unknown', 'banner_timeout'],
  ['an MX that answers 421 is unknown, not ng', ['greets_421'], 'unknown', 'greeting_421'],
  ['a forbidden address is unknown', ['forbidden'], 'unknown', 'forbidden_address'],
  ['one good MX and one unreachable is unknown', ['ok', 'unreachable'], 'unknown', 'connection_refused'],
  ['an unreachable MX does not hide a reachable MX without STARTTLS', ['unreachable', 'no_starttls'], 'ng', 'no_starttls'],
  ['a greylisting MX still had its TLS measured', ['greylisted'], 'ok', 'starttls'],
  ['both failure kinds together keep a combined reason', ['no_starttls', 'handshake_failed'], 'ng', 'no_starttls_or_handshake_failed'],
];

for (const [behaviour, kinds, status, reason] of TABLE) {
  test(behaviour, () => {
    const f = evaluateTlsReceive(kinds.map((k, i) => mx(k, i + 1)));
    assert.equal(f.status, status);
    assert.equal(f.reason, reason);
  });
}

test('the detail names the failing host and IP', () => {
  const f = evaluateTlsReceive([mx('ok', 1), mx('no_starttls', 2)]);
  assert.equal(f.detail, 'no STARTTLS on mx2.example.test (127.100.0.2)');
  const u = evaluateTlsReceive([mx('ok', 1), mx('unreachable', 3)]);
  assert.equal(u.detail, 'could not measure mx3.example.test (127.100.0.3): connection_refused');
});

test('a null MX or no MX is na', () => {
  assert.deepEqual(evaluateTlsReceive([], { nullMx: true }).status, 'na');
  assert.deepEqual(evaluateTlsReceive([], { nullMx: true }).reason, 'null_mx');
  assert.deepEqual(evaluateTlsReceive([], { noMx: true }).reason, 'no_mx');
  assert.deepEqual(evaluateTlsReceive([]).status, 'na');
});

test('an MX host that was not probed (no address) is unknown with the given reason', () => {
  const f = evaluateTlsReceive([{ host: 'mx.gone.test', ip: null, obs: null, unmeasured: 'nxdomain' }]);
  assert.equal(f.status, 'unknown');
  assert.equal(f.reason, 'nxdomain');
  assert.match(f.detail ?? '', /mx\.gone\.test: nxdomain/);
});
