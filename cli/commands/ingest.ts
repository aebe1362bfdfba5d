import type { Command } from 'commander';
import { action, intOption, withDatabase } from '../run.ts';

export function register(program: Command): void {
  program
    .command('ingest')
    .description('load a CSV list of domains into a survey (created if new); re-ingesting the same file adds nothing')
    .argument('<file>', 'CSV with a "domain" (or email/url/ドメイン/メールアドレス) column, or one domain per line')
    .requiredOption('--survey <name>', 'survey to add the domains to')
    .option('--encoding <enc>', 'utf8, sjis (Shift_JIS/CP932, what Japanese Excel writes) or auto', 'auto')
    .option('--rejects <path>', 'where to write the rejected and duplicate lines (default: <file>.rejects.csv)')
    .option('--dry-run', 'parse and report, write the rejects CSV, but do not touch the database')
    .option('--max-record-size <chars>', 'longest record accepted', intOption('--max-record-size'))
    .addHelpText(
      'after',
      '\nExit codes: 0 ok, 2 bad file or option (the message names the line), 3 database unavailable, 1 other failure.\n' +
        'The whole ingest is one transaction: on any error the survey is left as it was.',
    )
    .action(
      action(async (file: string, opts: { survey: string; encoding: string; rejects?: string; dryRun?: boolean; maxRecordSize?: number }) => {
        const { parseEncoding, precheckFile } = await import('../../ingest/sniff.ts');
        const { ingestFile, formatSummary, checkSurveyName } = await import('../../ingest/ingest.ts');
        const encoding = parseEncoding(opts.encoding);
        checkSurveyName(opts.survey);
        await precheckFile(file); // a missing or binary file is named before we try the database
        const base = { file, survey: opts.survey, encoding, rejectsPath: opts.rejects, maxRecordSize: opts.maxRecordSize };
        if (opts.dryRun) {
          console.log(formatSummary(await ingestFile(null, { ...base, dryRun: true })));
          return 0;
        }
        try {
          await withDatabase(async (handle) => console.log(formatSummary(await ingestFile(handle.sql, base))));
        } catch (err) {
          // The server went away in the middle: that is the service's fault (exit 3), and the transaction
          // was rolled back with the connection.
          const code = (err as { code?: string }).code ?? '';
          if (['CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'ECONNRESET', 'ECONNREFUSED', '57P01', '57P02', '57P03'].includes(code)) {
            const { ServiceUnavailableError } = await import('../../lib/errors.ts');
            throw new ServiceUnavailableError(`lost the connection to Postgres during the ingest (nothing was written): ${(err as Error).message}`);
          }
          throw err;
        }
        return 0;
      }),
    );
}
