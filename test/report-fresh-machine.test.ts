// README's first command on a machine without Debian's chromium and without any system font (so without
// fonts-noto-cjk): `npm run demo` still exits 0 and writes a PDF with Japanese text, printed by the browser
// inside node_modules (@sparticuz/chromium) with the font embedded in the page. The demo runs on the small
// world lab/worlds/tiny.json (its 2 senders) so that the file stays well within the suite's time limit on a
// busy machine; test/demo.test.ts runs the full 2021 world.
//
// Where we may create a mount namespace (root, or CAP_SYS_ADMIN), the demo runs in one where /usr/bin/chromium
// is an empty non-executable file, /usr/lib/chromium, every system font folder and the fontconfig caches are
// empty, and the NSS/NSPR libraries Chromium needs are empty files: as on a fresh Debian. Elsewhere it runs
// with --chromium bundled and a fontconfig file that lists no fonts, which hides the same things from the
// browser without privileges. Either way the bundled browser is unpacked afresh (a new XDG_CACHE_HOME).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { databaseAndDirForFile } from './helpers/db.ts';
import { demoCommand, runToExit } from './helpers/run-to-exit.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const run = promisify(execFile);
const scratch = databaseAndDirForFile('mc-fresh-');

const HIDDEN_DIRS = ['/usr/lib/chromium', '/usr/share/fonts', '/usr/local/share/fonts', '/var/cache/fontconfig', '/etc/fonts/conf.d'];
const HIDDEN_LIBS = ['libnss3.so', 'libnssutil3.so', 'libnspr4.so', 'libplc4.so', 'libplds4.so', 'libsmime3.so'];

/** A shell script that hides the browser and the fonts in a private mount namespace, then runs `cmd`. */
function hidingScript(empty: string, cmd: string): string {
  const lines = ['set -e', 'mount --make-rprivate /'];
  for (const d of HIDDEN_DIRS) lines.push(`if [ -d ${d} ]; then mount -t tmpfs none ${d}; fi`);
  lines.push(`if [ -e /usr/bin/chromium ]; then mount --bind ${empty} /usr/bin/chromium; fi`);
  for (const l of HIDDEN_LIBS) lines.push(`for f in /usr/lib/x86_64-linux-gnu/${l} /usr/lib/aarch64-linux-gnu/${l}; do if [ -e "$f" ]; then mount --bind ${empty} "$f"; fi; done`);
  lines.push(cmd);
  return lines.join('\n');
}

const canUnshare = () => spawnSync('unshare', ['-m', 'true'], { stdio: 'ignore' }).status === 0;

test('npm run demo exits 0 and writes a Japanese PDF without system Chromium and without system fonts', async () => {
  const out = path.join(scratch.dir, 'out');
  const empty = path.join(scratch.dir, 'empty');
  writeFileSync(empty, '', { mode: 0o644 });
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: scratch.tdb.url, XDG_CACHE_HOME: path.join(scratch.dir, 'cache') };
  const demo = demoCommand(out, ['--workers', '1', '--world', path.join(ROOT, 'lab/worlds/tiny.json')]);
  let argv: string[];
  const isolated = canUnshare();
  if (isolated) {
    const probe = `${demo.map((a) => `'${a}'`).join(' ')}`;
    // Inside the namespace, first prove what is hidden: no executable chromium, no font at all.
    const checks = `test ! -x /usr/bin/chromium; if command -v fc-list >/dev/null; then test -z "$(fc-list)"; fi; echo hidden-ok >&2`;
    argv = ['unshare', '-m', 'sh', '-c', hidingScript(empty, `${checks}\nexec ${probe}`)];
  } else {
    const noFonts = path.join(scratch.dir, 'no-fonts.conf');
    writeFileSync(noFonts, '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig><cachedir>' + path.join(scratch.dir, 'fc-cache') + '</cachedir></fontconfig>\n');
    env.FONTCONFIG_FILE = noFonts;
    argv = [...demo, '--chromium', 'bundled'];
  }
  const { code, stderr } = await runToExit(argv, env);
  assert.equal(code, 0, stderr.slice(-3000));
  if (isolated) assert.match(stderr, /hidden-ok/);
  assert.match(stderr, /all 2 test mails diagnosed/);
  const pdf = path.join(out, 'report.pdf');
  assert.ok(existsSync(pdf) && statSync(pdf).size > 10_000, `report.pdf written:\n${stderr.slice(-2000)}`);
  assert.ok(existsSync(path.join(scratch.dir, 'cache', 'mailcensus')), 'the bundled browser was unpacked into the fresh cache');
  const { stdout } = await run('pdftotext', ['-enc', 'UTF-8', pdf, '-']);
  const text = stdout.replace(/\s+/g, '');
  for (const s of ['メールサーバセキュリティ診断統計レポート', '総合評価', '改善が必要', '送信元DNS逆引き', '危険']) assert.ok(text.includes(s), `PDF contains ${s}`);
  // The glyphs are the embedded web font's, not a system font's.
  const fonts = await run('pdffonts', [pdf]).then((r) => r.stdout, () => '');
  if (fonts) assert.match(fonts, /NotoSansJP/);
  const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8'));
  assert.equal(report.domains, 2);
  assert.equal(report.verdicts.danger.n, 1, 'open.test is an open relay');
});
