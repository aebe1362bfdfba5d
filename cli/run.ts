// Wraps a command's action: one-line error on stderr and the exit code of lib/errors.ts, never a stack trace
// (set MAILCENSUS_DEBUG=1 to see one).
import { exitCodeOf, messageOf, InputError } from '../lib/errors.ts';
import type { Lang } from '../lib/criteria.ts';

export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void>) {
  return async (...args: A): Promise<void> => {
    try {
      const code = await fn(...args);
      process.exitCode = typeof code === 'number' ? code : 0;
    } catch (err) {
      if (process.env.MAILCENSUS_DEBUG) console.error(err);
      process.stderr.write(`mailcensus: error: ${messageOf(err)}\n`);
      process.exitCode = exitCodeOf(err);
    }
  };
}

/** Parses an integer option, naming the option in the error. */
export function intOption(name: string) {
  return (raw: string): number => {
    if (!/^-?\d+$/.test(raw)) throw new Error(`${name} must be an integer, got "${raw}"`);
    return Number(raw);
  };
}

/** A command's `--lang`: `ja` or `en`, else an InputError naming what was given; `fallback` when not given. */
export function langOption(given: string | undefined, fallback: Lang): Lang {
  const lang = given ?? fallback;
  if (lang !== 'ja' && lang !== 'en') throw new InputError(`--lang must be ja or en, got "${given}"`);
  return lang;
}

/** Checks integer options that have a floor (a concurrency, a size): each one given must be at least `min`. */
export function requireAtLeast(min: number, options: Record<string, number | undefined>): void {
  for (const [name, v] of Object.entries(options)) {
    if (v !== undefined && v < min) throw new InputError(`${name} must be >= ${min}, got ${v}`);
  }
}

/** Resolves with the signal when the process gets SIGTERM or SIGINT: how a long-running command is stopped. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
}

/**
 * Runs `fn` with the database of DATABASE_URL, reachable and migrated (a one-line error, exit 3, when Postgres
 * is down), and closes it afterwards. `migrated: false` skips the schema check (for `migrate` itself).
 */
export async function withDatabase<T>(
  fn: (handle: import('../lib/db.ts').DbHandle, cfg: Readonly<import('../lib/config.ts').Config>) => Promise<T>,
  options: { max?: number; migrated?: boolean } = {},
): Promise<T> {
  const { config } = await import('../lib/config.ts');
  const { openDatabase, assertReachable, ensureSchema } = await import('../lib/db.ts');
  const cfg = config();
  const handle = openDatabase(cfg.databaseUrl, { max: options.max ?? 2 });
  try {
    await assertReachable(handle, cfg.databaseUrl);
    if (options.migrated !== false) await ensureSchema(handle.db);
    return await fn(handle, cfg);
  } finally {
    await handle.close();
  }
}

/**
 * Runs `fn` with Postgres, Redis and the queues open (one-line error, exit 3, when a service is down), and closes
 * them afterwards. `checkEviction` warns when Redis is not `noeviction`.
 */
export async function withServices<T>(
  fn: (s: import('../workers/setup.ts').Services) => Promise<T>,
  options: { pretty?: boolean; checkEviction?: boolean } = {},
): Promise<T> {
  const { config } = await import('../lib/config.ts');
  const { createLogger } = await import('../workers/logger.ts');
  const { openServices } = await import('../workers/setup.ts');
  const logger = createLogger({ pretty: options.pretty, level: process.env.MAILCENSUS_LOG_LEVEL ?? 'warn' });
  const s = await openServices(config(), logger, { checkEviction: options.checkEviction, dbMax: 3 });
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}
