// Operator authentication: a password configured on the server opens a session (a 256-bit random id in an
// HttpOnly, SameSite=Strict cookie, Secure behind TLS, its record in Redis with a TTL, so logout and expiry
// are real); every state-changing form carries the session's CSRF token (OWASP: synchronizer token pattern);
// the API takes operator keys as `Authorization: Bearer KEY`. Secrets are compared in constant time.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Redis as IORedis } from 'ioredis';
import type { FastifyReply, FastifyRequest } from 'fastify';

export const SESSION_COOKIE = 'mc_session';

export interface Session {
  id: string;
  csrf: string;
  createdAt: number;
}

/** Constant-time equality of two secrets of any length (hashing first makes the lengths equal). */
export function secretEquals(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

export class SessionStore {
  constructor(
    private readonly redis: IORedis,
    private readonly prefix: string,
    private readonly ttlSeconds: number,
  ) {}

  private key(id: string): string {
    return `${this.prefix}:web:session:${id}`;
  }

  async create(): Promise<Session> {
    const s: Session = { id: randomBytes(32).toString('base64url'), csrf: randomBytes(32).toString('base64url'), createdAt: Date.now() };
    await this.redis.set(this.key(s.id), JSON.stringify(s), 'EX', this.ttlSeconds);
    return s;
  }

  async get(id: string | undefined): Promise<Session | null> {
    if (!id || !/^[A-Za-z0-9_-]{43}$/.test(id)) return null;
    const raw = await this.redis.get(this.key(id));
    if (!raw) return null;
    try {
      return JSON.parse(raw) as Session;
    } catch {
      return null;
    }
  }

  async destroy(id: string): Promise<void> {
    await this.redis.del(this.key(id));
  }
}

export interface AuthOptions {
  password: string | null;
  apiKeys: readonly string[];
}

export function passwordMatches(o: AuthOptions, given: unknown): boolean {
  if (!o.password || typeof given !== 'string' || given.length === 0 || given.length > 1024) return false;
  return secretEquals(o.password, given);
}

export function apiKeyOf(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return null;
  const m = /^Bearer\s+(\S{1,512})$/i.exec(h.trim());
  return m ? m[1] : null;
}

export function apiKeyMatches(o: AuthOptions, key: string | null): boolean {
  if (!key) return false;
  let ok = false;
  // Compare against every key (no early exit), so timing says nothing about which key nearly matched.
  for (const k of o.apiKeys) ok = secretEquals(k, key) || ok;
  return ok;
}

/** Cookie attributes: Secure when the request came over TLS (directly or, with trusted proxies, forwarded). */
export function cookieOptions(req: FastifyRequest, publicUrl: string | null, maxAgeSeconds: number) {
  const secure = req.protocol === 'https' || (publicUrl?.startsWith('https://') ?? false);
  return { path: '/', httpOnly: true, sameSite: 'strict' as const, secure, maxAge: maxAgeSeconds };
}

export function refuse(reply: FastifyReply, status: 401 | 403, message: string): FastifyReply {
  return reply.code(status).header('cache-control', 'no-store').send({ error: message });
}
