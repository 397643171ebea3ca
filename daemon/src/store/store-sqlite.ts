/**
 * The SQLite store (better-sqlite3): WAL journal, synchronous=FULL, so a commit is on disk when
 * it returns.
 *
 * Group commit. better-sqlite3 is synchronous and an fsync costs milliseconds, so one commit per
 * call would cap durable writes at a few hundred per second. Instead:
 * 1. Every write (`commit()`, deployments, tokens, audit entries) queues a job and schedules one
 *    flush with setImmediate, so every job that arrives in the same turn of the event loop
 *    (including those that arrived while the previous flush was syncing) joins one transaction.
 * 2. The flush opens one IMMEDIATE transaction and runs each job inside its own SAVEPOINT (a
 *    failed job rolls back alone), and each change of a `commit()` inside a nested SAVEPOINT.
 * 3. One COMMIT (one fsync) makes all of them durable; only then are the callers' promises
 *    resolved, so nothing is acknowledged before it is on disk.
 *
 * Head cache. This store is the only writer of its database file, so it keeps the current head of
 * recently read secrets in memory (metadata and the sealed envelope, never a plaintext value).
 * Every change drops the entry of the secret it touches before it is applied, and a re-wrap drops
 * them all; reads and flushes never interleave (both are synchronous), so a cached head is always
 * the committed one. Deployments are cached the same way (every agent call reads its deployment),
 * each entry dropped by the write that touches it.
 */
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  AlreadyExistsError,
  ConflictError,
  LockboxError,
  NotFoundError,
  ResourceExhaustedError,
} from '../../../shared/src/errors.js';
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
  type Quotas,
  type IdempotencyRecord,
  type ScopeKey,
  type SecretHead,
  type Store,
  type StoredIdempotency,
  type StoredNotice,
  type TokenRecord,
  type VersionRecord,
  type WrappedKeyRow,
} from './store.js';
import { describeScope } from '../services/scope.js';
import { toAgentHolding, toAuditRecord, toDeployment, toHead, toToken, toVersionRecord, versionColumns, type Row } from './store-rows.js';
import { deploymentSubject } from '../../../shared/src/subject.js';

/** Ordered; each runs once, in a transaction, and is recorded in schema_migrations. */
const migrations: string[] = [
  `CREATE TABLE secrets (
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
  `ALTER TABLE tokens ADD COLUMN deployment_resource_group TEXT NOT NULL DEFAULT '';
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
  `CREATE TABLE agents (
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
  `ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1;`,
];

function headKey(scope: ScopeKey, name: string): string {
  return `${scope.tenant}\0${scope.resourceGroup}\0${name}`;
}

interface Job {
  run: () => unknown;
  resolve: (value: any) => void;
  reject: (error: unknown) => void;
}

export interface SqliteStoreOptions {
  dataDir: string;
  /** Versions kept per secret (the current one included). */
  maxVersions: number;
  /** Chains audit entries; by default a plain (unkeyed) hash, for tests of the store alone. */
  auditHasher?: AuditHasher;
  /** Most jobs in one group commit. */
  maxGroup?: number;
}

export class SqliteStore implements Store {
  readonly db: Database.Database;
  private readonly maxVersions: number;
  private readonly maxGroup: number;
  private readonly auditHasher: AuditHasher;
  private queue: Job[] = [];
  private readonly heads = new Map<string, SecretHead>();
  private readonly deployments = new Map<string, DeploymentRecord>();
  private static readonly headCacheLimit = 10_000;
  private flushScheduled = false;
  private closed = false;
  private readonly stmt;

  constructor(options: SqliteStoreOptions) {
    mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
    const file = join(options.dataDir, 'lockbox.db');
    this.db = new Database(file);
    chmodSync(file, 0o600);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.maxVersions = options.maxVersions;
    this.maxGroup = options.maxGroup ?? 1024;
    this.auditHasher = options.auditHasher ?? ((entry) => createHash('sha256').update(JSON.stringify(entry)).digest('hex'));
    this.migrate();
    this.stmt = {
      head: this.db.prepare<[string, string, string], Row>(
        `SELECT ${versionColumns}, s.create_time AS secret_create_time FROM secrets s
         JOIN secret_versions v ON v.uid = s.uid AND v.version = s.version
         WHERE s.tenant = ? AND s.resource_group = ? AND s.name = ?`,
      ),
      headRow: this.db.prepare<[string, string, string], { uid: string; version: number }>(
        'SELECT uid, version FROM secrets WHERE tenant = ? AND resource_group = ? AND name = ?',
      ),
      listHeads: this.db.prepare<[string, string, string, number], Row>(
        `SELECT ${versionColumns}, s.create_time AS secret_create_time FROM secrets s
         JOIN secret_versions v ON v.uid = s.uid AND v.version = s.version
         WHERE s.tenant = ? AND s.resource_group = ? AND s.name > ? ORDER BY s.name LIMIT ?`,
      ),
      version: this.db.prepare<[string, number], Row>(
        `SELECT ${versionColumns} FROM secret_versions v WHERE v.uid = ? AND v.version = ?`,
      ),
      versions: this.db.prepare<[string], Row>(
        `SELECT ${versionColumns} FROM secret_versions v WHERE v.uid = ? ORDER BY v.version DESC`,
      ),
      insertSecret: this.db.prepare(
        'INSERT INTO secrets (tenant, resource_group, name, uid, version, create_time) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      setVersion: this.db.prepare('UPDATE secrets SET version = ? WHERE uid = ?'),
      deleteSecret: this.db.prepare('DELETE FROM secrets WHERE uid = ?'),
      deleteVersions: this.db.prepare('DELETE FROM secret_versions WHERE uid = ?'),
      pruneVersions: this.db.prepare('DELETE FROM secret_versions WHERE uid = ? AND version <= ?'),
      insertVersion: this.db.prepare(
        `INSERT INTO secret_versions (uid, version, tenant, resource_group, name, operation, restored_from, type,
           template, description, labels, mount, keys, create_time, change_seq, master_key_id, wrapped_key, ciphertext)
         VALUES (@uid, @version, @tenant, @resource_group, @name, @operation, @restored_from, @type, @template,
           @description, @labels, @mount, @keys, @create_time, @change_seq, @master_key_id, @wrapped_key, @ciphertext)`,
      ),
      insertNotice: this.db.prepare(
        `INSERT INTO outbox (subject, tenant, resource_group, name, uid, version, operation, time)
         VALUES (@subject, @tenant, @resourceGroup, @name, @uid, @version, @operation, @time)`,
      ),
      pendingNotices: this.db.prepare<[number], StoredNotice>(
        `SELECT seq, subject, tenant, resource_group AS resourceGroup, name, uid, version, operation, time
         FROM outbox ORDER BY seq LIMIT ?`,
      ),
      deleteNotice: this.db.prepare('DELETE FROM outbox WHERE seq = ?'),
      getIdempotency: this.db.prepare<[string, string], StoredIdempotency>(
        `SELECT method, fingerprint, response, create_time AS createTime FROM idempotency WHERE tenant = ? AND key = ?`,
      ),
      insertIdempotency: this.db.prepare(
        'INSERT INTO idempotency (tenant, key, method, fingerprint, response, create_time) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      pruneIdempotency: this.db.prepare('DELETE FROM idempotency WHERE create_time < ?'),
      countByMasterKey: this.db.prepare<[], { id: string; n: number }>(
        'SELECT master_key_id AS id, COUNT(*) AS n FROM secret_versions GROUP BY master_key_id',
      ),
      listWrapped: this.db.prepare<[string, number], { uid: string; version: number; tenant: string; resource_group: string; name: string; master_key_id: string; wrapped_key: Buffer }>(
        `SELECT uid, version, tenant, resource_group, name, master_key_id, wrapped_key FROM secret_versions
         WHERE master_key_id <> ? LIMIT ?`,
      ),
      replaceWrapped: this.db.prepare(
        'UPDATE secret_versions SET master_key_id = ?, wrapped_key = ? WHERE uid = ? AND version = ? AND master_key_id = ?',
      ),
      insertToken: this.db.prepare(
        `INSERT INTO tokens (id, hash, role, tenant, resource_groups, deployment, deployment_resource_group, description, create_time,
           expire_time, revoke_time, created_by)
         VALUES (@id, @hash, @role, @tenant, @resourceGroups, @deployment, @deploymentResourceGroup, @description, @createTime,
           @expireTime, @revokeTime, @createdBy)`,
      ),
      getToken: this.db.prepare<[string], Record<string, string>>('SELECT * FROM tokens WHERE id = ?'),
      countTokens: this.db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM tokens'),
      listTokens: this.db.prepare<[string, string], Record<string, string>>('SELECT * FROM tokens WHERE (? = \'\' OR tenant = ?) ORDER BY create_time, id'),
      revokeToken: this.db.prepare("UPDATE tokens SET revoke_time = ? WHERE id = ? AND revoke_time = ''"),
      countTenantWide: this.db.prepare<[string], { n: number }>("SELECT COUNT(*) AS n FROM secrets WHERE tenant = ? AND resource_group = '*'"),
      groupInUse: this.db.prepare<[string, string, string, string], { n: number }>(
        `SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM secrets WHERE tenant = ? AND resource_group = ? LIMIT 1))
              + (SELECT COUNT(*) FROM (SELECT 1 FROM deployments WHERE tenant = ? AND resource_group = ? LIMIT 1)) AS n`,
      ),
      countGroups: this.db.prepare<[string, string], { n: number }>(
        `SELECT COUNT(*) AS n FROM (
           SELECT resource_group FROM secrets WHERE tenant = ? AND resource_group NOT IN ('', '*')
           UNION SELECT resource_group FROM deployments WHERE tenant = ? AND resource_group NOT IN ('', '*'))`,
      ),
      getDeployment: this.db.prepare<[string, string, string], Row>('SELECT * FROM deployments WHERE tenant = ? AND resource_group = ? AND name = ?'),
      listDeployments: this.db.prepare<[string, string], Row>('SELECT * FROM deployments WHERE tenant = ? AND resource_group = ? ORDER BY name'),
      deploymentsListing: this.db.prepare<[string, string], Row>(
        `SELECT d.* FROM deployment_secrets r JOIN deployments d
           ON d.tenant = r.tenant AND d.resource_group = r.resource_group AND d.name = r.deployment
         WHERE r.tenant = ? AND r.secret = ? ORDER BY d.resource_group, d.name`,
      ),
      insertDeployment: this.db.prepare(
        `INSERT INTO deployments (tenant, resource_group, name, uid, version, secrets, description, labels, create_time, update_time)
         VALUES (@tenant, @resourceGroup, @name, @uid, @version, @secrets, @description, @labels, @createTime, @updateTime)`,
      ),
      updateDeployment: this.db.prepare(
        `UPDATE deployments SET version = @version, secrets = @secrets, description = @description, labels = @labels, update_time = @updateTime
         WHERE tenant = @tenant AND resource_group = @resourceGroup AND name = @name`,
      ),
      deleteDeployment: this.db.prepare('DELETE FROM deployments WHERE tenant = ? AND resource_group = ? AND name = ?'),
      deleteDeploymentRefs: this.db.prepare('DELETE FROM deployment_secrets WHERE tenant = ? AND resource_group = ? AND deployment = ?'),
      insertDeploymentRef: this.db.prepare('INSERT OR IGNORE INTO deployment_secrets (tenant, secret, resource_group, deployment) VALUES (?, ?, ?, ?)'),
      upsertAgent: this.db.prepare(
        `INSERT INTO agents (agent_id, tenant, deployment, deployment_resource_group, token_id, last_seen_time, resync_interval_seconds, problems)
         VALUES (@agentId, @tenant, @deployment, @deploymentResourceGroup, @tokenId, @lastSeenTime, @resyncIntervalSeconds, @problems)
         ON CONFLICT (agent_id) DO UPDATE SET tenant = excluded.tenant, deployment = excluded.deployment,
           deployment_resource_group = excluded.deployment_resource_group, token_id = excluded.token_id,
           last_seen_time = excluded.last_seen_time, resync_interval_seconds = excluded.resync_interval_seconds, problems = excluded.problems`,
      ),
      deleteApplied: this.db.prepare('DELETE FROM agent_applied WHERE agent_id = ?'),
      insertApplied: this.db.prepare(
        `INSERT OR REPLACE INTO agent_applied (agent_id, tenant, resource_group, name, uid, version, applied_time)
         VALUES (@agentId, @tenant, @resourceGroup, @name, @uid, @version, @appliedTime)`,
      ),
      agentsHolding: this.db.prepare<[string, string, string], Record<string, string | number>>(
        `SELECT a.*, g.deployment, g.deployment_resource_group, g.token_id, g.last_seen_time, g.resync_interval_seconds, g.problems
         FROM agent_applied a JOIN agents g ON g.agent_id = a.agent_id
         WHERE a.tenant = ? AND a.resource_group = ? AND a.name = ? ORDER BY a.agent_id`,
      ),
      lastAudit: this.db.prepare<[], { seq: number; hash: string }>('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1'),
      insertAudit: this.db.prepare(
        `INSERT INTO audit (seq, time, token_id, role, tenant, resource_group, action, target, version, outcome, request_id, count, prev_hash, hash)
         VALUES (@seq, @time, @tokenId, @role, @tenant, @resourceGroup, @action, @target, @version, @outcome, @requestId, @count, @prevHash, @hash)`,
      ),
      listAudit: this.db.prepare<[number, string, string, string, string, string, string, number], Record<string, string | number>>(
        `SELECT * FROM audit WHERE seq > ? AND (? = '' OR tenant = ?) AND (? = '' OR action = ?) AND (? = '' OR target = ?)
         ORDER BY seq LIMIT ?`,
      ),
    };
  }

  private migrate(): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_time TEXT NOT NULL)');
    const row = this.db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null };
    const applied = row.v ?? 0;
    if (applied > migrations.length)
      throw new Error(`database schema version ${applied} is newer than this lockboxd (${migrations.length}); upgrade lockboxd`);
    for (let i = applied; i < migrations.length; i++) {
      this.db.transaction(() => {
        this.db.exec(migrations[i]);
        this.db.prepare('INSERT INTO schema_migrations (version, applied_time) VALUES (?, ?)').run(i + 1, new Date().toISOString());
      })();
    }
  }

  async getHead(scope: ScopeKey, name: string): Promise<SecretHead | undefined> {
    const key = headKey(scope, name);
    const cached = this.heads.get(key);
    if (cached) return cached;
    const row = this.stmt.head.get(scope.tenant, scope.resourceGroup, name);
    if (!row) return undefined;
    const head = toHead(row);
    if (this.heads.size >= SqliteStore.headCacheLimit) this.heads.clear();
    this.heads.set(key, head);
    return head;
  }

  async getVersion(uid: string, version: number): Promise<VersionRecord | undefined> {
    const row = this.stmt.version.get(uid, version);
    return row && toVersionRecord(row);
  }

  async listHeads(scope: ScopeKey, afterName: string, limit: number): Promise<SecretHead[]> {
    return this.stmt.listHeads.all(scope.tenant, scope.resourceGroup, afterName, limit).map(toHead);
  }

  async listVersions(uid: string): Promise<VersionRecord[]> {
    return this.stmt.versions.all(uid).map(toVersionRecord);
  }

  /** Step (1): queues `run` to execute inside the next group transaction. */
  private write<T>(run: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new Error('store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  commit(changes: Change[], idempotency?: IdempotencyRecord, audit?: (outcomes: CommitOutcome[]) => AuditDraft[]): Promise<CommitOutcome[]> {
    return this.write(() => this.applyCommit(changes, idempotency, audit));
  }

  /** Runs every queued job in one transaction: steps (2) and (3) of the header. */
  private flush(): void {
    this.flushScheduled = false;
    const jobs = this.queue.splice(0, this.maxGroup);
    if (this.queue.length > 0) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    if (jobs.length === 0) return;
    const settled: Array<{ job: Job; ok: boolean; value?: unknown; error?: unknown }> = [];
    try {
      this.db.exec('BEGIN IMMEDIATE');
    } catch (error) {
      for (const job of jobs) job.reject(error);
      return;
    }
    for (const job of jobs) {
      this.db.exec('SAVEPOINT job');
      try {
        const value = job.run();
        this.db.exec('RELEASE job');
        settled.push({ job, ok: true, value });
      } catch (error) {
        this.db.exec('ROLLBACK TO job');
        this.db.exec('RELEASE job');
        settled.push({ job, ok: false, error });
      }
    }
    try {
      this.db.exec('COMMIT');
    } catch (error) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      for (const job of jobs) job.reject(error);
      return;
    }
    for (const { job, ok, value, error } of settled) {
      if (ok) job.resolve(value);
      else job.reject(error);
    }
  }

  private applyCommit(changes: Change[], idempotency?: IdempotencyRecord, audit?: (outcomes: CommitOutcome[]) => AuditDraft[]): CommitOutcome[] {
    if (idempotency) {
      const stored = this.stmt.getIdempotency.get(idempotency.tenant, idempotency.key);
      if (stored) throw new IdempotencyReplayError(stored);
    }
    const outcomes: CommitOutcome[] = [];
    for (const change of changes) {
      this.db.exec('SAVEPOINT change');
      try {
        const seq = this.applyChange(change);
        this.db.exec('RELEASE change');
        outcomes.push({ ok: true, seq });
      } catch (error) {
        this.db.exec('ROLLBACK TO change');
        this.db.exec('RELEASE change');
        if (!(error instanceof LockboxError)) throw error;
        outcomes.push({ ok: false, error });
      }
    }
    if (idempotency) {
      this.stmt.insertIdempotency.run(
        idempotency.tenant,
        idempotency.key,
        idempotency.method,
        idempotency.fingerprint,
        idempotency.respond(outcomes),
        idempotency.createTime,
      );
    }
    if (audit) this.insertAudit(audit(outcomes));
    return outcomes;
  }

  /** Appends entries to the hash chain: each links to the previous entry's hash. */
  private insertAudit(entries: AuditDraft[]): void {
    let last = this.stmt.lastAudit.get() ?? { seq: 0, hash: '' };
    for (const draft of entries) {
      const entry = { ...draft, count: draft.count ?? 1, seq: last.seq + 1, prevHash: last.hash };
      const hash = this.auditHasher(entry);
      this.stmt.insertAudit.run({ ...entry, hash });
      last = { seq: entry.seq, hash };
    }
  }

  /** Quotas that a create in `scope` must respect; throws RESOURCE_EXHAUSTED past them. */
  private checkQuotas(tenant: string, resourceGroup: string, quotas: Quotas | undefined, what: string): void {
    if (!quotas) return;
    if (what === 'secret' && resourceGroup === '*') {
      const n = this.stmt.countTenantWide.get(tenant)!.n;
      if (n >= quotas.maxTenantWideSecrets)
        throw new ResourceExhaustedError(`tenant "${tenant}" has ${n} tenant-wide secrets; the limit is ${quotas.maxTenantWideSecrets}`);
    }
    if (resourceGroup !== '' && resourceGroup !== '*' && this.stmt.groupInUse.get(tenant, resourceGroup, tenant, resourceGroup)!.n === 0) {
      const n = this.stmt.countGroups.get(tenant, tenant)!.n;
      if (n >= quotas.maxResourceGroups)
        throw new ResourceExhaustedError(`tenant "${tenant}" has ${n} resource groups in use; the limit is ${quotas.maxResourceGroups}`);
    }
  }

  private applyChange(change: Change): number {
    const { scope, name } = change;
    this.heads.delete(headKey(scope, name));
    const head = this.stmt.headRow.get(scope.tenant, scope.resourceGroup, name);
    const where = describeScope(scope);
    if (change.operation === 'create') {
      if (head) throw new AlreadyExistsError(`secret "${name}" already exists in ${where}`, 'SECRET_EXISTS');
      this.checkQuotas(scope.tenant, scope.resourceGroup, change.quotas, 'secret');
    } else {
      if (!head) throw new NotFoundError(`secret "${name}" not found in ${where}`, 'SECRET_NOT_FOUND');
      if (head.uid !== change.expectUid || head.version !== change.expectVersion)
        throw new ConflictError(
          `secret "${name}" is at version ${head.version}, not ${change.expectVersion}: it changed since it was read`,
        );
    }
    const seq = Number(this.stmt.insertNotice.run(change.notice).lastInsertRowid);
    const record = change.record;
    if (change.operation === 'delete' || !record) {
      this.stmt.deleteSecret.run(head!.uid);
      this.stmt.deleteVersions.run(head!.uid);
      return seq;
    }
    record.changeSeq = seq;
    if (change.operation === 'create') {
      this.stmt.insertSecret.run(scope.tenant, scope.resourceGroup, name, record.uid, record.version, record.createTime);
    } else {
      this.stmt.setVersion.run(record.version, record.uid);
    }
    this.stmt.insertVersion.run({
      uid: record.uid,
      version: record.version,
      tenant: record.tenant,
      resource_group: record.resourceGroup,
      name: record.name,
      operation: record.operation,
      restored_from: record.restoredFrom,
      type: record.type,
      template: record.template,
      description: record.description,
      labels: JSON.stringify(record.labels),
      mount: JSON.stringify(record.mount),
      keys: JSON.stringify(record.keys),
      create_time: record.createTime,
      change_seq: seq,
      master_key_id: record.envelope.masterKeyId,
      wrapped_key: Buffer.from(record.envelope.wrappedKey),
      ciphertext: Buffer.from(record.envelope.ciphertext),
    });
    this.stmt.pruneVersions.run(record.uid, record.version - this.maxVersions);
    return seq;
  }

  async getIdempotency(tenant: string, key: string): Promise<StoredIdempotency | undefined> {
    return this.stmt.getIdempotency.get(tenant, key);
  }

  async pruneIdempotency(before: string): Promise<number> {
    return this.stmt.pruneIdempotency.run(before).changes;
  }

  async pendingNotices(limit: number): Promise<StoredNotice[]> {
    return this.stmt.pendingNotices.all(limit);
  }

  /** In the group commit, so it shares a transaction (and its fsync) with the writes of the same turn. */
  deleteNotices(seqs: number[]): Promise<void> {
    return this.write(() => {
      for (const seq of seqs) this.stmt.deleteNotice.run(seq);
    });
  }

  async countByMasterKey(): Promise<Map<string, number>> {
    return new Map(this.stmt.countByMasterKey.all().map((r) => [r.id, r.n]));
  }

  async listWrappedKeys(notMasterKeyId: string, limit: number): Promise<WrappedKeyRow[]> {
    return this.stmt.listWrapped.all(notMasterKeyId, limit).map((r) => ({
      uid: r.uid,
      version: r.version,
      tenant: r.tenant,
      resourceGroup: r.resource_group,
      name: r.name,
      masterKeyId: r.master_key_id,
      wrappedKey: r.wrapped_key,
    }));
  }

  async replaceWrappedKeys(rows: WrappedKeyRow[], newMasterKeyId: string, wrapped: Uint8Array[]): Promise<number> {
    this.heads.clear();
    return this.db.transaction(() => {
      let n = 0;
      rows.forEach((row, i) => {
        n += this.stmt.replaceWrapped.run(newMasterKeyId, Buffer.from(wrapped[i]), row.uid, row.version, row.masterKeyId).changes;
      });
      return n;
    })();
  }

  insertToken(token: TokenRecord, audit: AuditDraft[] = []): Promise<void> {
    return this.write(() => {
      this.stmt.insertToken.run({ ...token, resourceGroups: JSON.stringify(token.resourceGroups) });
      this.insertAudit(audit);
    });
  }

  async getToken(id: string): Promise<TokenRecord | undefined> {
    const row = this.stmt.getToken.get(id);
    return row && toToken(row);
  }

  async listTokens(tenant: string | undefined): Promise<TokenRecord[]> {
    return this.stmt.listTokens.all(tenant ?? '', tenant ?? '').map(toToken);
  }

  revokeToken(id: string, time: string, audit: AuditDraft[] = []): Promise<TokenRecord | undefined> {
    return this.write(() => {
      this.stmt.revokeToken.run(time, id);
      const row = this.stmt.getToken.get(id);
      if (row) this.insertAudit(audit);
      return row && toToken(row);
    });
  }

  async getDeployment(scope: ScopeKey, name: string): Promise<DeploymentRecord | undefined> {
    const key = headKey(scope, name);
    const cached = this.deployments.get(key);
    if (cached) return cached;
    const row = this.stmt.getDeployment.get(scope.tenant, scope.resourceGroup, name);
    if (!row) return undefined;
    const record = toDeployment(row);
    if (this.deployments.size >= SqliteStore.headCacheLimit) this.deployments.clear();
    this.deployments.set(key, record);
    return record;
  }

  async listDeployments(scope: ScopeKey): Promise<DeploymentRecord[]> {
    return this.stmt.listDeployments.all(scope.tenant, scope.resourceGroup).map(toDeployment);
  }

  async deploymentsListing(tenant: string, secretName: string): Promise<DeploymentRecord[]> {
    return this.stmt.deploymentsListing.all(tenant, secretName).map(toDeployment);
  }

  writeDeployment(change: DeploymentChange, audit: AuditDraft[]): Promise<void> {
    return this.write(() => {
      const { record } = change;
      this.deployments.delete(headKey(record, record.name));
      const existing = this.stmt.getDeployment.get(record.tenant, record.resourceGroup, record.name);
      const where = describeScope(record);
      if (change.operation === 'create') {
        if (existing) throw new AlreadyExistsError(`deployment "${record.name}" already exists in ${where}`, 'DEPLOYMENT_EXISTS');
        this.checkQuotas(record.tenant, record.resourceGroup, change.quotas, 'deployment');
      } else {
        if (!existing) throw new NotFoundError(`deployment "${record.name}" not found in ${where}`, 'DEPLOYMENT_NOT_FOUND');
        if (change.expectVersion !== undefined && existing.version !== change.expectVersion)
          throw new ConflictError(`deployment "${record.name}" is at version ${existing.version}, not ${change.expectVersion}`);
      }
      const row = { ...record, secrets: JSON.stringify(record.secrets), labels: JSON.stringify(record.labels) };
      this.stmt.deleteDeploymentRefs.run(record.tenant, record.resourceGroup, record.name);
      if (change.operation === 'delete') this.stmt.deleteDeployment.run(record.tenant, record.resourceGroup, record.name);
      else if (change.operation === 'create') this.stmt.insertDeployment.run(row);
      else this.stmt.updateDeployment.run(row);
      if (change.operation !== 'delete')
        for (const secret of record.secrets) this.stmt.insertDeploymentRef.run(record.tenant, secret, record.resourceGroup, record.name);
      this.stmt.insertNotice.run({ // agents of the deployment re-read it at once
        subject: deploymentSubject(record.tenant, record.resourceGroup, record.name),
        tenant: record.tenant,
        resourceGroup: record.resourceGroup,
        name: record.name,
        uid: record.uid,
        version: record.version,
        operation: change.operation,
        time: change.operation === 'delete' ? new Date().toISOString() : record.updateTime,
      });
      this.insertAudit(audit);
    });
  }

  reportAgent(report: AgentReport, applied: AppliedRecord[]): Promise<void> {
    return this.write(() => {
      this.stmt.upsertAgent.run({ ...report, problems: JSON.stringify(report.problems) });
      this.stmt.deleteApplied.run(report.agentId);
      for (const record of applied) this.stmt.insertApplied.run(record);
    });
  }

  async agentsHolding(tenant: string, resourceGroup: string, name: string): Promise<Array<AppliedRecord & { report: AgentReport }>> {
    return this.stmt.agentsHolding.all(tenant, resourceGroup, name).map(toAgentHolding);
  }

  appendAudit(entries: AuditDraft[]): Promise<void> {
    return this.write(() => this.insertAudit(entries));
  }

  async listAudit(filter: AuditFilter): Promise<AuditRecord[]> {
    const rows = this.stmt.listAudit.all(
      filter.afterSeq,
      filter.tenant ?? '',
      filter.tenant ?? '',
      filter.action ?? '',
      filter.action ?? '',
      filter.target ?? '',
      filter.target ?? '',
      filter.limit,
    );
    return rows.map(toAuditRecord);
  }

  async countTokens(): Promise<number> {
    return this.stmt.countTokens.get()!.n;
  }

  /** Waits for queued commits, then closes the database. */
  async close(): Promise<void> {
    if (this.closed) return;
    while (this.queue.length > 0 || this.flushScheduled) await new Promise((r) => setImmediate(r));
    this.closed = true;
    this.db.close();
  }
}
