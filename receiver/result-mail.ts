// MSchecker's answer to the sender: the verdict and every criterion with its reason, in Japanese and English,
// mailed to the test mail's MAIL FROM through the domain's MX (opportunistic STARTTLS, so our own outbound TLS
// is exercised), and the same text for `mailcensus show`. It is an automatic reply (RFC 3834): null
// reverse-path, `Auto-Submitted: auto-replied`, and never sent to a null reverse-path.
import { CRITERIA, CRITERION_LABELS, STATUS_LABELS, type Criterion, type Finding, type Status } from '../lib/criteria.ts';
import { VERDICT_LABELS, type Verdict } from '../lib/verdict.ts';
import type { Socket } from 'node:net';
import type { OutboundGate } from '../lib/net/outbound.ts';
import { escapeControls, escapeControlsKeepLines } from '../lib/clean-text.ts';

export type Lang = 'ja' | 'en';


/** What a rendering needs of a diagnosis: a stored row (`mailcensus show`) or a fresh Diagnosis both fit. */
export interface DiagnosisView {
  id: string;
  source: string;
  domain: string;
  observedAt: Date;
  verdict: Verdict;
  criteria: Record<Criterion, Finding>;
  /** The criteria the verdict rests on (verdict_reasons.reasons). */
  verdictReasons: { criterion: Criterion; reason: string; detail?: string }[];
  ignored?: Criterion[];
}

const HEAD: Record<Lang, { title: string; domain: string; date: string; verdict: string; because: string; criteria: string; id: string; ignored: string }> = {
  ja: {
    title: 'メールサーバ セキュリティ診断結果',
    domain: '診断対象ドメイン',
    date: '診断日時',
    verdict: '評価',
    because: '評価の理由',
    criteria: '診断項目',
    id: '診断ID',
    ignored: '評価に含めない項目',
  },
  en: {
    title: 'Mail server security diagnosis',
    domain: 'Domain',
    date: 'Diagnosed at',
    verdict: 'Verdict',
    because: 'Because of',
    criteria: 'Criteria',
    id: 'Diagnosis ID',
    ignored: 'Not counted in the verdict',
  },
};

/** Display width: East Asian wide characters take two columns (so the Japanese table lines up). */
function width(s: string): number {
  let w = 0;
  for (const ch of s) w += /[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]/u.test(ch) ? 2 : 1;
  return w;
}
const pad = (s: string, n: number) => s + ' '.repeat(Math.max(0, n - width(s)));

/**
 * Plain-text rendering of one diagnosis in one language (the result mail and `mailcensus show`). Details carry
 * strings from the network (SMTP replies, PTR names, records): their control characters are escaped, so a
 * hostile server can put neither a header nor a terminal escape sequence into what we render.
 */
export function renderDiagnosis(v: DiagnosisView, lang: Lang): string {
  return escapeControlsKeepLines(renderDiagnosisRaw(v, lang));
}

function renderDiagnosisRaw(v: DiagnosisView, lang: Lang): string {
  const h = HEAD[lang];
  const lines: string[] = [];
  lines.push(`${h.title}`, '');
  lines.push(`${h.id}: ${v.id} (${v.source})`);
  lines.push(`${h.domain}: ${v.domain}`);
  lines.push(`${h.date}: ${v.observedAt.toISOString()}`);
  lines.push(`${h.verdict}: ${VERDICT_LABELS[v.verdict][lang]}`);
  if (v.verdictReasons.length > 0) {
    lines.push(`${h.because}: ${v.verdictReasons.map((r) => CRITERION_LABELS[r.criterion][lang]).join(', ')}`);
  }
  lines.push('', `${h.criteria}:`);
  const labelWidth = Math.max(...CRITERIA.map((c) => width(CRITERION_LABELS[c][lang])));
  const statusWidth = Math.max(...Object.values(STATUS_LABELS).map((l) => width(l[lang])));
  for (const c of CRITERIA) {
    const f = v.criteria[c];
    lines.push(`  ${pad(CRITERION_LABELS[c][lang], labelWidth)}  ${pad(STATUS_LABELS[f.status][lang], statusWidth)}  ${escapeControls(f.reason)}${f.detail ? ` — ${escapeControls(f.detail)}` : ''}`);
  }
  if (v.ignored && v.ignored.length > 0) {
    lines.push('', `${h.ignored}: ${v.ignored.map((c) => CRITERION_LABELS[c][lang]).join(', ')}`);
  }
  return lines.join('\n') + '\n';
}

export interface ResultMailContent {
  subject: string;
  text: string;
}

/** The result mail: Japanese first (MSchecker's audience), then English. */
export function composeResultMail(v: DiagnosisView): ResultMailContent {
  const subject = `[mailcensus] ${escapeControls(v.domain)}: ${VERDICT_LABELS[v.verdict].ja} / ${VERDICT_LABELS[v.verdict].en}`;
  const text =
    `${v.domain} から送信されたテストメールを受信し、診断しました。\n\n` +
    renderDiagnosis(v, 'ja') +
    '\n----------------------------------------------------------------------\n\n' +
    `We received the test mail sent from ${v.domain} and diagnosed the domain.\n\n` +
    renderDiagnosis(v, 'en');
  return { subject, text };
}

export interface DeliveryTarget {
  host: string;
  ip: string;
}

export interface DeliveryOptions {
  /** Our header From: address. */
  from: string;
  /** The name we announce in EHLO. */
  ehloName: string;
  /** TCP port of the MX hosts (config.smtpPort: 25, or the lab's port). */
  port: number;
  /** The outbound gate: address policy, opt-out and per-IP politeness for every address tried. */
  gate: OutboundGate;
  /** Per-MX connection, greeting and socket timeout. @defaultValue 30000 */
  timeoutMs?: number;
  /**
   * At most this many MX addresses are tried, as Postfix's smtp_mx_address_limit (default 5) bounds a
   * delivery: a sender-chosen MX set of thousands of addresses must not keep a worker busy. @defaultValue 3
   */
  maxAddresses?: number;
  /** The whole delivery, every address included, ends after this long. @defaultValue 60000 */
  deadlineMs?: number;
}

export interface DeliveryResult {
  status: 'sent' | 'failed';
  detail: string;
  /** Whether the session to the MX that took (or last refused) the mail ran over TLS. */
  tls: boolean | null;
  mx: string | null;
  /** One line per address tried or refused, in order. */
  attempts: string[];
}

/** One SMTP transaction over an already connected socket: resolves with the final reply, rejects with nodemailer's error. */
async function sendVia(target: DeliveryTarget, socket: Socket, to: string, message: Buffer, opts: DeliveryOptions, timeout: number): Promise<{ response: string; secure: boolean }> {
  const { default: SMTPConnection } = await import('nodemailer/lib/smtp-connection/index.js');
  const connection = new SMTPConnection({
    host: target.ip,
    port: opts.port,
    // The gate opened this socket: nodemailer never resolves or connects anything itself.
    connection: socket,
    secure: false,
    name: opts.ehloName,
    // Opportunistic STARTTLS (RFC 3207): upgrade whenever offered; the MX's certificate is not verified, as
    // MTAs do without DANE or MTA-STS (RFC 7435).
    opportunisticTLS: true,
    tls: { rejectUnauthorized: false, servername: target.host },
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
  });
  let secure = false;
  // The session as a whole is bounded too: a server that drips one byte per socketTimeout cannot hold it.
  const killer = setTimeout(() => connection.close(), timeout * 3);
  try {
    await new Promise<void>((resolve, reject) => {
      connection.once('error', reject);
      connection.once('end', () => reject(Object.assign(new Error('connection closed'), { code: 'ECONNECTION' })));
      connection.connect(() => resolve());
    });
    secure = connection.secure;
    const info = await new Promise<{ response: string }>((resolve, reject) => {
      connection.once('end', () => reject(Object.assign(new Error('connection closed'), { code: 'ECONNECTION' })));
      // RFC 3834 §3.3: an automatic response goes out with a null reverse-path, so it cannot cause a bounce loop.
      connection.send({ from: '', to: [to] }, message, (err, i) => (err ? reject(err) : resolve(i)));
    });
    connection.quit();
    return { response: info.response, secure };
  } catch (err) {
    connection.close();
    (err as { secure?: boolean }).secure = secure;
    throw err;
  } finally {
    clearTimeout(killer);
  }
}

/**
 * Delivers the result mail to `to` through the MX hosts in preference order (RFC 5321 §5.1): the first one
 * that answers 2xx ends it; a 5xx from one MX is final, a 4xx or connection failure tries the next. At most
 * `maxAddresses` addresses, each through the outbound gate, all within `deadlineMs`.
 */
export async function deliverResultMail(
  to: string,
  mx: DeliveryTarget[],
  content: ResultMailContent,
  opts: DeliveryOptions,
): Promise<DeliveryResult> {
  if (mx.length === 0) return { status: 'failed', detail: 'the sender domain has no MX host with an address', tls: null, mx: null, attempts: [] };
  const { default: MailComposer } = await import('nodemailer/lib/mail-composer/index.js');
  const message = await new MailComposer({
    from: opts.from,
    to,
    subject: content.subject,
    text: content.text,
    headers: { 'Auto-Submitted': 'auto-replied' },
  })
    .compile()
    .build();
  const maxAddresses = Math.max(1, opts.maxAddresses ?? 3);
  const deadline = Date.now() + (opts.deadlineMs ?? 60_000);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const attempts: string[] = [];
  let last: DeliveryResult = { status: 'failed', detail: 'not attempted', tls: null, mx: null, attempts };
  const tried = mx.slice(0, maxAddresses);
  for (const target of tried) {
    const left = deadline - Date.now();
    if (left <= 0) {
      last = { ...last, detail: `${last.detail}; delivery deadline of ${opts.deadlineMs ?? 60_000} ms reached` };
      break;
    }
    const verdict = opts.gate.check(target.ip);
    if (!verdict.allowed) {
      const line = `${target.host} (${target.ip}): not connecting, ${verdict.reason} (${verdict.range}: ${verdict.purpose})`;
      attempts.push(line);
      last = { status: 'failed', detail: line, tls: null, mx: target.host, attempts };
      continue;
    }
    const timeout = Math.max(1, Math.min(timeoutMs, left));
    try {
      const r = await opts.gate.run(target.ip, async () => {
        const socket = await opts.gate.open(target.ip, opts.port, timeout);
        return sendVia(target, socket, to, message, opts, timeout);
      });
      const line = `${target.host} (${target.ip}): ${r.response}`;
      attempts.push(line);
      return { status: 'sent', detail: line, tls: r.secure, mx: target.host, attempts };
    } catch (err) {
      const e = err as { responseCode?: number; response?: string; message: string; secure?: boolean };
      const line = `${target.host} (${target.ip}): ${(e.response ?? e.message).trim()}`;
      attempts.push(line);
      last = { status: 'failed', detail: line, tls: e.secure ?? null, mx: target.host, attempts };
      if (e.responseCode && e.responseCode >= 500) return last;
    }
  }
  if (mx.length > tried.length) last = { ...last, detail: `${last.detail}; ${mx.length - tried.length} more MX address(es) not tried (limit ${maxAddresses})` };
  return last;
}
