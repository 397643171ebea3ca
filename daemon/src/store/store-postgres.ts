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
 * 7. Names are declared COLLATE "C" (bytewise, as SQLite's BINARY): a list page by name is a range
 *    of the primary key (tenant, resource_group, name), read in order, never a sort of the group.
 * 8. Writes that arrive together share one transaction (group commit), each in its own
 *    SAVEPOINT, so a failing write does not fail the others; (1) then holds per group.
 * No head cache: another replica may change any secret at any time.
 * Parts: store-postgres-pool.ts (1), store-postgres-changes.ts (2, 3), store-postgres-deployments.ts
 * (2, 3 for deployments), store-postgres-audit.ts (4), store-postgres-group-commit.ts (8),
 * store-postgres-agents.ts (agents' reports); the schema in migrations-postgres.ts (7).
 */
import pg from 'pg';
import { AlreadyExistsError, LockboxError } from '../../../shared/src/errors.js';
import { describeScope } from '../services/scope.js';
import { migratePostgres } from './migrations-postgres.js';
import { PostgresAuditChain } from './store-postgres-audit.js';
import { PostgresGroupCommit } from './store-postgres-group-commit.js';
import { bulkable, bulkCreate, takePrepared } from './store-postgres-bulk-create.js';
import { PostgresKeyring } from './store-postgres-keyring.js';
import { applyChange } from './store-postgres-changes.js';
import { PostgresAgents } from './store-postgres-agents.js';
import { applyDeploymentChange } from './store-postgres-deployments.js';
import { isUniqueViolation, PostgresPool, poolOptions } from './store-postgres-pool.js';
import { toAuditRecord, toDeployment, toHead, toToken, toVersionRecord, versionColumns, type Row } from './store-rows.js';
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
  type ScopeKey,
  type SecretHead,
  type Store,
  type StoredIdempotency,
  type StoredNotice,
  type StoreObserver,
  type TokenRecord,
  type VersionRecord,
  type WrappedKeyRow,
} from './store.js';

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

export interface PostgresStoreOptions {
  /** postgres://user@host:port/db (a `search_path` option selects the schema). */
  url: string;
  maxVersions: number;
  auditHasher: AuditHasher;
  poolSize?: number;
  /** Group transactions open at once (default 8) and most writes in one (default 32): (8). */
  groupOpen?: number;
  groupSize?: number;
  /** Connect, query, statement and idle-in-transaction timeout (default 10 s; --database-timeout). */
  timeoutMs?: number;
  /** How long a publisher holds the notices it claimed (default 10 s). */
  noticeHoldMs?: number;
  /** Told what commits and audit writes cost (metrics). */
  observer?: StoreObserver;
}

export class PostgresStore implements Store {
  private readonly db: PostgresPool;
  private readonly audit: PostgresAuditChain;
  private readonly group: PostgresGroupCommit;
  readonly keyring: PostgresKeyring;
  private readonly agents: PostgresAgents;

  private constructor(
    pool: pg.Pool,
    private readonly maxVersions: number,
    auditHasher: AuditHasher,
    private readonly noticeHoldMs: number,
    group: { open: number; size: number },
    observer?: StoreObserver,
  ) {
    this.db = new PostgresPool(pool);
    this.audit = new PostgresAuditChain(this.db, auditHasher, observer);
    const hooks = {
      begin: async (db: pg.PoolClient, payloads: unknown[]) => {
        this.audit.defer(db);
        await bulkCreate(db, (payloads as Array<Change[] | undefined>).flatMap((p) => p ?? []));
      },
      beforeCommit: (db: pg.PoolClient) => this.audit.writeDeferred(db),
    };
    this.group = new PostgresGroupCommit(this.db, group.open, group.size, hooks, observer);
    this.keyring = new PostgresKeyring(this.db);
    this.agents = new PostgresAgents(this.db);
  }

  /** Connects and brings the schema up to date (one replica at a time). */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const pool = new pg.Pool(poolOptions(options.url, options.timeoutMs ?? 10_000, options.poolSize ?? 20));
    pool.on('error', () => {}); // an idle connection that drops is replaced on next use
    const group = { open: options.groupOpen ?? 8, size: options.groupSize ?? 32 };
    const store = new PostgresStore(pool, options.maxVersions, options.auditHasher, options.noticeHoldMs ?? 10_000, group, options.observer);
    try {
      await store.db.transaction((db) => migratePostgres(db));
    } catch (error) {
      await pool.end();
      // The URL may hold a password: the message names the setting, never the URL.
      const root = ((error as { cause?: unknown }).cause ?? error) as Error;
      throw new Error(`--database-url (LOCKBOX_DATABASE_URL): cannot use the database: ${root.message}`, { cause: error });
    }
    return store;
  }

  // ---- secrets -----------------------------------------------------------------------------

  async getHead(scope: ScopeKey, name: string): Promise<SecretHead | undefined> {
    const { rows } = await this.db.query(
      `SELECT ${versionColumns}, s.create_time AS secret_create_time FROM secrets s
       JOIN secret_versions v ON v.uid = s.uid AND v.version = s.version
       WHERE s.tenant = $1 AND s.resource_group = $2 AND s.name = $3`,
      [scope.tenant, scope.resourceGroup, name],
    );
    return rows[0] && toHead(rows[0]);
  }

  async getVersion(uid: string, version: number): Promise<VersionRecord | undefined> {
    const { rows } = await this.db.query(`SELECT ${versionColumns} FROM secret_versions v WHERE v.uid = $1 AND v.version = $2`, [uid, version]);
    return rows[0] && toVersionRecord(rows[0]);
  }

  async listHeads(scope: ScopeKey, afterName: string, limit: number): Promise<SecretHead[]> {
    const { rows } = await this.db.query(
      `SELECT ${versionColumns}, s.create_time AS secret_create_time FROM secrets s
       JOIN secret_versions v ON v.uid = s.uid AND v.version = s.version
       WHERE s.tenant = $1 AND s.resource_group = $2 AND s.name > $3 ORDER BY s.name LIMIT $4`, // (7)
      [scope.tenant, scope.resourceGroup, afterName, limit],
    );
    return rows.map(toHead);
  }

  async listVersions(uid: string): Promise<VersionRecord[]> {
    const { rows } = await this.db.query(`SELECT ${versionColumns} FROM secret_versions v WHERE v.uid = $1 ORDER BY v.version DESC`, [uid]);
    return rows.map(toVersionRecord);
  }

  async commit(changes: Change[], idempotency?: IdempotencyRecord, audit?: (outcomes: CommitOutcome[]) => AuditDraft[], deadline?: number): Promise<CommitOutcome[]> {
    try {
      return await this.group.write(async (db) => {
        if (idempotency) {
          const stored = await this.getIdempotencyWith(db, idempotency.tenant, idempotency.key);
          if (stored) throw new IdempotencyReplayError(stored);
        }
        const outcomes: CommitOutcome[] = [];
        for (const change of changes) {
          const prepared = takePrepared(change); // (8) written with the group's other creates
          if (prepared) {
            outcomes.push(prepared);
            continue;
          }
          try {
            outcomes.push({ ok: true, seq: await this.db.savepoint(db, () => applyChange(db, change, this.maxVersions)) });
          } catch (error) {
            if (!(error instanceof LockboxError)) throw error;
            outcomes.push({ ok: false, error });
          }
        }
        const response = idempotency?.respond(outcomes);
        if (idempotency && response !== undefined)
          await db.query('INSERT INTO idempotency (tenant, key, method, fingerprint, response, create_time) VALUES ($1, $2, $3, $4, $5, $6)', [
            idempotency.tenant,
            idempotency.key,
            idempotency.method,
            idempotency.fingerprint,
            response,
            idempotency.createTime,
          ]);
        if (audit) await this.audit.insert(db, audit(outcomes));
        return outcomes;
      }, idempotency !== undefined, idempotency ? undefined : changes.filter(bulkable), deadline); // (8) without a key every write is in a change's savepoint
    } catch (error) {
      if (idempotency && isUniqueViolation(error)) {
        // (5) another replica stored the key first: its answer is the answer
        const stored = await this.getIdempotency(idempotency.tenant, idempotency.key);
        if (stored) throw new IdempotencyReplayError(stored);
      }
      throw error;
    }
  }

  private async getIdempotencyWith(db: pg.Pool | pg.PoolClient, tenant: string, key: string): Promise<StoredIdempotency | undefined> {
    const { rows } = await db.query('SELECT method, fingerprint, response, create_time FROM idempotency WHERE tenant = $1 AND key = $2', [tenant, key]);
    return rows[0] && { method: rows[0].method, fingerprint: rows[0].fingerprint, response: rows[0].response, createTime: rows[0].create_time };
  }

  getIdempotency(tenant: string, key: string): Promise<StoredIdempotency | undefined> {
    return this.getIdempotencyWith(this.db.pool, tenant, key);
  }

  async pruneIdempotency(before: string): Promise<number> {
    return (await this.db.query('DELETE FROM idempotency WHERE create_time < $1', [before])).rowCount ?? 0;
  }

  // ---- notices (6) ---------------------------------------------------------------------------

  async pendingNotices(limit: number): Promise<StoredNotice[]> {
    const { rows } = await this.db.query(
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
    const { rows } = await this.db.query(
      `UPDATE outbox SET held_until = clock_timestamp() + $2 * interval '1 millisecond'
       WHERE seq IN (SELECT seq FROM outbox WHERE held_until IS NULL OR held_until < clock_timestamp() ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)
       RETURNING seq, subject, tenant, resource_group, name, uid, version, operation, time`,
      [limit, this.noticeHoldMs],
    );
    return rows.map(toNotice).sort((a, b) => a.seq - b.seq);
  }

  async deleteNotices(seqs: number[]): Promise<void> {
    if (seqs.length) await this.db.query('DELETE FROM outbox WHERE seq = ANY($1::bigint[])', [seqs]);
  }

  // ---- master keys ---------------------------------------------------------------------------

  async countByMasterKey(): Promise<Map<string, number>> {
    const { rows } = await this.db.query('SELECT master_key_id AS id, COUNT(*) AS n FROM secret_versions GROUP BY master_key_id');
    return new Map(rows.map((r) => [r.id as string, Number(r.n)]));
  }

  async listWrappedKeys(notMasterKeyId: string, limit: number): Promise<WrappedKeyRow[]> {
    const { rows } = await this.db.query(
      'SELECT uid, version, tenant, resource_group, name, master_key_id, wrapped_key FROM secret_versions WHERE master_key_id <> $1 LIMIT $2',
      [notMasterKeyId, limit],
    );
    return rows.map((r) => ({ uid: r.uid, version: Number(r.version), tenant: r.tenant, resourceGroup: r.resource_group, name: r.name, masterKeyId: r.master_key_id, wrappedKey: r.wrapped_key }));
  }

  async replaceWrappedKeys(rows: WrappedKeyRow[], newMasterKeyId: string, wrapped: Uint8Array[]): Promise<number> {
    return this.db.transaction(async (db) => {
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

  async insertToken(token: TokenRecord, audit: AuditDraft[] = [], deadline?: number): Promise<void> {
    await this.group.write(async (db) => {
      await db.query(
        `INSERT INTO tokens (id, hash, role, tenant, resource_groups, deployment, deployment_resource_group, description, create_time, expire_time, revoke_time, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
        [token.id, token.hash, token.role, token.tenant, JSON.stringify(token.resourceGroups), token.deployment, token.deploymentResourceGroup, token.description, token.createTime, token.expireTime, token.revokeTime, token.createdBy],
      );
      await this.audit.insert(db, audit);
    }, true, undefined, deadline);
  }

  async getToken(id: string): Promise<TokenRecord | undefined> {
    const { rows } = await this.db.query('SELECT * FROM tokens WHERE id = $1', [id]);
    return rows[0] && toToken(rows[0]);
  }

  async countTokens(): Promise<number> {
    return Number((await this.db.query('SELECT COUNT(*) AS n FROM tokens')).rows[0].n);
  }

  async countNotices(): Promise<number> {
    return Number((await this.db.query('SELECT COUNT(*) AS n FROM outbox')).rows[0].n);
  }

  agentHeartbeats(): Promise<Array<{ lastSeenTime: string; resyncIntervalSeconds: number }>> {
    return this.agents.heartbeats();
  }

  async hasData(): Promise<boolean> {
    const { rows } = await this.db.query(
      `SELECT EXISTS (SELECT 1 FROM secret_versions) OR EXISTS (SELECT 1 FROM tokens)
         OR EXISTS (SELECT 1 FROM deployments) OR EXISTS (SELECT 1 FROM audit) OR EXISTS (SELECT 1 FROM audit_pending) AS n`,
    );
    return rows[0].n === true;
  }

  async getMeta(name: string): Promise<string | undefined> {
    const { rows } = await this.db.query('SELECT value FROM meta WHERE name = $1', [name]);
    return rows[0]?.value as string | undefined;
  }

  async claimMeta(name: string, value: string): Promise<string> {
    await this.db.query('INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [name, value]);
    return (await this.getMeta(name))!;
  }

  async listTokens(tenant: string | undefined): Promise<TokenRecord[]> {
    const { rows } = await this.db.query("SELECT * FROM tokens WHERE ($1 = '' OR tenant = $1) ORDER BY create_time, id", [tenant ?? '']);
    return rows.map(toToken);
  }

  async revokeToken(id: string, time: string, audit: AuditDraft[] = [], deadline?: number): Promise<TokenRecord | undefined> {
    return this.group.write(async (db) => {
      await db.query("UPDATE tokens SET revoke_time = $1 WHERE id = $2 AND revoke_time = ''", [time, id]);
      const row = (await db.query('SELECT * FROM tokens WHERE id = $1', [id])).rows[0];
      if (row) await this.audit.insert(db, audit);
      return row && toToken(row);
    }, true, undefined, deadline);
  }

  // ---- deployments ---------------------------------------------------------------------------

  async getDeployment(scope: ScopeKey, name: string): Promise<DeploymentRecord | undefined> {
    const { rows } = await this.db.query('SELECT * FROM deployments WHERE tenant = $1 AND resource_group = $2 AND name = $3', [scope.tenant, scope.resourceGroup, name]);
    return rows[0] && toDeployment(rows[0]);
  }

  async listDeployments(scope: ScopeKey): Promise<DeploymentRecord[]> {
    const { rows } = await this.db.query('SELECT * FROM deployments WHERE tenant = $1 AND resource_group = $2 ORDER BY name', [scope.tenant, scope.resourceGroup]);
    return rows.map(toDeployment);
  }

  async deploymentsListing(tenant: string, secretName: string): Promise<DeploymentRecord[]> {
    const { rows } = await this.db.query(
      `SELECT d.* FROM deployment_secrets r JOIN deployments d ON d.tenant = r.tenant AND d.resource_group = r.resource_group AND d.name = r.deployment
       WHERE r.tenant = $1 AND r.secret = $2 ORDER BY d.resource_group COLLATE "C", d.name COLLATE "C"`,
      [tenant, secretName],
    );
    return rows.map(toDeployment);
  }

  async writeDeployment(change: DeploymentChange, audit: AuditDraft[], deadline?: number): Promise<void> {
    const { record } = change;
    const where = describeScope(record);
    try {
      await this.group.write(async (db) => {
        await applyDeploymentChange(db, change);
        await this.audit.insert(db, audit);
      }, true, undefined, deadline);
    } catch (error) {
      if (isUniqueViolation(error)) throw new AlreadyExistsError(`deployment "${record.name}" already exists in ${where}`, 'DEPLOYMENT_EXISTS');
      throw error;
    }
  }

  // ---- audit (4) and agents ------------------------------------------------------------------

  async appendAudit(entries: AuditDraft[]): Promise<void> {
    if (entries.length) await this.group.write((db) => this.audit.insert(db, entries), false); // (8) deferred: no write of its own
  }

  async auditHead(): Promise<{ seq: number; hash: string }> {
    await this.audit.chainPending();
    const { rows } = await this.db.query('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1');
    return rows[0] ? { seq: Number(rows[0].seq), hash: String(rows[0].hash) } : { seq: 0, hash: '' };
  }

  pruneAudit(before: string, sign: (cut: { seq: number; hash: string }) => string): Promise<{ removed: number; cut?: string }> {
    return this.audit.prune(before, sign);
  }

  pruneAgents(silentSince: string): Promise<number> {
    return this.agents.prune(silentSince);
  }

  async listAudit(filter: AuditFilter): Promise<AuditRecord[]> {
    await this.audit.chainPending(); // what is committed is listed, chained
    const { rows } = await this.db.query(
      `SELECT * FROM audit WHERE seq > $1 AND ($2 = '' OR tenant = $2) AND ($3 = '' OR action = $3) AND ($4 = '' OR target = $4) ORDER BY seq LIMIT $5`,
      [filter.afterSeq, filter.tenant ?? '', filter.action ?? '', filter.target ?? '', filter.limit],
    );
    return rows.map(toAuditRecord);
  }

  reportAgents(reports: Array<{ report: AgentReport; applied: AppliedRecord[] }>): Promise<void> {
    return this.agents.report(reports);
  }

  agentsHolding(tenant: string, resourceGroup: string, name: string): Promise<Array<AppliedRecord & { report: AgentReport }>> {
    return this.agents.holding(tenant, resourceGroup, name);
  }

  async ping(): Promise<void> {
    await this.db.query('SELECT 1');
  }

  async close(): Promise<void> {
    await this.group.close();
    await this.audit.close();
    await this.db.end();
  }
}
