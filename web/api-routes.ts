// The HTTP JSON API (/api/v1) and its OpenAPI document (/api/openapi.json). Operator endpoints need an API key
// (`Authorization: Bearer KEY`, MAILCENSUS_WEB_API_KEYS); the test-mail request and its result are public, as
// the web form is, under the same per-client rate limits, and a result is found only by its token.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { InputError } from '../lib/errors.ts';
import { loadDiagnosisView } from '../receiver/show.ts';
import { apiKeyMatches, apiKeyOf, refuse } from './auth.ts';
import { openApiDocument } from './openapi.ts';
import { takeRequestQuota } from './quota.ts';
import { progressView, type ProgressSamples } from './progress.ts';
import { createWebRequest, domainFromInput, latestDiagnosisId, provenanceOf, requestStatus, runDiagnoses, TOKEN_PATTERN } from './queries.ts';
import { publicBase, type WebApp } from './app.ts';

/** The diagnosis as the API returns it: everything `mailcensus show --json` gives but the raw observations. */
async function diagnosisJson(web: WebApp, id: string): Promise<Record<string, unknown> | null> {
  const loaded = await loadDiagnosisView(web.ctx.db, id);
  if (!loaded) return null;
  const { observations: _omit, ...rest } = loaded.json;
  void _omit;
  return { ...rest, provenance: await provenanceOf(web.ctx.db, id), resultMail: loaded.resultMail };
}

function parseRunId(raw: string): number {
  if (!/^\d{1,10}$/.test(raw)) throw new InputError(`not a run id: ${raw}`);
  return Number(raw);
}

export async function registerApiRoutes(web: WebApp): Promise<void> {
  const { app, ctx } = web;
  const { config } = ctx;
  const samples: ProgressSamples = new Map();
  const perMinute = { rateLimit: { max: config.webRateLimitPerMinute, timeWindow: '1 minute' } };
  const keys = { password: null, apiKeys: config.webApiKeys };
  const operator = async (req: FastifyRequest, reply: FastifyReply) => {
    const key = apiKeyOf(req);
    if (!key) return refuse(reply.header('www-authenticate', 'Bearer'), 401, 'an operator API key is required (Authorization: Bearer KEY)');
    if (!apiKeyMatches(keys, key)) return refuse(reply, 403, 'this API key is not valid');
  };

  app.get('/api/openapi.json', async (req) => openApiDocument(publicBase(req, config)));

  // ---- public: test-mail requests ------------------------------------------------------------------
  app.post('/api/v1/test-mail/requests', { config: perMinute }, async (req, reply) => {
    const raw = (req.body as { domain?: unknown } | undefined)?.domain;
    const domain = typeof raw === 'string' ? domainFromInput(raw) : null;
    if (!domain) return reply.code(400).send({ error: 'body.domain must be a domain name or an address at it' });
    const quota = await takeRequestQuota(ctx.redis, config.queuePrefix, req.ip, config.webRequestsPerHour);
    if (!quota.ok) {
      return reply.code(429).header('retry-after', String(quota.retryAfterSeconds)).send({ error: `at most ${config.webRequestsPerHour} new test addresses per hour; try again in ${quota.retryAfterSeconds} s` });
    }
    const r = await createWebRequest(ctx.db, domain, config.receiverDomain);
    const base = publicBase(req, config);
    return reply.code(201).send({
      token: r.token,
      domain: r.domain,
      address: r.address,
      resultUrl: `${base}/r/${r.token}`,
      statusUrl: `${base}/api/v1/test-mail/requests/${r.token}`,
    });
  });

  app.get('/api/v1/test-mail/requests/:token', { config: perMinute }, async (req, reply) => {
    const { token } = req.params as { token: string };
    const st = TOKEN_PATTERN.test(token) ? await requestStatus(ctx.db, token) : null;
    if (!st) return reply.code(404).send({ error: 'no such request' });
    return {
      token: st.token,
      domain: st.domain,
      address: st.address,
      createdAt: st.createdAt,
      state: st.state,
      notDiagnosed: st.notDiagnosed,
      mail: st.mail,
      diagnosis: st.diagnosisId ? await diagnosisJson(web, st.diagnosisId) : null,
    };
  });

  // ---- operators -----------------------------------------------------------------------------------
  app.get('/api/v1/domains/:domain/latest', { preHandler: operator }, async (req, reply) => {
    const { domain: raw } = req.params as { domain: string };
    const q = req.query as { source?: string; survey?: string };
    const domain = domainFromInput(raw);
    if (!domain) return reply.code(400).send({ error: `not a domain name: ${raw}` });
    if (q.source !== undefined && q.source !== 'scan' && q.source !== 'test-mail') return reply.code(400).send({ error: 'source must be scan or test-mail' });
    const id = await latestDiagnosisId(ctx.db, domain, { source: q.source, survey: q.survey });
    if (!id) return reply.code(404).send({ error: `no diagnosis of ${domain}` });
    return diagnosisJson(web, id);
  });

  app.get('/api/v1/runs/:id', { preHandler: operator }, async (req) => {
    const { runProgress } = await import('../workers/run.ts');
    return progressView(await runProgress(ctx.db, parseRunId((req.params as { id: string }).id)), samples);
  });

  app.get('/api/v1/runs/:id/diagnoses', { preHandler: operator }, async (req) => {
    const id = parseRunId((req.params as { id: string }).id);
    const q = req.query as { after?: string; limit?: string };
    const limit = Math.min(5000, Math.max(1, Number(q.limit ?? 1000) || 1000));
    if (q.after !== undefined && !/^\d{1,19}$/.test(q.after)) throw new InputError('after must be a diagnosis id');
    const rows = await runDiagnoses(ctx.db, id, q.after ?? null, limit);
    return { runId: id, diagnoses: rows, next: rows.length === limit ? rows[rows.length - 1].id : null };
  });

  app.post('/api/v1/runs', { preHandler: operator }, async (req, reply) => {
    const survey = (req.body as { survey?: unknown } | undefined)?.survey;
    if (typeof survey !== 'string' || !survey) return reply.code(400).send({ error: 'body.survey must name a survey' });
    const { createRun } = await import('../workers/run.ts');
    const r = await createRun(ctx, survey);
    return reply.code(201).send({ runId: r.runId, survey, total: r.total, optedOut: r.optedOut });
  });
}
