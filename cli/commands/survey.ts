import type { Command } from 'commander';
import { action, withDatabase } from '../run.ts';

export function register(program: Command): void {
  program
    .command('surveys')
    .description('list the surveys with their number of domains and their latest ingest')
    .option('--json', 'print JSON instead of a table')
    .action(
      action(async (opts: { json?: boolean }) => {
        const { listSurveys } = await import('../../ingest/surveys.ts');
        return withDatabase(async (handle) => {
          const rows = await listSurveys(handle.sql);
          if (opts.json) {
            console.log(JSON.stringify(rows, null, 2));
          } else if (rows.length === 0) {
            console.log('no surveys yet; create one with `mailcensus ingest FILE --survey NAME`');
          } else {
            const w = Math.max(6, ...rows.map((r) => r.name.length));
            console.log(`${'survey'.padEnd(w)}  ${'domains'.padStart(9)}  ingests  last ingest`);
            for (const r of rows) {
              const last = r.last_ingest ? r.last_ingest.toISOString().replace('T', ' ').slice(0, 19) : '-';
              console.log(`${r.name.padEnd(w)}  ${String(r.domains).padStart(9)}  ${String(r.ingests).padStart(7)}  ${last}`);
            }
          }
        });
      }),
    );
}
