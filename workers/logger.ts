// pino logs on stderr: JSON lines for machines (one per domain at debug level, one summary per run at info),
// or human-readable with --pretty. MAILCENSUS_LOG_LEVEL sets the level (default info).
import pino from 'pino';
import pretty from 'pino-pretty';

export interface LoggerOptions {
  /** Human-readable output (pino-pretty) instead of JSON. @defaultValue false */
  pretty?: boolean;
  /** @defaultValue MAILCENSUS_LOG_LEVEL or info */
  level?: string;
  /** Where to write. @defaultValue stderr (fd 2), so stdout stays for command output */
  destination?: NodeJS.WritableStream | number;
}

export function createLogger(options: LoggerOptions = {}): pino.Logger {
  const level = options.level ?? process.env.MAILCENSUS_LOG_LEVEL ?? 'info';
  const base = { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (options.pretty) {
    const dest = options.destination ?? 2;
    return pino(base, pretty({ destination: dest, sync: true, colorize: false, translateTime: 'SYS:HH:MM:ss.l' }));
  }
  const dest = options.destination;
  if (dest === undefined || typeof dest === 'number') return pino(base, pino.destination({ fd: dest ?? 2, sync: true }));
  return pino(base, dest);
}
