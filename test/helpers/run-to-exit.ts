// A command run to its end, for the tests that drive a whole program (the demo): its exit code and its
// stderr, with a deadline (SIGTERM) so that a hung program fails the test instead of hanging the suite.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** `npm run demo` without npm: node with tsx on scripts/demo.ts, writing into `out`, with `args` after. */
export function demoCommand(out: string, args: readonly string[] = []): string[] {
  return [process.execPath, '--import', 'tsx', path.join(ROOT, 'scripts/demo.ts'), '--out', out, ...args];
}

/** @param timeoutMs when the command is sent SIGTERM. @defaultValue 600000 */
export function runToExit(argv: readonly string[], env: NodeJS.ProcessEnv, timeoutMs = 600_000): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('exit', (c) => {
      clearTimeout(timer);
      resolve({ code: c, stderr: err });
    });
  });
}
