import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluateOpenRelay, type RelayProbe } from '../lib/checks/open-relay/open-relay.ts';
import { obs, type Kind } from './smtp-fixtures.ts';

const p = (role: 'mx' | 'sender', kind: Kind, last: number): RelayProbe => ({ ip: `127.100.0.${last}`, role, obs: obs(kind, `127.100.0.${last}`) });

// [behaviour, hosts, status, reason]
const TABLE: [string, RelayProbe[], 'ok' | 'ng' | 'unknown' | 'na', string][] = [
  ['an MX that refuses the foreign RCPT is ok', [p('mx', 'ok', 1)], 'ok', 'relay_refused'],
  ['an MX that accepts the foreign RCPT is ng', [p('mx', 'open', 9)], 'ng', 'open_relay'],
  ['an open relay found by the %-hack is ng too', [p('mx', 'open_percent', 9)], 'ng', 'open_relay'],
  ['one open MX among refusing ones is ng', [p('mx', 'ok', 1), p('mx', 'open_no_tls', 9)], 'ng', 'open_relay'],
  ['an open relay wins over an unreachable MX', [p('mx', 'unreachable', 1), p('mx', 'open', 9)], 'ng', 'open_relay'],
  ['an unreachable MX is unknown', [p('mx', 'unreachable', 1)], 'unknown', 'connection_refused'],
  ['a greylisting MX is unknown', [p('mx', 'greylisted', 1)], 'unknown', 'rcpt_450'],
  ['a 4xx on RCPT is unknown', [p('mx', 'relay_4xx', 1)], 'unknown', 'rcpt_451'],
  ['an MX greeting 421 is unknown', [p('mx', 'greets_421', 1)], 'unknown', 'greeting_421'],
  ['an MX greeting 554 refuses everyone: ok', [p('mx', 'greeting_554', 1)], 'ok', 'relay_refused'],
  ['a forbidden MX address is unknown', [p('mx', 'forbidden', 1)], 'unknown', 'forbidden_address'],
  ['one refusing and one unreachable MX is unknown', [p('mx', 'ok', 1), p('mx', 'no_greeting', 2)], 'unknown', 'banner_timeout'],
  ['a sender host that refuses connections is skipped', [p('sender', 'unreachable', 5), p('mx', 'ok', 1)], 'ok', 'relay_refused'],
  ['a sender host that never greets is skipped', [p('sender', 'no_greeting', 5), p('mx', 'ok', 1)], 'ok', 'relay_refused'],
  ['a sender host that is an open relay is ng', [p('sender', 'open', 5), p('mx', 'ok', 1)], 'ng', 'open_relay'],
  ['a sender host that greets 421 is counted: unknown', [p('sender', 'greets_421', 5), p('mx', 'ok', 1)], 'unknown', 'greeting_421'],
  ['a sender host that refuses relaying counts as refusing', [p('sender', 'ok', 5), p('mx', 'ok', 1)], 'ok', 'relay_refused'],
  ['a silent sender and a null MX leave nothing to test: na', [p('sender', 'unreachable', 5)], 'na', 'no_smtp_host'],
  ['no hosts at all is na', [], 'na', 'no_mx'],
];

for (const [behaviour, hosts, status, reason] of TABLE) {
  test(behaviour, () => {
    const f = evaluateOpenRelay(hosts);
    assert.equal(f.status, status, JSON.stringify(f));
    assert.equal(f.reason, reason);
  });
}

test('the detail says where the open relay is', () => {
  assert.equal(evaluateOpenRelay([p('mx', 'open', 9)]).detail, 'open relay on 127.100.0.9');
  const named = evaluateOpenRelay([{ ...p('mx', 'open_percent', 9), host: 'mx.open.test' }]);
  assert.equal(named.detail, 'open relay on mx.open.test (127.100.0.9) (accepted RCPT TO:<relaytest%relay-test.example@[127.100.0.9]>)');
});

test('a null-MX domain with only a silent sender is na with reason null_mx', () => {
  assert.equal(evaluateOpenRelay([p('sender', 'unreachable', 5)], { nullMx: true }).reason, 'null_mx');
});

test('an IP that is both the sender and an MX is judged once', () => {
  const f = evaluateOpenRelay([p('sender', 'ok', 1), p('mx', 'ok', 1)]);
  assert.equal(f.status, 'ok');
  assert.equal(f.detail, 'relay refused by 127.100.0.1');
});
