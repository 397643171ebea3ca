/**
 * Schema migrations (daemon/src/store/migrations*.ts): numbered steps per dialect bring an older
 * database to the same schema a new one gets, and a database written by a newer lockboxd is
 * refused untouched.
 */
import t from 'tap';
import Database from 'better-sqlite3';
import pg from 'pg';
import { join } from 'node:path';
import { tempDir } from '../helpers/daemon.js';
import { freshSchema } from '../helpers/postgres.js';
import { SqliteStore } from '../../daemon/src/store/store-sqlite.js';
import { PostgresStore } from '../../daemon/src/store/store-postgres.js';
import { migrateSqlite, sqliteSteps } from '../../daemon/src/store/migrations-sqlite.js';
import { migratePostgres, postgresSteps } from '../../daemon/src/store/migrations-postgres.js';
import { numberedSteps } from '../../daemon/src/store/migrations.js';

const hasher = () => 'h';
/** 1 … n: the schema versions of the first n steps. */
const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const sqliteLast = sqliteSteps.length;
const postgresLast = postgresSteps.length;

function sqliteSchema(file: string): { versions: number[]; tables: string[] } {
  const db = new Database(file, { readonly: true });
  try {
    const versions = db.prepare('SELECT version FROM schema_migrations ORDER BY version').all().map((r: any) => r.version as number);
    const tables = db.prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name").all().map((r: any) => String(r.sql).replace(/\s+/g, ' '));
    return { versions, tables };
  } finally {
    db.close();
  }
}

t.test('the steps of each dialect are numbered 1, 2, 3 … (the schema versions databases already carry)', async (t) => {
  t.same(sqliteSteps.map((s) => s.version), upTo(sqliteLast));
  t.ok(sqliteLast >= 5, 'SQLite databases already carry versions up to 5');
  t.same(postgresSteps.map((s) => s.version), upTo(postgresLast));
  t.ok(postgresLast >= 4, 'PostgreSQL databases already carry versions up to 4');
  t.throws(() => numberedSteps([{ version: 1, why: '', sql: '' }, { version: 3, why: '', sql: '' }]), /step 2 is numbered 3/);
});

t.test('SQLite: a database at an older step is brought to the schema a new database gets', async (t) => {
  const fresh = tempDir(t);
  await new SqliteStore({ dataDir: fresh, maxVersions: 10, auditHasher: hasher }).close();
  const old = tempDir(t);
  const db = new Database(join(old, 'lockbox.db'));
  migrateSqlite(db, sqliteSteps.slice(0, 2)); // what lockboxd wrote before agents and audit counts
  db.prepare("INSERT INTO audit (seq, time, token_id, role, tenant, resource_group, action, target, version, outcome, request_id, prev_hash, hash) VALUES (1, 't', 'x', 'r', 'default', '', 'secret.read', 'a', 1, 'ok', 'q', '', 'h')").run();
  db.close();
  t.same(sqliteSchema(join(old, 'lockbox.db')).versions, [1, 2]);

  const store = new SqliteStore({ dataDir: old, maxVersions: 10, auditHasher: hasher });
  const [entry] = await store.listAudit({ afterSeq: 0, limit: 10 });
  t.equal(entry.count, 1, 'the old entry kept, with the column step 4 added');
  await store.close();
  const upgraded = sqliteSchema(join(old, 'lockbox.db'));
  t.same(upgraded.versions, upTo(sqliteLast));
  t.same(upgraded.tables, sqliteSchema(join(fresh, 'lockbox.db')).tables, 'same tables and indexes as a new database');
});

t.test('SQLite: a database from a newer lockboxd is refused and left as it is', async (t) => {
  const dir = tempDir(t);
  await new SqliteStore({ dataDir: dir, maxVersions: 10, auditHasher: hasher }).close();
  const db = new Database(join(dir, 'lockbox.db'));
  db.prepare("INSERT INTO schema_migrations (version, applied_time) VALUES (?, 'later')").run(sqliteLast + 1);
  db.close();
  t.throws(() => new SqliteStore({ dataDir: dir, maxVersions: 10, auditHasher: hasher }), new RegExp(`database schema version ${sqliteLast + 1} is newer than this lockboxd \\(${sqliteLast}\\); upgrade lockboxd`));
  t.same(sqliteSchema(join(dir, 'lockbox.db')).versions, upTo(sqliteLast + 1));
});

t.test('PostgreSQL: an older schema is brought forward; a newer one is refused untouched', async (t) => {
  const url = await freshSchema(t);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  t.teardown(() => client.end());
  await client.query('BEGIN');
  await migratePostgres(client as unknown as pg.PoolClient, postgresSteps.slice(0, 1));
  await client.query('COMMIT');
  const versions = async () => (await client.query('SELECT version FROM schema_migrations ORDER BY version')).rows.map((r) => r.version);
  t.same(await versions(), [1]);

  const store = await PostgresStore.open({ url, maxVersions: 10, auditHasher: hasher });
  await store.close();
  t.same(await versions(), upTo(postgresLast));
  const columns = (await client.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'outbox' AND table_schema = current_schema()")).rows.map((r) => r.column_name);
  t.ok(columns.includes('held_until'), 'step 3 ran');
  const versionType = (await client.query("SELECT data_type FROM information_schema.columns WHERE table_name = 'secret_versions' AND column_name = 'version' AND table_schema = current_schema()")).rows[0].data_type;
  t.equal(versionType, 'bigint', 'step 5 ran');

  await client.query("INSERT INTO schema_migrations (version, applied_time) VALUES ($1, 'later')", [postgresLast + 1]);
  await t.rejects(PostgresStore.open({ url, maxVersions: 10, auditHasher: hasher }), new RegExp(`database schema version ${postgresLast + 1} is newer than this lockboxd \\(${postgresLast}\\); upgrade lockboxd`));
  t.same(await versions(), upTo(postgresLast + 1));
});
