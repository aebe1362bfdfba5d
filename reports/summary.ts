// The report's short summary in the release's voice, generated from the report object only: every number in
// it is a figure of report.json, so the text cannot drift from the data.
import type { Figure, Report } from './aggregate.ts';
import { previousLabel } from './period.ts';
import type { Lang } from '../lib/criteria.ts';

function pct(f: Figure): string {
  return f.pct === null ? '—' : `${f.pct}%`;
}
/** In a sentence, a share that rounds to 0% but is not zero reads "under 1%". */
function pctNonZero(f: Figure, lang: Lang): string {
  if (f.pct === 0 && f.n > 0) return lang === 'ja' ? '1%未満' : 'under 1%';
  return pct(f);
}

function changeJa(f: Figure, prev: string): string {
  if (f.delta === null || f.previous_pct == null) return '';
  if (f.delta === 0) return `${prev}（${f.previous_pct}%）から変化はありませんでした`;
  return `${prev}の${f.previous_pct}%から${Math.abs(f.delta)}ポイント${f.delta < 0 ? '減少' : '増加'}しました`;
}

function changeEn(f: Figure, prev: string): string {
  if (f.delta === null || f.previous_pct == null) return '';
  if (f.delta === 0) return `unchanged from ${prev} (${f.previous_pct}%)`;
  return `${f.delta < 0 ? 'down' : 'up'} ${Math.abs(f.delta)} point${Math.abs(f.delta) === 1 ? '' : 's'} from ${f.previous_pct}% in ${prev}`;
}

/** Sentences in Japanese. */
export function summaryJa(r: Report): string[] {
  const label = r.period.label.ja;
  if (r.domains === 0) {
    return [`${label}の診断結果はありません（対象ドメイン数 n=0）。割合は計算していません。`];
  }
  const prev = previousLabel({ kind: r.period.kind, from: r.period.from, to: r.period.to, year: null }, 'ja');
  const v = r.verdicts;
  const out: string[] = [];
  const safeChange = changeJa(v.safe, prev);
  out.push(
    `${label}に診断した${r.domains}ドメインのうち、総合評価で「安全」と判定されたのは${pct(v.safe)}（${v.safe.n}ドメイン）` +
      (safeChange ? `で、${safeChange}。` : 'でした。'),
  );
  const niChange = changeJa(v.needs_improvement, prev);
  out.push(
    (niChange ? `「改善が必要」と判定されたドメインは${niChange}が、` : '') +
      `未だ${pct(v.needs_improvement)}（${v.needs_improvement.n}ドメイン）がメールセキュリティを改善する必要があります。`,
  );
  const both = r.spf_dkim.both_ng;
  const bothChange = changeJa(both, prev);
  const bothTail =
    both.delta === null || both.previous_pct == null ? '。'
    : both.delta >= 0 ? `で、${prev}（${both.previous_pct}%）から改善が進んでいません。`
    : `で、${bothChange}。`;
  out.push(`SPFとDKIMの両方が未対応（両方NG）のドメインは${pct(both)}（${both.n}ドメイン）` + (bothTail === '。' ? 'でした。' : bothTail));
  const tls = r.tls_send_or_receive_ng;
  out.push(`SSL/TLSによるメールの送信または受信で改善が必要なドメインは${pct(tls)}（${tls.n}ドメイン）です。`);
  const rdns = r.criteria.reverse_dns.ok;
  const rdnsTail = rdns.delta === null || rdns.delta === undefined ? '' : `（${prev}比 ${rdns.delta > 0 ? '+' : rdns.delta < 0 ? '−' : '±'}${Math.abs(rdns.delta)}ポイント）`;
  out.push(`送信元DNS逆引きは${pct(rdns)}のドメインで対策されています${rdnsTail}。`);
  if (v.danger.n > 0) out.push(`第三者による不正中継が可能な「危険」なメールサーバは${v.danger.n}ドメイン（${pctNonZero(v.danger, 'ja')}）でした。`);
  if (v.incomplete.n > 0) {
    out.push(`測定できなかった項目があり判定できなかった（判定不能）ドメインは${v.incomplete.n}ドメイン（${pctNonZero(v.incomplete, 'ja')}）です。`);
  }
  const c = r.changes;
  if (c && c.paired > 0) {
    out.push(
      `${c.from.label}と${c.to.label}の両方で診断された${c.paired}ドメインのうち、${c.improved}ドメインの総合評価が改善し、${c.regressed}ドメインが悪化しました` +
        (c.verdict_test.p === null ? '。' : `（McNemar検定 p=${c.verdict_test.p.toFixed(3)}${c.verdict_test.significant ? '、有意' : '、有意差なし'}）。`),
    );
  }
  return out;
}

/** Sentences in English. */
export function summaryEn(r: Report): string[] {
  const label = r.period.label.en;
  if (r.domains === 0) return [`No diagnoses in ${label} (n = 0 domains); no percentages are computed.`];
  const prev = previousLabel({ kind: r.period.kind, from: r.period.from, to: r.period.to, year: null }, 'en');
  const v = r.verdicts;
  const out: string[] = [];
  const safeChange = changeEn(v.safe, prev);
  out.push(`Of the ${r.domains} domains diagnosed in ${label}, ${pct(v.safe)} (${v.safe.n}) were rated safe` + (safeChange ? `, ${safeChange}.` : '.'));
  const niChange = changeEn(v.needs_improvement, prev);
  out.push(
    `${pct(v.needs_improvement)} (${v.needs_improvement.n}) still need to improve their mail security` +
      (niChange ? ` ("needs improvement" is ${niChange}).` : '.'),
  );
  const both = r.spf_dkim.both_ng;
  const bothChange = changeEn(both, prev);
  out.push(`${pct(both)} (${both.n}) have neither SPF nor DKIM in place (both NG)` + (bothChange ? `, ${bothChange}.` : '.'));
  const tls = r.tls_send_or_receive_ng;
  out.push(`${pct(tls)} (${tls.n}) need to improve TLS when sending or receiving mail.`);
  const rdns = r.criteria.reverse_dns.ok;
  const rdnsChange = changeEn(rdns, prev);
  out.push(`Reverse DNS of the sending server is in place for ${pct(rdns)}` + (rdnsChange ? ` (${rdnsChange}).` : '.'));
  if (v.danger.n > 0) out.push(`${v.danger.n} domain${v.danger.n === 1 ? '' : 's'} (${pctNonZero(v.danger, 'en')}) ${v.danger.n === 1 ? 'runs' : 'run'} an open relay (danger).`);
  if (v.incomplete.n > 0) out.push(`${v.incomplete.n} (${pctNonZero(v.incomplete, 'en')}) could not be rated because a criterion could not be measured (incomplete).`);
  const c = r.changes;
  if (c && c.paired > 0) {
    out.push(
      `Of the ${c.paired} domains diagnosed in both ${c.from.label} and ${c.to.label}, ${c.improved} improved their verdict and ${c.regressed} regressed` +
        (c.verdict_test.p === null ? '.' : ` (McNemar p = ${c.verdict_test.p.toFixed(3)}, ${c.verdict_test.significant ? 'significant' : 'not significant'}).`),
    );
  }
  return out;
}

export function summary(r: Report, lang: Lang): string[] {
  return lang === 'ja' ? summaryJa(r) : summaryEn(r);
}
