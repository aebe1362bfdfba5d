import type { Command } from 'commander';
import { action, intOption, requireAtLeast, untilSignal } from '../run.ts';
import { boundHeapGrowth } from '../heap.ts';

/** File descriptors kept for everything but the SMTP sessions (Postgres, Redis, DNS sockets, the domain jobs). */
const FD_RESERVE = 512;

export function register(program: Command): void {
  program
    .command('worker')
    .description('process survey runs and test mails (start any number, on any machine sharing Redis and Postgres)')
    .option('--concurrency <n>', 'domain jobs at once (default MAILCENSUS_WORKER_CONCURRENCY or 20)', intOption('--concurrency'))
    .option('--probe-concurrency <n>', 'SMTP probe jobs (sessions) at once (default MAILCENSUS_PROBE_CONCURRENCY or 2000)', intOption('--probe-concurrency'))
    .option('--pretty', 'human-readable logs instead of JSON')
    .option('--log-level <level>', 'trace, debug, info, warn, error (default MAILCENSUS_LOG_LEVEL or info)')
    .action(
      action(async (opts: { concurrency?: number; probeConcurrency?: number; pretty?: boolean; logLevel?: string }) => {
        const { config } = await import('../../lib/config.ts');
        const { createLogger } = await import('../../workers/logger.ts');
        const { openServices } = await import('../../workers/setup.ts');
        const { startWorker, createProbeDepsFor } = await import('../../workers/worker.ts');
        const { loadDiagnose } = await import('../../workers/diagnose-api.ts');
        const cfg = config();
        requireAtLeast(1, { '--concurrency': opts.concurrency, '--probe-concurrency': opts.probeConcurrency });
        boundHeapGrowth();
        const logger = createLogger({ pretty: opts.pretty, level: opts.logLevel });
        // Every SMTP session holds a socket: beyond `ulimit -n` connects would fail with EMFILE and be recorded
        // as network errors of the servers. Keep room for Postgres, Redis, DNS and the domain jobs.
        const { openFileLimit } = await import('../../lib/concurrency.ts');
        const wanted = opts.probeConcurrency ?? cfg.probeConcurrency;
        const fdLimit = openFileLimit();
        const probeConcurrency = fdLimit === null ? wanted : Math.max(1, Math.min(wanted, fdLimit - FD_RESERVE));
        if (probeConcurrency < wanted) {
          logger.warn({ wanted, probeConcurrency, openFileLimit: fdLimit }, 'probe concurrency lowered to fit ulimit -n (raise it to run more SMTP sessions at once)');
        }
        // A call that failed where nobody waited for it any more (a Redis command timing out under an
        // abandoned job step, during a stall) must not take the whole worker down: log it, keep working.
        process.on('unhandledRejection', (reason) => {
          logger.error({ err: (reason as Error)?.message ?? String(reason), stack: (reason as Error)?.stack }, 'unhandled rejection (ignored)');
        });
        const services = await openServices(cfg, logger, { worker: true, checkEviction: true });
        const diag = await loadDiagnose();
        const deps = createProbeDepsFor(diag, cfg, services.redis, logger);
        const running = startWorker(
          { db: services.db, config: cfg, redis: services.redis, workerRedis: services.workerRedis, logger, deps, queues: services.queues, diag },
          { concurrency: opts.concurrency, probeConcurrency },
        );
        logger.info(
          { concurrency: opts.concurrency ?? cfg.workerConcurrency, probeConcurrency, prefix: cfg.queuePrefix, jobsPerSecond: cfg.jobsPerSecond },
          'worker started',
        );
        // SIGTERM/SIGINT: stop taking jobs, let active ones finish (bounded), exit 0.
        const signal = await untilSignal();
        logger.info({ signal, timeoutMs: cfg.shutdownTimeoutMs }, 'shutting down: letting active jobs finish');
        const { graceful } = await running.close(cfg.shutdownTimeoutMs);
        // Bounded: a stalled Redis or Postgres must not keep a stopping worker alive.
        await Promise.race([services.close(), new Promise((r) => setTimeout(r, 5000).unref())]);
        logger.info({ graceful }, 'worker stopped');
        // Nothing should be left open; if a library keeps a handle, do not hang the shutdown on it.
        setTimeout(() => process.exit(0), 2000).unref();
        return 0;
      }),
    );
}
