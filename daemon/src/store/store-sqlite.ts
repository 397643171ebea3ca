/**
 * The SQLite store (better-sqlite3): WAL journal, synchronous=FULL, so a commit is on disk when
 * it returns.
 *
 * Group commit: every write goes through store-sqlite-group-commit.ts, which joins the writes of
 * one turn of the event loop into one transaction and one fsync (its steps (1)–(3)).
 *
 * Head cache. This store is the only writer of its database file, so it keeps the current head of
 * recently read secrets in memory (metadata and the sealed envelope, never a plaintext value).
 * Every change drops the entry of the secret it touches before it is applied, and a re-wrap drops
 * them all; reads and flushes never interleave (both are synchronous), so a cached head is always
 * the committed one. Deployments are cached the same way (every agent call reads its deployment),
 * each entry dropped by the write that touches it.
 */
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  AlreadyExistsError,
  ConflictError,
  LockboxError,
  NotFoundError,
} from '../../../shared/src/errors.js';
import {
  IdempotencyReplayError,
  type AgentReport,
  type AppliedRecord,
  type AuditDraft,
  type AuditFilter,
  type AuditHasher,
  type AuditRecord,
  AUDIT_CUT_META,
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
import { describeScope } from '../services/scope.js';
import { toAgentHolding, toAuditRecord, toDeployment, toHead, toToken, toVersionRecord } from './store-rows.js';
import { deploymentSubject } from '../../../shared/src/subject.js';
import { migrateSqlite } from './migrations-sqlite.js';
import { applySecretChange, checkQuotas } from './store-sqlite-changes.js';
import { GroupCommit } from './store-sqlite-group-commit.js';
import { SqliteKeyring } from './store-sqlite-keyring.js';
import { prepareStatements, type SqliteStatements } from './store-sqlite-statements.js';

function headKey(scope: ScopeKey, name: string): string {
  return `${scope.tenant}\0${scope.resourceGroup}\0${name}`;
}

export interface SqliteStoreOptions {
  dataDir: string;
  /** Versions kept per secret (the current one included). */
  maxVersions: number;
  /** Chains audit entries: a keyed hash (audit.ts), so an entry cannot be forged without the key. */
  auditHasher: AuditHasher;
  /** Most jobs in one group commit. */
  maxGroup?: number;
  /** Told what commits and audit writes cost (metrics). */
  observer?: StoreObserver;
}

export class SqliteStore implements Store {
  readonly db: Database.Database;
  private readonly maxVersions: number;
  private readonly group: GroupCommit;
  readonly keyring: SqliteKeyring;
  private readonly auditHasher: AuditHasher;
  private readonly observer: StoreObserver | undefined;
  private readonly heads = new Map<string, SecretHead>();
  private readonly deployments = new Map<string, DeploymentRecord>();
  private static readonly headCacheLimit = 10_000;
  /**
   * Agent id → the [resource group, name] pairs its rows hold, as last written by this store (the
   * only writer of its file): when a report names the same ones (every ACK of a rotation), its
   * rows are updated in place and nothing needs deleting. Rows only ever leave otherwise (pruning),
   * so the rows after a report are exactly the ones it names.
   */
  private readonly appliedNames = new Map<string, string>();
  private readonly stmt: SqliteStatements;

  constructor(options: SqliteStoreOptions) {
    mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
    const file = join(options.dataDir, 'lockbox.db');
    this.db = new Database(file);
    chmodSync(file, 0o600);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.maxVersions = options.maxVersions;
    this.observer = options.observer;
    this.group = new GroupCommit(this.db, options.maxGroup ?? 1024, options.observer);
    this.keyring = new SqliteKeyring(this.db, this.group);
    this.auditHasher = options.auditHasher;
    migrateSqlite(this.db);
    this.stmt = prepareStatements(this.db);
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

  commit(changes: Change[], idempotency?: IdempotencyRecord, audit?: (outcomes: CommitOutcome[]) => AuditDraft[], deadline?: number): Promise<CommitOutcome[]> {
    return this.group.write(() => this.applyCommit(changes, idempotency, audit), deadline);
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
        this.heads.delete(headKey(change.scope, change.name));
        const seq = applySecretChange(this.stmt, change, this.maxVersions);
        this.db.exec('RELEASE change');
        outcomes.push({ ok: true, seq });
      } catch (error) {
        this.db.exec('ROLLBACK TO change');
        this.db.exec('RELEASE change');
        if (!(error instanceof LockboxError)) throw error;
        outcomes.push({ ok: false, error });
      }
    }
    const response = idempotency?.respond(outcomes);
    if (idempotency && response !== undefined)
      this.stmt.insertIdempotency.run(idempotency.tenant, idempotency.key, idempotency.method, idempotency.fingerprint, response, idempotency.createTime);
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
      this.observer?.auditWritten((Date.now() - Date.parse(entry.time)) / 1000);
      last = { seq: entry.seq, hash };
    }
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
    return this.group.write(() => {
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

  insertToken(token: TokenRecord, audit: AuditDraft[] = [], deadline?: number): Promise<void> {
    return this.group.write(() => {
      this.stmt.insertToken.run({ ...token, resourceGroups: JSON.stringify(token.resourceGroups) });
      this.insertAudit(audit);
    }, deadline);
  }

  async getToken(id: string): Promise<TokenRecord | undefined> {
    const row = this.stmt.getToken.get(id);
    return row && toToken(row);
  }

  async listTokens(tenant: string | undefined): Promise<TokenRecord[]> {
    return this.stmt.listTokens.all(tenant ?? '', tenant ?? '').map(toToken);
  }

  revokeToken(id: string, time: string, audit: AuditDraft[] = [], deadline?: number): Promise<TokenRecord | undefined> {
    return this.group.write(() => {
      this.stmt.revokeToken.run(time, id);
      const row = this.stmt.getToken.get(id);
      if (row) this.insertAudit(audit);
      return row && toToken(row);
    }, deadline);
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

  writeDeployment(change: DeploymentChange, audit: AuditDraft[], deadline?: number): Promise<void> {
    return this.group.write(() => {
      const { record } = change;
      this.deployments.delete(headKey(record, record.name));
      const existing = this.stmt.getDeployment.get(record.tenant, record.resourceGroup, record.name);
      const where = describeScope(record);
      if (change.operation === 'create') {
        if (existing) throw new AlreadyExistsError(`deployment "${record.name}" already exists in ${where}`, 'DEPLOYMENT_EXISTS');
        checkQuotas(this.stmt, record.tenant, record.resourceGroup, change.quotas, 'deployment');
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
    }, deadline);
  }

  async reportAgents(reports: Array<{ report: AgentReport; applied: AppliedRecord[] }>): Promise<void> {
    // One report that fails is rolled back alone, to its own savepoint (better-sqlite3 nests a
    // transaction as one): the others of the window are still written, and the failure is thrown
    // once they are, as the PostgreSQL store does.
    const failed: Array<{ agentId: string; error: unknown }> = [];
    const written = this.group.write(() => {
      for (const { report, applied } of reports)
        try {
          this.db.transaction(() => this.writeAgentReport(report, applied))();
        } catch (error) {
          this.appliedNames.delete(report.agentId);
          failed.push({ agentId: report.agentId, error });
        }
    });
    // Rolled back: what was remembered may not be on disk. Cleared before the next group runs
    // (a failed group rejects its jobs before the next flush is scheduled).
    written.catch(() => this.appliedNames.clear());
    await written;
    if (failed.length)
      throw new Error(`${failed.length} of ${reports.length} agent reports were not written (agent ids ${failed.map((f) => f.agentId).join(', ')}); the others were`, { cause: failed[0].error });
  }

  private writeAgentReport(report: AgentReport, applied: AppliedRecord[]): void {
    this.stmt.upsertAgent.run({ ...report, problems: JSON.stringify(report.problems) });
    for (const record of applied) this.stmt.upsertApplied.run(record);
    const names = JSON.stringify(applied.map((a) => [a.resourceGroup, a.name]));
    if (this.appliedNames.get(report.agentId) === names) return;
    this.stmt.deleteAppliedExcept.run(report.agentId, names);
    if (this.appliedNames.size >= 100_000) this.appliedNames.clear();
    this.appliedNames.set(report.agentId, names);
  }

  async agentsHolding(tenant: string, resourceGroup: string, name: string): Promise<Array<AppliedRecord & { report: AgentReport }>> {
    return this.stmt.agentsHolding.all(tenant, resourceGroup, name).map(toAgentHolding);
  }

  appendAudit(entries: AuditDraft[]): Promise<void> {
    return this.group.write(() => this.insertAudit(entries));
  }

  async auditHead(): Promise<{ seq: number; hash: string }> {
    return this.stmt.lastAudit.get() ?? { seq: 0, hash: '' };
  }

  pruneAudit(before: string, sign: (cut: { seq: number; hash: string }) => string): Promise<{ removed: number; cut?: string }> {
    return this.group.write(() => {
      const head = this.stmt.lastAudit.get();
      const newer = this.db.prepare<[string], { seq: number | null }>('SELECT MIN(seq) AS seq FROM audit WHERE time >= ?').get(before)?.seq ?? null;
      const kept = this.db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE name = ?').get(AUDIT_CUT_META);
      const last = head?.seq ?? 0;
      const cutSeq = Math.min(newer === null ? last : newer - 1, last - 1); // service-audit.ts step (2); the last entry stays: the chain goes on from it
      if (cutSeq <= (kept ? (JSON.parse(kept.value) as { seq: number }).seq : 0)) return { removed: 0 };
      const at = this.db.prepare<[number], { hash: string }>('SELECT hash FROM audit WHERE seq = ?').get(cutSeq)!;
      const cut = sign({ seq: cutSeq, hash: at.hash });
      const removed = this.db.prepare('DELETE FROM audit WHERE seq <= ?').run(cutSeq).changes;
      this.db.prepare('INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value').run(AUDIT_CUT_META, cut);
      return { removed, cut };
    });
  }

  pruneAgents(silentSince: string): Promise<number> {
    return this.group.write(() => {
      this.db.prepare('DELETE FROM agent_applied WHERE agent_id IN (SELECT agent_id FROM agents WHERE last_seen_time < ?)').run(silentSince);
      return this.db.prepare('DELETE FROM agents WHERE last_seen_time < ?').run(silentSince).changes;
    });
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

  /** SQLite's online backup API: a consistent snapshot while writes go on. */
  async backup(path: string): Promise<void> {
    await this.db.backup(path);
  }

  async countNotices(): Promise<number> {
    return this.stmt.countNotices.get()!.n;
  }

  async agentHeartbeats(): Promise<Array<{ lastSeenTime: string; resyncIntervalSeconds: number }>> {
    return this.stmt.agentHeartbeats.all();
  }

  async hasData(): Promise<boolean> {
    const sql = `SELECT EXISTS (SELECT 1 FROM secret_versions) OR EXISTS (SELECT 1 FROM tokens)
                   OR EXISTS (SELECT 1 FROM deployments) OR EXISTS (SELECT 1 FROM audit) AS n`;
    return this.db.prepare<[], { n: number }>(sql).get()!.n === 1;
  }

  async getMeta(name: string): Promise<string | undefined> {
    return this.db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE name = ?').get(name)?.value;
  }

  claimMeta(name: string, value: string): Promise<string> {
    return this.group.write(() => {
      this.db.prepare('INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)').run(name, value);
      return this.db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE name = ?').get(name)!.value;
    });
  }

  /** Waits for queued commits, then closes the database. */
  async close(): Promise<void> {
    if (!(await this.group.close())) return;
    this.db.close();
  }
}
