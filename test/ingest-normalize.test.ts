import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeDomain, splitTags } from '../ingest/normalize.ts';
import { detectLayout } from '../ingest/columns.ts';
import { firstInvalidUtf8 } from '../ingest/sniff.ts';

const accepted: [string, string][] = [
  ['example.jp', 'example.jp'],
  ['  Example.CO.JP  ', 'example.co.jp'],
  ['example.jp.', 'example.jp'],
  ['info@example.co.jp', 'example.co.jp'],
  ['"Sales" <Sales@Example.JP>', 'example.jp'],
  ['mailto:info@example.jp?subject=hi', 'example.jp'],
  ['https://www.example.jp/about', 'www.example.jp'],
  ['http://user:pw@Example.jp:8080/x?y#z', 'example.jp'],
  ['www.example.jp/about', 'www.example.jp'],
  ['example.jp:25', 'example.jp'],
  ['日本語.jp', 'xn--wgv71a119e.jp'],
  ['例え.テスト', 'xn--r8jz45g.xn--zckzah'],
  ['ＥＸＡＭＰＬＥ．ＪＰ', 'example.jp'],
  ['example。jp', 'example.jp'],
  ['info@日本語.jp', 'xn--wgv71a119e.jp'],
  ['XN--WGV71A119E.JP', 'xn--wgv71a119e.jp'],
  ['\ufeffexample.jp\u200b', 'example.jp'],
  ['a-b.example.jp', 'a-b.example.jp'],
  ['123.example.jp', '123.example.jp'],
  [`${'a'.repeat(63)}.jp`, `${'a'.repeat(63)}.jp`],
];

for (const [input, domain] of accepted) {
  test(`${JSON.stringify(input)} is normalised to ${domain}`, () => {
    assert.deepEqual(normalizeDomain(input), { ok: true, domain });
  });
}

const rejected: [string, string][] = [
  ['', 'empty'],
  ['   ', 'empty'],
  ['info@', 'empty'],
  ['a.jp\nb.jp', 'multiline'],
  ['192.0.2.1', 'ip_literal'],
  ['192.0.2.1.', 'ip_literal'],
  ['2001:db8::1', 'ip_literal'],
  ['[2001:db8::1]', 'ip_literal'],
  ['[192.0.2.1]', 'ip_literal'],
  ['user@[192.0.2.1]', 'ip_literal'],
  ['http://[2001:db8::1]/', 'ip_literal'],
  ['１９２.０.２.１', 'ip_literal'],
  ['1.2.3', 'ip_literal'],
  ['ex ample.jp', 'invalid_character'],
  ['under_score.jp', 'invalid_character'],
  ['junk!!!', 'invalid_character'],
  ['a,b.jp', 'invalid_character'],
  ['example..jp', 'empty_label'],
  ['.example.jp', 'empty_label'],
  ['example.jp..', 'empty_label'],
  [`${'a'.repeat(64)}.jp`, 'label_too_long'],
  ['日本語のドメイン名はとても長くなることがありますので注意が必要ですよね.jp', 'label_too_long'], // A-label > 63 octets
  [`${Array(64).fill('abc').join('.')}.jp`, 'name_too_long'],
  ['-example.jp', 'hyphen'],
  ['example-.jp', 'hyphen'],
  ['localhost', 'single_label'],
  ['jp.', 'single_label'],
  ['example.123', 'numeric_tld'],
  ['xn--a.jp', 'invalid_idn'],
  ['xn--abc-.jp', 'hyphen'],
  ['exa mple.日本', 'invalid_idn'],
];

for (const [input, reason] of rejected) {
  test(`${JSON.stringify(input.length > 40 ? `${input.slice(0, 40)}…` : input)} is rejected as ${reason}`, () => {
    const r = normalizeDomain(input);
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.reason, reason);
  });
}

test('a name of exactly 253 octets is accepted and 254 is not (RFC 1035 §2.3.4)', () => {
  const n253 = `${Array(3).fill('a'.repeat(63)).join('.')}.${'b'.repeat(61)}`;
  assert.equal(n253.length, 253);
  assert.deepEqual(normalizeDomain(n253), { ok: true, domain: n253 });
  const n254 = `${Array(3).fill('a'.repeat(63)).join('.')}.${'b'.repeat(62)}`;
  const r = normalizeDomain(n254);
  assert.equal(!r.ok && r.reason, 'name_too_long');
});

test('tags split on ";" and "|", trimmed, without empties or repeats', () => {
  assert.deepEqual(splitTags(' a; b|c ;; a |'), ['a', 'b', 'c']);
  assert.deepEqual(splitTags(''), []);
  assert.deepEqual(splitTags(undefined), []);
});

test('header names are recognised in English and Japanese, any case and width', () => {
  const r = detectLayout(['\ufeffＤｏｍａｉｎ ', '会社名', 'Industry', 'タグ']);
  assert.ok(r.ok);
  assert.deepEqual(r.ok && [r.layout.domain, r.layout.organization, r.layout.industry, r.layout.tags], [[0], 1, 2, 3]);
  const e = detectLayout(['組織', 'メールアドレス', 'URL']);
  assert.ok(e.ok && !e.layout.headerless);
  assert.deepEqual(e.ok && e.layout.domain, [1, 2]);
});

test('a first line that is a single domain means a header-less file', () => {
  const r = detectLayout(['example.jp']);
  assert.ok(r.ok && r.layout.headerless);
});

test('a header without a domain column is refused, naming its fields', () => {
  const r = detectLayout(['name', 'phone']);
  assert.equal(r.ok, false);
  assert.match(!r.ok ? r.message : '', /no domain column.*"name", "phone"/);
});

test('the UTF-8 validator finds the first bad byte, overlongs and surrogates included', () => {
  assert.equal(firstInvalidUtf8(Buffer.from('aé日😀', 'utf8')), -1);
  assert.equal(firstInvalidUtf8(Buffer.from([0x61, 0x82, 0xa0])), 1); // Shift_JIS "あ"
  assert.equal(firstInvalidUtf8(Buffer.from([0xc0, 0xaf])), 0); // overlong "/"
  assert.equal(firstInvalidUtf8(Buffer.from([0xed, 0xa0, 0x80])), 0); // U+D800
  assert.equal(firstInvalidUtf8(Buffer.from([0x61, 0xe6, 0x97])), 1); // truncated
});
