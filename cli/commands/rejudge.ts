import type { Command } from 'commander';
import { action, intOption, withDatabase } from '../run.ts';

export function register(program: Command): void {
  program
    .command('rejudge')
    .description('re-evaluate stored diagnoses with the current rules, without probing again')
    .option('--run <id>', 'the diagnoses of this run', intOption('--run'))
    .option('--year <yyyy>', 'the diagnoses observed in this year (UTC)', intOption('--year'))
    .option('--pretty', 'human-readable logs')
    .action(
      action(async (opts: { run?: number; year?: number; pretty?: boolean }) => {
        const { InputError } = await import('../../lib/errors.ts');
        if ((opts.run === undefined) === (opts.year === undefined)) throw new InputError('rejudge needs exactly one of --run ID or --year YYYY');
        if (opts.year !== undefined && (opts.year < 1970 || opts.year > 9999)) throw new InputError(`--year must be a year, got ${opts.year}`);
        const { rejudgeDiagnoses } = await import('../../workers/rejudge.ts');
        const judge = await import('../../lib/checks/judge.ts');
        const { createLogger } = await import('../../workers/logger.ts');
        return withDatabase(async (handle) => {
          if (opts.run !== undefined) {
            const run = await handle.db.selectFrom('runs').select('id').where('id', '=', opts.run).executeTakeFirst();
            if (!run) throw new InputError(`run ${opts.run} does not exist`);
          }
          const logger = createLogger({ pretty: opts.pretty, level: 'warn' });
          const r = await rejudgeDiagnoses(handle.db, judge, { runId: opts.run, year: opts.year }, logger);
          console.log(`re-judged ${r.examined} diagnoses with rules version ${r.rulesVersion ?? '-'}: ${r.changed} changed`);
          for (const [k, n] of Object.entries(r.verdictChanges)) console.log(`  ${k}: ${n}`);
          return 0;
        });
      }),
    );
}
