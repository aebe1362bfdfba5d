// The public diagnosis flow, as MSchecker's web form: a domain (or an address at it) → a request with a
// 128-bit token and the address to mail → a page that updates itself when the mail arrived and when the
// diagnosis is done → the result. The result is reachable only through its private URL /r/<token>: there is
// no listing, ids are never accepted, and the page is neither cached nor indexed. Rate limits per client.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { loadDiagnosisView } from '../receiver/show.ts';
import { html, page, type Html } from './html.ts';
import { pickLang, PUBLIC_TEXT as P, type Lang } from './i18n.ts';
import { createWebRequest, domainFromInput, provenanceOf, requestStatus, TOKEN_PATTERN, type RequestStatus } from './queries.ts';
import { diagnosisSection } from './diagnosis-page.ts';
import { takeRequestQuota } from './quota.ts';
import type { WebApp } from './app.ts';

function langSwitch(lang: Lang, pathname: string): Html {
  const other: Lang = lang === 'ja' ? 'en' : 'ja';
  return html`<nav class="lang"><a href="${pathname}?lang=${other}" hreflang="${other}">${P.other[lang]}</a></nav>`;
}

function sendPage(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply.code(status).type('text/html; charset=utf-8').header('x-robots-tag', 'noindex, nofollow').send(body);
}

function formPage(lang: Lang, error?: string, value = ''): string {
  return page({
    title: P.title[lang],
    lang,
    nav: langSwitch(lang, '/'),
    body: html`<h1>${P.title[lang]}</h1>
<p>${P.intro[lang]}</p>
<form method="post" action="/check?lang=${lang}" class="check-form">
  <label for="domain">${P.domainLabel[lang]}</label>
  <input id="domain" name="domain" type="text" required maxlength="320" autocomplete="off" spellcheck="false" value="${value}" placeholder="example.co.jp">
  ${error ? html`<p class="error" role="alert">${error}</p>` : ''}
  <button type="submit">${P.start[lang]}</button>
</form>`,
  });
}

/** The body of /r/<token>: instructions while waiting, then the result. */
export async function resultBody(web: WebApp, st: RequestStatus, lang: Lang): Promise<Html> {
  const statusUrl = `/r/${st.token}/status.json`;
  const live = html`<div id="live" class="live state-${st.state}" data-status-url="${statusUrl}" data-state="${st.state}" aria-live="polite">
  <p class="state">${st.state === 'waiting' ? P.waiting[lang] : st.state === 'received' ? P.received[lang] : st.state === 'not_diagnosed' ? P.notDiagnosed[lang] : P.done[lang]}</p>
  ${st.state === 'not_diagnosed' ? html`<p class="why">${P.notDiagnosedWhy[lang][st.notDiagnosed ?? ''] ?? st.notDiagnosed}</p>` : ''}
</div>`;
  if (st.state !== 'done' || !st.diagnosisId) {
    // Polling stops at done and not_diagnosed (live.js): nothing will change any more.
    return html`<h1>${P.requestTitle[lang]}</h1>
<p>${P.sendTo[lang]}</p>
<p class="address"><code id="address">${st.address}</code></p>
<p>${P.forDomain[lang]}: <strong class="domain">${st.domain}</strong></p>
<ol class="steps">${P.steps[lang].map((s) => html`<li>${s}</li>`)}</ol>
${live}
${st.state === 'waiting' || st.state === 'received' ? html`<noscript><meta http-equiv="refresh" content="5"></noscript>` : ''}
<p class="note">${P.privateUrl[lang]}</p>`;
  }
  const loaded = await loadDiagnosisView(web.ctx.db, st.diagnosisId);
  if (!loaded) return html`<p>${P.notFound[lang]}</p>`;
  const d = { ...loaded.json, provenance: await provenanceOf(web.ctx.db, st.diagnosisId) };
  return html`<h1>${P.title[lang]}</h1>
${live}
${st.mail?.domain && st.mail.domain !== st.domain ? html`<p class="note">${P.otherDomain[lang]}</p>` : ''}
${diagnosisSection(d, lang)}
<p class="note no-print">${P.privateUrl[lang]}</p>`;
}

export async function registerPublicRoutes(web: WebApp): Promise<void> {
  const { app, ctx } = web;
  const perMinute = { rateLimit: { max: ctx.config.webRateLimitPerMinute, timeWindow: '1 minute' } };

  app.get('/', { config: perMinute }, async (req, reply) => sendPage(reply, 200, formPage(pickLang(req.query, req.headers['accept-language']))));

  app.post('/check', { config: perMinute }, async (req: FastifyRequest, reply) => {
    const lang = pickLang(req.query, req.headers['accept-language']);
    const raw = String((req.body as { domain?: unknown } | undefined)?.domain ?? '');
    const domain = domainFromInput(raw);
    if (!domain) return sendPage(reply, 400, formPage(lang, P.badDomain[lang], raw.slice(0, 320)));
    const quota = await takeRequestQuota(ctx.redis, ctx.config.queuePrefix, req.ip, ctx.config.webRequestsPerHour);
    if (!quota.ok) return sendPage(reply.header('retry-after', String(quota.retryAfterSeconds)), 429, formPage(lang, P.tooMany[lang], raw.slice(0, 320)));
    const r = await createWebRequest(ctx.db, domain, ctx.config.receiverDomain);
    // 303: the browser GETs the private page; a reload never creates a second request.
    return reply.code(303).header('location', `/r/${r.token}?lang=${lang}`).send();
  });

  app.get('/r/:token', { config: perMinute }, async (req, reply) => {
    const lang = pickLang(req.query, req.headers['accept-language']);
    const { token } = req.params as { token: string };
    const st = TOKEN_PATTERN.test(token) ? await requestStatus(ctx.db, token) : null;
    if (!st) return sendPage(reply, 404, page({ title: P.notFound[lang], lang, body: html`<h1>${P.notFound[lang]}</h1><p><a href="/?lang=${lang}">${P.title[lang]}</a></p>` }));
    return sendPage(reply, 200, page({ title: P.title[lang], lang, nav: langSwitch(lang, `/r/${token}`), body: await resultBody(web, st, lang), scripts: ['live.js'] }));
  });

  app.get('/r/:token/status.json', { config: perMinute }, async (req, reply) => {
    const { token } = req.params as { token: string };
    const st = TOKEN_PATTERN.test(token) ? await requestStatus(ctx.db, token) : null;
    if (!st) return reply.code(404).send({ error: 'no such request' });
    return { state: st.state, receivedAt: st.mail?.receivedAt ?? null, notDiagnosed: st.notDiagnosed };
  });
}
