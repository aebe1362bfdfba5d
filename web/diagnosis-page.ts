// One diagnosis as HTML, for the person who asked (the private result page) and for operators: the verdict,
// every criterion with its status and its reason in words, the findings beyond MSchecker, and what to fix
// first. Every string that came from the network (details name hosts, banners, PTR names) goes through html``.
import { CRITERIA, CRITERION_LABELS, STATUS_LABELS, type Criterion, type Label, type Status } from '../lib/criteria.ts';
import { VERDICT_LABELS, type Verdict } from '../lib/verdict.ts';
import { findingValueLabel, T as REPORT_TEXT } from '../reports/labels.ts';
import { REPORTED_FINDINGS } from '../lib/checks/registry.ts';
import { html, type Html } from './html.ts';
import type { Lang } from './i18n.ts';

export interface DiagnosisJson {
  id: string;
  source: string;
  domain: string;
  observedAt: string;
  verdict: Verdict;
  verdictReasons: unknown;
  criteria: Record<Criterion, { status: Status; reason: string; detail?: string }>;
  findings: unknown;
  testMail: Record<string, unknown> | null;
  /** Test-mail provenance (requested, authenticated, unverified), when the database records it. */
  provenance?: string | null;
}

const PROVENANCE: Record<string, Label> = {
  requested: { ja: '申込みの専用アドレス宛てに、申込みのドメインから届いたメールです', en: 'sent to this request\'s own address, from the requested domain' },
  authenticated: { ja: '送信元はSPFまたはDKIMで認証されています', en: 'the sender was authenticated (SPF or an aligned DKIM signature)' },
  unverified: { ja: '送信元を確認できません（第三者がこのドメインを名乗って送った可能性があります）', en: 'the sender could not be verified (anyone could have sent it in the domain\'s name)' },
};

/** What each criterion checks and what to do when it is NG: plain words for the domain's operator. */
const ADVICE: Record<Criterion, { what: Label; fix: Label }> = {
  open_relay: {
    what: { ja: '外部から第三者宛てのメールを中継してしまわないか', en: 'whether the server relays mail for strangers to third parties' },
    fix: {
      ja: '受信サーバが自ドメイン宛て以外のメールを認証なしに受け付けないよう、中継制限（mynetworks・認証必須）を設定してください。最優先で対処が必要です。',
      en: 'Configure the mail server to refuse mail for other domains unless the client authenticates (relay restrictions). Fix this first.',
    },
  },
  spf: {
    what: { ja: '送信元IPアドレスがドメインのSPFレコードで許可されているか', en: 'whether the sending IP is allowed by the domain\'s SPF record' },
    fix: { ja: '送信に使うサーバのIPアドレスを含むSPFレコード（v=spf1 …）をDNSに1つだけ公開してください。', en: 'Publish exactly one SPF record (v=spf1 …) that lists the servers you send from.' },
  },
  dkim: {
    what: { ja: 'メールに検証できるDKIM署名が付いているか', en: 'whether the mail carries a DKIM signature that verifies' },
    fix: { ja: '送信サーバでDKIM署名を有効にし、公開鍵をセレクタ._domainkeyに公開してください。', en: 'Turn on DKIM signing on the sending server and publish its key under <selector>._domainkey.' },
  },
  tls_receive: {
    what: { ja: '受信サーバ（MX）がSTARTTLSで暗号化通信できるか', en: 'whether the receiving servers (MX) offer STARTTLS and complete the handshake' },
    fix: { ja: 'すべてのMXでSTARTTLSを有効にし、有効な証明書を設定してください。', en: 'Enable STARTTLS with a valid certificate on every MX host.' },
  },
  tls_send: {
    what: { ja: '送信時にSTARTTLSで暗号化していたか', en: 'whether the mail was sent over TLS' },
    fix: { ja: '送信サーバで相手がSTARTTLSを提供する場合は必ず使う設定（opportunistic TLS）にしてください。', en: 'Make the sending server use STARTTLS whenever the receiver offers it.' },
  },
  reverse_dns: {
    what: { ja: '送信元IPアドレスの逆引き（PTR）と正引きが一致するか', en: 'whether the sending IP has a PTR name that resolves back to it (FCrDNS)' },
    fix: { ja: '送信IPアドレスのPTRレコードを設定し、その名前のAレコードが同じIPを指すようにしてください（回線事業者に依頼）。', en: 'Set a PTR record for the sending IP whose name resolves back to the same IP (ask your ISP or host).' },
  },
  dnssec: {
    what: { ja: 'ドメインがDNSSECで署名され検証できるか', en: 'whether the domain is signed with DNSSEC and validates' },
    fix: { ja: 'DNS事業者でDNSSEC署名を有効にし、親ゾーンにDSレコードを登録してください。', en: 'Sign the zone with DNSSEC at your DNS provider and register the DS record with the parent.' },
  },
  dnsbl: {
    what: { ja: '送信元IPアドレスがブラックリスト（DNSBL）に載っていないか', en: 'whether the sending IP is listed on a DNS blocklist' },
    fix: { ja: '掲載理由（スパム送信・感染）を解消してから、ブラックリスト運営者に削除を申請してください。', en: 'Remove the cause (spam, a compromised host), then ask the blocklist to delist the IP.' },
  },
};

const T = {
  verdict: { ja: '評価', en: 'Verdict' },
  domain: { ja: '診断対象ドメイン', en: 'Domain' },
  observed: { ja: '診断日時', en: 'Diagnosed at' },
  criteria: { ja: '診断項目', en: 'Criteria' },
  criterion: { ja: '項目', en: 'Criterion' },
  status: { ja: '結果', en: 'Result' },
  reason: { ja: '理由', en: 'Reason' },
  checks: { ja: '確認内容', en: 'What is checked' },
  fixFirst: { ja: 'まず対処すべきこと', en: 'What to fix first' },
  nothingToFix: { ja: '対処が必要な項目はありません。', en: 'Nothing needs fixing.' },
  unknownNote: {
    ja: '測定できなかった項目があります（NGではありません）。時間をおいてもう一度テストメールを送ってください。',
    en: 'Some criteria could not be measured (that is not NG). Send another test mail later.',
  },
  // The section of the checks beyond MSchecker's criteria bears the report's name for it.
  findings: REPORT_TEXT.findings,
  because: { ja: '評価の理由', en: 'Because of' },
  mail: { ja: '受信したテストメール', en: 'The test mail we received' },
  clientIp: { ja: '送信元IPアドレス', en: 'Client IP' },
  helo: { ja: 'HELO/EHLO名', en: 'HELO/EHLO name' },
  mailFrom: { ja: 'エンベロープFrom', en: 'MAIL FROM' },
  receivedAt: { ja: '受信日時', en: 'Received at' },
  tls: { ja: '暗号化', en: 'TLS' },
  print: { ja: '印刷する', en: 'Print' },
  provenance: { ja: '送信元の確からしさ', en: 'Provenance' },
  ignored: { ja: '評価に含めない', en: 'not counted' },
} as const;

const FIX_ORDER: Criterion[] = ['open_relay', 'spf', 'dkim', 'tls_send', 'tls_receive', 'reverse_dns', 'dnsbl', 'dnssec'];

/** The NG criteria in the order they matter: what made the verdict first, then by the level they prove. */
export function fixesInOrder(d: Pick<DiagnosisJson, 'criteria' | 'verdictReasons'>): Criterion[] {
  const reasons = ((d.verdictReasons as { reasons?: { criterion: Criterion; status?: string }[] } | null)?.reasons ?? [])
    .filter((r) => d.criteria[r.criterion]?.status === 'ng')
    .map((r) => r.criterion);
  const ng = FIX_ORDER.filter((c) => d.criteria[c]?.status === 'ng' && !reasons.includes(c));
  return [...new Set([...FIX_ORDER.filter((c) => reasons.includes(c)), ...ng])];
}

/** One row per reported finding of the registry, from `diagnoses.findings` (`{ <id>: { value, … } }`). */
function findingsRows(findings: unknown, lang: Lang): Html[] {
  const stored = (findings ?? {}) as Record<string, { value?: unknown } | undefined>;
  const rows: Html[] = [];
  for (const check of REPORTED_FINDINGS) {
    const value = stored[check.id]?.value;
    if (value === undefined) continue;
    const label = (v: string) => findingValueLabel(check.id, v, lang);
    const shown = Array.isArray(value) ? (value.length ? value.map((v) => label(String(v))).join(', ') : '—') : label(String(value));
    rows.push(html`<tr><th scope="row">${check.label[lang]}</th><td>${shown}</td></tr>`);
  }
  return rows;
}

export function verdictBadge(v: Verdict, lang: Lang): Html {
  return html`<span class="verdict verdict-${v}" data-verdict="${v}">${VERDICT_LABELS[v][lang]}</span>`;
}

export function diagnosisSection(d: DiagnosisJson, lang: Lang): Html {
  const vr = (d.verdictReasons ?? {}) as { reasons?: { criterion: Criterion }[]; ignored?: Criterion[] };
  const ignored = new Set(vr.ignored ?? []);
  const fixes = fixesInOrder(d);
  const unknowns = CRITERIA.filter((c) => d.criteria[c]?.status === 'unknown' && !ignored.has(c));
  const mail = d.testMail as { client_ip?: string; helo?: string | null; mail_from?: string | null; received_at?: string | Date; tls?: { used?: boolean; protocol?: string | null; cipher?: string | null } | null } | null;
  return html`<section class="diagnosis" id="diagnosis">
<div class="summary">
  <p class="verdict-line">${T.verdict[lang]}: ${verdictBadge(d.verdict, lang)}</p>
  <dl>
    <dt>${T.domain[lang]}</dt><dd class="domain">${d.domain}</dd>
    <dt>${T.observed[lang]}</dt><dd>${new Date(d.observedAt).toISOString()}</dd>
    ${d.provenance ? html`<dt>${T.provenance[lang]}</dt><dd class="provenance" data-provenance="${d.provenance}">${PROVENANCE[d.provenance]?.[lang] ?? d.provenance}</dd>` : ''}
    ${(vr.reasons ?? []).length > 0 ? html`<dt>${T.because[lang]}</dt><dd>${(vr.reasons ?? []).map((r) => CRITERION_LABELS[r.criterion][lang]).join(', ')}</dd>` : ''}
  </dl>
  <button type="button" class="print no-print" data-action="print">${T.print[lang]}</button>
</div>
<h2>${T.fixFirst[lang]}</h2>
${fixes.length === 0 ? html`<p class="fix-none">${T.nothingToFix[lang]}</p>` : html`<ol class="fixes">${fixes.map((c) => html`<li><strong>${CRITERION_LABELS[c][lang]}</strong>: ${ADVICE[c].fix[lang]}</li>`)}</ol>`}
${unknowns.length > 0 ? html`<p class="note">${T.unknownNote[lang]} (${unknowns.map((c) => CRITERION_LABELS[c][lang]).join(', ')})</p>` : ''}
<h2>${T.criteria[lang]}</h2>
<table class="criteria">
<thead><tr><th>${T.criterion[lang]}</th><th>${T.status[lang]}</th><th>${T.reason[lang]}</th></tr></thead>
<tbody>
${CRITERIA.map((c) => {
  const f = d.criteria[c];
  return html`<tr class="status-${f.status}" data-criterion="${c}">
<th scope="row">${CRITERION_LABELS[c][lang]}<div class="what">${ADVICE[c].what[lang]}</div></th>
<td class="status"><span class="st st-${f.status}">${STATUS_LABELS[f.status][lang]}</span>${ignored.has(c) ? html` <small>(${T.ignored[lang]})</small>` : ''}</td>
<td class="reason"><code>${f.reason}</code>${f.detail ? html`<div class="detail">${f.detail}</div>` : ''}</td>
</tr>`;
})}
</tbody>
</table>
<h2>${T.findings[lang]}</h2>
<table class="findings"><tbody>${findingsRows(d.findings, lang)}</tbody></table>
${mail ? html`<h2>${T.mail[lang]}</h2>
<dl class="mail">
  <dt>${T.receivedAt[lang]}</dt><dd>${mail.received_at ? new Date(mail.received_at).toISOString() : ''}</dd>
  <dt>${T.clientIp[lang]}</dt><dd class="client-ip">${mail.client_ip ?? ''}</dd>
  <dt>${T.helo[lang]}</dt><dd class="helo">${mail.helo ?? ''}</dd>
  <dt>${T.mailFrom[lang]}</dt><dd class="mail-from">${mail.mail_from ?? ''}</dd>
  <dt>${T.tls[lang]}</dt><dd>${mail.tls?.used ? `${mail.tls.protocol ?? ''} ${mail.tls.cipher ?? ''}` : '—'}</dd>
</dl>` : ''}
</section>`;
}
