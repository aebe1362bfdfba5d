// Recorded-observation builders for the pure check tests: an SmtpObservation as the probe records it for each
// kind of session (shapes taken from real runs against lab/worlds/test-smtp-probe.json). Raw facts only: the
// session class and relay outcome are judged by lib/checks/smtp-session.ts (asserted in smtp-session.test.ts).
import { emptyObservation, type CertObservation, type RelayAttempt, type RelayVariant, type SmtpConnectionEnd, type SmtpObservation } from '../lib/probes/smtp/index.ts';

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
  const end = (step: SmtpConnectionEnd['step'], what: { code?: number; error?: string } = {}, mode: SmtpConnectionEnd['mode'] = 'full') => {
    o.connections!.push({ mode, step, code: what.code ?? null, error: what.error ?? null });
  };
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
  const attempt = (variant: RelayVariant, rcpt: number): RelayAttempt => ({
    variant, mailFrom: 'probe@x', rcptTo: variant === 'plain' ? 'relaytest@relay-test.example' : `relaytest%relay-test.example@[${ip}]`,
    mailReply: { code: 250, lines: ['ok'] }, rcptReply: { code: rcpt, lines: [rcpt === 250 ? 'ok' : 'relay denied'] }, error: null,
  });
  const relay = (variant: RelayVariant, rcpt: number, mode: SmtpConnectionEnd['mode'] = 'full') => {
    o.relay.planned = [variant];
    o.relay.attempts = [attempt(variant, rcpt)];
    end('relay', {}, mode);
  };
  const noTls = () => {
    o.helo = { verb: 'EHLO', reply: { code: 250, lines: ['mx.example.test', 'PIPELINING'] } };
    o.extensions = ['PIPELINING'];
    o.tls.offered = false;
  };
  // A server that offers STARTTLS and then answers the command with `code`: the relay test goes on in clear.
  const starttlsRefused = (code: number, line: string) => {
    reached();
    o.tls.handshake = 'refused';
    o.tls.reply = { code, lines: [line] };
    relay('plain', 550);
  };
  const greets = (code: number, line: string) => {
    o.greeting = { code, lines: [line] };
    end('greeting', { code });
  };
  switch (kind) {
    case 'ok': reached(); tlsOk(); relay('plain', 550); break;
    case 'no_starttls': reached(); noTls(); relay('plain', 550); break;
    case 'handshake_failed':
      reached();
      o.tls.handshake = 'failed';
      o.tls.reply = { code: 220, lines: ['2.0.0 Ready to start TLS'] };
      o.tls.error = 'ERR_SSL_WRONG_VERSION_NUMBER';
      end('tls', { error: 'tls_error' });
      // The relay test then reconnects in clear.
      relay('plain', 550, 'relay_only');
      break;
    case 'starttls_454': starttlsRefused(454, '4.7.0 TLS not available'); break;
    case 'starttls_502': starttlsRefused(502, '5.5.1 not implemented'); break;
    case 'unreachable': end('connect', { error: 'connection_refused' }); break;
    case 'no_greeting': end('greeting', { error: 'banner_timeout' }); break;
    case 'greets_421': greets(421, '4.3.2 Service not available'); break;
    case 'greeting_554': greets(554, 'no service'); break;
    case 'greylisted': reached(); tlsOk(); relay('plain', 450); break;
    case 'forbidden': o.forbiddenRange = '10.0.0.0/8'; end('policy', { error: 'forbidden_address' }); break;
    case 'open': reached(); tlsOk(); relay('plain', 250); break;
    case 'open_no_tls': reached(); noTls(); relay('plain', 250); break;
    case 'open_percent': reached(); tlsOk(); relay('percent_hack', 250); break;
    case 'relay_4xx': reached(); tlsOk(); relay('plain', 451); break;
  }
  return o;
}
