// `mailcensus serve`: the web front (Fastify). One process beside the workers and the receiver, reading the
// same Postgres and Redis: the public diagnosis flow (web/public-routes.ts), the operator's pages
// (web/operator-routes.ts, Bull Board under /ops/queues) and the JSON API with its OpenAPI document
// (web/api-routes.ts). Pages are rendered on the server; the two small scripts and the style sheet are served
// by the app itself (no CDN), under a strict Content-Security-Policy.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import multipart from '@fastify/multipart';
import rateLimit from '@fastify/rate-limit';
import { InputError, messageOf } from '../lib/errors.ts';
import { SessionStore } from './auth.ts';
import { html, page } from './html.ts';
import { registerPublicRoutes } from './public-routes.ts';
import { registerOperatorRoutes } from './operator-routes.ts';
import { registerApiRoutes } from './api-routes.ts';
import { BULL_BOARD_CSP, PAGE_CSP, REPORT_CSP, type WebApp, type WebContext } from './app.ts';

export { BULL_BOARD_CSP, PAGE_CSP, REPORT_CSP, publicBase, type WebApp, type WebContext } from './app.ts';

const STATIC_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'static');
const STATIC_TYPES: Record<string, string> = { '.css': 'text/css; charset=utf-8', '.js': 'text/javascript; charset=utf-8' };

export async function buildServer(ctx: WebContext): Promise<WebApp> {
  const { config } = ctx;
  const app: FastifyInstance = Fastify({
    logger: false,
    // Only named proxies (proxy-addr): a client talking to us directly cannot spoof X-Forwarded-For.
    trustProxy: config.webTrustedProxies.length > 0 ? config.webTrustedProxies.join(',') : false,
    bodyLimit: 64 * 1024,
    // Bounded: a slow or silent client is dropped (slowloris), nothing waits forever.
    connectionTimeout: 60_000,
    requestTimeout: 120_000,
    keepAliveTimeout: 5_000,
    routerOptions: { maxParamLength: 300 },
  });
  const sessions = new SessionStore(ctx.redis, config.queuePrefix, config.webSessionHours * 3600);

  await app.register(cookie);
  await app.register(formbody, { bodyLimit: 64 * 1024 });
  await app.register(multipart, { limits: { fileSize: config.webUploadMaxBytes, files: 1, fields: 10, fieldSize: 4096, parts: 12 } });
  await app.register(rateLimit, {
    global: false,
    redis: ctx.redis,
    nameSpace: `${config.queuePrefix}:web:rl:`,
    // A Redis hiccup must not open the gates nor take the page down: requests pass, and the error is logged.
    skipOnError: true,
    errorResponseBuilder: (_req, c) => {
      const err = new Error(`too many requests; try again in ${Math.ceil(c.ttl / 1000)} s`) as Error & { statusCode: number };
      err.statusCode = 429;
      return err;
    },
  });

  app.addHook('onSend', async (req, reply, payload) => {
    // Bull Board's routes are its own plugin's; they are known by where they are mounted.
    const which = req.url.startsWith('/ops/queues/') ? 'bull-board' : (req.routeOptions?.config?.csp ?? 'page');
    reply.header('content-security-policy', which === 'bull-board' ? BULL_BOARD_CSP : which === 'report' ? REPORT_CSP : PAGE_CSP);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('x-frame-options', 'DENY');
    reply.header('cross-origin-opener-policy', 'same-origin');
    reply.header('cross-origin-resource-policy', 'same-origin');
    reply.header('permissions-policy', 'camera=(), microphone=(), geolocation=(), interest-cohort=()');
    if (req.protocol === 'https' || config.webPublicUrl?.startsWith('https://')) {
      reply.header('strict-transport-security', 'max-age=31536000');
    }
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return payload;
  });

  // Static assets: a fixed set of files read once at start (no path from the request reaches the file system).
  const assets = new Map<string, { body: Buffer; type: string }>();
  for (const name of ['app.css', 'live.js']) {
    assets.set(name, { body: readFileSync(path.join(STATIC_DIR, name)), type: STATIC_TYPES[path.extname(name)] });
  }
  app.get('/static/:name', async (req, reply) => {
    const a = assets.get((req.params as { name: string }).name);
    if (!a) return reply.code(404).type('text/plain').send('not found');
    return reply.type(a.type).header('cache-control', 'public, max-age=3600').send(a.body);
  });
  app.get('/healthz', async () => ({ ok: true }));

  app.setNotFoundHandler((req, reply) => {
    if (req.url.startsWith('/api/')) return reply.code(404).send({ error: 'not found' });
    return reply.code(404).type('text/html; charset=utf-8').send(page({ title: 'Not found', lang: 'en', body: html`<h1>Not found</h1><p><a href="/">mailcensus</a></p>` }));
  });
  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    const status = err instanceof InputError ? 400 : err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) ctx.logger.error({ err: messageOf(err), url: req.url }, 'web request failed');
    const message = status >= 500 ? 'internal error (see the server log)' : messageOf(err);
    if (req.url.startsWith('/api/') || req.headers.accept === 'application/json') return reply.code(status).send({ error: message });
    return reply
      .code(status)
      .type('text/html; charset=utf-8')
      .send(page({ title: `Error ${status}`, lang: 'en', body: html`<h1>Error ${status}</h1><p class="error">${message}</p><p><a href="/">mailcensus</a></p>` }));
  });

  const web: WebApp = { app, sessions, ctx };
  await registerPublicRoutes(web);
  await registerApiRoutes(web);
  await registerOperatorRoutes(web);
  return web;
}
