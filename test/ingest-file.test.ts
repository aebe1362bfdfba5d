// ingestFile against a real Postgres: every line of a messy file ends up somewhere, exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, readFile, access } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import iconv from 'iconv-lite';
import { databaseAndDirForFile } from './helpers/db.ts';
import { ingestFile } from '../ingest/ingest.ts';
import { InputError } from '../lib/errors.ts';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'ingest');
const scratch = databaseAndDirForFile('mailcensus-ingest-');

/** The rejects CSV as rows of [line, reason, detail, value], header checked and BOM stripped. */
async function readRejects(file: string): Promise<string[][]> {
  const { parse } = await import('csv-parse/sync');
  const text = await readFile(file, 'utf8');
  assert.ok(text.startsWith('\ufeffline,reason,detail,value\r\n'), 'rejects CSV starts with a BOM and its header');
  return (parse(text, { bom: true }) as string[][]).slice(1);
}

async function domainsOf(survey: string) {
  return [...await scratch.tdb.sql<{ domain: string; organization: string | null; industry: string | null; tags: string[]; input: string | null }[]>`
    SELECT d.domain, d.organization, d.industry, d.tags, d.input
    FROM survey_domains d JOIN surveys s ON s.id = d.survey_id WHERE s.name = ${survey} ORDER BY d.domain`];
}

// The messy list: UTF-8 with a BOM, CRLF, Japanese headers, every kind of trouble. Line numbers in comments.
const MESSY_LINES = [
  'Domain,会社名,業種,タグ', // 1 header (BOM before it)
  'example.co.jp,株式会社サンプル,製造業,a;b', // 2 accepted
  'INFO@Example.JP,サンプル情報,情報通信業,x|y', // 3 accepted -> example.jp
  'https://www.example.net/about,Example Networks,IT,', // 4 accepted -> www.example.net
  '日本語.jp,日本語株式会社,,idn', // 5 accepted -> xn--wgv71a119e.jp
  '例え.テスト,テスト,,', // 6 accepted -> xn--r8jz45g.xn--zckzah
  'example.co.jp,重複,,', // 7 duplicate of 2
  'Example.CO.JP.,重複その2,,', // 8 duplicate of 2
  '', // 9 blank
  '192.0.2.1,IPv4,,', // 10 ip_literal
  '[2001:db8::1],IPv6,,', // 11 ip_literal
  'user@[192.0.2.1],,,', // 12 ip_literal
  `${'a'.repeat(64)}.jp,,,`, // 13 label_too_long
  `${Array(64).fill('abc').join('.')}.jp,,,`, // 14 name_too_long
  'localhost,,,', // 15 single_label
  '-bad.example.jp,,,', // 16 hyphen
  '"foo bar.jp",,,', // 17 invalid_character
  ',空のドメイン,,', // 18 empty
  'quoted.example.jp,"Foo, Inc.\r\nTokyo branch",サービス業,', // 19-20 accepted: quoted comma and line break
  'junk!!!,,,', // 21 invalid_character
  'ＥＸＡＭＰＬＥ．ＯＲＧ,全角,,', // 22 accepted -> example.org
  'mail.example.ne.jp', // 23 accepted, short row
  ',,,', // 24 blank (only separators)
  '2001:db8::2,,,', // 25 ip_literal
  'info@日本語.jp,,,', // 26 duplicate of 5
];

test('a messy UTF-8 file (BOM, CRLF, IDN, e-mail, URL, junk): every line has exactly one fate', async () => {
  const file = path.join(scratch.dir, 'messy.csv');
  await writeFile(file, `\ufeff${MESSY_LINES.join('\r\n')}\r\n`);
  const s = await ingestFile(scratch.tdb.sql, { file, survey: 'messy' });

  assert.equal(s.encoding, 'utf8');
  assert.equal(s.headerless, false);
  assert.equal(s.lines, 26);
  assert.deepEqual(
    { read: s.read, blank: s.blank, accepted: s.accepted, duplicates: s.duplicates, rejected: s.rejected, added: s.added },
    { read: 22, blank: 2, accepted: 8, duplicates: 3, rejected: 11, added: 8 },
  );
  // header + blank + accepted + duplicate + rejected = physical lines, less the continuation line 20
  assert.equal(1 + s.blank + s.accepted + s.duplicates + s.rejected, s.lines - 1);

  const rows = await readRejects(s.rejectsFile!);
  assert.equal(s.rejectsFile, path.resolve(`${file}.rejects.csv`));
  assert.deepEqual(
    rows.map(([line, reason, , value]) => [Number(line), reason, value]),
    [
      [7, 'duplicate', 'example.co.jp'],
      [8, 'duplicate', 'Example.CO.JP.'],
      [10, 'ip_literal', '192.0.2.1'],
      [11, 'ip_literal', '[2001:db8::1]'],
      [12, 'ip_literal', 'user@[192.0.2.1]'],
      [13, 'label_too_long', `${'a'.repeat(64)}.jp`],
      [14, 'name_too_long', `${Array(64).fill('abc').join('.')}.jp`],
      [15, 'single_label', 'localhost'],
      [16, 'hyphen', "'-bad.example.jp"], // a leading - is neutralised for spreadsheets (lib/csv-cell.ts)
      [17, 'invalid_character', 'foo bar.jp'],
      [18, 'empty', ''],
      [21, 'invalid_character', 'junk!!!'],
      [25, 'ip_literal', '2001:db8::2'],
      [26, 'duplicate', 'info@日本語.jp'],
    ],
  );
  assert.equal(rows[0][2], 'same domain as line 2');
  assert.equal(rows[13][2], 'same domain as line 5');

  assert.deepEqual(await domainsOf('messy'), [
    { domain: 'example.co.jp', organization: '株式会社サンプル', industry: '製造業', tags: ['a', 'b'], input: null },
    { domain: 'example.jp', organization: 'サンプル情報', industry: '情報通信業', tags: ['x', 'y'], input: 'INFO@Example.JP' },
    { domain: 'example.org', organization: '全角', industry: null, tags: [], input: 'ＥＸＡＭＰＬＥ．ＯＲＧ' },
    { domain: 'mail.example.ne.jp', organization: null, industry: null, tags: [], input: null },
    { domain: 'quoted.example.jp', organization: 'Foo, Inc.\r\nTokyo branch', industry: 'サービス業', tags: [], input: null },
    { domain: 'www.example.net', organization: 'Example Networks', industry: 'IT', tags: [], input: 'https://www.example.net/about' },
    { domain: 'xn--r8jz45g.xn--zckzah', organization: 'テスト', industry: null, tags: [], input: '例え.テスト' },
    { domain: 'xn--wgv71a119e.jp', organization: '日本語株式会社', industry: null, tags: ['idn'], input: '日本語.jp' },
  ].sort((a, b) => (a.domain < b.domain ? -1 : 1)));
  const [{ n }] = await scratch.tdb.sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM survey_domains d JOIN surveys s ON s.id = d.survey_id WHERE s.name = 'messy'`;
  assert.equal(n, s.accepted);

  const [ing] = await scratch.tdb.sql`SELECT * FROM ingests WHERE id = ${s.ingestId}`;
  assert.deepEqual(
    [ing.lines_read, ing.accepted, ing.duplicates, ing.rejected, ing.added, ing.blank_lines, ing.encoding],
    [22, 8, 3, 11, 8, 2, 'utf8'],
  );
  assert.deepEqual(ing.reject_reasons, {
    ip_literal: 4, label_too_long: 1, name_too_long: 1, single_label: 1, hyphen: 1, invalid_character: 2, empty: 1,
  });
});

test('re-ingesting the same file adds nothing and records a second ingest with added = 0', async () => {
  const file = path.join(scratch.dir, 'again.csv');
  await writeFile(file, `\ufeff${MESSY_LINES.join('\r\n')}\r\n`);
  const first = await ingestFile(scratch.tdb.sql, { file, survey: 'again' });
  const before = await domainsOf('again');
  const second = await ingestFile(scratch.tdb.sql, { file, survey: 'again' });
  assert.equal(first.added, 8);
  assert.equal(second.added, 0);
  assert.equal(second.created, false);
  assert.deepEqual([second.read, second.accepted, second.duplicates, second.rejected], [22, 8, 3, 11]);
  assert.deepEqual(await domainsOf('again'), before);
  const ingests = await scratch.tdb.sql`SELECT added FROM ingests i JOIN surveys s ON s.id = i.survey_id WHERE s.name = 'again' ORDER BY i.id`;
  assert.deepEqual(ingests.map((r) => r.added), [8, 0]);
});

test('a longer list for an existing survey adds only the new domains and keeps the old ones as they were', async () => {
  const file = path.join(scratch.dir, 'grow.csv');
  await writeFile(file, 'domain,organization\nexample.jp,Old\n');
  await ingestFile(scratch.tdb.sql, { file, survey: 'grow' });
  await writeFile(file, 'domain,organization\nexample.jp,New name\nexample.com,Added\n');
  const s = await ingestFile(scratch.tdb.sql, { file, survey: 'grow' });
  assert.deepEqual([s.accepted, s.added], [2, 1]);
  assert.deepEqual((await domainsOf('grow')).map((d) => [d.domain, d.organization]), [['example.com', 'Added'], ['example.jp', 'Old']]);
});

// What Japanese Excel writes: Shift_JIS (CP932, with ㈱), CRLF, no BOM.
const SJIS_TEXT = [
  'ドメイン,会社名,業種,タグ', // 1
  'example.co.jp,㈱サンプル商事,卸売業,上場;東京', // 2
  'info@example.ne.jp,サンプルネット株式会社,情報通信業,', // 3 -> example.ne.jp
  '日本語.jp,日本語ドメイン株式会社,サービス業,', // 4 -> xn--wgv71a119e.jp
  'ＥＸＡＭＰＬＥ．ＪＰ,全角株式会社,,', // 5 -> example.jp
  'example.co.jp,㈱サンプル商事 重複,,', // 6 duplicate of 2
  'ホームページ,見出しの間違い,,', // 7 invalid_idn? no: a valid IDN label but a single label
].join('\r\n') + '\r\n';

test('a Shift_JIS (CP932) file is detected, decoded and its Japanese names stored intact', async () => {
  const file = path.join(scratch.dir, 'excel-sjis.csv');
  await writeFile(file, iconv.encode(SJIS_TEXT, 'cp932'));
  const s = await ingestFile(scratch.tdb.sql, { file, survey: 'sjis' });
  assert.equal(s.encoding, 'sjis');
  assert.equal(s.encodingDetected, true);
  assert.deepEqual([s.read, s.accepted, s.duplicates, s.rejected, s.added], [6, 4, 1, 1, 4]);
  assert.deepEqual((await domainsOf('sjis')).map((d) => [d.domain, d.organization, d.tags]), [
    ['example.co.jp', '㈱サンプル商事', ['上場', '東京']],
    ['example.jp', '全角株式会社', []],
    ['example.ne.jp', 'サンプルネット株式会社', []],
    ['xn--wgv71a119e.jp', '日本語ドメイン株式会社', []],
  ]);
  const rows = await readRejects(s.rejectsFile!);
  assert.deepEqual(rows.map((r) => [r[0], r[1], r[3]]), [['6', 'duplicate', 'example.co.jp'], ['7', 'single_label', 'ホームページ']]);
});

test('a Shift_JIS file read with --encoding utf8 is refused, naming the first line that is not UTF-8', async () => {
  const file = path.join(scratch.dir, 'sjis-as-utf8.csv');
  await writeFile(file, iconv.encode(SJIS_TEXT, 'cp932'));
  await assert.rejects(ingestFile(scratch.tdb.sql, { file, survey: 'nope', encoding: 'utf8' }), (err: Error) => {
    assert.ok(err instanceof InputError);
    assert.match(err.message, /line 1: not valid UTF-8.*--encoding sjis/);
    return true;
  });
  const [{ n }] = await scratch.tdb.sql`SELECT count(*)::int AS n FROM surveys WHERE name = 'nope'`;
  assert.equal(n, 0);
});

test('bytes that are neither UTF-8 nor CP932 are refused with a hint to pass --encoding', async () => {
  const file = path.join(scratch.dir, 'latin.csv');
  await writeFile(file, Buffer.concat([Buffer.from('domain\nexample.jp\nexample.com,'), Buffer.from([0xff, 0xfe, 0x41]), Buffer.from('\n')]));
  await assert.rejects(ingestFile(scratch.tdb.sql, { file, survey: 'nope' }), /cannot tell its encoding \(not UTF-8 at line 3, not Shift_JIS at line 3\); pass --encoding/);
});

test('a header-less file of one domain per line works, with line numbers counted from line 1', async () => {
  const file = path.join(scratch.dir, 'headerless.txt');
  await writeFile(file, await readFile(path.join(FIXTURES, 'headerless.txt')));
  const s = await ingestFile(scratch.tdb.sql, { file, survey: 'headerless' });
  assert.equal(s.headerless, true);
  assert.deepEqual([s.lines, s.blank, s.read, s.accepted, s.duplicates, s.rejected], [6, 1, 5, 3, 1, 1]);
  assert.deepEqual((await domainsOf('headerless')).map((d) => d.domain), ['example.jp', 'example.ne.jp', 'www.example.co.jp']);
  const rows = await readRejects(s.rejectsFile!);
  assert.deepEqual(rows.map((r) => [r[0], r[1]]), [['5', 'invalid_character'], ['6', 'duplicate']]);
});

test('a failure late in the file leaves an existing survey as it was and creates no new one', async () => {
  const good = path.join(scratch.dir, 'base.csv');
  await writeFile(good, 'domain\nexample.jp\n');
  await ingestFile(scratch.tdb.sql, { file: good, survey: 'atomic' });

  const bad = path.join(scratch.dir, 'late-failure.csv');
  const rows = Array.from({ length: 5000 }, (_, i) => `d${i}.example.jp`);
  await writeFile(bad, `domain\n${rows.join('\n')}\nbad..name\n${'x'.repeat(2048)}\nlast.example.jp\n`);
  for (const survey of ['atomic', 'atomic-new']) {
    await assert.rejects(ingestFile(scratch.tdb.sql, { file: bad, survey, maxRecordSize: 1024 }), (err: Error) => {
      assert.ok(err instanceof InputError);
      assert.match(err.message, /late-failure\.csv line 5003: record longer than 1024 characters/);
      return true;
    });
  }
  assert.deepEqual((await domainsOf('atomic')).map((d) => d.domain), ['example.jp']);
  const surveys = await scratch.tdb.sql`SELECT name FROM surveys WHERE name LIKE 'atomic%' ORDER BY name`;
  assert.deepEqual(surveys.map((r) => r.name), ['atomic']);
  const ingests = await scratch.tdb.sql`SELECT count(*)::int AS n FROM ingests i JOIN surveys s ON s.id = i.survey_id WHERE s.name = 'atomic'`;
  assert.equal(ingests[0].n, 1);
  // No rejects file from the failed ingest, not even its temporary one.
  await assert.rejects(access(`${bad}.rejects.csv`));
  const { readdir } = await import('node:fs/promises');
  assert.deepEqual((await readdir(scratch.dir)).filter((f) => f.startsWith('late-failure.csv.rejects')), []);
});

test('a clean ingest removes the stale rejects file of an earlier ingest of the same file', async () => {
  const file = path.join(scratch.dir, 'fixed.csv');
  await writeFile(file, 'domain\nexample.jp\nlocalhost\n');
  const first = await ingestFile(scratch.tdb.sql, { file, survey: 'fixed' });
  assert.equal(first.rejected, 1);
  await access(`${file}.rejects.csv`);
  await writeFile(file, 'domain\nexample.jp\n');
  const second = await ingestFile(scratch.tdb.sql, { file, survey: 'fixed' });
  assert.equal(second.rejectsFile, null);
  await assert.rejects(access(`${file}.rejects.csv`));
});

test('a dry run counts and writes the rejects CSV but creates no survey', async () => {
  const file = path.join(scratch.dir, 'dry.csv');
  await writeFile(file, 'email\ninfo@example.jp\n192.0.2.1\n');
  const s = await ingestFile(null, { file, survey: 'dry', dryRun: true, rejectsPath: path.join(scratch.dir, 'dry-rejects.csv') });
  assert.deepEqual([s.accepted, s.rejected, s.added], [1, 1, null]);
  assert.deepEqual((await readRejects(path.join(scratch.dir, 'dry-rejects.csv'))).map((r) => r[1]), ['ip_literal']);
  const [{ n }] = await scratch.tdb.sql`SELECT count(*)::int AS n FROM surveys WHERE name = 'dry'`;
  assert.equal(n, 0);
});

test('survey_domains still refuses an unknown survey (SQLSTATE 23503) and follows a deleted survey', async () => {
  await assert.rejects(
    scratch.tdb.sql`INSERT INTO survey_domains (survey_id, domain) VALUES (999999, 'orphan.example.jp')`,
    (err: { code?: string }) => err.code === '23503',
  );
  const file = path.join(scratch.dir, 'cascade.csv');
  await writeFile(file, 'domain\nexample.jp\nexample.com\n');
  await ingestFile(scratch.tdb.sql, { file, survey: 'cascade' });
  await scratch.tdb.sql`DELETE FROM surveys WHERE name = 'cascade'`;
  const [{ n }] = await scratch.tdb.sql`SELECT count(*)::int AS n FROM survey_domains WHERE domain IN ('example.jp', 'example.com')
    AND survey_id NOT IN (SELECT id FROM surveys)`;
  assert.equal(n, 0);
});

test('mixed line ends (CRLF rows, an LF row, a CR row, LF inside a quoted cell) keep line numbers exact', async () => {
  const file = path.join(scratch.dir, 'mixed.csv');
  // line 1 header CRLF; 2 CRLF; 3 LF; 4-5 quoted cell with LF (Excel), CRLF; 6 CR; 7 junk
  await writeFile(file, 'domain,organization\r\na.example.jp,A\r\nb.example.jp,B\nc.example.jp,"C\nbranch"\r\nd.example.jp,D\rjunk here,E\r\n');
  const s = await ingestFile(scratch.tdb.sql, { file, survey: 'mixed' });
  assert.deepEqual([s.lines, s.read, s.accepted, s.rejected], [7, 5, 4, 1]);
  assert.deepEqual((await readRejects(s.rejectsFile!)).map((r) => [r[0], r[1]]), [['7', 'invalid_character']]);
  assert.deepEqual((await domainsOf('mixed')).map((d) => d.organization), ['A', 'B', 'C\nbranch', 'D']);
});

// Lines an unquoted UTF-8 file is read from on its bytes (ingest/ingest-worker.ts, Records.addBytes) when they are
// plain, and through the string path otherwise: white space trim() removes at the edges of cells and tags (ASCII
// and not), bytes COPY text escapes, repeated and empty tags, names the normaliser changes or refuses, repeats,
// short and long rows, characters of 2, 3 and 4 bytes. No double quote: one is added to make the csv-parse copy.
const BYTE_PATH_LINES = [
  'domain,organization,industry,tags,extra',
  'a.example.jp,Org A,製造業,t1;t2,x',
  ' b.example.jp ,  Org B  , \u3000Ind\u3000 ,t1 ; t2 ;; t1|t3,x',
  'c.example.jp,\u00a0Org C,Ind\u00a0,\u00a0t\u00a0;u',
  'd.example.jp,\ufeffOrg D,Ind\ufeff,a\ufeff;b',
  'e.example.jp,Org\tTab,Ind\\Back,ta\\b;t\tc',
  'F.Example.JP,Upper,,',
  '日本語.jp,組織,業種,タグ;タグ',
  'xn--wgv71a119e.jp,again,,',
  'xn--abc.jp,bad punycode,,',
  'axn--b.example.jp,xn-- inside a label,,',
  'g.123,numeric,,',
  '192.0.2.1,ip,,',
  'a.example.jp,dup,,',
  ' A.EXAMPLE.JP ,dup2,,',
  ',no domain,ind,tags',
  ',,,,',
  '',
  'h.example.jp',
  `${'a'.repeat(63)}.jp,63,,`,
  `${'a'.repeat(64)}.jp,64,,`,
  `${Array(63).fill('abc').join('.')}.a.jp,253,,`,
  `${Array(63).fill('abc').join('.')}.ab.jp,254,,`,
  '-i.example.jp,,,',
  'i-.example.jp,,,',
  'localhost,,,',
  'j.example.jp,Emoji 😀,😀Ind,😀tag;tag😀;😀',
  'info@l.example.jp,email,,',
  'https://m.example.jp/x,url,,',
  'n.example.jp,Org\x01,\x0bInd\x0c,\x0bt\x0c;t',
  'o.example.jp,   ,   ,   ',
  'p.example.jp,\u2028Org\u2029,Ind\u3000x,\u205ft;\u3000',
  `r.example.jp,${Array(70).fill('f').join(',')}`,
  's.example.jp.,trailing dot,,',
  't..example.jp,,,',
  'u.example.jp,o,i,',
  'v.example.jp,o,i,;|;',
  'w.example.jp,カタカナ,ス,ス;ス',
  'x1.example.jp,ｶﾀｶﾅ,Ａ,Ｂ',
  'y.example.jp,{curly},[sq],{a};b}',
  'z.example.jp,=SUM(1),+1,-t;@t',
  '1.2.3.4.example.jp,,,',
  'Ab.example.jp,mixed,,',
];

for (const eol of ['\n', '\r\n']) {
  test(`an unquoted file (${JSON.stringify(eol)}) read on its bytes gives what csv-parse gives, line by line`, async () => {
    const tag = eol === '\n' ? 'lf' : 'crlf';
    const plain = path.join(scratch.dir, `bytes-${tag}.csv`);
    const quoted = path.join(scratch.dir, `bytes-${tag}-quoted.csv`);
    // (No lone CR: it would make the line ends "mixed", which csv-parse reads.)
    await writeFile(plain, `\ufeff${BYTE_PATH_LINES.join(eol)}${eol}`);
    await writeFile(quoted, `\ufeff${BYTE_PATH_LINES.join(eol)}${eol}"zz.example.jp",last,,${eol}`);
    const a = await ingestFile(scratch.tdb.sql, { file: plain, survey: `bytes-${tag}` });
    const b = await ingestFile(scratch.tdb.sql, { file: quoted, survey: `bytes-${tag}-quoted` });
    assert.ok(a.accepted > 20 && a.duplicates >= 3 && a.rejected > 8, JSON.stringify(a));
    const counts = (s: typeof a) => [s.lines, s.read, s.blank, s.accepted, s.duplicates, s.rejected, s.rejectReasons];
    assert.deepEqual(counts(b), counts({ ...a, lines: a.lines + 1, read: a.read + 1, accepted: a.accepted + 1 }));
    assert.deepEqual(await domainsOf(`bytes-${tag}`), (await domainsOf(`bytes-${tag}-quoted`)).filter((r) => r.domain !== 'zz.example.jp'));
    assert.equal(await readFile(a.rejectsFile!, 'utf8'), await readFile(b.rejectsFile!, 'utf8'));
    const [{ n }] = await scratch.tdb.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM survey_domains d JOIN surveys s ON s.id = d.survey_id
      WHERE s.name = ${`bytes-${tag}`} AND d.organization IS NOT NULL AND d.tags <> '{}'`;
    assert.ok(n >= 5, 'rows with cells and tags were compared');
  });
}
