import type { Command } from 'commander';
import { action, withServices } from '../run.ts';

async function add(opts: { survey?: string; cron?: string; tz?: string }): Promise<number> {
  const { InputError } = await import('../../lib/errors.ts');
  if (!opts.survey || !opts.cron) throw new InputError('schedule add needs --survey NAME and --cron "MIN HOUR DOM MON DOW"');
  const { addSchedule } = await import('../../workers/schedule.ts');
  const { surveyIdOf } = await import('../../workers/run.ts');
  return withServices(async (s) => {
    await surveyIdOf(s.db, opts.survey!);
    const info = await addSchedule(s.queues, opts.survey!, opts.cron!, opts.tz);
    console.log(`scheduled survey ${info.survey}: "${info.cron}"${info.tz ? ` (${info.tz})` : ''}, next run ${info.next?.toISOString() ?? '?'}`);
    return 0;
  });
}

export function register(program: Command): void {
  const schedule = program
    .command('schedule')
    .description('run a survey periodically (BullMQ job scheduler); a running `mailcensus worker` starts the runs')
    .usage('--survey NAME --cron PATTERN [--tz ZONE] | add | list | remove')
    .option('--survey <name>', 'survey to run (same as `schedule add`)')
    .option('--cron <pattern>', 'cron pattern, e.g. "0 3 1 4 *" (03:00 on April 1st)')
    .option('--tz <zone>', 'IANA time zone of the pattern (default: the worker\'s)')
    .action(
      action(async (opts: { survey?: string; cron?: string; tz?: string }) => {
        if (!opts.survey && !opts.cron) {
          schedule.outputHelp();
          return 2;
        }
        return add(opts);
      }),
    );
  schedule
    .command('add')
    .description('add or replace the schedule of a survey')
    .requiredOption('--survey <name>', 'survey to run')
    .requiredOption('--cron <pattern>', 'cron pattern, e.g. "0 3 1 4 *" (03:00 on April 1st)')
    .option('--tz <zone>', 'IANA time zone of the pattern (default: the worker\'s)')
    .action(action(add));
  schedule
    .command('list')
    .description('list schedules')
    .action(
      action(async () =>
        withServices(async (s) => {
          const { listSchedules } = await import('../../workers/schedule.ts');
          const list = await listSchedules(s.queues);
          if (list.length === 0) console.log('no schedules');
          for (const i of list) console.log(`${i.survey}\t${i.cron}\t${i.tz ?? '-'}\tnext ${i.next?.toISOString() ?? '?'}`);
          return 0;
        }),
      ),
    );
  schedule
    .command('remove')
    .description('remove the schedule of a survey')
    .requiredOption('--survey <name>', 'survey')
    .action(
      action(async (opts: { survey: string }) =>
        withServices(async (s) => {
          const { removeSchedule } = await import('../../workers/schedule.ts');
          const { InputError } = await import('../../lib/errors.ts');
          if (!(await removeSchedule(s.queues, opts.survey))) throw new InputError(`survey "${opts.survey}" has no schedule`);
          console.log(`removed the schedule of survey ${opts.survey}`);
          return 0;
        }),
      ),
    );
}
