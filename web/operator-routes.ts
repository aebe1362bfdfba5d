// The operator's pages under /ops, behind the password configured on the server (MAILCENSUS_WEB_OPERATOR_PASSWORD):
// surveys (upload a CSV → the ingest summary and the rejects with their line numbers), runs (start, cancel,
// resume, live progress with rate, ETA and unknowns), reports (generate for a period, view, download), a
// domain's history, schedules, and the BullMQ queues through Bull Board. Every POST carries the session's
// CSRF token; an unauthenticated request gets 401 and the login form, never the page.
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { parse as parseCsv } from 'csv-parse/sync';
import { CRITERIA, CRITERION_LABELS, STATUS_LABELS, type Criterion, type Status } from '../lib/criteria.ts';
import { InputError, messageOf } from '../lib/errors.ts';
import type { Verdict } from '../lib/verdict.ts';
import { loadDiagnosisView } from '../receiver/show.ts';
import { cookieOptions, passwordMatches, secretEquals, SESSION_COOKIE, type Session } from './auth.ts';
import { html, page, type Html } from './html.ts';
import { diagnosisSection, verdictBadge } from './diagnosis-page.ts';
import { domainHistory, listRuns, provenanceOf } from './queries.ts';
import { progressView, type ProgressSamples } from './progress.ts';
import { REPORT_CSP, type WebApp } from './app.ts';

declare module 'fastify' {
  interface FastifyRequest {
    opsSession?: Session;
  }
}

const FILE_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.pdf': 'application/pdf',
  '.json': 'application/json; charset=utf-8',
  '.csv': 'text/csv; charset=utf-8',
  '.xlsx': 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$/;
const REPORT_ID = /^\d{13}-[0-9a-f]{8}$/;

function opsPage(title: string, body: Html, s: Session | undefined, scripts: string[] = []): string {
  const nav = s
    ? html`<nav>
<a href="/ops">Overview</a><a href="/ops/surveys">Surveys</a><a href="/ops/runs">Runs</a><a href="/ops/reports">Reports</a>
<a href="/ops/domains">Domains</a><a href="/ops/schedules">Schedules</a><a href="/ops/queues/">Queues</a>
<form method="post" action="/ops/logout" class="inline"><input type="hidden" name="_csrf" value="${s.csrf}"><button type="submit">Log out</button></form>
</nav>`
    : html``;
  return page({ title: `${title} · mailcensus operator`, lang: 'en', nav, body, scripts });
}

function loginPage(next: string, error?: string): string {
  return opsPage('Log in', html`<h1>Operator login</h1>
${error ? html`<p class="error" role="alert">${error}</p>` : html`<p class="note">The operator pages need the password configured on the server.</p>`}
<form method="post" action="/ops/login" class="stack">
  <input type="hidden" name="next" value="${next}">
  <label for="password">Password</label>
  <input id="password" name="password" type="password" required autocomplete="current-password">
  <button type="submit">Log in</button>
</form>`, undefined);
}

function send(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply.code(status).type('text/html; charset=utf-8').send(body);
}

/** A relative path under /ops only (no open redirect to another site). */
function safeNext(raw: unknown): string {
  const s = typeof raw === 'string' ? raw : '';
  return /^\/ops(\/[A-Za-z0-9/_.?=&%-]*)?$/.test(s) && !s.startsWith('//') ? s : '/ops';
}

function csrfOk(s: Session | undefined, given: unknown): boolean {
  return !!s && typeof given === 'string' && given.length > 0 && secretEquals(s.csrf, given);
}

const csrfField = (s: Session) => html`<input type="hidden" name="_csrf" value="${s.csrf}">`;
const fmtDate = (d: Date | string | null | undefined) => (d ? new Date(d).toISOString().replace('T', ' ').slice(0, 19) : '—');

export async function registerOperatorRoutes(web: WebApp): Promise<void> {
  const { app, ctx, sessions } = web;
  const { config } = ctx;
  const dataDir = path.resolve(config.webDataDir);
  const uploadsDir = path.join(dataDir, 'uploads');
  const reportsDir = path.join(dataDir, 'reports');
  const samples: ProgressSamples = new Map();
  const loginLimit = { rateLimit: { max: 10, timeWindow: '1 minute' } };

  app.get('/ops/login', { config: loginLimit }, async (req, reply) => send(reply, 200, loginPage(safeNext((req.query as { next?: string }).next))));
  app.post('/ops/login', { config: loginLimit }, async (req, reply) => {
    const body = (req.body ?? {}) as { password?: unknown; next?: unknown };
    const next = safeNext(body.next);
    if (!config.webOperatorPassword) return send(reply, 403, loginPage(next, 'Operator login is disabled: MAILCENSUS_WEB_OPERATOR_PASSWORD is not set on the server.'));
    if (!passwordMatches({ password: config.webOperatorPassword, apiKeys: [] }, body.password)) {
      return send(reply, 401, loginPage(next, 'Wrong password.'));
    }
    const s = await sessions.create();
    reply.setCookie(SESSION_COOKIE, s.id, cookieOptions(req, config.webPublicUrl, config.webSessionHours * 3600));
    return reply.code(303).header('location', next).send();
  });

  await app.register(async (ops: FastifyInstance) => {
    ops.addHook('preHandler', async (req: FastifyRequest, reply: FastifyReply) => {
      const s = await sessions.get(req.cookies[SESSION_COOKIE]);
      if (!s) {
        // Bull Board's own API calls and JSON polls get JSON; pages get the login form. Both are 401.
        if (req.headers.accept?.includes('application/json') || req.url.includes('/api/')) return reply.code(401).send({ error: 'log in first' });
        return send(reply, 401, loginPage(safeNext(req.url)));
      }
      req.opsSession = s;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        // Bull Board posts JSON from its own page: the same origin is required (SameSite=Strict does the rest).
        if (req.url.startsWith('/ops/queues/')) {
          const origin = req.headers.origin;
          if (origin && origin !== `${req.protocol}://${req.host}` && origin !== config.webPublicUrl) return reply.code(403).send({ error: 'cross-origin request refused' });
          return;
        }
        if (req.isMultipart()) return; // the upload checks the token in its first field
        if (!csrfOk(s, (req.body as { _csrf?: unknown } | undefined)?._csrf)) return reply.code(403).type('text/plain').send('CSRF token missing or wrong: reload the page and try again');
      }
    });

    ops.post('/ops/logout', async (req, reply) => {
      await sessions.destroy(req.opsSession!.id);
      reply.clearCookie(SESSION_COOKIE, { path: '/' });
      return reply.code(303).header('location', '/ops/login').send();
    });

    // ---- overview -------------------------------------------------------------------------------------
    ops.get('/ops', async (req, reply) => {
      const { listSurveys } = await import('../ingest/surveys.ts');
      const surveys = await listSurveys(ctx.sql);
      const runs = await listRuns(ctx.db, 10);
      return send(reply, 200, opsPage('Overview', html`<h1>Overview</h1>
<div class="cards">
  <div class="card"><div class="big">${surveys.length}</div>surveys</div>
  <div class="card"><div class="big">${surveys.reduce((a, s) => a + s.domains, 0)}</div>survey domains</div>
  <div class="card"><div class="big">${runs.filter((r) => r.state === 'running').length}</div>runs running</div>
</div>
<h2>Recent runs</h2>${runsTable(runs)}
<h2>API</h2><p>JSON API with operator keys: <a href="/api/openapi.json">OpenAPI document</a>.</p>`, req.opsSession));
    });

    // ---- surveys and CSV upload -----------------------------------------------------------------------
    const surveysPage = async (s: Session, extra: Html = html``) => {
      const { listSurveys } = await import('../ingest/surveys.ts');
      const list = await listSurveys(ctx.sql);
      return opsPage('Surveys', html`<h1>Surveys</h1>
${extra}
<h2>Upload a domain list</h2>
<form method="post" action="/ops/surveys/upload" enctype="multipart/form-data" class="stack">
  ${csrfField(s)}
  <label for="survey">Survey name (created when new)</label>
  <input id="survey" name="survey" type="text" required maxlength="200">
  <label for="encoding">Encoding</label>
  <select id="encoding" name="encoding"><option value="auto">detect (UTF-8 or Shift_JIS)</option><option value="utf8">UTF-8</option><option value="sjis">Shift_JIS / CP932</option></select>
  <label for="file">CSV file (a <code>domain</code> column, or one domain per line)</label>
  <input id="file" name="file" type="file" required accept=".csv,.txt,text/csv">
  <button type="submit">Upload and ingest</button>
</form>
<h2>All surveys</h2>
<table><thead><tr><th>Survey</th><th class="num">Domains</th><th class="num">Ingests</th><th>Last ingest</th><th></th></tr></thead><tbody>
${list.map((x) => html`<tr><td>${x.name}</td><td class="num">${x.domains}</td><td class="num">${x.ingests}</td><td>${fmtDate(x.last_ingest)}</td>
<td><form method="post" action="/ops/runs" class="inline">${csrfField(s)}<input type="hidden" name="survey" value="${x.name}"><button type="submit" class="secondary">Start a run</button></form></td></tr>`)}
</tbody></table>`, s);
    };
    ops.get('/ops/surveys', async (req, reply) => send(reply, 200, await surveysPage(req.opsSession!)));

    ops.post('/ops/surveys/upload', async (req, reply) => {
      const s = req.opsSession!;
      await mkdir(uploadsDir, { recursive: true });
      const id = `${Date.now()}-${randomBytes(4).toString('hex')}`;
      const file = path.join(uploadsDir, `${id}.csv`);
      const rejectsPath = path.join(uploadsDir, `${id}.rejects.csv`);
      const fields: Record<string, string> = {};
      let original = '';
      let gotFile = false;
      try {
        for await (const part of req.parts()) {
          if (part.type === 'file') {
            // The token must come before the file (the form puts it first): nothing is stored for a forged post.
            if (!csrfOk(s, fields._csrf)) {
              part.file.resume();
              return reply.code(403).type('text/plain').send('CSRF token missing or wrong: reload the page and try again');
            }
            original = part.filename;
            await pipeline(part.file, createWriteStream(file));
            if (part.file.truncated) throw new InputError(`the file is larger than MAILCENSUS_WEB_UPLOAD_MAX_BYTES (${config.webUploadMaxBytes} bytes)`);
            gotFile = true;
          } else {
            fields[part.fieldname] = String(part.value ?? '');
          }
        }
        if (!gotFile) throw new InputError('choose a CSV file to upload');
        const { ingestFile, checkSurveyName } = await import('../ingest/ingest.ts');
        const { parseEncoding } = await import('../ingest/sniff.ts');
        const survey = checkSurveyName(fields.survey ?? '');
        const summary = await ingestFile(ctx.sql, { file, survey, encoding: parseEncoding(fields.encoding || 'auto'), rejectsPath });
        let rejects: string[][] = [];
        if (summary.rejectsFile) {
          const text = (await readFile(summary.rejectsFile, 'utf8')).replace(/^\ufeff/, '');
          rejects = (parseCsv(text, { relax_column_count: true, skip_empty_lines: true }) as string[][]).slice(1, 1001);
        }
        const result = html`<section class="ingest-result">
<h2>Ingested ${original} into ${summary.survey}</h2>
<table class="summary-table"><tbody>
<tr><th>Encoding</th><td>${summary.encoding}${summary.encodingDetected ? ' (detected)' : ''}</td></tr>
<tr><th>Records read</th><td class="num" data-field="read">${summary.read}</td></tr>
<tr><th>Accepted</th><td class="num" data-field="accepted">${summary.accepted}</td></tr>
<tr><th>Duplicates in the file</th><td class="num" data-field="duplicates">${summary.duplicates}</td></tr>
<tr><th>Rejected</th><td class="num" data-field="rejected">${summary.rejected}</td></tr>
<tr><th>New in the survey</th><td class="num" data-field="added">${summary.added ?? '—'}</td></tr>
</tbody></table>
${summary.warning ? html`<p class="note">${summary.warning}</p>` : ''}
${rejects.length > 0 ? html`<h3>Rejected and duplicate lines${summary.rejected + summary.duplicates > rejects.length ? ` (first ${rejects.length})` : ''}</h3>
<table class="rejects"><thead><tr><th class="num">Line</th><th>Reason</th><th>Detail</th><th>Value</th></tr></thead><tbody>
${rejects.map((r) => html`<tr><td class="num">${r[0]}</td><td><code>${r[1]}</code></td><td>${r[2]}</td><td class="value">${r[3]}</td></tr>`)}
</tbody></table>` : html`<p>No line was rejected.</p>`}
</section>`;
        return send(reply, 200, await surveysPage(s, result));
      } catch (err) {
        await rm(file, { force: true });
        if (err instanceof InputError || (err as { code?: string }).code?.startsWith('FST_')) {
          return send(reply, 400, await surveysPage(s, html`<p class="error" role="alert">The upload was not ingested: ${messageOf(err)}</p>`));
        }
        throw err;
      }
    });

    // ---- runs -----------------------------------------------------------------------------------------
    ops.get('/ops/runs', async (req, reply) => {
      const { listSurveys } = await import('../ingest/surveys.ts');
      const surveys = await listSurveys(ctx.sql);
      const s = req.opsSession!;
      return send(reply, 200, opsPage('Runs', html`<h1>Runs</h1>
<form method="post" action="/ops/runs" class="stack">${csrfField(s)}
  <label for="run-survey">Start a run of</label>
  <select id="run-survey" name="survey">${surveys.map((x) => html`<option value="${x.name}">${x.name} (${x.domains})</option>`)}</select>
  <button type="submit">Start run</button>
</form>
<h2>All runs</h2>${runsTable(await listRuns(ctx.db, 200))}`, s));
    });

    ops.post('/ops/runs', async (req, reply) => {
      const survey = String((req.body as { survey?: unknown }).survey ?? '');
      const { createRun } = await import('../workers/run.ts');
      const r = await createRun(ctx, survey);
      return reply.code(303).header('location', `/ops/runs/${r.runId}`).send();
    });

    const runId = (req: FastifyRequest): number => {
      const raw = (req.params as { id: string }).id;
      if (!/^\d{1,10}$/.test(raw)) throw new InputError(`not a run id: ${raw}`);
      return Number(raw);
    };

    ops.get('/ops/runs/:id', async (req, reply) => {
      const { runProgress, queueCounts } = await import('../workers/run.ts');
      const id = runId(req);
      const p = progressView(await runProgress(ctx.db, id), samples);
      const counts = await queueCounts(ctx.queues).catch(() => null);
      const s = req.opsSession!;
      return send(reply, 200, opsPage(`Run ${id}`, html`<h1>Run ${id} of survey ${p.survey}</h1>
<div id="run-progress" data-progress-url="/ops/runs/${id}/progress.json" data-state="${p.state}">
  <p>State: <strong data-field="state">${p.state}</strong></p>
  <progress max="${p.total || 1}" value="${p.done}"></progress>
  <div class="figures">
    <div>Done <span data-field="done">${p.done}</span> / <span data-field="total">${p.total}</span> (<span data-field="percent">${p.percent}</span>)</div>
    <div>Rate <span data-field="rate">${p.rate}</span></div>
    <div>ETA <span data-field="eta">${p.eta}</span></div>
    <div>Unknowns so far <span data-field="unknowns">${p.unknowns}</span></div>
  </div>
</div>
<p>Created ${fmtDate(p.createdAt)} · started ${fmtDate(p.startedAt)} · finished ${fmtDate(p.finishedAt)}${p.cancelledAt ? ` · cancelled ${fmtDate(p.cancelledAt)}` : ''}${p.optedOut ? ` · ${p.optedOut} opted out` : ''}</p>
<h2>Verdicts so far</h2>
<table class="verdicts"><tbody>${Object.entries(p.verdicts).map(([v, n]) => html`<tr><th>${verdictBadge(v as Verdict, 'en')}</th><td class="num">${n}</td><td class="num">${p.done ? `${((100 * n) / p.done).toFixed(1)}% of ${p.done}` : ''}</td></tr>`)}</tbody></table>
${counts ? html`<p class="note">Queues (all runs): domains ${counts.domains.waiting} waiting, ${counts.domains.active} active, ${counts.domains.delayed} delayed, ${counts.domains.failed} failed; probes ${counts.probes.waiting} waiting, ${counts.probes.active} active. <a href="/ops/queues/">Bull Board</a></p>` : ''}
<p>
${p.state === 'running' ? html`<form method="post" action="/ops/runs/${id}/cancel" class="inline">${csrfField(s)}<button type="submit" class="secondary">Cancel run</button></form>` : ''}
${p.state === 'cancelled' || p.state === 'running' ? html`<form method="post" action="/ops/runs/${id}/resume" class="inline">${csrfField(s)}<button type="submit" class="secondary">${p.state === 'cancelled' ? 'Resume run' : 'Retry failed jobs'}</button></form>` : ''}
<a class="button secondary" href="/ops/runs/${id}/diagnoses">Diagnoses</a>
</p>`, s, ['live.js']));
    });

    ops.get('/ops/runs/:id/progress.json', async (req) => {
      const { runProgress } = await import('../workers/run.ts');
      return progressView(await runProgress(ctx.db, runId(req)), samples);
    });

    ops.post('/ops/runs/:id/cancel', async (req, reply) => {
      const { cancelRun } = await import('../workers/run.ts');
      await cancelRun(ctx, runId(req));
      return reply.code(303).header('location', `/ops/runs/${runId(req)}`).send();
    });
    ops.post('/ops/runs/:id/resume', async (req, reply) => {
      const { resumeRun } = await import('../workers/run.ts');
      await resumeRun(ctx, runId(req));
      return reply.code(303).header('location', `/ops/runs/${runId(req)}`).send();
    });

    ops.get('/ops/runs/:id/diagnoses', async (req, reply) => {
      const id = runId(req);
      const { runDiagnoses } = await import('./queries.ts');
      const rows = await runDiagnoses(ctx.db, id, null, 5000);
      return send(reply, 200, opsPage(`Run ${id}: diagnoses`, html`<h1>Run ${id}: diagnoses (${rows.length})</h1>
<table class="history"><thead><tr><th>Domain</th><th>Verdict</th>${CRITERIA.map((c) => html`<th>${CRITERION_LABELS[c].en}</th>`)}</tr></thead><tbody>
${rows.map((r) => html`<tr><td><a href="/ops/diagnoses/${r.id}">${r.domain}</a></td><td>${verdictBadge(r.verdict as Verdict, 'en')}</td>${CRITERIA.map((c) => statusCell(r[c] as Status, r[`${c}_reason` as `${Criterion}_reason`] as string))}</tr>`)}
</tbody></table>`, req.opsSession));
    });

    // ---- a domain's history and one diagnosis ---------------------------------------------------------
    ops.get('/ops/domains', async (req, reply) => {
      const raw = String((req.query as { domain?: unknown }).domain ?? '').trim();
      const { domainFromInput } = await import('./queries.ts');
      const domain = raw ? domainFromInput(raw) : null;
      const rows = domain ? await domainHistory(ctx.db, domain) : [];
      return send(reply, 200, opsPage('Domains', html`<h1>A domain's history</h1>
<form method="get" action="/ops/domains" class="stack"><label for="d">Domain</label><input id="d" name="domain" type="text" value="${raw}" required><button type="submit">Show</button></form>
${raw && !domain ? html`<p class="error">Not a domain name: ${raw}</p>` : ''}
${domain ? html`<h2>${domain}: ${rows.length} diagnoses</h2>
<table class="history"><thead><tr><th>Observed</th><th>Source</th><th>Survey / run</th><th>Verdict</th>${CRITERIA.map((c) => html`<th>${CRITERION_LABELS[c].en}</th>`)}</tr></thead><tbody>
${rows.map((r) => html`<tr><td><a href="/ops/diagnoses/${r.id}">${fmtDate(r.observed_at)}</a></td><td>${r.source}</td><td>${r.survey ?? ''}${r.run_id ? html` <a href="/ops/runs/${r.run_id}">#${r.run_id}</a>` : ''}</td><td>${verdictBadge(r.verdict as Verdict, 'en')}</td>${CRITERIA.map((c) => statusCell(r[c] as Status, r[`${c}_reason` as `${Criterion}_reason`] as string))}</tr>`)}
</tbody></table>` : ''}`, req.opsSession));
    });

    ops.get('/ops/diagnoses/:id', async (req, reply) => {
      const raw = (req.params as { id: string }).id;
      if (!/^\d{1,19}$/.test(raw)) throw new InputError(`not a diagnosis id: ${raw}`);
      const loaded = await loadDiagnosisView(ctx.db, raw);
      if (!loaded) return send(reply, 404, opsPage('Not found', html`<h1>No diagnosis ${raw}</h1>`, req.opsSession));
      const d = { ...loaded.json, provenance: await provenanceOf(ctx.db, raw) };
      return send(reply, 200, opsPage(`Diagnosis ${raw}`, html`<h1>Diagnosis ${raw} (${d.source})</h1>
<p><a href="/ops/domains?domain=${d.domain}">History of ${d.domain}</a></p>
${diagnosisSection(d, 'en')}`, req.opsSession, ['live.js']));
    });

    // ---- reports --------------------------------------------------------------------------------------
    const reportList = async () => {
      const names = await readdir(reportsDir).catch(() => [] as string[]);
      const out: { id: string; meta: ReportMeta }[] = [];
      for (const id of names.filter((n) => REPORT_ID.test(n)).sort().reverse().slice(0, 200)) {
        const meta = await readFile(path.join(reportsDir, id, 'request.json'), 'utf8').then((t) => JSON.parse(t) as ReportMeta, () => null);
        if (meta) out.push({ id, meta });
      }
      return out;
    };
    ops.get('/ops/reports', async (req, reply) => {
      const s = req.opsSession!;
      const { listSurveys } = await import('../ingest/surveys.ts');
      const surveys = await listSurveys(ctx.sql);
      const list = await reportList();
      return send(reply, 200, opsPage('Reports', html`<h1>Reports</h1>
<form method="post" action="/ops/reports" class="stack">${csrfField(s)}
  <label for="r-survey">Survey (or none: every diagnosis of the source)</label>
  <select id="r-survey" name="survey"><option value="">—</option>${surveys.map((x) => html`<option value="${x.name}">${x.name}</option>`)}</select>
  <label for="r-source">Source</label>
  <select id="r-source" name="source"><option value="">any</option><option value="scan">scan</option><option value="test-mail">test mail</option></select>
  <label for="r-period">Period: a year (2026), a fiscal year (FY2026, April–March) or a range (2026-01-01..2026-06-30)</label>
  <input id="r-period" name="period" type="text" required placeholder="2026">
  <label for="r-lang">Language</label>
  <select id="r-lang" name="lang"><option value="ja">日本語</option><option value="en">English</option></select>
  <button type="submit">Generate</button>
</form>
<h2>Generated reports</h2>
<table><thead><tr><th>Created</th><th>Scope</th><th>Period</th><th>Files</th></tr></thead><tbody>
${list.map((r) => html`<tr><td><a href="/ops/reports/${r.id}">${fmtDate(r.meta.createdAt)}</a></td><td>${r.meta.survey ?? 'all surveys'} · ${r.meta.source ?? 'any source'}</td><td>${r.meta.period}</td><td>${r.meta.files.length}${r.meta.error ? html` <span class="error">(${r.meta.error})</span>` : ''}</td></tr>`)}
</tbody></table>`, s));
    });

    ops.post('/ops/reports', async (req, reply) => {
      const b = (req.body ?? {}) as Record<string, unknown>;
      const survey = String(b.survey ?? '').trim() || null;
      const source = String(b.source ?? '').trim() || null;
      const lang = b.lang === 'en' ? 'en' : 'ja';
      const periodText = String(b.period ?? '').trim();
      if (source !== null && source !== 'scan' && source !== 'test-mail') throw new InputError(`source must be scan or test-mail, got "${source}"`);
      if (!survey && !source) throw new InputError('choose a survey or a source');
      const { periodFromOptions } = await import('../reports/period.ts');
      let m: RegExpExecArray | null;
      const opts = (m = /^(\d{4})$/.exec(periodText))
        ? { year: m[1] }
        : (m = /^FY\s?(\d{4})$/i.exec(periodText))
          ? { fiscalYear: m[1] }
          : (m = /^(\d{4}-\d{2}-\d{2})\s*(?:\.\.|–|—|to)\s*(\d{4}-\d{2}-\d{2})$/.exec(periodText))
            ? { from: m[1], to: m[2] }
            : null;
      if (!opts) throw new InputError(`period: give a year (2026), a fiscal year (FY2026) or a range (2026-01-01..2026-06-30), got "${periodText}"`);
      const period = periodFromOptions(opts);
      const { writeReport, FORMATS } = await import('../reports/write.ts');
      const id = `${Date.now()}-${randomBytes(4).toString('hex')}`;
      const out = path.join(reportsDir, id);
      await mkdir(out, { recursive: true });
      const meta: ReportMeta = { createdAt: new Date().toISOString(), survey, source, period: periodText, lang, files: [], error: null };
      try {
        const r = await writeReport(ctx.db, { period, source: source as 'scan' | 'test-mail' | null, survey }, { out, formats: [...FORMATS], lang });
        meta.files = r.files.map((f) => path.basename(f));
      } catch (err) {
        // A missing Chromium costs only the PDF: keep what was written and say what failed.
        const written = (err as { filesWritten?: string[] }).filesWritten;
        if (!written) {
          await rm(out, { recursive: true, force: true });
          throw err;
        }
        meta.files = written.map((f) => path.basename(f));
        meta.error = messageOf(err);
      }
      await writeFile(path.join(out, 'request.json'), JSON.stringify(meta, null, 2));
      return reply.code(303).header('location', `/ops/reports/${id}`).send();
    });

    const reportDir = (req: FastifyRequest): string => {
      const id = (req.params as { id: string }).id;
      if (!REPORT_ID.test(id)) throw new InputError(`not a report id: ${id}`);
      return path.join(reportsDir, id);
    };

    ops.get('/ops/reports/:id', async (req, reply) => {
      const dir = reportDir(req);
      const id = path.basename(dir);
      const meta = await readFile(path.join(dir, 'request.json'), 'utf8').then((t) => JSON.parse(t) as ReportMeta, () => null);
      if (!meta) return send(reply, 404, opsPage('Not found', html`<h1>No such report</h1>`, req.opsSession));
      // Whatever files the folder holds (PDF, JSON, CSVs, and any format a later version writes).
      const files = (await readdir(dir)).filter((f) => SAFE_NAME.test(f) && f !== 'request.json').sort();
      const sizes = await Promise.all(files.map((f) => stat(path.join(dir, f)).then((s) => s.size)));
      return send(reply, 200, opsPage('Report', html`<h1>Report: ${meta.survey ?? 'all surveys'} · ${meta.source ?? 'any source'} · ${meta.period}</h1>
${meta.error ? html`<p class="error">Not every file could be written: ${meta.error}</p>` : ''}
${files.includes('report.html') ? html`<p><a class="button" href="/ops/reports/${id}/files/report.html" target="_blank" rel="noopener">View the report</a></p>` : ''}
<table class="files"><thead><tr><th>File</th><th class="num">Bytes</th></tr></thead><tbody>
${files.map((f, i) => html`<tr><td><a href="/ops/reports/${id}/files/${f}?download=1" download="${f}">${f}</a></td><td class="num">${sizes[i]}</td></tr>`)}
</tbody></table>`, req.opsSession));
    });

    ops.get('/ops/reports/:id/files/:name', { config: { csp: 'report' } }, async (req, reply) => {
      const dir = reportDir(req);
      const name = (req.params as { name: string }).name;
      if (!SAFE_NAME.test(name) || name === 'request.json') throw new InputError(`not a report file: ${name}`);
      const body = await readFile(path.join(dir, name)).catch(() => null);
      if (!body) return send(reply, 404, 'no such file');
      const type = FILE_TYPES[path.extname(name).toLowerCase()] ?? 'application/octet-stream';
      const download = (req.query as { download?: string }).download === '1' || !type.startsWith('text/html');
      reply.header('content-disposition', `${download ? 'attachment' : 'inline'}; filename="${name}"`);
      reply.header('content-security-policy', REPORT_CSP);
      return reply.type(type).send(body);
    });

    // ---- schedules ------------------------------------------------------------------------------------
    ops.get('/ops/schedules', async (req, reply) => {
      const s = req.opsSession!;
      const { listSchedules } = await import('../workers/schedule.ts');
      const { listSurveys } = await import('../ingest/surveys.ts');
      const list = await listSchedules(ctx.queues);
      const surveys = await listSurveys(ctx.sql);
      return send(reply, 200, opsPage('Schedules', html`<h1>Schedules</h1>
<p class="note">A running <code>mailcensus worker</code> starts the scheduled runs.</p>
<table><thead><tr><th>Survey</th><th>Cron</th><th>Time zone</th><th>Next run</th><th></th></tr></thead><tbody>
${list.map((x) => html`<tr><td>${x.survey}</td><td><code>${x.cron}</code></td><td>${x.tz ?? '—'}</td><td>${fmtDate(x.next)}</td>
<td><form method="post" action="/ops/schedules/remove" class="inline">${csrfField(s)}<input type="hidden" name="survey" value="${x.survey}"><button type="submit" class="secondary">Remove</button></form></td></tr>`)}
</tbody></table>
<h2>Add or replace a schedule</h2>
<form method="post" action="/ops/schedules" class="stack">${csrfField(s)}
  <label for="s-survey">Survey</label><select id="s-survey" name="survey">${surveys.map((x) => html`<option value="${x.name}">${x.name}</option>`)}</select>
  <label for="s-cron">Cron pattern (minute hour day-of-month month day-of-week)</label><input id="s-cron" name="cron" type="text" required placeholder="0 3 1 4 *">
  <label for="s-tz">Time zone (IANA, optional)</label><input id="s-tz" name="tz" type="text" placeholder="Asia/Tokyo">
  <button type="submit">Save schedule</button>
</form>`, s));
    });
    ops.post('/ops/schedules', async (req, reply) => {
      const b = (req.body ?? {}) as Record<string, unknown>;
      const { addSchedule } = await import('../workers/schedule.ts');
      const { surveyIdOf } = await import('../workers/run.ts');
      const survey = String(b.survey ?? '');
      await surveyIdOf(ctx.db, survey);
      await addSchedule(ctx.queues, survey, String(b.cron ?? ''), String(b.tz ?? '').trim() || undefined);
      return reply.code(303).header('location', '/ops/schedules').send();
    });
    ops.post('/ops/schedules/remove', async (req, reply) => {
      const { removeSchedule } = await import('../workers/schedule.ts');
      await removeSchedule(ctx.queues, String((req.body as { survey?: unknown }).survey ?? ''));
      return reply.code(303).header('location', '/ops/schedules').send();
    });

    // ---- Bull Board -----------------------------------------------------------------------------------
    await ops.register(async (board: FastifyInstance) => {
      const { createBullBoard } = await import('@bull-board/api');
      const { BullMQAdapter } = await import('@bull-board/api/bullMQAdapter');
      const { FastifyAdapter } = await import('@bull-board/fastify');
      const adapter = new FastifyAdapter();
      createBullBoard({
        queues: [new BullMQAdapter(ctx.queues.domains), new BullMQAdapter(ctx.queues.probes), new BullMQAdapter(ctx.queues.control)],
        serverAdapter: adapter,
        options: { uiConfig: { boardTitle: 'mailcensus queues' } },
      });
      adapter.setBasePath('/ops/queues');
      await board.register(adapter.registerPlugin(), { prefix: '/ops/queues' });
    });
  });

}

interface ReportMeta {
  createdAt: string;
  survey: string | null;
  source: string | null;
  period: string;
  lang: string;
  files: string[];
  error: string | null;
}

function statusCell(status: Status, reason: string): Html {
  return html`<td class="st st-${status}" title="${reason}">${STATUS_LABELS[status]?.en ?? status}</td>`;
}

function runsTable(runs: Awaited<ReturnType<typeof listRuns>>): Html {
  return html`<table class="runs"><thead><tr><th>Run</th><th>Survey</th><th>State</th><th class="num">Done</th><th>Created</th><th>Finished</th></tr></thead><tbody>
${runs.map((r) => html`<tr><td><a href="/ops/runs/${r.id}">#${r.id}</a></td><td>${r.survey}</td><td>${r.state}</td><td class="num">${r.done} / ${r.total}</td><td>${fmtDate(r.created_at)}</td><td>${fmtDate(r.finished_at)}</td></tr>`)}
</tbody></table>`;
}

