// Every migration, by its timestamped name. Kysely runs them in name order; add new ones here.
import type { Migration } from 'kysely';
import * as initial from './20261129000000_initial.ts';

export const migrations: Record<string, Migration> = {
  '20261129000000_initial': initial,
};
