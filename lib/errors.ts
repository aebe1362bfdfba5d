// Error classes that decide a command's exit code, and the one mapping from an error to a one-line message.
import { ConfigError } from './config.ts';
import { DatabaseUnavailableError, SchemaOutdatedError } from './db.ts';

/** The user gave bad input (a file, an option, a world): exit 2, with a message naming what and where. */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

/** A service we depend on (Postgres, Redis) is down or refuses us: exit 3. */
export class ServiceUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ServiceUnavailableError';
  }
}

export const EXIT = { ok: 0, failure: 1, input: 2, service: 3, interrupted: 130 } as const;

export function exitCodeOf(err: unknown): number {
  if (err instanceof InputError || err instanceof ConfigError) return EXIT.input;
  if (err instanceof DatabaseUnavailableError || err instanceof ServiceUnavailableError) return EXIT.service;
  if (err instanceof SchemaOutdatedError) return EXIT.service;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'ETIMEDOUT') return EXIT.service;
  return EXIT.failure;
}

export function messageOf(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED' && !(err instanceof InputError)) {
      return `connection refused: ${err.message} (is Postgres/Redis running? see README)`;
    }
    return err.message.split('\n')[0];
  }
  return String(err);
}
