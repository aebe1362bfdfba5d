// Wraps a command's action: one-line error on stderr and the exit code of lib/errors.ts, never a stack trace
// (set MAILCENSUS_DEBUG=1 to see one).
import { exitCodeOf, messageOf } from '../lib/errors.ts';

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
