// `mailcensus serve` as a process: it listens where --listen says, serves the pages and the OpenAPI document,
// says when the operator pages are disabled, and stops cleanly on SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestDatabase } from './helpers/db.ts';
import { createRedis, deleteKeysUnder } from '../workers/queues.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

test('mailcensus serve --listen 127.0.0.1:0 serves the app and exits 0 on SIGTERM', async () => {
  const tdb = await createTestDatabase();
  const prefix = `mc-test-${randomBytes(4).toString('hex')}`;
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/mailcensus.mjs'), 'serve', '--listen', '127.0.0.1:0'], {
    env: { ...process.env, DATABASE_URL: tdb.url, MAILCENSUS_QUEUE_PREFIX: prefix, MAILCENSUS_WEB_OPERATOR_PASSWORD: '', MAILCENSUS_WEB_DATA_DIR: path.join(os.tmpdir(), prefix) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  try {
    const deadline = Date.now() + 60_000;
    let url: string | null = null;
    while (!url && Date.now() < deadline && child.exitCode === null) {
      url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr)?.[1] ?? null;
      if (!url) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(url, `it said where it listens: ${stderr}`);
    assert.match(stderr, /operator pages disabled/);
    const home = await fetch(`${url}/?lang=en`);
    assert.equal(home.status, 200);
    assert.match(await home.text(), /Mail server security check/);
    assert.equal((await (await fetch(`${url}/api/openapi.json`)).json()).openapi, '3.1.0');
    // No password configured: nobody can log in.
    const login = await fetch(`${url}/ops/login`, { method: 'POST', body: new URLSearchParams({ password: 'anything-at-all-123' }), redirect: 'manual' });
    assert.equal(login.status, 403);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    const redis = createRedis(process.env.REDIS_URL || 'redis://127.0.0.1:6379');
    await deleteKeysUnder(redis, prefix).catch(() => {});
    await redis.quit();
    await tdb.drop();
  }
});
