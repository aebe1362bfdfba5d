// The web server over plain HTTP (no browser): operator pages and API refuse the unauthenticated, CSRF tokens
// are required, API keys work, a run is started, cancelled and resumed, a test-mail request goes waiting →
// received → done through the API, per-client rate limits answer 429, cookies are Secure behind TLS, and the
// OpenAPI document matches the routes. No worker runs here: the test drives the worker's job function itself.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { sql } from 'kysely';
import { sendTestMails } from '../lab/sender.ts';
import { createProbeDeps } from '../lib/diagnose.ts';
import { loadConfig, ConfigError } from '../lib/config.ts';
import { processTestMail } from '../workers/test-mail.ts';
import { startWebStack, API_KEY, OPERATOR_PASSWORD, type WebStack } from './helpers/web.ts';

let stack: WebStack;
let n = 0;
/** Each test is its own client (X-Forwarded-For from the trusted loopback proxy), so rate limits do not mix. */
const client = () => `198.51.100.${++n}`;

before(async () => {
  stack = await startWebStack({ MAILCENSUS_WEB_TRUSTED_PROXIES: 'loopback', MAILCENSUS_WEB_REQUESTS_PER_HOUR: '3', MAILCENSUS_WEB_UPLOAD_MAX_BYTES: '4096' }, { worker: false });
});
after(async () => {
  await stack?.stop();
});

function req(path: string, init: RequestInit & { ip?: string } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('x-forwarded-for', init.ip ?? '203.0.113.250');
  return fetch(stack.baseUrl + path, { ...init, headers, redirect: 'manual' });
}

async function login(ip: string): Promise<{ cookie: string; csrf: string }> {
  const res = await req('/ops/login', { ip, method: 'POST', body: new URLSearchParams({ password: OPERATOR_PASSWORD, next: '/ops/runs' }) });
  assert.equal(res.status, 303);
  const cookie = res.headers.get('set-cookie')!.split(';')[0];
  const page = await (await req('/ops/runs', { ip, headers: { cookie } })).text();
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page)![1];
  return { cookie, csrf };
}

test('every operator page, Bull Board and the operator API refuse a request without a session or key', async () => {
  for (const p of ['/ops', '/ops/surveys', '/ops/runs', '/ops/runs/1', '/ops/runs/1/progress.json', '/ops/reports', '/ops/domains?domain=safe.test', '/ops/schedules', '/ops/queues/', '/ops/queues/api/queues', '/ops/diagnoses/1']) {
    const res = await req(p);
    assert.equal(res.status, 401, p);
    const body = await res.text();
    if (res.headers.get('content-type')?.startsWith('text/html')) assert.match(body, /id="password"/, `${p}: the login form`);
    assert.doesNotMatch(body, /<table|Upload a domain list|Start run|api-survey/, `${p} shows nothing but the login form`);
  }
  for (const [method, p] of [['POST', '/ops/runs'], ['POST', '/ops/surveys/upload'], ['POST', '/ops/reports'], ['POST', '/ops/schedules'], ['POST', '/ops/runs/1/cancel'], ['PUT', '/ops/queues/api/queues/domains/retry/failed']] as const) {
    assert.equal((await req(p, { method, body: new URLSearchParams({ survey: 'x' }) })).status, 401, `${method} ${p}`);
  }
  // A forged session id is no session.
  assert.equal((await req('/ops', { headers: { cookie: `mc_session=${'A'.repeat(43)}` } })).status, 401);
  // The API: no key 401 (with WWW-Authenticate), a wrong key 403.
  for (const p of ['/api/v1/domains/safe.test/latest', '/api/v1/runs/1', '/api/v1/runs/1/diagnoses']) {
    const none = await req(p);
    assert.equal(none.status, 401, p);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    assert.equal((await req(p, { headers: { authorization: 'Bearer wrong-key-wrong-key-wrong-key' } })).status, 403, p);
  }
  assert.equal((await req('/api/v1/runs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"survey":"x"}' })).status, 401);
});

test('a wrong password is refused; the session cookie is HttpOnly, SameSite=Strict, and Secure behind TLS', async () => {
  const ip = client();
  const bad = await req('/ops/login', { ip, method: 'POST', body: new URLSearchParams({ password: 'nope', next: '/ops' }) });
  assert.equal(bad.status, 401);
  assert.equal(bad.headers.get('set-cookie'), null);
  const plain = await req('/ops/login', { ip, method: 'POST', body: new URLSearchParams({ password: OPERATOR_PASSWORD, next: '//evil.example/' }) });
  assert.equal(plain.status, 303);
  assert.equal(plain.headers.get('location'), '/ops', 'no open redirect');
  const c = plain.headers.get('set-cookie')!;
  assert.match(c, /HttpOnly/);
  assert.match(c, /SameSite=Strict/);
  assert.doesNotMatch(c, /Secure/, 'plain HTTP: not Secure (it would never come back)');
  const tls = await req('/ops/login', { ip, method: 'POST', headers: { 'x-forwarded-proto': 'https' }, body: new URLSearchParams({ password: OPERATOR_PASSWORD }) });
  assert.match(tls.headers.get('set-cookie')!, /Secure/, 'behind the TLS proxy: Secure');
  assert.match(tls.headers.get('strict-transport-security') ?? '', /max-age=/);
});

test('a state-changing form without the session\'s CSRF token is refused; with it, a run starts, is cancelled and resumed', async () => {
  const ip = client();
  const { cookie, csrf } = await login(ip);
  // Upload a list (multipart, the token first).
  const form = new FormData();
  form.set('_csrf', csrf);
  form.set('survey', 'api-survey');
  form.set('encoding', 'auto');
  form.set('file', new Blob(['safe.test\r\nlisted.test\r\n']), 'list.csv');
  const up = await req('/ops/surveys/upload', { ip, method: 'POST', headers: { cookie }, body: form });
  assert.equal(up.status, 200);
  assert.match(await up.text(), /data-field="accepted">2</);
  const forged = new FormData();
  forged.set('survey', 'forged');
  forged.set('file', new Blob(['safe.test\r\n']), 'x.csv');
  assert.equal((await req('/ops/surveys/upload', { ip, method: 'POST', headers: { cookie }, body: forged })).status, 403);
  // Too large: one line naming the limit, and the survey is not created.
  const big = new FormData();
  big.set('_csrf', csrf);
  big.set('survey', 'too-big');
  big.set('file', new Blob([Array.from({ length: 400 }, (_, i) => `d${i}.example.jp`).join('\r\n')]), 'big.csv');
  const tooBig = await req('/ops/surveys/upload', { ip, method: 'POST', headers: { cookie }, body: big });
  assert.equal(tooBig.status, 400);
  assert.match(await tooBig.text(), /MAILCENSUS_WEB_UPLOAD_MAX_BYTES|too large/i);
  assert.equal(await stack.tdb.db.selectFrom('surveys').select('id').where('name', '=', 'too-big').executeTakeFirst(), undefined);
  // Bull Board's own API with a session, but from another origin: refused.
  const cross = await req('/ops/queues/api/queues/domains/retry/failed', { ip, method: 'PUT', headers: { cookie, origin: 'http://evil.example' } });
  assert.equal(cross.status, 403);
  const same = await req('/ops/queues/api/queues/domains/retry/failed', { ip, method: 'PUT', headers: { cookie, origin: stack.baseUrl } });
  assert.equal(same.status, 200, 'from the app itself it works');

  for (const token of [undefined, 'wrong']) {
    const body = new URLSearchParams({ survey: 'api-survey', ...(token ? { _csrf: token } : {}) });
    assert.equal((await req('/ops/runs', { ip, method: 'POST', headers: { cookie }, body })).status, 403, `token ${token}`);
  }
  assert.equal(await stack.tdb.db.selectFrom('runs').select('id').executeTakeFirst(), undefined, 'no run was created');
  const started = await req('/ops/runs', { ip, method: 'POST', headers: { cookie }, body: new URLSearchParams({ survey: 'api-survey', _csrf: csrf }) });
  assert.equal(started.status, 303);
  const runPath = started.headers.get('location')!;
  const runId = Number(/\/ops\/runs\/(\d+)$/.exec(runPath)![1]);
  const progress = async () => (await req(`/api/v1/runs/${runId}`, { headers: { authorization: `Bearer ${API_KEY}` } })).json();
  const p = await progress();
  assert.equal(p.state, 'running');
  assert.equal(p.total, 2);
  assert.equal(p.done, 0);
  assert.equal(p.eta, '--', 'no rate yet, no ETA');
  assert.equal((await req(`${runPath}/cancel`, { ip, method: 'POST', headers: { cookie }, body: new URLSearchParams({ _csrf: csrf }) })).status, 303);
  assert.equal((await progress()).state, 'cancelled');
  assert.equal((await req(`${runPath}/resume`, { ip, method: 'POST', headers: { cookie }, body: new URLSearchParams({ _csrf: csrf }) })).status, 303);
  assert.equal((await progress()).state, 'running');
  const page = await (await req(runPath, { ip, headers: { cookie } })).text();
  assert.match(page, /data-field="total">2</);
  await req(`${runPath}/cancel`, { ip, method: 'POST', headers: { cookie }, body: new URLSearchParams({ _csrf: csrf }) });
});

test('the API: start a run with a key; a test-mail request goes waiting → received → done; the latest diagnosis of a domain', async () => {
  const ip = client();
  const auth = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' };
  const bad = await req('/api/v1/runs', { ip, method: 'POST', headers: auth, body: JSON.stringify({ survey: 'no-such-survey' }) });
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error, /does not exist/);
  const run = await req('/api/v1/runs', { ip, method: 'POST', headers: auth, body: JSON.stringify({ survey: 'api-survey' }) });
  assert.equal(run.status, 201);
  const { runId, total } = await run.json();
  assert.equal(total, 2);
  const page = await (await req(`/api/v1/runs/${runId}/diagnoses?limit=10`, { ip, headers: auth })).json();
  assert.deepEqual(page, { runId, diagnoses: [], next: null });

  const created = await req('/api/v1/test-mail/requests', { ip, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ domain: 'postmaster@Safe.Test' }) });
  assert.equal(created.status, 201);
  const r = await created.json();
  assert.match(r.token, /^[a-z2-7]{26}$/, '128 bits of base32');
  assert.equal(r.domain, 'safe.test');
  assert.equal(r.address, `check-${r.token}@mailcensus.lab.test`);
  assert.equal(r.resultUrl, `${stack.baseUrl}/r/${r.token}`);
  const state = async () => (await (await req(`/api/v1/test-mail/requests/${r.token}`, { ip })).json());
  assert.equal((await state()).state, 'waiting');

  const only = { ...stack.lab.world, domains: stack.lab.world.domains.filter((d) => d.name === 'safe.test') };
  const [sent] = await sendTestMails(only, { to: { host: '127.0.0.1', port: stack.rx.port }, rcpt: r.address });
  assert.ok(sent.ok, sent.error);
  const received = await state();
  assert.equal(received.state, 'received');
  assert.equal(received.diagnosis, null);
  // What `mailcensus worker` does with the job.
  const ctx = { db: stack.tdb.db, config: stack.config, logger: pino({ level: 'silent' }), deps: createProbeDeps(stack.config) };
  await processTestMail({ testMailId: received.mail.id }, ctx);
  const done = await state();
  assert.equal(done.state, 'done');
  assert.equal(done.diagnosis.verdict, 'safe');
  assert.equal(done.diagnosis.criteria.spf.status, 'ok');
  assert.equal(done.diagnosis.observations, undefined, 'raw observations stay inside');
  // Issue 12's provenance, where the schema has it: a mail to the request's own address from its domain.
  const hasProvenance = (await sql<{ n: number }>`SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'diagnoses' AND column_name = 'provenance'`.execute(stack.tdb.db)).rows[0].n > 0;
  assert.equal(done.diagnosis.provenance, hasProvenance ? 'requested' : null);

  // A hostile PTR name, as a hostile DNS would give: stored in the observations, it reaches the page only escaped.
  const ptr = String(done.diagnosis.criteria.reverse_dns.detail).split(' → ')[1];
  assert.ok(ptr, `a PTR name in ${done.diagnosis.criteria.reverse_dns.detail}`);
  const hostilePtr = '<script>alert(document.cookie)</script>.safe.test';
  const row = await stack.tdb.db.selectFrom('diagnoses').select('observations').where('id', '=', done.diagnosis.id).executeTakeFirstOrThrow();
  const poisoned = JSON.parse(JSON.stringify(row.observations).split(ptr).join(hostilePtr));
  await stack.tdb.db.updateTable('diagnoses').set({ observations: poisoned }).where('id', '=', done.diagnosis.id).execute();
  const pageHtml = await (await req(`/r/${r.token}?lang=en`, { ip })).text();
  assert.ok(pageHtml.includes('&lt;script&gt;alert(document.cookie)&lt;/script&gt;.safe.test'), 'the PTR name is shown, escaped');
  assert.ok(!pageHtml.includes(hostilePtr), 'never raw');

  const latest = await req('/api/v1/domains/safe.test/latest?source=test-mail', { ip, headers: auth });
  assert.equal(latest.status, 200);
  assert.equal((await latest.json()).id, done.diagnosis.id);
  assert.equal((await req('/api/v1/domains/nothing.test/latest', { ip, headers: auth })).status, 404);
  assert.equal((await req('/api/v1/domains/not%20a%20domain/latest', { ip, headers: auth })).status, 400);
});

test('per-client rate limits: the 4th request for a test address within the hour is 429, another client is not limited', async () => {
  const ip = client();
  const ask = (from: string) => req('/api/v1/test-mail/requests', { ip: from, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"domain":"safe.test"}' });
  for (let i = 0; i < 3; i++) assert.equal((await ask(ip)).status, 201);
  const limited = await ask(ip);
  assert.equal(limited.status, 429);
  assert.ok(Number(limited.headers.get('retry-after')) > 0);
  // The form shares the limit: a person cannot get around it through the page.
  assert.equal((await req('/check', { ip, method: 'POST', body: new URLSearchParams({ domain: 'safe.test' }) })).status, 429);
  assert.equal((await ask(client())).status, 201);
});

test('the OpenAPI document is served and describes exactly the API routes', async () => {
  const res = await req('/api/openapi.json');
  assert.equal(res.status, 200);
  const doc = await res.json();
  assert.equal(doc.openapi, '3.1.0');
  const documented: string[] = [];
  for (const [p, ops] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
    for (const method of Object.keys(ops)) {
      documented.push(`${method.toUpperCase()} ${p}`);
      assert.ok(stack.web.app.hasRoute({ method: method.toUpperCase() as 'GET', url: p.replace(/\{(\w+)\}/g, ':$1') }), `${method} ${p} is a route`);
    }
  }
  assert.deepEqual(documented.sort(), [
    'GET /api/v1/domains/{domain}/latest', 'GET /api/v1/runs/{id}', 'GET /api/v1/runs/{id}/diagnoses',
    'GET /api/v1/test-mail/requests/{token}', 'POST /api/v1/runs', 'POST /api/v1/test-mail/requests',
  ]);
});

test('every response carries the strict headers; static assets are a fixed set', async () => {
  const res = await req('/');
  const csp = res.headers.get('content-security-policy')!;
  for (const d of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"]) assert.ok(csp.includes(d), d);
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
  assert.equal((await req('/static/app.css')).status, 200);
  assert.equal((await req('/static/live.js')).headers.get('content-type'), 'text/javascript; charset=utf-8');
  for (const p of ['/static/..%2fserver.ts', '/static/server.ts', '/static/%2e%2e%2f%2e%2e%2fpackage.json']) assert.equal((await req(p)).status, 404, p);
});

test('settings are validated: a short operator password or API key is a configuration error naming the variable', () => {
  assert.throws(() => loadConfig({ MAILCENSUS_WEB_OPERATOR_PASSWORD: 'short' }), (e: Error) => e instanceof ConfigError && /MAILCENSUS_WEB_OPERATOR_PASSWORD/.test(e.message));
  assert.throws(() => loadConfig({ MAILCENSUS_WEB_API_KEYS: 'abc' }), /MAILCENSUS_WEB_API_KEYS/);
  assert.throws(() => loadConfig({ MAILCENSUS_WEB_PUBLIC_URL: 'ftp://x' }), /MAILCENSUS_WEB_PUBLIC_URL/);
  assert.throws(() => loadConfig({ MAILCENSUS_WEB_LISTEN: 'localhost:99999' }), /MAILCENSUS_WEB_LISTEN/);
  const c = loadConfig({});
  assert.deepEqual(c.webListen, { host: '127.0.0.1', port: 8080 });
  assert.equal(c.webOperatorPassword, null);
});
