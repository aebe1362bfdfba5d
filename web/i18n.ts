// The public pages speak Japanese and English (MSchecker's audience): `?lang=` wins, else Accept-Language.
import type { Lang } from '../lib/criteria.ts';

export type { Lang };

export function pickLang(query: unknown, acceptLanguage: string | undefined): Lang {
  const q = (query as { lang?: unknown } | undefined)?.lang;
  if (q === 'ja' || q === 'en') return q;
  const first = (acceptLanguage ?? '').split(',')[0]?.trim().toLowerCase() ?? '';
  return first.startsWith('en') ? 'en' : 'ja';
}

export const PUBLIC_TEXT = {
  title: { ja: 'メールサーバ セキュリティ診断', en: 'Mail server security check' },
  intro: {
    ja: 'ドメインのメールサーバから1通テストメールを送っていただくと、不正中継・SPF・DKIM・SSL/TLS・逆引き・DNSSEC・DNSBLを診断し、結果をこの画面に表示します。',
    en: 'Send one test mail from your domain\'s mail server and we check open relay, SPF, DKIM, TLS, reverse DNS, DNSSEC and DNSBL, and show the result on this page.',
  },
  domainLabel: { ja: 'ドメイン名またはメールアドレス', en: 'Domain or e-mail address' },
  start: { ja: '診断を始める', en: 'Start the check' },
  badDomain: { ja: 'ドメイン名として正しくありません', en: 'This is not a valid domain name' },
  requestTitle: { ja: 'テストメールを送ってください', en: 'Send a test mail' },
  sendTo: { ja: '次のアドレス宛てに、診断したいドメインのメールアドレスから、メールを1通送ってください（件名・本文は何でも構いません）。', en: 'From an address at the domain you want checked, send one mail (any subject and text) to:' },
  forDomain: { ja: '診断するドメイン', en: 'Domain to check' },
  steps: {
    ja: ['ふだん使っているメールソフトで、上のアドレス宛てにメールを作成します。', '差出人は診断したいドメインのアドレスにしてください（例: info@あなたのドメイン）。', '送信すると、このページが自動で更新され、受信と診断の完了をお知らせします。'],
    en: ['Write a mail to the address above in your usual mail program.', 'Send it from an address at the domain to be checked (e.g. info@your-domain).', 'This page updates by itself when the mail has arrived and when the diagnosis is done.'],
  },
  privateUrl: { ja: 'このページのURLは診断結果の専用URLです。他の人に知られないようにしてください。後で結果を見るにはこのURLを開いてください。', en: 'The address of this page is the private link to your result: keep it to yourself, and open it again to see the result later.' },
  waiting: { ja: 'テストメールを待っています…', en: 'Waiting for your test mail…' },
  received: { ja: 'テストメールを受信しました。診断中です…', en: 'Your test mail has arrived. Diagnosing…' },
  done: { ja: '診断が完了しました。', en: 'The diagnosis is done.' },
  otherDomain: { ja: '注意: 受信したメールの差出人ドメインは申し込みのドメインと異なります。診断したのは差出人ドメインです。', en: 'Note: the mail came from another domain than the one requested; we diagnosed the sender\'s domain.' },
  notDiagnosed: { ja: 'テストメールを受信しましたが、診断しませんでした。', en: 'Your test mail arrived, but it was not diagnosed.' },
  notDiagnosedWhy: {
    ja: { domain_daily_cap: 'このドメインは本日の診断回数の上限に達しています。明日もう一度お試しください。', opted_out: 'このドメインは診断の対象外として登録されています。' } as Record<string, string>,
    en: { domain_daily_cap: 'This domain has reached today\'s limit of diagnoses; please try again tomorrow.', opted_out: 'This domain has asked not to be diagnosed.' } as Record<string, string>,
  },
  notFound: { ja: 'この診断は見つかりません。', en: 'There is no such diagnosis.' },
  tooMany: { ja: 'リクエストが多すぎます。しばらく待ってからもう一度お試しください。', en: 'Too many requests. Please wait a while and try again.' },
  expiresNote: { ja: '', en: '' },
  other: { ja: 'English', en: '日本語' },
} as const;
