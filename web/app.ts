// What the web front's modules share: the app handle, its context, the Content-Security-Policies and the
// public base URL. A module of its own, so server.ts and the route modules it registers do not import each other.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Redis as IORedis } from 'ioredis';
import type postgres from 'postgres';
import type pino from 'pino';
import type { Config } from '../lib/config.ts';
import type { Db } from '../lib/db.ts';
import type { Queues } from '../workers/queues.ts';
import type { SessionStore } from './auth.ts';

/** Our pages: scripts and styles from this origin only, no inline code, no framing, forms post here only. */
export const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/** Bull Board's React UI sets inline styles and a <base>; still no inline or foreign scripts, nothing from a CDN. */
export const BULL_BOARD_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; " +
  "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'";
/** A generated report shown as a page: its own inline CSS and SVG, and no script at all (sandbox). */
export const REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; sandbox; frame-ancestors 'none'";

export interface WebContext {
  db: Db;
  sql: postgres.Sql;
  redis: IORedis;
  queues: Queues;
  config: Readonly<Config>;
  logger: pino.Logger;
}

export interface WebApp {
  app: FastifyInstance;
  sessions: SessionStore;
  ctx: WebContext;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Which Content-Security-Policy the response gets. @defaultValue 'page' */
    csp?: 'page' | 'bull-board' | 'report';
  }
}

/** Where the server can be reached, for the links it hands out (the private result URL). */
export function publicBase(req: FastifyRequest, config: Readonly<Config>): string {
  if (config.webPublicUrl) return config.webPublicUrl;
  return `${req.protocol}://${req.host}`;
}
