/**
 * The PostgreSQL store, for several lockboxd replicas sharing one database (DESIGN.md,
 * Scale-out). Same tables and rules as store-sqlite.ts; what differs is how concurrency is
 * settled, since other replicas write too:
 * 1. Every write is one transaction on a pooled connection; a change of `commit()` runs in its
 *    own SAVEPOINT, so a failed change rolls back alone.
 * 2. Updates and deletes lock the secret's row (SELECT … FOR UPDATE) and compare uid and version:
 *    a replica that lost the race gets ABORTED, which the service retries (or returns, when the
 *    caller pinned a version). A create that races another create hits the primary key and
 *    becomes ALREADY_EXISTS.
 * 3. Quotas are counted under a per-tenant advisory lock, so two replicas cannot both take the
 *    last tenant-wide slot.
 * 4. Audit entries are written (a) with their change into audit_pending, without a lock, and
 *    (b) moved into the hash chain in batches under one advisory lock, by whichever replica gets
 *    there first, right after the commit (and before any list or verify): the chain stays a
 *    single line across replicas and changes do not wait for each other's commits.
 * 5. An idempotency key is a primary key: the second replica to store it rolls back and replays
 *    the first answer.
 * 6. Notices: replicas share the outbox; each publisher holds the notices it sends for a while
 *    (claimNotices), so a notice goes out once, and again only if its replica died holding it
 *    (delivery is at least once anyway; agents ignore what is not newer).
 * No head cache: another replica may change any secret at any time.
 */
import pg from 'pg';
import { AlreadyExistsError, ConflictError, LockboxError, NotFoundError, ResourceExhaustedError, UnavailableError } from '../../../shared/src/errors.js';
import { deploymentSubject } from '../../../shared/src/subject.js';
import { describeScope } from '../services/scope.js';
import { toAgentHolding, toAuditRecord, toDeployment, toHead, toToken, toVersionRecord, versionColumns, type Row } from './store-rows.js';
import {
  IdempotencyReplayError,
  type AgentReport,
  type AppliedRecord,
  type AuditDraft,
  type AuditFilter,
  type AuditHasher,
  type AuditRecord,
  type Change,
  type CommitOutcome,
  type DeploymentChange,
  type DeploymentRecord,
  type IdempotencyRecord,
  type Quotas,
  type ScopeKey,
  type SecretHead,
  type Store,
  type StoredIdempotency,
  type StoredNotice,
  type TokenRecord,
  type VersionRecord,
  type WrappedKeyRow,
} from './store.js';

/** Advisory lock ids (pg_advisory_xact_lock). */
const AUDIT_LOCK = 0x6c6278_01; // "lbx" 1
const MIGRATION_LOCK = 0x6c6278_02;

const migrations: string[] = [
  `CREATE TABLE secrets (
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
  `CREATE TABLE audit_pending (id BIGSERIAL PRIMARY KEY, entry TEXT NOT NULL);`,
  `ALTER TABLE outbox ADD COLUMN held_until TIMESTAMPTZ;`,
];

function toNotice(r: Row): StoredNotice {
  return {
    seq: Number(r.seq),
    subject: r.subject,
    tenant: r.tenant,
    resourceGroup: r.resource_group,
    name: r.name,
    uid: r.uid,
    version: Number(r.version),
    operation: r.operation,
    time: r.time,
  };
}

/**
 * A database that cannot be reached (refused, reset, timed out, shutting down, connection lost)
 * is UNAVAILABLE, which tells a client to retry, perhaps on another replica. Other errors pass.
 */
export function unavailable(error: unknown): unknown {
  const { code } = (error ?? {}) as { code?: string };
  const lost =
    (typeof code === 'string' && (/^08/.test(code) || /^57P0[1-3]$/.test(code) || ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND'].includes(code))) ||
    /Connection terminated/.test((error as Error)?.message ?? '');
  return lost ? new UnavailableError('the database is unreachable; retry (another replica may answer)', { cause: error }) : error;
}

const isUniqueViolation = (error: unknown) => (error as { code?: string }).code === '23505';

export interface PostgresStoreOptions {
  /** postgres://user@host:port/db (a `search_path` option selects the schema). */
  url: string;
  maxVersions: number;
  auditHasher: AuditHasher;
  poolSize?: number;
  /** How long a publisher holds the notices it claimed (default 10 s). */
  noticeHoldMs?: number;
}

export class PostgresStore implements Store {
  /** Connections whose open transaction left audit entries pending. */
  private readonly chainWanted = new WeakSet<pg.PoolClient>();
  private chaining: Promise<void> | undefined;
  private chainAgain = false;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly maxVersions: number,
    private readonly auditHasher: AuditHasher,
    private readonly noticeHoldMs: number,
  ) {}

  /** Connects and brings the schema up to date (one replica at a time). */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const pool = new pg.Pool({ connectionString: options.url, max: options.poolSize ?? 20 });
    pool.on('error', () => {}); // an idle connection that drops is replaced on next use
    const store = new PostgresStore(pool, options.maxVersions, options.auditHasher, options.noticeHoldMs ?? 10_000);
    try {
      await store.migrate();
    } catch (error) {
      await pool.end();
      // The URL may hold a password: the message names the setting, never the URL.
      const root = ((error as { cause?: unknown }).cause ?? error) as Error;
      throw new Error(`--database-url (LOCKBOX_DATABASE_URL): cannot use the database: ${root.message}`, { cause: error });
    }
    return store;
  }

  private async migrate(): Promise<void> {
    await this.transaction(async (db) => {
      await db.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await db.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_time TEXT NOT NULL)');
      const applied = Number((await db.query('SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations')).rows[0].v);
      if (applied > migrations.length) throw new Error(`database schema version ${applied} is newer than this lockboxd (${migrations.length}); upgrade lockboxd`);
      for (let i = applied; i < migrations.length; i++) {
        await db.query(migrations[i]);
        await db.query('INSERT INTO schema_migrations (version, applied_time) VALUES ($1, $2)', [i + 1, new Date().toISOString()]);
      }
    });
  }

  /** A query outside a transaction; a lost database becomes UNAVAILABLE. */
  private query(text: string, values?: unknown[]): Promise<pg.QueryResult> {
    return this.pool.query(text, values).catch((error: unknown) => {
      throw unavailable(error);
    });
  }

  /** (1) Runs `work` in one transaction; rolls back on any error. */
  private async transaction<T>(work: (db: pg.PoolClient) => Promise<T>): Promise<T> {
    const db = await this.pool.connect().catch((error: unknown) => {
      throw unavailable(error);
    });
    // A connection the server drops while checked out emits 'error'; without a listener that
    // would crash the daemon. The query in flight fails on its own; the client is discarded.
    let broken: Error | undefined;
    const onError = (error: Error) => (broken = error);
    db.on('error', onError);
    try {
      await db.query('BEGIN');
      const result = await work(db);
      await db.query('COMMIT');
      if (this.chainWanted.has(db)) this.scheduleChain(); // (4b) for the entries it left pending
      return result;
    } catch (error) {
      await db.query('ROLLBACK').catch(() => {});
      throw unavailable(error);
    } finally {
      this.chainWanted.delete(db);
      db.off('error', onError);
      db.release(broken);
    }
  }

  /** Runs `work` in a savepoint of the current transaction: a failure rolls back only it. */
  private async savepoint<T>(db: pg.PoolClient, work: () => Promise<T>): Promise<T> {
    await db.query('SAVEPOINT change');
    try {
      const result = await work();
      await db.query('RELEASE SAVEPOINT change');
      return result;
    } catch (error) {
      await db.query('ROLLBACK TO SAVEPOINT change');
      await db.query('RELEASE SAVEPOINT change');
      throw error;
    }
  }

  // ---- secrets -----------------------------------------------------------------------------

  async getHead(scope: ScopeKey, name: string): Promise<SecretHead | undefined> {
    const { rows } = await this.query(
      `SELECT ${versionColumns}, s.create_time AS secret_create_time FROM secrets s
       JOIN secret_versions v ON v.uid = s.uid AND v.version = s.version
       WHERE s.tenant = $1 AND s.resource_group = $2 AND s.name = $3`,
      [scope.tenant, scope.resourceGroup, name],
    );
    return rows[0] && toHead(rows[0]);
  }

  async getVersion(uid: string, version: number): Promise<VersionRecord | undefined> {
    const { rows } = await this.query(`SELECT ${versionColumns} FROM secret_versions v WHERE v.uid = $1 AND v.version = $2`, [uid, version]);
    return rows[0] && toVersionRecord(rows[0]);
  }

  async listHeads(scope: ScopeKey, afterName: string, limit: number): Promise<SecretHead[]> {
    const { rows } = await this.query(
      `SELECT ${versionColumns}, s.create_time AS secret_create_time FROM secrets s
       JOIN secret_versions v ON v.uid = s.uid AND v.version = s.version
       WHERE s.tenant = $1 AND s.resource_group = $2 AND s.name COLLATE "C" > $3 ORDER BY s.name COLLATE "C" LIMIT $4`,
      [scope.tenant, scope.resourceGroup, afterName, limit],
    );
    return rows.map(toHead);
  }

  async listVersions(uid: string): Promise<VersionRecord[]> {
    const { rows } = await this.query(`SELECT ${versionColumns} FROM secret_versions v WHERE v.uid = $1 ORDER BY v.version DESC`, [uid]);
    return rows.map(toVersionRecord);
  }

  async commit(changes: Change[], idempotency?: IdempotencyRecord, audit?: (outcomes: CommitOutcome[]) => AuditDraft[]): Promise<CommitOutcome[]> {
    try {
      return await this.transaction(async (db) => {
        if (idempotency) {
          const stored = await this.getIdempotencyWith(db, idempotency.tenant, idempotency.key);
          if (stored) throw new IdempotencyReplayError(stored);
        }
        const outcomes: CommitOutcome[] = [];
        for (const change of changes) {
          try {
            outcomes.push({ ok: true, seq: await this.savepoint(db, () => this.applyChange(db, change)) });
          } catch (error) {
            if (!(error instanceof LockboxError)) throw error;
            outcomes.push({ ok: false, error });
          }
        }
        if (idempotency)
          await db.query('INSERT INTO idempotency (tenant, key, method, fingerprint, response, create_time) VALUES ($1, $2, $3, $4, $5, $6)', [
            idempotency.tenant,
            idempotency.key,
            idempotency.method,
            idempotency.fingerprint,
            idempotency.respond(outcomes),
            idempotency.createTime,
          ]);
        if (audit) await this.insertAudit(db, audit(outcomes));
        return outcomes;
      });
    } catch (error) {
      if (idempotency && isUniqueViolation(error)) {
        // (5) another replica stored the key first: its answer is the answer
        const stored = await this.getIdempotency(idempotency.tenant, idempotency.key);
        if (stored) throw new IdempotencyReplayError(stored);
      }
      throw error;
    }
  }

  private async applyChange(db: pg.PoolClient, change: Change): Promise<number> {
    const { scope, name } = change;
    const where = describeScope(scope);
    const head = (
      await db.query('SELECT uid, version FROM secrets WHERE tenant = $1 AND resource_group = $2 AND name = $3 FOR UPDATE', [scope.tenant, scope.resourceGroup, name])
    ).rows[0] as { uid: string; version: number } | undefined; // (2)
    if (change.operation === 'create') {
      if (head) throw new AlreadyExistsError(`secret "${name}" already exists in ${where}`, 'SECRET_EXISTS');
      await this.checkQuotas(db, scope.tenant, scope.resourceGroup, change.quotas, 'secret');
    } else {
      if (!head) throw new NotFoundError(`secret "${name}" not found in ${where}`, 'SECRET_NOT_FOUND');
      if (head.uid !== change.expectUid || head.version !== change.expectVersion)
        throw new ConflictError(`secret "${name}" is at version ${head.version}, not ${change.expectVersion}: it changed since it was read`);
    }
    const n = change.notice;
    const notice = [n.subject, n.tenant, n.resourceGroup, n.name, n.uid, n.version, n.operation, n.time];
    const outbox = 'INSERT INTO outbox (subject, tenant, resource_group, name, uid, version, operation, time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq';
    const record = change.record;
    if (change.operation === 'delete' || !record) {
      const { rows } = await db.query(
        `WITH n AS (${outbox}), s AS (DELETE FROM secrets WHERE uid = $9), v AS (DELETE FROM secret_versions WHERE uid = $9) SELECT seq FROM n`,
        [...notice, head!.uid],
      );
      return Number(rows[0].seq);
    }
    // One statement, one round trip: the notice (its seq is the version's change_seq), the head
    // row, the version, and the versions past --max-versions pruned.
    const head_ =
      change.operation === 'create'
        ? 'INSERT INTO secrets (tenant, resource_group, name, uid, version, create_time) VALUES ($9, $10, $11, $12, $13, $14)'
        : 'UPDATE secrets SET version = $13 WHERE uid = $12';
    let rows: Row[];
    try {
      rows = (
        await db.query(
          `WITH n AS (${outbox}),
                h AS (${head_}),
                v AS (INSERT INTO secret_versions (uid, version, tenant, resource_group, name, operation, restored_from, type, template, description,
                        labels, mount, keys, create_time, change_seq, master_key_id, wrapped_key, ciphertext)
                      SELECT $12, $13, $9, $10, $11, $15, $16, $17, $18, $19, $20, $21, $22, $14, n.seq, $23, $24, $25 FROM n),
                p AS (DELETE FROM secret_versions WHERE uid = $12 AND version <= $26)
           SELECT seq FROM n`,
          [
            ...notice,
            scope.tenant,
            scope.resourceGroup,
            name,
            record.uid,
            record.version,
            record.createTime,
            record.operation,
            record.restoredFrom,
            record.type,
            record.template,
            record.description,
            JSON.stringify(record.labels),
            JSON.stringify(record.mount),
            JSON.stringify(record.keys),
            record.envelope.masterKeyId,
            Buffer.from(record.envelope.wrappedKey),
            Buffer.from(record.envelope.ciphertext),
            record.version - this.maxVersions,
          ],
        )
      ).rows;
    } catch (error) {
      if (isUniqueViolation(error)) throw new AlreadyExistsError(`secret "${name}" already exists in ${where}`, 'SECRET_EXISTS'); // (2)
      throw error;
    }
    const seq = Number(rows[0].seq);
    record.changeSeq = seq;
    return seq;
  }

  /**
   * (3) Quotas a create in `scope` must respect, counted under the tenant's lock. The lock is
   * taken only when the create could pass a limit (a tenant-wide secret, or a group not yet in
   * use), so ordinary creates do not queue behind each other's commits.
   */
  private async checkQuotas(db: pg.PoolClient, tenant: string, resourceGroup: string, quotas: Quotas | undefined, what: string): Promise<void> {
    if (!quotas || resourceGroup === '') return;
    const lock = () => db.query("SELECT pg_advisory_xact_lock(hashtext('lockbox quota ' || $1))", [tenant]);
    if (resourceGroup === '*') {
      if (what !== 'secret') return;
      await lock();
      const n = Number((await db.query("SELECT COUNT(*) AS n FROM secrets WHERE tenant = $1 AND resource_group = '*'", [tenant])).rows[0].n);
      if (n >= quotas.maxTenantWideSecrets)
        throw new ResourceExhaustedError(`tenant "${tenant}" has ${n} tenant-wide secrets; the limit is ${quotas.maxTenantWideSecrets}`);
      return;
    }
    const inUse = async () =>
      (
        await db.query(
          `SELECT EXISTS (SELECT 1 FROM secrets WHERE tenant = $1 AND resource_group = $2)
               OR EXISTS (SELECT 1 FROM deployments WHERE tenant = $1 AND resource_group = $2) AS used`,
          [tenant, resourceGroup],
        )
      ).rows[0].used as boolean;
    if (await inUse()) return; // the group is counted already
    await lock();
    if (await inUse()) return; // another transaction took it into use meanwhile
    const n = Number(
      (
        await db.query(
          `SELECT COUNT(*) AS n FROM (
             SELECT resource_group FROM secrets WHERE tenant = $1 AND resource_group NOT IN ('', '*')
             UNION SELECT resource_group FROM deployments WHERE tenant = $1 AND resource_group NOT IN ('', '*')) g`,
          [tenant],
        )
      ).rows[0].n,
    );
    if (n >= quotas.maxResourceGroups) throw new ResourceExhaustedError(`tenant "${tenant}" has ${n} resource groups in use; the limit is ${quotas.maxResourceGroups}`);
  }

  private async getIdempotencyWith(db: pg.Pool | pg.PoolClient, tenant: string, key: string): Promise<StoredIdempotency | undefined> {
    const { rows } = await db.query('SELECT method, fingerprint, response, create_time FROM idempotency WHERE tenant = $1 AND key = $2', [tenant, key]);
    return rows[0] && { method: rows[0].method, fingerprint: rows[0].fingerprint, response: rows[0].response, createTime: rows[0].create_time };
  }

  getIdempotency(tenant: string, key: string): Promise<StoredIdempotency | undefined> {
    return this.getIdempotencyWith(this.pool, tenant, key);
  }

  async pruneIdempotency(before: string): Promise<number> {
    return (await this.query('DELETE FROM idempotency WHERE create_time < $1', [before])).rowCount ?? 0;
  }

  // ---- notices (6) ---------------------------------------------------------------------------

  async pendingNotices(limit: number): Promise<StoredNotice[]> {
    const { rows } = await this.query(
      'SELECT seq, subject, tenant, resource_group, name, uid, version, operation, time FROM outbox ORDER BY seq LIMIT $1',
      [limit],
    );
    return rows.map(toNotice);
  }

  /**
   * (6) The oldest notices no other replica holds, held by this one for a while (10 s): replicas share the
   * outbox without sending each notice twice; if this replica dies before deleting them, another
   * sends them when the hold runs out.
   */
  async claimNotices(limit: number): Promise<StoredNotice[]> {
    const { rows } = await this.query(
      `UPDATE outbox SET held_until = clock_timestamp() + $2 * interval '1 millisecond'
       WHERE seq IN (SELECT seq FROM outbox WHERE held_until IS NULL OR held_until < clock_timestamp() ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)
       RETURNING seq, subject, tenant, resource_group, name, uid, version, operation, time`,
      [limit, this.noticeHoldMs],
    );
    return rows.map(toNotice).sort((a, b) => a.seq - b.seq);
  }

  async deleteNotices(seqs: number[]): Promise<void> {
    if (seqs.length) await this.query('DELETE FROM outbox WHERE seq = ANY($1::bigint[])', [seqs]);
  }

  // ---- master keys ---------------------------------------------------------------------------

  async countByMasterKey(): Promise<Map<string, number>> {
    const { rows } = await this.query('SELECT master_key_id AS id, COUNT(*) AS n FROM secret_versions GROUP BY master_key_id');
    return new Map(rows.map((r) => [r.id as string, Number(r.n)]));
  }

  async listWrappedKeys(notMasterKeyId: string, limit: number): Promise<WrappedKeyRow[]> {
    const { rows } = await this.query(
      'SELECT uid, version, tenant, resource_group, name, master_key_id, wrapped_key FROM secret_versions WHERE master_key_id <> $1 LIMIT $2',
      [notMasterKeyId, limit],
    );
    return rows.map((r) => ({ uid: r.uid, version: Number(r.version), tenant: r.tenant, resourceGroup: r.resource_group, name: r.name, masterKeyId: r.master_key_id, wrappedKey: r.wrapped_key }));
  }

  async replaceWrappedKeys(rows: WrappedKeyRow[], newMasterKeyId: string, wrapped: Uint8Array[]): Promise<number> {
    return this.transaction(async (db) => {
      let n = 0;
      for (const [i, row] of rows.entries())
        n +=
          (
            await db.query('UPDATE secret_versions SET master_key_id = $1, wrapped_key = $2 WHERE uid = $3 AND version = $4 AND master_key_id = $5', [
              newMasterKeyId,
              Buffer.from(wrapped[i]),
              row.uid,
              row.version,
              row.masterKeyId,
            ])
          ).rowCount ?? 0;
      return n;
    });
  }

  // ---- tokens --------------------------------------------------------------------------------

  async insertToken(token: TokenRecord, audit: AuditDraft[] = []): Promise<void> {
    await this.transaction(async (db) => {
      await db.query(
        `INSERT INTO tokens (id, hash, role, tenant, resource_groups, deployment, deployment_resource_group, description, create_time, expire_time, revoke_time, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
        [token.id, token.hash, token.role, token.tenant, JSON.stringify(token.resourceGroups), token.deployment, token.deploymentResourceGroup, token.description, token.createTime, token.expireTime, token.revokeTime, token.createdBy],
      );
      await this.insertAudit(db, audit);
    });
  }

  async getToken(id: string): Promise<TokenRecord | undefined> {
    const { rows } = await this.query('SELECT * FROM tokens WHERE id = $1', [id]);
    return rows[0] && toToken(rows[0]);
  }

  async countTokens(): Promise<number> {
    return Number((await this.query('SELECT COUNT(*) AS n FROM tokens')).rows[0].n);
  }

  async listTokens(tenant: string | undefined): Promise<TokenRecord[]> {
    const { rows } = await this.query("SELECT * FROM tokens WHERE ($1 = '' OR tenant = $1) ORDER BY create_time, id", [tenant ?? '']);
    return rows.map(toToken);
  }

  async revokeToken(id: string, time: string, audit: AuditDraft[] = []): Promise<TokenRecord | undefined> {
    return this.transaction(async (db) => {
      await db.query("UPDATE tokens SET revoke_time = $1 WHERE id = $2 AND revoke_time = ''", [time, id]);
      const row = (await db.query('SELECT * FROM tokens WHERE id = $1', [id])).rows[0];
      if (row) await this.insertAudit(db, audit);
      return row && toToken(row);
    });
  }

  // ---- deployments ---------------------------------------------------------------------------

  async getDeployment(scope: ScopeKey, name: string): Promise<DeploymentRecord | undefined> {
    const { rows } = await this.query('SELECT * FROM deployments WHERE tenant = $1 AND resource_group = $2 AND name = $3', [scope.tenant, scope.resourceGroup, name]);
    return rows[0] && toDeployment(rows[0]);
  }

  async listDeployments(scope: ScopeKey): Promise<DeploymentRecord[]> {
    const { rows } = await this.query('SELECT * FROM deployments WHERE tenant = $1 AND resource_group = $2 ORDER BY name COLLATE "C"', [scope.tenant, scope.resourceGroup]);
    return rows.map(toDeployment);
  }

  async deploymentsListing(tenant: string, secretName: string): Promise<DeploymentRecord[]> {
    const { rows } = await this.query(
      `SELECT d.* FROM deployment_secrets r JOIN deployments d ON d.tenant = r.tenant AND d.resource_group = r.resource_group AND d.name = r.deployment
       WHERE r.tenant = $1 AND r.secret = $2 ORDER BY d.resource_group COLLATE "C", d.name COLLATE "C"`,
      [tenant, secretName],
    );
    return rows.map(toDeployment);
  }

  async writeDeployment(change: DeploymentChange, audit: AuditDraft[]): Promise<void> {
    const { record } = change;
    const where = describeScope(record);
    try {
      await this.transaction(async (db) => {
        const existing = (
          await db.query('SELECT version FROM deployments WHERE tenant = $1 AND resource_group = $2 AND name = $3 FOR UPDATE', [record.tenant, record.resourceGroup, record.name])
        ).rows[0] as { version: number } | undefined;
        if (change.operation === 'create') {
          if (existing) throw new AlreadyExistsError(`deployment "${record.name}" already exists in ${where}`, 'DEPLOYMENT_EXISTS');
          await this.checkQuotas(db, record.tenant, record.resourceGroup, change.quotas, 'deployment');
        } else {
          if (!existing) throw new NotFoundError(`deployment "${record.name}" not found in ${where}`, 'DEPLOYMENT_NOT_FOUND');
          if (change.expectVersion !== undefined && existing.version !== change.expectVersion)
            throw new ConflictError(`deployment "${record.name}" is at version ${existing.version}, not ${change.expectVersion}`);
        }
        const key = [record.tenant, record.resourceGroup, record.name];
        await db.query('DELETE FROM deployment_secrets WHERE tenant = $1 AND resource_group = $2 AND deployment = $3', key);
        if (change.operation === 'delete') await db.query('DELETE FROM deployments WHERE tenant = $1 AND resource_group = $2 AND name = $3', key);
        else if (change.operation === 'create')
          await db.query(
            `INSERT INTO deployments (tenant, resource_group, name, uid, version, secrets, description, labels, create_time, update_time)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
            [...key, record.uid, record.version, JSON.stringify(record.secrets), record.description, JSON.stringify(record.labels), record.createTime, record.updateTime],
          );
        else
          await db.query(
            `UPDATE deployments SET version = $4, secrets = $5, description = $6, labels = $7, update_time = $8
             WHERE tenant = $1 AND resource_group = $2 AND name = $3`,
            [...key, record.version, JSON.stringify(record.secrets), record.description, JSON.stringify(record.labels), record.updateTime],
          );
        if (change.operation !== 'delete')
          for (const secret of record.secrets)
            await db.query('INSERT INTO deployment_secrets (tenant, secret, resource_group, deployment) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [
              record.tenant,
              secret,
              record.resourceGroup,
              record.name,
            ]);
        await db.query('INSERT INTO outbox (subject, tenant, resource_group, name, uid, version, operation, time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)', [
          deploymentSubject(record.tenant, record.resourceGroup, record.name),
          ...key,
          record.uid,
          record.version,
          change.operation,
          change.operation === 'delete' ? new Date().toISOString() : record.updateTime,
        ]);
        await this.insertAudit(db, audit);
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new AlreadyExistsError(`deployment "${record.name}" already exists in ${where}`, 'DEPLOYMENT_EXISTS');
      throw error;
    }
  }

  // ---- audit (4) and agents ------------------------------------------------------------------

  /**
   * (4a) Puts entries in audit_pending, inside the caller's transaction: they are durable with the
   * change they describe, and the transaction takes no lock for them.
   */
  private async insertAudit(db: pg.PoolClient, entries: AuditDraft[]): Promise<void> {
    if (entries.length === 0) return;
    await db.query('INSERT INTO audit_pending (entry) SELECT unnest($1::text[])', [entries.map((e) => JSON.stringify(e))]);
    this.chainWanted.add(db);
  }

  /** Chains pending entries soon (one run at a time per replica; a run started meanwhile repeats). */
  private scheduleChain(): void {
    if (this.chaining) {
      this.chainAgain = true;
      return;
    }
    this.chaining = (async () => {
      do {
        this.chainAgain = false;
        await this.chainPending().catch(() => {}); // the next write, list or verify retries
      } while (this.chainAgain);
    })().finally(() => (this.chaining = undefined));
  }

  /**
   * (4b) Moves pending entries into the chain, oldest first, under the one audit lock: each gets
   * the next seq and a hash over its fields and the previous hash. One lock hold per batch,
   * whichever replica runs it, so the chain stays a single line without serialising the changes.
   */
  private async chainPending(): Promise<void> {
    for (;;) {
      const moved = await this.transaction(async (db) => {
        await db.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_LOCK]);
        const pending = (await db.query('SELECT id, entry FROM audit_pending ORDER BY id LIMIT 1000')).rows as Array<{ id: string; entry: string }>;
        if (pending.length === 0) return 0;
        const last = (await db.query('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1')).rows[0] as { seq: string; hash: string } | undefined;
        let previous = { seq: Number(last?.seq ?? 0), hash: last?.hash ?? '' };
        const columns: unknown[][] = Array.from({ length: 14 }, () => []);
        for (const { entry: text } of pending) {
          const draft = JSON.parse(text) as AuditDraft;
          const entry = { ...draft, count: draft.count ?? 1, seq: previous.seq + 1, prevHash: previous.hash };
          const hash = this.auditHasher(entry);
          [entry.seq, entry.time, entry.tokenId, entry.role, entry.tenant, entry.resourceGroup, entry.action, entry.target, entry.version, entry.outcome, entry.requestId, entry.count, entry.prevHash, hash].forEach(
            (value, i) => columns[i].push(value),
          );
          previous = { seq: entry.seq, hash };
        }
        await db.query(
          `INSERT INTO audit (seq, time, token_id, role, tenant, resource_group, action, target, version, outcome, request_id, count, prev_hash, hash)
           SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int[], $10::text[], $11::text[], $12::int[], $13::text[], $14::text[])`,
          columns,
        );
        await db.query('DELETE FROM audit_pending WHERE id = ANY($1::bigint[])', [pending.map((p) => p.id)]);
        return pending.length;
      });
      if (moved < 1000) return;
    }
  }

  async appendAudit(entries: AuditDraft[]): Promise<void> {
    await this.transaction((db) => this.insertAudit(db, entries));
  }

  async listAudit(filter: AuditFilter): Promise<AuditRecord[]> {
    await this.chainPending(); // what is committed is listed, chained
    const { rows } = await this.query(
      `SELECT * FROM audit WHERE seq > $1 AND ($2 = '' OR tenant = $2) AND ($3 = '' OR action = $3) AND ($4 = '' OR target = $4) ORDER BY seq LIMIT $5`,
      [filter.afterSeq, filter.tenant ?? '', filter.action ?? '', filter.target ?? '', filter.limit],
    );
    return rows.map(toAuditRecord);
  }

  async reportAgent(report: AgentReport, applied: AppliedRecord[]): Promise<void> {
    await this.transaction(async (db) => {
      await db.query(
        `INSERT INTO agents (agent_id, tenant, deployment, deployment_resource_group, token_id, last_seen_time, resync_interval_seconds, problems)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (agent_id) DO UPDATE SET tenant = excluded.tenant, deployment = excluded.deployment,
           deployment_resource_group = excluded.deployment_resource_group, token_id = excluded.token_id,
           last_seen_time = excluded.last_seen_time, resync_interval_seconds = excluded.resync_interval_seconds, problems = excluded.problems`,
        [report.agentId, report.tenant, report.deployment, report.deploymentResourceGroup, report.tokenId, report.lastSeenTime, report.resyncIntervalSeconds, JSON.stringify(report.problems)],
      );
      await db.query('DELETE FROM agent_applied WHERE agent_id = $1', [report.agentId]);
      for (const a of applied)
        await db.query(
          `INSERT INTO agent_applied (agent_id, tenant, resource_group, name, uid, version, applied_time) VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (tenant, resource_group, name, agent_id) DO UPDATE SET uid = excluded.uid, version = excluded.version, applied_time = excluded.applied_time`,
          [a.agentId, a.tenant, a.resourceGroup, a.name, a.uid, a.version, a.appliedTime],
        );
    });
  }

  async agentsHolding(tenant: string, resourceGroup: string, name: string): Promise<Array<AppliedRecord & { report: AgentReport }>> {
    const { rows } = await this.query(
      `SELECT a.*, g.deployment, g.deployment_resource_group, g.token_id, g.last_seen_time, g.resync_interval_seconds, g.problems
       FROM agent_applied a JOIN agents g ON g.agent_id = a.agent_id
       WHERE a.tenant = $1 AND a.resource_group = $2 AND a.name = $3 ORDER BY a.agent_id COLLATE "C"`,
      [tenant, resourceGroup, name],
    );
    return rows.map(toAgentHolding);
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  async close(): Promise<void> {
    await this.chaining;
    await this.chainPending().catch(() => {}); // whatever is left is chained by the next replica to run
    await this.pool.end();
  }
}
