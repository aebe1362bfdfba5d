// Finds and launches a headless Chromium for the PDF (and anything else that needs a real browser, e.g.
// screenshots of the web UI): Debian's `chromium` when it is installed, else the chrome-headless-shell that
// ships inside the npm package @sparticuz/chromium (brotli-compressed in node_modules, no download at install
// time), unpacked once into a cache folder (we read only its files, not its Lambda-minded code). Either is
// driven by playwright-core. So after `npm ci` alone a
// machine can print PDFs; a broken or missing system browser falls back to the bundled one.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, createReadStream, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createBrotliDecompress } from 'node:zlib';
import type { Browser, Page } from 'playwright-core';
import { ServiceUnavailableError } from './errors.ts';

/** Debian's `chromium` package (a wrapper script that runs /usr/lib/chromium/chromium). */
export const SYSTEM_CHROMIUM = '/usr/bin/chromium';

/** `--chromium` values: `auto` (system, else bundled), `system`, `bundled`, or a path to an executable. */
export type ChromiumChoice = 'auto' | 'system' | 'bundled' | (string & {});

export interface LaunchedBrowser {
  browser: Browser;
  /** The executable that runs. */
  executable: string;
  /** Where it came from: the system package, the npm package, or a path given by the user. */
  kind: 'system' | 'bundled' | 'path';
}

/** Flags for a headless, offline, throwaway browser: no background services may reach the network. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--no-default-browser-check',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-domain-reliability',
  '--disable-sync',
  '--no-pings',
  '--font-render-hinting=none',
];

/** The bundled headless shell is built for Lambda: one process, no zygote (its sandbox helpers are absent). */
const BUNDLED_ARGS = ['--no-zygote', '--single-process', '--disable-dev-shm-usage'];

const LAUNCH_TIMEOUT_MS = 60_000;

export class ChromiumUnavailableError extends ServiceUnavailableError {
  constructor(message: string) {
    super(message);
    this.name = 'ChromiumUnavailableError';
  }
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    // A directory passes X_OK too; only a file is a browser.
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** The system Chromium, or null when it is not installed (missing or not executable). */
export function systemChromium(): string | null {
  return isExecutable(SYSTEM_CHROMIUM) ? SYSTEM_CHROMIUM : null;
}

const require = createRequire(import.meta.url);

/** Root folder and version of the installed @sparticuz/chromium, or null when the package is not installed. */
function bundledPackage(): { root: string; version: string } | null {
  try {
    // Its exports map hides package.json: walk up from the entry point to the package's root.
    let dir = path.dirname(require.resolve('@sparticuz/chromium'));
    for (let i = 0; i < 5; i++, dir = path.dirname(dir)) {
      const file = path.join(dir, 'package.json');
      if (!existsSync(file)) continue;
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === '@sparticuz/chromium' && pkg.version) return { root: dir, version: pkg.version };
    }
    return null;
  } catch {
    return null;
  }
}

/** Unpacks a .tar.br of the package with node's brotli and the system's tar (Debian: essential) into `dir`. */
async function untarBrotli(file: string, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await new Promise<void>((resolve, reject) => {
    const tar = spawn('tar', ['-x', '--no-same-owner', '--no-same-permissions', '-C', dir], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    tar.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    tar.on('error', reject);
    tar.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`tar -x of ${file} failed (${code}): ${err.trim()}`))));
    pipeline(createReadStream(file), createBrotliDecompress(), tar.stdin).catch(reject);
  });
}

/** Where the bundled browser is unpacked: $XDG_CACHE_HOME or ~/.cache, else the temp folder. */
function cacheRoot(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  const candidates = [xdg ? path.join(xdg, 'mailcensus') : null, path.join(os.homedir(), '.cache', 'mailcensus'), path.join(os.tmpdir(), `mailcensus-${process.getuid?.() ?? 'user'}`)];
  for (const c of candidates) {
    if (!c) continue;
    try {
      mkdirSync(c, { recursive: true });
      accessSync(c, constants.W_OK);
      return c;
    } catch {
      // not writable (read-only home, no home): try the next one
    }
  }
  throw new ChromiumUnavailableError('no writable cache folder to unpack the bundled Chromium into (set XDG_CACHE_HOME)');
}

let unpacking: Promise<string> | null = null;

/** Decompresses one brotli file of the package to `out` (the browser binary itself). */
async function unbrotli(file: string, out: string, mode: number): Promise<void> {
  await pipeline(createReadStream(file), createBrotliDecompress({ chunkSize: 2 ** 21 }), createWriteStream(out, { mode }));
}

/**
 * Unpacks the browser of @sparticuz/chromium (about 200 MB, 2–5 s) into the cache once and returns its path:
 * the binary (chromium.br), its software GL libraries (swiftshader.tar.br), its fonts (fonts.tar.br) and the
 * NSS, NSPR and expat libraries a machine without a browser package usually lacks (al2023.tar.br; the
 * package itself unpacks those only on Amazon Linux). Everything goes into a fresh staging folder renamed
 * into place when complete, so concurrent processes never run a half-written binary.
 */
export async function bundledChromium(): Promise<string> {
  unpacking ??= (async () => {
    const pkg = bundledPackage();
    if (pkg === null) throw new ChromiumUnavailableError('the npm package @sparticuz/chromium is not installed (run `npm ci`)');
    const { version } = pkg;
    const bin = path.join(pkg.root, 'bin');
    const root = cacheRoot();
    const dir = path.join(root, `chromium-${version}`);
    const binary = path.join(dir, 'chromium');
    const complete = () => existsSync(path.join(dir, '.complete')) && isExecutable(binary);
    if (complete()) return binary;
    const staging = mkdtempSync(path.join(root, `.chromium-${version}-`));
    try {
      await Promise.all([
        unbrotli(path.join(bin, 'chromium.br'), path.join(staging, 'chromium'), 0o755),
        untarBrotli(path.join(bin, 'swiftshader.tar.br'), staging),
        untarBrotli(path.join(bin, 'fonts.tar.br'), path.join(staging, 'fonts')),
        untarBrotli(path.join(bin, 'al2023.tar.br'), path.join(staging, 'al2023')),
      ]);
      writeFileSync(path.join(staging, '.complete'), `${version}\n`);
    } catch (err) {
      rmSync(staging, { recursive: true, force: true });
      throw new ChromiumUnavailableError(`cannot unpack the bundled Chromium from ${bin}: ${(err as Error).message}`);
    }
    try {
      renameSync(staging, dir);
    } catch {
      // Another process got there first (or an incomplete old folder is in the way): keep the complete one.
      if (complete()) {
        rmSync(staging, { recursive: true, force: true });
        return binary;
      }
      rmSync(dir, { recursive: true, force: true });
      renameSync(staging, dir);
    }
    return binary;
  })();
  try {
    return await unpacking;
  } catch (err) {
    unpacking = null;
    throw err;
  }
}

/**
 * The environment of the bundled browser: its libraries first, and a fontconfig file that reads the
 * machine's fonts when there are any (the file FONTCONFIG_FILE names, else /etc/fonts/fonts.conf; missing is
 * fine) plus the package's Open Sans. Chromium draws no text at all, web fonts included, when fontconfig
 * knows no font, so that one is always there; the shell's own fonts.conf points at Lambda's folders.
 */
function bundledEnv(executable: string): NodeJS.ProcessEnv {
  const dir = path.dirname(executable);
  const system = process.env.FONTCONFIG_FILE ?? '/etc/fonts/fonts.conf';
  const fontsConf = path.join(dir, `mailcensus-fonts-${createHash('sha256').update(system).digest('hex').slice(0, 12)}.conf`);
  if (!existsSync(fontsConf)) {
    const xmlEsc = (x: string) => x.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    const xml = `<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>\n  <include ignore_missing="yes">${xmlEsc(system)}</include>\n  <dir>${xmlEsc(path.join(dir, 'fonts'))}</dir>\n  <cachedir>${xmlEsc(path.join(dir, 'fontconfig-cache'))}</cachedir>\n</fontconfig>\n`;
    const tmp = `${fontsConf}.${process.pid}`;
    writeFileSync(tmp, xml);
    renameSync(tmp, fontsConf);
  }
  const lib = path.join(dir, 'al2023', 'lib');
  const ld = process.env.LD_LIBRARY_PATH;
  return { ...process.env, LD_LIBRARY_PATH: ld ? `${lib}:${ld}` : lib, FONTCONFIG_FILE: fontsConf };
}

async function launch(executable: string, kind: LaunchedBrowser['kind']): Promise<LaunchedBrowser> {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: executable,
    headless: true,
    args: kind === 'bundled' ? [...CHROMIUM_ARGS, ...BUNDLED_ARGS] : CHROMIUM_ARGS,
    timeout: LAUNCH_TIMEOUT_MS,
    env: kind === 'bundled' ? bundledEnv(executable) : { ...process.env },
  });
  return { browser, executable, kind };
}

/**
 * Launches headless Chromium. `auto` (the default): the system browser when installed and it starts, else the
 * bundled one; `system` / `bundled`: only that one; anything else: the executable at that path.
 */
export async function launchChromium(choice: ChromiumChoice = 'auto'): Promise<LaunchedBrowser> {
  const failures: string[] = [];
  if (choice !== 'auto' && choice !== 'system' && choice !== 'bundled') {
    if (!isExecutable(choice)) throw new ChromiumUnavailableError(`--chromium ${choice}: no executable there (use auto, system, bundled or a path)`);
    try {
      return await launch(choice, 'path');
    } catch (err) {
      throw new ChromiumUnavailableError(`--chromium ${choice} did not start: ${firstLine(err)}`);
    }
  }
  if (choice === 'auto' || choice === 'system') {
    const sys = systemChromium();
    if (sys) {
      try {
        return await launch(sys, 'system');
      } catch (err) {
        failures.push(`${sys} did not start: ${firstLine(err)}`);
      }
    } else {
      failures.push(`${SYSTEM_CHROMIUM} is not installed`);
    }
    if (choice === 'system') throw new ChromiumUnavailableError(`${failures.join('; ')} (Debian/Ubuntu: \`sudo apt-get install chromium\`, or use --chromium bundled)`);
  }
  try {
    return await launch(await bundledChromium(), 'bundled');
  } catch (err) {
    failures.push(`the bundled Chromium (@sparticuz/chromium) did not start: ${firstLine(err)}`);
  }
  throw new ChromiumUnavailableError(`no usable Chromium: ${failures.join('; ')}`);
}

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n').find((l) => l.trim() !== '')?.trim() ?? 'unknown error';
}

/**
 * Opens a fresh page in a new headless browser, runs `fn`, and always closes the browser. The page may load
 * nothing from the network: every request but data: URLs is aborted (what it shows must be self-contained,
 * or served from loopback when `allowLoopback` is set, e.g. for the web UI).
 */
export async function withChromiumPage<T>(
  fn: (page: Page, launched: LaunchedBrowser) => Promise<T>,
  options: { chromium?: ChromiumChoice; allowLoopback?: boolean } = {},
): Promise<T> {
  const launched = await launchChromium(options.chromium ?? 'auto');
  try {
    const context = await launched.browser.newContext();
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('data:') || url === 'about:blank') return route.continue();
      if (options.allowLoopback && isLoopbackUrl(url)) return route.continue();
      return route.abort();
    });
    const page = await context.newPage();
    return await fn(page, launched);
  } finally {
    await launched.browser.close().catch(() => {});
  }
}

function isLoopbackUrl(url: string): boolean {
  try {
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
  } catch {
    return false;
  }
}
