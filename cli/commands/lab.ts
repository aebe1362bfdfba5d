// `mailcensus lab …`: bring a lab world up, validate it, make its senders send, generate benchmark worlds.
// Heavy modules (the servers, forge, ajv) are imported inside the actions.
import { writeFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { action, intOption as runIntOption, untilSignal } from '../run.ts';
import { InputError } from '../../lib/errors.ts';

/** A world error lists every problem on its own line: print them all, not only the first (exit 2). */
function printAll(err: unknown): number | never {
  if (err instanceof InputError && err.message.includes('\n')) {
    process.stderr.write(`mailcensus: error: ${err.message}\n`);
    return 2;
  }
  throw err;
}

/** An integer option whose bad value commander reports as a usage error (exit 2), not a crash. */
function intOption(name: string) {
  const parse = runIntOption(name);
  return (raw: string): number => {
    try {
      return parse(raw);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
}

function portOption(name: string) {
  const parse = intOption(name);
  return (raw: string): number => {
    const n = parse(raw);
    if (n < 0 || n > 65535) throw new InvalidArgumentError(`${name} must be 0..65535, got ${raw}`);
    return n;
  };
}

function intRange(name: string, min: number, max: number) {
  const parse = intOption(name);
  return (raw: string): number => {
    const n = parse(raw);
    if (n < min || n > max) throw new InvalidArgumentError(`${name} must be ${min}..${max}, got ${raw}`);
    return n;
  };
}

function numberOption(name: string, min: number, max: number) {
  return (raw: string): number => {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be a number in ${min}..${max}, got "${raw}"`);
    }
    return n;
  };
}

export function register(program: Command): void {
  const lab = program.command('lab').description('the lab: a simulated internet of mail domains on loopback (docs/lab.md)');

  lab
    .command('up')
    .description('start a world (DNS, SMTP hosts) until Ctrl-C/SIGTERM; prints the env that points mailcensus at it')
    .requiredOption('--world <file>', 'world file (JSON, lab world format version 1 or 2)')
    .option('--dns-port <n>', 'UDP+TCP port of the lab resolver on 127.0.0.1 (0 = any free port)', portOption('--dns-port'), 5300)
    .option('--smtp-port <n>', 'SMTP port on every host address (0 = any free port)', portOption('--smtp-port'), 2525)
    .option('--https-port <n>', 'HTTPS port of the MTA-STS policy hosts (0 = any free port)', portOption('--https-port'), 8443)
    .option('--env-file <path>', 'also write the env lines (KEY=value) to this file (Node 20: the file must exist, see --env-out)')
    // Node 20 scans its whole argv for --env-file, even after the script, and dies if that file does not exist:
    // --env-out is the same option without the clash.
    .option('--env-out <path>', 'same as --env-file')
    .option('--state-dir <dir>', 'where the lab CA, the SMTP log and lab.json go', '.lab')
    .option('--max-sessions <n>', 'concurrent SMTP sessions per lab process; beyond it 421 4.7.0', intRange('--max-sessions', 1, 100_000), 1000)
    .action(
      action(async (opts: { world: string; dnsPort: number; smtpPort: number; httpsPort: number; envFile?: string; envOut?: string; stateDir: string; maxSessions: number }) => {
        const envFile = opts.envOut ?? opts.envFile;
        const { startLab, formatEnv } = await import('../../lab/index.ts');
        let running;
        try {
          running = await startLab(opts.world, { dnsPort: opts.dnsPort, smtpPort: opts.smtpPort, httpsPort: opts.httpsPort, stateDir: opts.stateDir, maxSessions: opts.maxSessions });
        } catch (err) {
          return printAll(err);
        }
        const text = formatEnv(running.env);
        if (envFile) {
          try {
            writeFileSync(envFile, text);
          } catch (err) {
            await running.stop();
            throw new InputError(`cannot write the env file ${envFile}: ${(err as Error).message}`);
          }
        }
        process.stdout.write(text);
        const listening = [...running.world.hosts.values()].filter((h) => h.smtp.behavior !== 'refuse').length;
        const policies = running.world.domains.filter((d) => d.mtaStsPolicy).length;
        process.stderr.write(
          `lab "${running.world.name}" is up: ${running.world.domains.length} domains, ${listening} SMTP hosts${policies ? `, ${policies} MTA-STS policy hosts` : ''}; ` +
            `DNS ${running.dns.host}:${running.dns.port}, SMTP port ${running.smtpPort}, HTTPS port ${running.httpsPort}. Ctrl-C or SIGTERM stops it.\n`,
        );
        const signal = await untilSignal();
        // A second signal while stopping means "now".
        const force = () => process.exit(130);
        process.once('SIGINT', force);
        process.once('SIGTERM', force);
        await running.stop();
        process.stderr.write(`lab stopped (${signal})\n`);
        // Every socket is closed; should a library keep a stray handle, do not hang on it.
        setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
        return 0;
      }),
    );

  lab
    .command('validate')
    .description('check a world file against the format; prints every error with its JSON path (exit 2)')
    .requiredOption('--world <file>', 'world file')
    .action(
      action(async (opts: { world: string }) => {
        const { loadWorld } = await import('../../lab/world.ts');
        try {
          const w = loadWorld(opts.world);
          const listening = [...w.hosts.values()].filter((h) => h.smtp.behavior !== 'refuse').length;
          const senders = w.domains.filter((d) => d.sender).length;
          console.log(`ok: world "${w.name}": ${w.domains.length} domains, ${w.hosts.size} hosts (${listening} listening), ${senders} senders, DNSBL zones ${w.dnsbls.join(', ') || 'none'}`);
          return 0;
        } catch (err) {
          return printAll(err);
        }
      }),
    );

  lab
    .command('send')
    .description('make every domain with a sender send one test mail to HOST:PORT, from its sender host\'s IP')
    .requiredOption('--world <file>', 'world file')
    .requiredOption('--to <host:port>', 'the receiving SMTP server')
    .option('--rcpt <address>', 'recipient address (default: chosen by the sender)')
    .option('--concurrency <n>', 'mails in flight at once', intOption('--concurrency'))
    .action(
      action(async (opts: { world: string; to: string; rcpt?: string; concurrency?: number }) => {
        const { parseHostPort } = await import('../../lib/config.ts');
        const { loadWorld } = await import('../../lab/world.ts');
        const { sendTestMails } = await import('../../lab/sender.ts');
        if (!/:\d+$/.test(opts.to)) throw new InputError(`--to must be HOST:PORT, got "${opts.to}"`);
        const to = parseHostPort(opts.to, 25, '--to');
        if (opts.concurrency !== undefined && opts.concurrency < 1) throw new InputError('--concurrency must be >= 1');
        let world;
        try {
          world = loadWorld(opts.world);
        } catch (err) {
          return printAll(err);
        }
        const results = await sendTestMails(world, { to, rcpt: opts.rcpt, concurrency: opts.concurrency });
        const failed = results.filter((r) => !r.ok);
        for (const r of failed) process.stderr.write(`failed: ${r.domain} from ${r.clientIp}: ${r.error ?? 'unknown error'}\n`);
        console.log(`sent ${results.length - failed.length}, failed ${failed.length} (to ${to.host}:${to.port})`);
        return failed.length > 0 ? 1 : 0;
      }),
    );

  lab
    .command('generate')
    .description('write a benchmark world: N domains, a few providers\' MX hosts shared by a large share of them')
    .requiredOption('--domains <n>', 'number of domains', intOption('--domains'))
    .option('--profile <name>', 'uniform (every answer delayed alike) or internet (long-tailed latency, slow greeters, tarpits, greylisting, Zipf providers; docs/lab.md)', 'uniform')
    .option('--shared-mx-share <x>', 'share of domains whose MX is a provider host (0..1); default 0.4, internet 0.75', numberOption('--shared-mx-share', 0, 1))
    .option('--providers <n>', 'number of providers; default 5, internet 60', intOption('--providers'))
    .option('--dns-latency <ms>', 'uniform: latency.dnsMs of the world', intOption('--dns-latency'), 0)
    .option('--smtp-latency <ms>', 'uniform: latency.smtpRttMs of the world', intOption('--smtp-latency'), 0)
    .option('--seed <n>', 'random seed (same seed, same world)', intOption('--seed'), 1)
    .option('--zipf <s>', 'internet: Zipf exponent of the providers\' shares', numberOption('--zipf', 0, 4))
    .option('--mx-addresses <n>', 'internet: A records per MX name of the large providers (others 2)', intOption('--mx-addresses'))
    .option('--latency-median <ms>', 'internet: median of the log-normal DNS/SMTP latency', intOption('--latency-median'))
    .option('--latency-sigma <x>', 'internet: sigma of the log-normal latency', numberOption('--latency-sigma', 0, 4))
    .option('--latency-min <ms>', 'internet: latency floor', intOption('--latency-min'))
    .option('--latency-max <ms>', 'internet: latency cap', intOption('--latency-max'))
    .option('--postscreen-share <x>', 'internet: share of self-hosted MX greeting after --postscreen-delay', numberOption('--postscreen-share', 0, 1))
    .option('--postscreen-delay <ms>', 'internet: postscreen greeting delay', intOption('--postscreen-delay'))
    .option('--tarpit-share <x>', 'internet: share of self-hosted MX greeting after --tarpit-delay', numberOption('--tarpit-share', 0, 1))
    .option('--tarpit-delay <ms>', 'internet: tarpit greeting delay', intOption('--tarpit-delay'))
    .option('--silent-share <x>', 'internet: share of self-hosted MX that never greet', numberOption('--silent-share', 0, 1))
    .option('--greylist-share <x>', 'internet: share of self-hosted MX that greylist (450 on RCPT)', numberOption('--greylist-share', 0, 1))
    .option('--tempfail-share <x>', 'internet: share of self-hosted MX that greet 421', numberOption('--tempfail-share', 0, 1))
    .option('--out <file>', 'write here instead of stdout')
    .action(
      action(async (opts: GenerateCliOptions) => {
        if (opts.domains < 1) throw new InputError('--domains must be >= 1');
        if (opts.providers !== undefined && opts.providers < 1) throw new InputError('--providers must be >= 1');
        if (opts.dnsLatency < 0 || opts.smtpLatency < 0) throw new InputError('latencies must be >= 0');
        let world: object;
        if (opts.profile === 'internet') {
          const { generateInternetWorld } = await import('../../lab/generate-internet.ts');
          const given = {
            seed: opts.seed,
            providers: opts.providers,
            sharedMxShare: opts.sharedMxShare,
            zipfExponent: opts.zipf,
            mxAddresses: opts.mxAddresses,
            latencyMedianMs: opts.latencyMedian,
            latencySigma: opts.latencySigma,
            latencyMinMs: opts.latencyMin,
            latencyMaxMs: opts.latencyMax,
            postscreenShare: opts.postscreenShare,
            postscreenDelayMs: opts.postscreenDelay,
            tarpitShare: opts.tarpitShare,
            tarpitDelayMs: opts.tarpitDelay,
            silentShare: opts.silentShare,
            greylistShare: opts.greylistShare,
            tempfailShare: opts.tempfailShare,
          };
          world = generateInternetWorld({
            domains: opts.domains,
            ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)),
          });
        } else if (opts.profile === 'uniform') {
          const { generateWorld } = await import('../../lab/generate.ts');
          world = generateWorld({
            domains: opts.domains,
            sharedMxShare: opts.sharedMxShare ?? 0.4,
            providers: opts.providers ?? 5,
            dnsLatencyMs: opts.dnsLatency,
            smtpRttMs: opts.smtpLatency,
            seed: opts.seed,
          });
        } else {
          throw new InputError(`--profile must be uniform or internet, got ${JSON.stringify(opts.profile)}`);
        }
        const text = `${JSON.stringify(world, null, 1)}\n`;
        if (opts.out) {
          try {
            writeFileSync(opts.out, text);
          } catch (err) {
            throw new InputError(`cannot write --out ${opts.out}: ${(err as Error).message}`);
          }
          process.stderr.write(`wrote ${opts.out}: ${opts.domains} domains\n`);
        } else {
          process.stdout.write(text);
        }
        return 0;
      }),
    );
}

interface GenerateCliOptions {
  domains: number;
  profile: string;
  sharedMxShare?: number;
  providers?: number;
  dnsLatency: number;
  smtpLatency: number;
  seed: number;
  zipf?: number;
  mxAddresses?: number;
  latencyMedian?: number;
  latencySigma?: number;
  latencyMin?: number;
  latencyMax?: number;
  postscreenShare?: number;
  postscreenDelay?: number;
  tarpitShare?: number;
  tarpitDelay?: number;
  silentShare?: number;
  greylistShare?: number;
  tempfailShare?: number;
  out?: string;
}
