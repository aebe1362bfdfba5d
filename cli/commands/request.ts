// `mailcensus request --domain D`: a fresh per-diagnosis address, as MSchecker's web form hands out.
import type { Command } from 'commander';
import { action, withDatabase } from '../run.ts';

export function register(program: Command): void {
  program
    .command('request')
    .description('print a fresh per-diagnosis address check-<token>@<receiver domain> for a domain to send its test mail to')
    .requiredOption('--domain <domain>', 'the domain that will send the test mail')
    .option('--json', 'print {token, address, domain} as JSON')
    .action(
      action(async (opts: { domain: string; json?: boolean }) => {
        const { InputError } = await import('../../lib/errors.ts');
        const { createRequest, normalizeDomain } = await import('../../receiver/tokens.ts');
        if (!normalizeDomain(opts.domain)) throw new InputError(`--domain: not a domain name: "${opts.domain}"`);
        return withDatabase(async (handle, cfg) => {
          const r = await createRequest(handle.db, opts.domain, cfg.receiverDomain);
          process.stdout.write(opts.json ? `${JSON.stringify(r)}\n` : `${r.address}\n`);
        });
      }),
    );
}
