// The mailcensus command as a user runs it (`node bin/mailcensus.mjs …`), for the tests of what it prints:
// the exit code (1 when it was killed at the deadline), stdout and stderr. Never rejects: each test decides
// what a non-zero exit means for it.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/mailcensus.mjs', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * @param opts.timeoutMs when the process is killed. @defaultValue 180000
 * @param opts.maxBuffer bytes of output kept (a `check --json` of many hosts is large). @defaultValue 1 MiB (Node's)
 */
export function runCli(args: readonly string[], env: NodeJS.ProcessEnv, opts: { timeoutMs?: number; maxBuffer?: number } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile('node', [BIN, ...args], { env, timeout: opts.timeoutMs ?? 180_000, ...(opts.maxBuffer ? { maxBuffer: opts.maxBuffer } : {}) }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** A command that prints JSON (`check --json`): the parsed output; rejects, with stderr, when the command failed. */
export async function cliJson<T>(args: readonly string[], env: NodeJS.ProcessEnv, opts: { timeoutMs?: number } = {}): Promise<T> {
  const r = await runCli(args, env, opts);
  if (r.code !== 0) throw new Error(`mailcensus ${args.join(' ')} exited ${r.code}\n${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
