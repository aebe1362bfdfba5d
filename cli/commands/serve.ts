// `mailcensus serve`: the web front and the HTTP API (issue 17), one process beside the workers and the receiver.
import type { Command } from 'commander';
import { action, untilSignal, withServices } from '../run.ts';

export function register(program: Command): void {
  program
    .command('serve')
    .description('serve the web front (the public diagnosis flow, the operator pages, Bull Board) and the JSON API')
    .option('--listen <host:port>', 'address to listen on; port 0 = any free port (default MAILCENSUS_WEB_LISTEN or 127.0.0.1:8080)')
    .option('--pretty', 'human-readable logs')
    .action(
      action(async (opts: { listen?: string; pretty?: boolean }) => {
        const { parseHostPort } = await import('../../lib/config.ts');
        return withServices(async (s) => {
          // Port 0 (any free port, printed below) is allowed here, unlike in the other address settings.
          const listen = !opts.listen
            ? s.config.webListen
            : opts.listen.endsWith(':0')
              ? { host: parseHostPort(opts.listen.slice(0, -2), 8080, '--listen').host, port: 0 }
              : parseHostPort(opts.listen, 8080, '--listen');
          const { buildServer } = await import('../../web/server.ts');
          const web = await buildServer({ db: s.db, sql: s.handle.sql, redis: s.redis, queues: s.queues, config: s.config, logger: s.logger });
          const address = await web.app.listen({ host: listen.host, port: listen.port });
          process.stderr.write(`mailcensus serve: listening on ${address}${s.config.webOperatorPassword ? '' : ' (operator pages disabled: MAILCENSUS_WEB_OPERATOR_PASSWORD is not set)'}\n`);
          // Until SIGINT/SIGTERM: stop accepting, let requests in flight finish (bounded by Fastify's timeouts).
          await untilSignal();
          await Promise.race([web.app.close(), new Promise((r) => setTimeout(r, 10_000).unref())]);
          return 0;
        }, { pretty: opts.pretty });
      }),
    );
}
