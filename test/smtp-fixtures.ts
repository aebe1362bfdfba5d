// Recorded-observation builders for the pure check tests: an SmtpObservation as the probe records it for each
// kind of session (shapes taken from real runs against lab/worlds/test-smtp-probe.json).
import { emptyObservation, type CertObservation, type SmtpObservation } from '../lib/probes/smtp/index.ts';

const AT = new Date('2021-06-30T00:00:00Z');

export type Kind =
  | 'ok' | 'no_starttls' | 'handshake_failed' | 'starttls_454' | 'starttls_502' | 'unreachable' | 'no_greeting'
  | 'greets_421' | 'greylisted' | 'forbidden' | 'open' | 'open_no_tls' | 'open_percent' | 'relay_4xx' | 'greeting_554';

export function cert(over: Partial<CertObservation> = {}): CertObservation {
  return {
    subjectCN: 'mx.example.test',
    subjectAltName: 'DNS:mx.example.test',
    issuer: 'CN=mailcensus lab CA',
    validFrom: '2019-01-01T00:00:00.000Z',
    validTo: '2030-01-01T00:00:00.000Z',
    fingerprint256: 'AA:BB',
    selfSigned: false,
    trusted: true,
    trustError: null,
    checkedName: 'mx.example.test',
    nameMatch: true,
    checkedAt: AT.toISOString(),
    expired: false,
    notYetValid: false,
    ...over,
  };
}

export function obs(kind: Kind, ip = '127.100.0.1', over: { cert?: Partial<CertObservation>; protocol?: string } = {}): SmtpObservation {
  const o = emptyObservation(ip, 'mx.example.test', 25, AT);
  const reached = () => {
    o.greeting = { code: 220, lines: ['mx.example.test ESMTP'] };
    o.helo = { verb: 'EHLO', reply: { code: 250, lines: ['mx.example.test', 'PIPELINING', 'STARTTLS'] } };
    o.extensions = ['PIPELINING', 'STARTTLS'];
    o.tls.offered = true;
  };
  const tlsOk = () => {
    o.tls.handshake = 'ok';
    o.tls.reply = { code: 220, lines: ['2.0.0 Ready to start TLS'] };
    o.tls.protocol = over.protocol ?? 'TLSv1.3';
    o.tls.cipher = 'TLS_AES_256_GCM_SHA384';
    o.tls.cert = cert(over.cert);
    o.relay.overTls = true;
  };
  const refused = (code = 550) => {
    o.relay.outcome = 'refused';
    o.relay.reason = `rcpt_${code}`;
    o.relay.attempts = [{
      variant: 'plain', mailFrom: 'probe@x', rcptTo: 'relaytest@relay-test.example',
      mailReply: { code: 250, lines: ['ok'] }, rcptReply: { code, lines: ['relay denied'] }, outcome: 'refused', reason: null,
    }];
  };
  const open = (variant: 'plain' | 'percent_hack' = 'plain') => {
    o.relay.outcome = 'open';
    o.relay.reason = `accepts_${variant}`;
    o.relay.attempts = [{
      variant, mailFrom: 'probe@x', rcptTo: variant === 'plain' ? 'relaytest@relay-test.example' : `relaytest%relay-test.example@[${ip}]`,
      mailReply: { code: 250, lines: ['ok'] }, rcptReply: { code: 250, lines: ['ok'] }, outcome: 'accepted', reason: null,
    }];
  };
  const noTls = () => {
    o.helo = { verb: 'EHLO', reply: { code: 250, lines: ['mx.example.test', 'PIPELINING'] } };
    o.extensions = ['PIPELINING'];
    o.tls.offered = false;
    o.session = 'no_starttls';
    o.reason = 'starttls_not_offered';
  };
  switch (kind) {
    case 'ok': reached(); tlsOk(); refused(); break;
    case 'no_starttls': reached(); noTls(); refused(); break;
    case 'handshake_failed':
      reached();
      o.tls.handshake = 'failed';
      o.tls.error = 'ERR_SSL_WRONG_VERSION_NUMBER';
      o.session = 'handshake_failed';
      o.reason = 'tls_error';
      refused();
      break;
    case 'starttls_454':
      reached();
      o.tls.handshake = 'refused';
      o.tls.reply = { code: 454, lines: ['4.7.0 TLS not available'] };
      o.session = 'session_failed';
      o.reason = 'starttls_454';
      refused();
      break;
    case 'starttls_502':
      reached();
      o.tls.handshake = 'refused';
      o.tls.reply = { code: 502, lines: ['5.5.1 not implemented'] };
      o.session = 'handshake_failed';
      o.reason = 'starttls_502';
      refused();
      break;
    case 'unreachable': o.session = 'unreachable'; o.reason = 'connection_refused'; o.relay.reason = 'connection_refused'; break;
    case 'no_greeting': o.session = 'no_greeting'; o.reason = 'banner_timeout'; o.relay.reason = 'banner_timeout'; break;
    case 'greets_421':
      o.greeting = { code: 421, lines: ['4.3.2 Service not available'] };
      o.session = 'greets_421';
      o.reason = 'greeting_421';
      o.relay.reason = 'greeting_421';
      break;
    case 'greeting_554':
      o.greeting = { code: 554, lines: ['no service'] };
      o.session = 'session_failed';
      o.reason = 'greeting_554';
      o.relay.outcome = 'refused';
      o.relay.reason = 'greeting_554';
      break;
    case 'greylisted':
      reached(); tlsOk();
      o.session = 'greylisted';
      o.reason = 'rcpt_tempfail';
      o.relay.outcome = 'unknown';
      o.relay.reason = 'rcpt_450';
      break;
    case 'forbidden': o.session = 'forbidden_address'; o.reason = 'forbidden_address'; o.relay.reason = 'forbidden_address'; break;
    case 'open': reached(); tlsOk(); open(); break;
    case 'open_no_tls': reached(); noTls(); open(); break;
    case 'open_percent': reached(); tlsOk(); open('percent_hack'); break;
    case 'relay_4xx': reached(); tlsOk(); o.relay.outcome = 'unknown'; o.relay.reason = 'rcpt_451'; break;
  }
  return o;
}
