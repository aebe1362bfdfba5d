// Reason codes several checks share: why a DNS lookup or an SMTP session produced no fact, why the MX set gives
// no host to judge, and why a host was not measured at all. Each check's own table (lib/checks/<id>/index.ts) spreads in the ones it can give, so
// every check still declares its whole closed set. `transient`: a later attempt may well not repeat it
// (lib/checks/judge.ts transientUnknowns; the workers retry such a domain before the unknown is final).
import { reason, type ReasonMeta } from './contract.ts';

/** Why a lookup produced no fact (lib/dns/observation.ts failureReason maps the resolver's outcomes here). */
export const DNS_FAILURE_REASONS = {
  servfail: reason('the resolver answered SERVFAIL', 'DNSサーバがSERVFAILを返した', true),
  refused: reason('the resolver refused the query', 'DNSサーバが問い合わせを拒否した'),
  timeout: reason('no DNS answer in time', 'DNSの応答がタイムアウトした', true),
  timeout_tcp: reason('no DNS answer over TCP in time', 'DNS（TCP）の応答がタイムアウトした', true),
  malformed: reason('the DNS answer could not be decoded', 'DNSの応答を解釈できなかった', true),
  tcp_closed: reason('the resolver closed the TCP connection', 'DNSサーバがTCP接続を閉じた', true),
  dns_network_error: reason('a network error while asking the resolver', 'DNSサーバとの通信でネットワークエラー', true),
  dns_rcode_error: reason('the resolver answered with an unexpected RCODE', 'DNSサーバが想定外の応答コードを返した'),
  cname_loop: reason('the CNAME chain loops', 'CNAMEがループしている'),
  cname_chain_too_long: reason('the CNAME chain is too long', 'CNAMEの連鎖が長すぎる'),
  invalid_name: reason('not a valid domain name', 'ドメイン名として正しくない'),
  dns_error: reason('the lookup failed', 'DNSの問い合わせに失敗した', true),
} as const satisfies Record<string, ReasonMeta>;
export type DnsFailureReason = keyof typeof DNS_FAILURE_REASONS;

/** The MX reasons a check judged over the MX hosts passes on when there is no host to judge. */
export const MX_SET_REASONS = {
  no_mx: reason('no MX: the domain receives no mail', 'MXがない（メールを受け取らない）'),
  null_mx: reason('null MX (RFC 7505): the domain receives no mail', 'ヌルMX（RFC 7505）'),
  null_mx_mixed: reason('a null MX next to other MX records', 'ヌルMXと他のMXが混在'),
  mx_is_ip: reason('an MX target is an IP address', 'MXの値がIPアドレス'),
  mx_without_address: reason('no MX host has an address', 'MXホストにアドレスがない'),
  no_ip: reason('no address to judge', '判定するアドレスがない'),
} as const satisfies Record<string, ReasonMeta>;

/**
 * Why a finding judged over the MX hosts (tls_cert, tls_key, dane) has no host to look at: what
 * lib/checks/judge-input.ts noMxHosts passes on from the MX set (null or no MX, or the DNS failure, an
 * invalid name among them, that left the set unknown).
 */
export const NO_MX_HOST_REASONS = { ...MX_SET_REASONS, ...DNS_FAILURE_REASONS } as const;

/** Why a finding judged over the MX hosts' TLS (versions, certificates) has nothing to look at. */
export const NO_TLS_REASONS = {
  no_tls: reason('no TLS handshake completed', 'TLSハンドシェイクが完了しなかった'),
} as const satisfies Record<string, ReasonMeta>;

/** Why a criterion judged over hosts could not be measured on one of them (before any session). */
export const NOT_MEASURED_REASONS = {
  not_measured: reason('not measured for this source', 'この方法では測定しない'),
  not_probed: reason('the host was not probed', 'ホストを調べられなかった', true),
  no_address: reason('the MX name has no address', 'MXホスト名にアドレスがない'),
  invalid_ip: reason('not an IP address', 'IPアドレスとして正しくない'),
} as const satisfies Record<string, ReasonMeta>;

/**
 * Every reason a criterion judged per IP (reverse_dns, dnsbl: lib/checks/judge-input.ts overJudgedIps) can
 * leave unknown or n/a with besides its own: the MX set's, an IP not measured, a DNS failure.
 */
export const JUDGED_IP_REASONS = { ...MX_SET_REASONS, ...NOT_MEASURED_REASONS, ...DNS_FAILURE_REASONS } as const;

/**
 * Why an SMTP session gave no answer to judge (lib/checks/smtp-reasons.ts maps what the probe recorded to these:
 * the codes are closed, the reply code itself stays in the detail).
 */
export const SMTP_FAILURE_REASONS = {
  connection_refused: reason('the connection was refused', '接続を拒否された', true),
  connection_reset: reason('the connection was reset', '接続がリセットされた', true),
  connection_closed: reason('the server closed the connection', 'サーバが接続を閉じた', true),
  connect_timeout: reason('the connection timed out', '接続がタイムアウトした', true),
  host_unreachable: reason('the host is unreachable', 'ホストに到達できない', true),
  address_not_available: reason('the address is not available from here', 'このアドレスには接続できない'),
  network_error: reason('a network error', 'ネットワークエラー'),
  forbidden_address: reason('the address is not allowed (special-purpose or private)', '接続が許されないアドレス（特殊用途・プライベート）'),
  opted_out: reason('the address is on the opt-out list', 'オプトアウトされたアドレス'),
  banner_timeout: reason('no greeting in time', '接続後の挨拶がタイムアウトした', true),
  closed_before_greeting: reason('closed before the greeting', '挨拶の前に切断された'),
  no_greeting: reason('no greeting', '挨拶がなかった'),
  greets_421: reason('the server greets with 421 (busy, try later)', '421（混雑）で応答した', true),
  greeting_tempfail: reason('a 4xx greeting', '4xxの挨拶', true),
  greeting_rejected: reason('a 5xx greeting: no mail from us', '5xxの挨拶（受け付けない）'),
  bad_reply: reason('a reply that is not SMTP', 'SMTPとして正しくない応答'),
  reply_line_too_long: reason('a reply line beyond the limit', '応答行が長すぎる'),
  reply_too_long: reason('a reply beyond the limit', '応答が長すぎる'),
  too_much_data: reason('the server sent too much data', 'サーバが大量のデータを送ってきた'),
  command_timeout: reason('no reply to a command in time', 'コマンドへの応答がタイムアウトした', true),
  ehlo_failed: reason('EHLO and HELO failed', 'EHLO/HELOが失敗した'),
  ehlo_tempfail: reason('EHLO answered 4xx', 'EHLOに4xxで応答した', true),
  ehlo_after_tls_failed: reason('EHLO after STARTTLS failed', 'STARTTLS後のEHLOが失敗した', true),
  session_deadline: reason('the session deadline passed', 'セッションの制限時間を超えた'),
  session_failed: reason('the session broke before it could be judged', '判定前にセッションが途切れた', true),
  tls_error: reason('a TLS error', 'TLSのエラー', true),
  tls_failed: reason('the TLS handshake failed', 'TLSハンドシェイクに失敗した'),
  tls_timeout: reason('the TLS handshake timed out', 'TLSハンドシェイクがタイムアウトした', true),
  interrupted: reason('the session was interrupted', 'セッションが中断された', true),
  not_attempted: reason('not reached in the session', 'セッションで到達しなかった'),
  starttls_tempfail: reason('STARTTLS answered 4xx (RFC 3207 §4: 454, try later)', 'STARTTLSに4xxで応答した', true),
  starttls_failed: reason('the STARTTLS command failed', 'STARTTLSコマンドが失敗した', true),
  rcpt_tempfail: reason('RCPT answered 4xx', 'RCPTに4xxで応答した', true),
  tempfail_4xx: reason('a 4xx reply', '4xxの応答', true),
  greylisted: reason('greylisted (4xx, try later)', 'グレイリスティング（4xx）', true),
  mail_refused: reason('MAIL FROM was refused', 'MAIL FROMを拒否された'),
  relay_unclear: reason('the relay test gave no clear answer', '不正中継テストの結果が明確でない'),
  smtp_error: reason('an SMTP failure', 'SMTPのエラー'),
} as const satisfies Record<string, ReasonMeta>;
export type SmtpFailureReason = keyof typeof SMTP_FAILURE_REASONS;
