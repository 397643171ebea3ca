/**
 * The SQLite schema as numbered steps (migrations.ts says how they run). A released step is never
 * edited: a change to the schema is a new step at the end of the list.
 */
import type Database from 'better-sqlite3';
import { numberedSteps, pendingSteps, schemaMigrationsTable, type MigrationStep } from './migrations.js';

export const sqliteSteps: readonly MigrationStep[] = numberedSteps([
  {
    version: 1,
    why: 'secrets, their versions, the outbox, idempotency keys, tokens',
    sql: `
      CREATE TABLE secrets (
        tenant TEXT NOT NULL,
        resource_group TEXT NOT NULL,
        name TEXT NOT NULL,
        uid TEXT NOT NULL UNIQUE,
        version INTEGER NOT NULL,
        create_time TEXT NOT NULL,
        PRIMARY KEY (tenant, resource_group, name)
      ) WITHOUT ROWID;
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
        change_seq INTEGER NOT NULL,
        master_key_id TEXT NOT NULL,
        wrapped_key BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        PRIMARY KEY (uid, version)
      );
      CREATE INDEX secret_versions_master_key ON secret_versions (master_key_id);
      CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
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
        description TEXT NOT NULL,
        create_time TEXT NOT NULL,
        expire_time TEXT NOT NULL,
        revoke_time TEXT NOT NULL
      );`,
  },
  {
    version: 2,
    why: 'tokens bound to a deployment and to their creator; deployments; the audit chain',
    sql: `
      ALTER TABLE tokens ADD COLUMN deployment_resource_group TEXT NOT NULL DEFAULT '';
      ALTER TABLE tokens ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
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
      ) WITHOUT ROWID;
      CREATE TABLE deployment_secrets (
        tenant TEXT NOT NULL,
        secret TEXT NOT NULL,
        resource_group TEXT NOT NULL,
        deployment TEXT NOT NULL,
        PRIMARY KEY (tenant, secret, resource_group, deployment)
      ) WITHOUT ROWID;
      CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
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
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
      );
      CREATE INDEX audit_tenant ON audit (tenant, seq);`,
  },
  {
    version: 3,
    why: 'agents and the versions they applied',
    sql: `
      CREATE TABLE agents (
        agent_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        deployment TEXT NOT NULL,
        deployment_resource_group TEXT NOT NULL,
        token_id TEXT NOT NULL,
        last_seen_time TEXT NOT NULL,
        resync_interval_seconds INTEGER NOT NULL,
        problems TEXT NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE agent_applied (
        agent_id TEXT NOT NULL,
        tenant TEXT NOT NULL,
        resource_group TEXT NOT NULL,
        name TEXT NOT NULL,
        uid TEXT NOT NULL,
        version INTEGER NOT NULL,
        applied_time TEXT NOT NULL,
        PRIMARY KEY (tenant, resource_group, name, agent_id)
      ) WITHOUT ROWID;
      CREATE INDEX agent_applied_agent ON agent_applied (agent_id);`,
  },
  {
    version: 4,
    why: 'an audit entry may stand for several identical reads (count)',
    sql: `
      ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1;`,
  },
  {
    version: 5,
    why: 'facts about the database itself: which keyring sealed it (security/keyring-check.ts)',
    sql: `
      CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;`,
  },
  {
    version: 6,
    why: 'which associated data a version was sealed with: 1 its identity, 2 its identity and metadata (shared/src/crypto.ts (2))',
    sql: `
      ALTER TABLE secret_versions ADD COLUMN ad_format INTEGER NOT NULL DEFAULT 1;`,
  },
  {
    version: 7,
    why: 'the keyring in the database: keys that wrap data keys, and the token key, each sealed under the root key (security/keyring.ts)',
    sql: `
      CREATE TABLE keyring (
        id TEXT PRIMARY KEY,
        sealed_key BLOB NOT NULL,
        root_key_id TEXT NOT NULL,
        create_time TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('active', 'retired', 'token'))
      ) WITHOUT ROWID;
      CREATE UNIQUE INDEX keyring_one_active ON keyring (state) WHERE state <> 'retired';`,
  },
]);

/** Brings the database up to the last step; each step and its record in one transaction. */
export function migrateSqlite(db: Database.Database, steps: readonly MigrationStep[] = sqliteSteps): void {
  db.exec(schemaMigrationsTable);
  const row = db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null };
  for (const step of pendingSteps(steps, row.v ?? 0)) {
    db.transaction(() => {
      db.exec(step.sql);
      db.prepare('INSERT INTO schema_migrations (version, applied_time) VALUES (?, ?)').run(step.version, new Date().toISOString());
    })();
  }
}
