/**
 * The PostgreSQL schema as numbered steps (migrations.ts says how they run). It numbers on its own:
 * the PostgreSQL store came after SQLite's step 4, so its step 1 is that whole schema. A released
 * step is never edited: a change to the schema is a new step at the end of the list.
 */
import type pg from 'pg';
import { numberedSteps, pendingSteps, schemaMigrationsTable, type MigrationStep } from './migrations.js';

/** Advisory lock id (pg_advisory_xact_lock) that lets one replica at a time migrate. */
const MIGRATION_LOCK = 0x6c6278_02; // "lbx" 2

export const postgresSteps: readonly MigrationStep[] = numberedSteps([
  {
    version: 1,
    why: 'the schema SQLite reaches at its step 4, in one step',
    sql: `
      CREATE TABLE secrets (
        tenant TEXT NOT NULL,
        resource_group TEXT NOT NULL,
        name TEXT NOT NULL,
        uid TEXT NOT NULL UNIQUE,
        version INTEGER NOT NULL,
        create_time TEXT NOT NULL,
        PRIMARY KEY (tenant, resource_group, name)
      );
      CREATE TABLE secret_versions (
        uid TEXT NOT NULL,
        version INTEGER NOT NULL,
        tenant TEXT NOT NULL,
        resource_group TEXT NOT NULL,
        name TEXT NOT NULL,
        operation TEXT NOT NULL,
        restored_from INTEGER NOT NULL,
        type TEXT NOT NULL,
        template TEXT NOT NULL,
        description TEXT NOT NULL,
        labels TEXT NOT NULL,
        mount TEXT NOT NULL,
        keys TEXT NOT NULL,
        create_time TEXT NOT NULL,
        change_seq BIGINT NOT NULL,
        master_key_id TEXT NOT NULL,
        wrapped_key BYTEA NOT NULL,
        ciphertext BYTEA NOT NULL,
        PRIMARY KEY (uid, version)
      );
      CREATE INDEX secret_versions_master_key ON secret_versions (master_key_id);
      CREATE TABLE outbox (
        seq BIGSERIAL PRIMARY KEY,
        subject TEXT NOT NULL,
        tenant TEXT NOT NULL,
        resource_group TEXT NOT NULL,
        name TEXT NOT NULL,
        uid TEXT NOT NULL,
        version INTEGER NOT NULL,
        operation TEXT NOT NULL,
        time TEXT NOT NULL
      );
      CREATE TABLE idempotency (
        tenant TEXT NOT NULL,
        key TEXT NOT NULL,
        method TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        response TEXT NOT NULL,
        create_time TEXT NOT NULL,
        PRIMARY KEY (tenant, key)
      );
      CREATE INDEX idempotency_create_time ON idempotency (create_time);
      CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL,
        role TEXT NOT NULL,
        tenant TEXT NOT NULL,
        resource_groups TEXT NOT NULL,
        deployment TEXT NOT NULL,
        deployment_resource_group TEXT NOT NULL,
        description TEXT NOT NULL,
        create_time TEXT NOT NULL,
        expire_time TEXT NOT NULL,
        revoke_time TEXT NOT NULL,
        created_by TEXT NOT NULL
      );
      CREATE INDEX tokens_tenant ON tokens (tenant);
      CREATE TABLE deployments (
        tenant TEXT NOT NULL,
        resource_group TEXT NOT NULL,
        name TEXT NOT NULL,
        uid TEXT NOT NULL UNIQUE,
        version INTEGER NOT NULL,
        secrets TEXT NOT NULL,
        description TEXT NOT NULL,
        labels TEXT NOT NULL,
        create_time TEXT NOT NULL,
        update_time TEXT NOT NULL,
        PRIMARY KEY (tenant, resource_group, name)
      );
      CREATE TABLE deployment_secrets (
        tenant TEXT NOT NULL,
        secret TEXT NOT NULL,
        resource_group TEXT NOT NULL,
        deployment TEXT NOT NULL,
        PRIMARY KEY (tenant, secret, resource_group, deployment)
      );
      CREATE TABLE audit (
        seq BIGINT PRIMARY KEY,
        time TEXT NOT NULL,
        token_id TEXT NOT NULL,
        role TEXT NOT NULL,
        tenant TEXT NOT NULL,
        resource_group TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        version INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        request_id TEXT NOT NULL,
        count INTEGER NOT NULL DEFAULT 1,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
      );
      CREATE INDEX audit_tenant ON audit (tenant, seq);
      CREATE TABLE agents (
        agent_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        deployment TEXT NOT NULL,
        deployment_resource_group TEXT NOT NULL,
        token_id TEXT NOT NULL,
        last_seen_time TEXT NOT NULL,
        resync_interval_seconds INTEGER NOT NULL,
        problems TEXT NOT NULL
      );
      CREATE TABLE agent_applied (
        agent_id TEXT NOT NULL,
        tenant TEXT NOT NULL,
        resource_group TEXT NOT NULL,
        name TEXT NOT NULL,
        uid TEXT NOT NULL,
        version INTEGER NOT NULL,
        applied_time TEXT NOT NULL,
        PRIMARY KEY (tenant, resource_group, name, agent_id)
      );
      CREATE INDEX agent_applied_agent ON agent_applied (agent_id);`,
  },
  {
    version: 2,
    why: 'audit entries wait in audit_pending until a replica chains them (store-postgres.ts (4))',
    sql: `
      CREATE TABLE audit_pending (id BIGSERIAL PRIMARY KEY, entry TEXT NOT NULL);`,
  },
  {
    version: 3,
    why: 'a notice claimed by one replica is held from the others until held_until (store-postgres.ts (6))',
    sql: `
      ALTER TABLE outbox ADD COLUMN held_until TIMESTAMPTZ;`,
  },
  {
    version: 4,
    why: 'facts about the database itself: which keyring sealed it (security/keyring-check.ts)',
    sql: `
      CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);`,
  },
  {
    version: 5,
    why: 'versions as wide as the API takes (int64; JavaScript keeps 2^53 exactly): past 2^31 a version had been "out of range for type integer", a 500',
    sql: `
      ALTER TABLE secrets ALTER COLUMN version TYPE BIGINT;
      ALTER TABLE secret_versions ALTER COLUMN version TYPE BIGINT, ALTER COLUMN restored_from TYPE BIGINT;
      ALTER TABLE outbox ALTER COLUMN version TYPE BIGINT;
      ALTER TABLE deployments ALTER COLUMN version TYPE BIGINT;
      ALTER TABLE audit ALTER COLUMN version TYPE BIGINT;
      ALTER TABLE agent_applied ALTER COLUMN version TYPE BIGINT;`,
  },
  {
    version: 6,
    why: 'which associated data a version was sealed with: 1 its identity, 2 its identity and metadata (shared/src/crypto.ts (2))',
    sql: `
      ALTER TABLE secret_versions ADD COLUMN ad_format INTEGER NOT NULL DEFAULT 1;`,
  },
  {
    version: 7,
    why: 'names sort bytewise (COLLATE "C", as SQLite\'s BINARY) in the key itself: a list page is a range scan of the primary key, not a sort of the whole group (store-postgres.ts (7))',
    sql: `
      ALTER TABLE secrets ALTER COLUMN name TYPE TEXT COLLATE "C";
      ALTER TABLE deployments ALTER COLUMN name TYPE TEXT COLLATE "C";`,
  },
  {
    version: 8,
    why: 'the keyring in the database: keys that wrap data keys, and the token key, each sealed under the root key (security/keyring.ts)',
    sql: `
      CREATE TABLE keyring (
        id TEXT PRIMARY KEY,
        sealed_key BYTEA NOT NULL,
        root_key_id TEXT NOT NULL,
        create_time TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('active', 'retired', 'token'))
      );
      CREATE UNIQUE INDEX keyring_one_active ON keyring (state) WHERE state <> 'retired';`,
  },
]);

/**
 * Brings the database up to the last step, inside the caller's transaction `db`: the first
 * replica to take the lock migrates, the others then find nothing left to do.
 */
export async function migratePostgres(db: pg.PoolClient, steps: readonly MigrationStep[] = postgresSteps): Promise<void> {
  await db.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
  await db.query(schemaMigrationsTable);
  const applied = Number((await db.query('SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations')).rows[0].v);
  for (const step of pendingSteps(steps, applied)) {
    await db.query(step.sql);
    await db.query('INSERT INTO schema_migrations (version, applied_time) VALUES ($1, $2)', [step.version, new Date().toISOString()]);
  }
}
