// The public diagnosis flow in a real headless Chromium, end to end on the lab: a person enters a domain, is
// given a check-<token>@ address, the lab's sender mails it to the real receiver, a real worker diagnoses it,
// and the page, which updates itself, shows the verdict CRITERIA.md gives; the same for a domain that needs
// improvement; a hostile HELO shows as text; the result page is private (404 for any other token).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sendTestMails } from '../lab/sender.ts';
import { screenshot } from './helpers/browser.ts';
import { webStackWithBrowserForFile, OUR_DOMAIN } from './helpers/web.ts';
import { sendMail } from './test-mail-helpers.ts';

const ui = webStackWithBrowserForFile();

/** Requests a diagnosis through the form; returns the address the page shows and the private URL. */
async function requestThroughForm(domainOrAddress: string, lang: 'ja' | 'en'): Promise<{ address: string; url: string }> {
  const { page } = ui.browser;
  await page.goto(`${ui.stack.baseUrl}/?lang=${lang}`);
  await page.fill('#domain', domainOrAddress);
  await page.click('button[type=submit]');
  await page.waitForSelector('#address');
  const address = (await page.textContent('#address'))!.trim();
  return { address, url: page.url() };
}

async function mailFrom(domain: string, rcpt: string): Promise<void> {
  const only = { ...ui.stack.lab.world, domains: ui.stack.lab.world.domains.filter((d) => d.name === domain) };
  const [sent] = await sendTestMails(only, { to: { host: '127.0.0.1', port: ui.stack.rx.port }, rcpt });
  assert.ok(sent?.ok, `the lab sender of ${domain} delivered: ${sent?.error}`);
}

test('a person asks for a diagnosis of safe.test, mails the shown address, and the page shows "safe" by itself', async () => {
  const { page } = ui.browser;
  const { address, url } = await requestThroughForm('safe.test', 'en');
  const m = new RegExp(`^check-([a-z2-7]{26})@${OUR_DOMAIN.replace(/\./g, '\\.')}$`).exec(address);
  assert.ok(m, `the page shows a check-<128-bit token> address: ${address}`);
  assert.ok(url.includes(`/r/${m[1]}`), 'the private URL carries the token');
  assert.equal(await page.textContent('.domain'), 'safe.test');
  assert.equal(await page.getAttribute('#live', 'data-state'), 'waiting');
  await screenshot(page, 'public-1-instructions-en');

  await mailFrom('safe.test', address);
  // No reload by the test: the page polls and reloads itself when the mail arrived and when it is diagnosed.
  await page.waitForSelector('.verdict[data-verdict]', { timeout: 90_000 });
  assert.equal(await page.getAttribute('.verdict', 'data-verdict'), 'safe');
  assert.equal(await page.getAttribute('#live', 'data-state'), 'done');
  assert.equal(await page.locator('table.criteria tbody tr').count(), 8, 'every criterion is listed');
  assert.equal(await page.textContent('tr[data-criterion=spf] .st'), 'OK');
  assert.match((await page.textContent('.fix-none')) ?? '', /Nothing needs fixing/);
  assert.equal((await page.textContent('.mail-from'))?.endsWith('@safe.test'), true);
  await screenshot(page, 'public-2-result-safe-en');

  // Printable: the print style hides the navigation and the live box.
  await page.emulateMedia({ media: 'print' });
  assert.equal(await page.isVisible('header.top'), false);
  assert.equal(await page.isVisible('.verdict'), true);
  await page.emulateMedia({ media: 'screen' });

  // Reachable later through its private URL, and in Japanese.
  await page.goto(url.replace('lang=en', 'lang=ja'));
  assert.equal(await page.textContent('.verdict'), '安全');
  await screenshot(page, 'public-3-result-safe-ja');
  assert.deepEqual(ui.browser.consoleErrors.filter((e) => /Content Security Policy/i.test(e)), [], 'no CSP violation on our pages');
});

test('an address at a domain that needs improvement: the verdict, the NG criteria and what to fix first', async () => {
  const { page } = ui.browser;
  // The person types an address, not a domain: its domain is used.
  const { address } = await requestThroughForm('info@spf-softfail-nodkim.test', 'ja');
  assert.equal(await page.textContent('.domain'), 'spf-softfail-nodkim.test');
  await screenshot(page, 'public-4-instructions-ja');
  await mailFrom('spf-softfail-nodkim.test', address);
  await page.waitForSelector('.verdict[data-verdict]', { timeout: 90_000 });
  assert.equal(await page.getAttribute('.verdict', 'data-verdict'), 'needs_improvement');
  assert.equal(await page.textContent('tr[data-criterion=spf] .st'), 'NG');
  assert.equal(await page.textContent('tr[data-criterion=dkim] .st'), 'NG');
  const fixes = await page.locator('ol.fixes li strong').allTextContents();
  assert.deepEqual(fixes.slice(0, 2), ['SPFチェック', 'DKIMチェック'], 'SPF and DKIM, which made the verdict, come first');
  await screenshot(page, 'public-5-result-needs-improvement-ja');
});

test('a hostile HELO name with <script> shows as text and runs nothing', async () => {
  const { page } = ui.browser;
  const { address, url } = await requestThroughForm('safe.test', 'en');
  // An EHLO argument is one word (no spaces), anything else goes.
  const hostile = '<script>window.__pwned=1</script><img/src=x/onerror=window.__pwned=2>';
  const r = await sendMail(ui.stack.rx.port, {
    helo: hostile,
    from: 'postmaster@safe.test',
    to: [address],
    data: 'From: <postmaster@safe.test>\r\nSubject: hostile\r\n\r\nbody\r\n',
  });
  assert.equal(r.code, 250, r.text);
  await page.waitForSelector('.verdict[data-verdict]', { timeout: 90_000 });
  assert.equal(await page.textContent('.helo'), hostile, 'the HELO name is shown exactly, as text');
  assert.equal(await page.locator('dd.helo script, dd.helo img').count(), 0, 'no element was created from it');
  assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned ?? null), null);
  const raw = await (await fetch(url)).text();
  assert.ok(raw.includes('&lt;script&gt;window.__pwned=1&lt;/script&gt;'), 'escaped in the HTML source');
  await screenshot(page, 'public-6-hostile-helo');
});

test('results are private: an unknown or malformed token is 404, and nothing lists requests', async () => {
  for (const p of ['/r/aaaaaaaaaaaaaaaaaaaaaaaaaa', '/r/1', '/r/AAAAAAAAAAAAAAAAAAAAAAAAAA', '/r/aaaaaaaaaaaaaaaaaaaaaaaaaa/status.json', '/r/', '/r']) {
    const res = await fetch(ui.stack.baseUrl + p, { redirect: 'manual' });
    assert.equal(res.status, 404, p);
  }
  const res = await fetch(`${ui.stack.baseUrl}/r/aaaaaaaaaaaaaaaaaaaaaaaaaa`);
  assert.equal(res.headers.get('x-robots-tag'), 'noindex, nofollow');
  assert.equal(res.headers.get('cache-control'), 'no-store');
  assert.match(res.headers.get('content-security-policy') ?? '', /script-src 'self'/);
  assert.doesNotMatch(res.headers.get('content-security-policy') ?? '', /unsafe-inline/);
});

test('a domain that is not one gets the form again with the error, and creates nothing', async () => {
  const { page } = ui.browser;
  await page.goto(`${ui.stack.baseUrl}/?lang=en`);
  await page.fill('#domain', 'not a domain <b>');
  await page.click('button[type=submit]');
  await page.waitForSelector('.error');
  assert.match((await page.textContent('.error')) ?? '', /not a valid domain/);
  assert.equal(await page.inputValue('#domain'), 'not a domain <b>');
});
