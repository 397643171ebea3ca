/**
 * Schema migrations, the rules both dialects follow (migrations-sqlite.ts, migrations-postgres.ts
 * hold the steps):
 * 1. A dialect's steps are numbered 1, 2, 3 … in the order they run; the number is the schema
 *    version a database reaches once the step has run, recorded in `schema_migrations`.
 * 2. At start the store runs, in order, every step above the highest recorded version, each in a
 *    transaction with its record, so a crash leaves a database at a whole step.
 * 3. A database recorded above the last step was written by a newer lockboxd: it is refused, never
 *    touched, since this lockboxd cannot know what the newer steps changed.
 */
export interface MigrationStep {
  version: number;
  /** What the step adds, for a reader of the list. */
  why: string;
  sql: string;
}

export const schemaMigrationsTable = 'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_time TEXT NOT NULL)';

/** (1) The list as given, once its numbers are checked to run 1, 2, 3 … without a gap. */
export function numberedSteps(steps: MigrationStep[]): readonly MigrationStep[] {
  steps.forEach((step, i) => {
    if (step.version !== i + 1) throw new Error(`migration step ${i + 1} is numbered ${step.version}`);
  });
  return steps;
}

/** (2) and (3): the steps still to run on a database at schema version `applied`. */
export function pendingSteps(steps: readonly MigrationStep[], applied: number): readonly MigrationStep[] {
  const latest = steps.length;
  if (applied > latest) throw new Error(`database schema version ${applied} is newer than this lockboxd (${latest}); upgrade lockboxd`);
  return steps.slice(applied);
}
