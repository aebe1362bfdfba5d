import type { Command } from 'commander';
import { action, withDatabase } from '../run.ts';

export function register(program: Command): void {
  program
    .command('migrate')
    .description('bring the database schema up to date (DATABASE_URL); the only command that changes the schema')
    .option('--down', 'undo the latest migration instead')
    .action(
      action(async (opts: { down?: boolean }) => {
        const { migrator, schemaState } = await import('../../lib/db.ts');
        await withDatabase(async (handle) => {
          const m = migrator(handle.db);
          const { error, results } = opts.down ? await m.migrateDown() : await m.migrateToLatest();
          for (const r of results ?? []) {
            console.log(`${r.status === 'Success' ? 'ok  ' : r.status.toLowerCase()} ${r.direction.toLowerCase()} ${r.migrationName}`);
          }
          if (error) {
            const failed = results?.find((r) => r.status === 'Error');
            throw new Error(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${(error as Error).message ?? error}`);
          }
          const state = await schemaState(handle.db);
          if ((results ?? []).length === 0) console.log(`schema is up to date (version ${state.database})`);
          else console.log(`schema version ${state.database ?? '(none)'}; this mailcensus expects ${state.expected}`);
        }, { max: 1, migrated: false });
      }),
    );
}
