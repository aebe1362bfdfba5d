// `mailcensus receive`: the test-mail receiver (MSchecker's inbox). Stores each mail, then enqueues its
// diagnosis for `mailcensus worker`; a sweeper re-enqueues stored mails that have no diagnosis yet.
import type { Command } from 'commander';
import { action, intOption, requireAtLeast, untilSignal, withDatabase } from '../run.ts';
import { boundHeapGrowth } from '../heap.ts';

interface ReceiveOptions {
  listen?: string;
  domain?: string;
  hostname?: string;
  cert?: string;
  key?: string;
  maxSize?: number;
  resultMail: boolean;
  maxConnectionsPerIp?: number;
  maxMessagesPerMinute?: number;
  pretty?: boolean;
  logLevel?: string;
}

export function register(program: Command): void {
  program
    .command('receive')
    .description('run the SMTP receiver for test mails (check[-TOKEN]@<receiver domain>); diagnoses run in `mailcensus worker`')
    .option('--listen <host:port>', 'address to listen on (default MAILCENSUS_RECEIVER_LISTEN or 0.0.0.0:25)')
    .option('--domain <domain>', 'our recipient domain (default MAILCENSUS_RECEIVER_DOMAIN)')
    .option('--hostname <name>', 'name in the greeting (default MAILCENSUS_RECEIVER_HOSTNAME)')
    .option('--cert <pem>', 'STARTTLS certificate chain, PEM file (default MAILCENSUS_RECEIVER_CERT; self-signed if none)')
    .option('--key <pem>', 'private key of --cert, PEM file (default MAILCENSUS_RECEIVER_KEY)')
    .option('--max-size <bytes>', 'largest mail accepted (default MAILCENSUS_RECEIVER_MAX_SIZE or 10485760)', intOption('--max-size'))
    .option('--no-result-mail', 'do not mail the result back to the sender (also MAILCENSUS_RESULT_MAIL=0 on the worker)')
    .option('--max-connections-per-ip <n>', 'concurrent sessions per client IP (default 5; 50 in the lab)', intOption('--max-connections-per-ip'))
    .option('--max-messages-per-minute <n>', 'mails per client IP per minute (default 30; 10000 in the lab)', intOption('--max-messages-per-minute'))
    .option('--pretty', 'human-readable logs instead of JSON')
    .option('--log-level <level>', 'trace, debug, info, warn, error (default MAILCENSUS_LOG_LEVEL or info)')
    .action(
      action(async (opts: ReceiveOptions) => {
        // Mails stream through a bounded live heap; without the bound V8 let garbage grow the RSS past the
        // receiver's memory budget + 400 MiB (`npm run bench -- receiver`).
        boundHeapGrowth();
        const { readFileSync } = await import('node:fs');
        const { config, parseHostPort } = await import('../../lib/config.ts');
        const { InputError } = await import('../../lib/errors.ts');
        const { createLogger } = await import('../../workers/logger.ts');
        const { createRedis, openQueues, enqueueTestMail } = await import('../../workers/queues.ts');
        const { startReceiver } = await import('../../receiver/server.ts');
        const { normalizeDomain } = await import('../../receiver/tokens.ts');
        const cfg = config();
        // Port 0 (an ephemeral port, printed at start) is allowed here, for tests and the lab.
        const zero = opts.listen ? /^\[?([^\]]+?)\]?:0$/.exec(opts.listen.trim()) : null;
        const listen = zero ? { host: zero[1], port: 0 } : opts.listen ? parseHostPort(opts.listen, 25, '--listen') : cfg.receiverListen;
        const domain = normalizeDomain(opts.domain ?? cfg.receiverDomain);
        if (!domain) throw new InputError(`--domain: not a domain name: "${opts.domain ?? cfg.receiverDomain}"`);
        const certFile = opts.cert ?? cfg.receiverCertFile;
        const keyFile = opts.key ?? cfg.receiverKeyFile;
        if (!!certFile !== !!keyFile) throw new InputError('--cert and --key go together (or MAILCENSUS_RECEIVER_CERT and _KEY)');
        const read = (file: string, what: string) => {
          try {
            return readFileSync(file, 'utf8');
          } catch (err) {
            throw new InputError(`cannot read the ${what} ${file}: ${(err as Error).message}`);
          }
        };
        const cert = certFile ? read(certFile, 'certificate') : null;
        const key = keyFile ? read(keyFile, 'private key') : null;
        requireAtLeast(1024, { '--max-size': opts.maxSize });
        requireAtLeast(1, { '--max-connections-per-ip': opts.maxConnectionsPerIp, '--max-messages-per-minute': opts.maxMessagesPerMinute });

        const logger = createLogger({ pretty: opts.pretty, level: opts.logLevel });
        return withDatabase(async (handle) => {
          // Redis may be down: mails are still stored (and answered 250), and the sweeper enqueues them later.
          const redis = createRedis(cfg.redisUrl);
          redis.on('error', () => {});
          const queues = openQueues(redis, cfg);
          const enqueue = async (id: string) => {
            let timer: NodeJS.Timeout | undefined;
            try {
              await Promise.race([
                enqueueTestMail(queues, id),
                new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('Redis did not answer within 5 s')), 5000))),
              ]);
            } finally {
              clearTimeout(timer);
            }
          };
          let receiver;
          try {
            receiver = await startReceiver({
              db: handle.db,
              domain,
              hostname: opts.hostname ?? cfg.receiverHostname,
              host: listen.host,
              port: listen.port,
              cert,
              key,
              maxSize: opts.maxSize ?? cfg.receiverMaxSize,
              // The lab sends every mail of a provider from one address: loosen the per-IP limits there.
              maxConnectionsPerIp: opts.maxConnectionsPerIp ?? (cfg.lab ? 50 : 5),
              maxMessagesPerWindow: opts.maxMessagesPerMinute ?? (cfg.lab ? 10_000 : 30),
              maxConnectionsPerWindow: cfg.lab ? 10_000 : 60,
              rateWindowMs: 60_000,
              maxClients: cfg.receiverMaxClients,
              sessionTimeoutMs: cfg.receiverSessionTimeoutMs,
              maxHeaderBytes: cfg.receiverMaxHeaderBytes,
              memoryBudgetBytes: cfg.receiverMemoryBytes,
              rawRetentionDays: cfg.rawMailRetentionDays,
              clock: cfg.clock,
              resultMail: opts.resultMail && cfg.resultMail,
              enqueue,
              logger,
            });
          } catch (err) {
            await queues.close().catch(() => {});
            redis.disconnect();
            const code = (err as NodeJS.ErrnoException).code;
            if (code === 'EADDRINUSE' || code === 'EACCES') {
              throw new InputError(`cannot listen on ${listen.host}:${listen.port}: ${(err as Error).message}`);
            }
            throw err;
          }
          logger.info({ listen: `${receiver.host}:${receiver.port}`, address: `check@${domain}`, tls: cert ? 'configured' : 'self-signed' }, 'receiver listening');
          process.stderr.write(`mailcensus: receiving test mails for check@${domain} on ${receiver.host}:${receiver.port}\n`);
          const signal = await untilSignal();
          logger.info({ signal }, 'receiver stopping');
          await receiver.close();
          await queues.close().catch(() => {});
          await redis.quit().catch(() => redis.disconnect());
          return 0;
        }, { max: 10 });
      }),
    );
}
