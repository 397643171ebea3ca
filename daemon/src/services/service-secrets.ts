/**
 * The secrets service: every rule of the API lives here once, whatever transport called it.
 * A call (1) resolves and authorizes the scope, (2) validates the input, (3) reads what it
 * changes, (4) seals the new version, (5) commits the change with its outbox notice (and the
 * idempotency record) in one transaction, (6) wakes the notice publisher. Steps (2)–(4) are
 * prepared in secret-changes.ts (input checks in secret-input.ts, precedence, shadowing and
 * deployments-still-fit in secret-scope-rules.ts); idempotent replays in idempotency.ts. Listing
 * is in secret-list.ts, batches in secret-batch.ts, both behind this service's authorization.
 */
import {
  ConflictError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
} from '../../../shared/src/errors.js';
import { checkResourceGroup, checkSecretName, checkTenant } from '../../../shared/src/validate.js';
import { auditDraft, auditFailures, outcomeOf } from '../security/audit.js';
import { authorizeSecret, type SecretAction } from '../security/auth.js';
import { beforeDeadline, type CallContext } from './context.js';
import { KeyedMutex } from './keyed-mutex.js';
import { SecretBatches } from './secret-batch.js';
import { SecretList } from './secret-list.js';
import { Idempotency, replayError, storeSuccess, storedError, type StoredError } from './idempotency.js';
import { SecretChanges, type Prepared } from './secret-changes.js';
import { SecretScopeRules } from './secret-scope-rules.js';
import { ReadAuditLog } from '../security/read-audit.js';
import { SealedRecords, type DamagedRecordReport } from '../security/record-integrity.js';
import type { Keyring } from '../security/keyring.js';
import {
  secretMessage,
  type BatchRequest,
  type CreateSecretRequest,
  type DeleteSecretRequest,
  type GetSecretRequest,
  type ListSecretsRequest,
  type RestoreVersionRequest,
  type ScopeMessage,
  type SecretMessage,
  type UpdateSecretRequest,
} from './messages.js';
import { describeScope, scopeOf } from './scope.js';
import {
  type AuditDraft,
  type Change,
  type CommitOutcome,
  type DeploymentRecord,
  type IdempotencyRecord,
  type Quotas,
  type ScopeKey,
  type SecretHead,
  type Store,
  type VersionRecord,
} from '../store/store.js';

export type { CallContext };

export interface SecretsServiceOptions {
  store: Store;
  keyring: Keyring;
  quotas: Quotas;
  /** Called after every commit that produced notices. */
  onCommitted?: () => void;
  /** Attempts for an update/delete without expected_version that races another writer. */
  maxConflictRetries?: number;
  /**
   * true (default): a value is released only once its read is durably in the audit log.
   * false: the read is collected, written with the others every 100 ms in one commit, and the
   * value released at once (a crash can lose that window of read records). See read-audit.ts.
   */
  durableReadAudit?: boolean;
  /** Told about a background audit write that failed (async read audit). */
  onBackgroundError?: (error: Error) => void;
  /** Told about a stored version that failed its integrity check and was not served. */
  onDamagedRecord?: DamagedRecordReport;
}

export class SecretsService {
  private readonly store: Store;
  private readonly keyring: Keyring;
  private readonly onCommitted: () => void;
  private readonly maxConflictRetries: number;
  private readonly reads: ReadAuditLog;
  private readonly sealed: SealedRecords;
  private readonly writers = new KeyedMutex();
  private readonly lister: SecretList;
  private readonly batches: SecretBatches;
  private readonly rules: SecretScopeRules;
  private readonly idempotency: Idempotency;
  private readonly changes: SecretChanges;

  constructor(options: SecretsServiceOptions) {
    this.store = options.store;
    this.keyring = options.keyring;
    this.rules = new SecretScopeRules(options.store);
    this.idempotency = new Idempotency(options.store, () => this.keyring.tokenKey);
    this.sealed = new SealedRecords(options.keyring, options.onDamagedRecord);
    this.lister = new SecretList(options.store, this.sealed, options.keyring);
    this.changes = new SecretChanges(options.store, options.keyring, options.quotas, this.rules, this.sealed);
    this.reads = new ReadAuditLog(options.store, options.durableReadAudit ?? true, options.onBackgroundError ?? (() => {}));
    this.onCommitted = options.onCommitted ?? (() => {});
    this.batches = new SecretBatches(options.store, this.changes, this.idempotency, () => this.onCommitted());
    this.maxConflictRetries = options.maxConflictRetries ?? 16;
  }

  // ---- scope and input normalisation -------------------------------------------------------

  /** (1) The scope of a request, validated and authorized. An empty tenant means "default". */
  resolveScope(message: ScopeMessage | undefined, ctx: CallContext, action: SecretAction): ScopeKey {
    const scope = scopeOf(message);
    checkTenant(scope.tenant);
    checkResourceGroup(scope.resourceGroup);
    authorizeSecret(ctx.principal, action, scope);
    return scope;
  }

  /**
   * Writes through a call that failed still leave an audit entry (denials included); a call
   * that succeeded wrote its entries in the same transaction as its change.
   */
  private audited<T>(ctx: CallContext, action: string, scope: ScopeMessage | undefined, target: string | undefined, run: () => Promise<T>): Promise<T> {
    return auditFailures(this.store, ctx, action, scopeOf(scope), target ?? '', run);
  }

  /** The precedence rule (secret-scope-rules.ts): the scope's own secret, then the tenant-wide one. */
  resolveHead(scope: ScopeKey, name: string): Promise<SecretHead | undefined> {
    return this.rules.resolveHead(scope, name);
  }

  /** Deployments that mount the secret `name` of `scope` (secret-scope-rules.ts). */
  deploymentsMounting(scope: ScopeKey, name: string): Promise<DeploymentRecord[]> {
    return this.rules.deploymentsMounting(scope, name);
  }

  // ---- commit ---------------------------------------------------------------------------------

  private async commitOne(ctx: CallContext, change: Change, idempotency?: IdempotencyRecord): Promise<number> {
    const audit = (outcomes: CommitOutcome[]): AuditDraft[] => [
      auditDraft(ctx, `secret.${change.operation}`, change.scope, change.name, change.record?.version ?? change.expectVersion ?? 0, outcomeOf(outcomes[0].ok ? undefined : outcomes[0].error)),
    ];
    beforeDeadline(ctx, `the ${change.operation} of "${change.name}"`);
    const [outcome] = await this.store.commit([change], idempotency, audit, ctx.deadline); // (5), checked again as the job begins
    this.onCommitted(); // (6)
    if (!outcome.ok) throw outcome.error;
    return outcome.seq;
  }

  /**
   * Runs a read-modify-write of one secret: serialised per secret within this daemon, and retried
   * when another replica won the compare-and-set, unless the caller pinned a version.
   */
  private async retryOnConflict<T>(scope: ScopeKey, name: string, pinned: boolean, run: () => Promise<T>): Promise<T> {
    const key = JSON.stringify([scope.tenant, scope.resourceGroup, name]);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.writers.run(key, run);
      } catch (error) {
        if (pinned || !(error instanceof ConflictError) || attempt >= this.maxConflictRetries) throw error;
        // Another replica won: wait a little, more each time and jittered, so two replicas
        // hammering one secret take turns instead of colliding again.
        await new Promise((r) => setTimeout(r, Math.random() * 2 * attempt));
      }
    }
  }

  // ---- the calls --------------------------------------------------------------------------

  async create(request: CreateSecretRequest, ctx: CallContext): Promise<SecretMessage> {
    return this.audited(ctx, 'secret.create', request.scope, request.secret?.name, () => this.createAudited(request, ctx));
  }

  private async createAudited(request: CreateSecretRequest, ctx: CallContext): Promise<SecretMessage> {
    const scope = this.resolveScope(request.scope, ctx, 'write');
    const now = new Date().toISOString();
    const encode = (outcomes: CommitOutcome[]): string =>
      JSON.stringify(outcomes[0].ok ? { ok: prepared.describe!(outcomes[0].seq) } : { error: storedError(outcomes[0].error) });
    const decode = (text: string): SecretMessage => {
      const stored = JSON.parse(text) as { ok?: SecretMessage; error?: StoredError };
      if (stored.error) throw replayError(stored.error);
      return stored.ok!;
    };
    let prepared!: Prepared & { change: Change };
    return this.idempotency.run(ctx, scope.tenant, 'CreateSecret', request, async (idempotency) => {
      prepared = await this.changes.prepareCreate(ctx, scope, request.secret, 'secret.', now);
      const seq = await this.commitOne(ctx, prepared.change, idempotency);
      return prepared.describe!(seq)!;
    }, encode, decode);
  }

  async get(request: GetSecretRequest, ctx: CallContext): Promise<SecretMessage> {
    if (!request.include_values) return this.getAuthorized(request, ctx);
    return this.audited(ctx, 'secret.read', request.scope, request.name, async () => {
      const secret = await this.getAuthorized(request, ctx);
      const entry = auditDraft(ctx, 'secret.read', { tenant: secret.scope.tenant, resourceGroup: secret.scope.resource_group }, secret.name, secret.version, 'ok');
      await this.reads.record(entry); // durable: the read is on record before the value leaves
      return secret;
    });
  }

  /** Writes collected read records; the daemon calls it before it stops. */
  flushReads(): Promise<void> {
    return this.reads.flush();
  }

  /**
   * An agent token reads exactly the secrets its deployment lists, resolved as the deployment
   * resolves them (its resource group, then tenant-wide).
   */
  private async authorizeAgent(request: GetSecretRequest, ctx: CallContext): Promise<ScopeKey> {
    const { principal } = ctx;
    const scope = scopeOf(request.scope);
    const deploymentScope = { tenant: principal.tenant, resourceGroup: principal.deploymentResourceGroup };
    const allowed = scope.tenant === principal.tenant && (scope.resourceGroup === deploymentScope.resourceGroup || scope.resourceGroup === '*');
    const deployment = allowed ? await this.store.getDeployment(deploymentScope, principal.deployment) : undefined;
    if (!deployment || !deployment.secrets.includes(request.name ?? ''))
      throw new PermissionDeniedError(`agent token ${principal.tokenId} reads only the secrets of deployment "${principal.deployment}"`);
    return scope;
  }

  /**
   * An agent reads exactly what its deployment resolves, at the current version: not the
   * tenant-wide secret of a name its group overrides, not a version before the current one.
   */
  private async checkAgentResolution(ctx: CallContext, head: SecretHead, version: number | undefined): Promise<void> {
    const { principal } = ctx;
    const resolved = await this.resolveHead({ tenant: principal.tenant, resourceGroup: principal.deploymentResourceGroup }, head.name);
    if (!resolved || resolved.uid !== head.uid)
      throw new PermissionDeniedError(`deployment "${principal.deployment}" resolves "${head.name}" from ${resolved ? describeScope(resolved) : 'nowhere'}; agent token ${principal.tokenId} reads only that`);
    if (version && version !== head.version)
      throw new PermissionDeniedError(`agent token ${principal.tokenId} reads only the current version of "${head.name}" (${head.version})`);
  }

  /** The values of a stored version (delivery opens the version a push carries through this). */
  async openRecord(record: VersionRecord): Promise<Record<string, Uint8Array>> {
    await this.sealed.learn([record]);
    return this.changes.openRecord(record);
  }

  private async getAuthorized(request: GetSecretRequest, ctx: CallContext): Promise<SecretMessage> {
    const action = request.include_values ? 'read-values' : 'read-metadata';
    const scope = ctx.principal.role === 'agent' ? await this.authorizeAgent(request, ctx) : this.resolveScope(request.scope, ctx, action);
    const name = request.name ?? '';
    checkSecretName(name);
    const head = await this.rules.resolveHead(scope, name);
    if (!head) throw new NotFoundError(`secret "${name}" not found in ${describeScope(scope)}${scope.resourceGroup === '*' ? '' : ' or tenant-wide'}`, 'SECRET_NOT_FOUND');
    if (head.resourceGroup !== scope.resourceGroup && ctx.principal.role !== 'agent') this.resolveScope({ tenant: head.tenant, resource_group: head.resourceGroup }, ctx, action);
    if (ctx.principal.role === 'agent') await this.checkAgentResolution(ctx, head, request.version);
    let record: VersionRecord = head;
    if (request.version && request.version !== head.version) {
      if (request.version < 0) throw new InvalidArgumentError('version', 'must be positive');
      const found = await this.store.getVersion(head.uid, request.version);
      if (!found) throw new NotFoundError(`version ${request.version} of secret "${name}" is not kept (current is ${head.version}; see ListVersions)`, 'VERSION_NOT_FOUND');
      record = found;
    }
    await this.sealed.learn([record]);
    if (!request.include_values) this.sealed.verify(record); // metadata only: still never what was altered
    return secretMessage(record, head.secretCreateTime, request.include_values ? this.changes.openRecord(record) : undefined);
  }

  async update(request: UpdateSecretRequest, ctx: CallContext): Promise<SecretMessage> {
    return this.audited(ctx, 'secret.update', request.scope, request.name, async () => {
      const scope = this.resolveScope(request.scope, ctx, 'write');
      let describe!: (seq: number) => SecretMessage;
      return this.idempotency.run(ctx, scope.tenant, 'UpdateSecret', request, (idempotency) =>
        this.retryOnConflict(scope, request.name ?? '', Boolean(request.expected_version), async () => {
          const prepared = await this.changes.prepareUpdate(ctx, scope, request, new Date().toISOString());
          describe = (seq) => prepared.describe!(seq)!;
          return describe(await this.commitOne(ctx, prepared.change, idempotency));
        }), storeSuccess(() => describe), (text) => JSON.parse(text) as SecretMessage);
    });
  }

  async delete(request: DeleteSecretRequest, ctx: CallContext): Promise<{ name: string; version: number; change_seq: number }> {
    return this.audited(ctx, 'secret.delete', request.scope, request.name, async () => {
      const scope = this.resolveScope(request.scope, ctx, 'write');
      let describe!: (seq: number) => { name: string; version: number; change_seq: number };
      return this.idempotency.run(ctx, scope.tenant, 'DeleteSecret', request, (idempotency) =>
        this.retryOnConflict(scope, request.name ?? '', Boolean(request.expected_version), async () => {
          const prepared = await this.changes.prepareDelete(scope, request, new Date().toISOString());
          describe = (seq) => ({ name: prepared.name, version: prepared.change.expectVersion!, change_seq: seq });
          return describe(await this.commitOne(ctx, prepared.change, idempotency));
        }), storeSuccess(() => describe), (text) => JSON.parse(text) as ReturnType<typeof describe>);
    });
  }

  async restore(request: RestoreVersionRequest, ctx: CallContext): Promise<SecretMessage> {
    return this.audited(ctx, 'secret.restore', request.scope, request.name, () => this.restoreAudited(request, ctx));
  }

  private async restoreAudited(request: RestoreVersionRequest, ctx: CallContext): Promise<SecretMessage> {
    const scope = this.resolveScope(request.scope, ctx, 'write');
    const name = request.name ?? '';
    checkSecretName(name);
    if (!request.version || request.version < 1) throw new InvalidArgumentError('version', 'give the version to restore (1 or more)');
    let describe!: (seq: number) => SecretMessage;
    return this.idempotency.run(ctx, scope.tenant, 'RestoreVersion', request, (idempotency) =>
      this.retryOnConflict(scope, name, Boolean(request.expected_version), async () => {
        const prepared = await this.changes.prepareRestore(ctx, scope, request, new Date().toISOString());
        describe = (seq) => prepared.describe!(seq)!;
        return describe(await this.commitOne(ctx, prepared.change, idempotency));
      }), storeSuccess(() => describe), (text) => JSON.parse(text) as SecretMessage);
  }

  async listVersions(request: { scope?: ScopeMessage; name?: string }, ctx: CallContext) {
    const scope = this.resolveScope(request.scope, ctx, 'read-metadata');
    const name = request.name ?? '';
    checkSecretName(name);
    const head = await this.changes.requireHead(scope, name);
    const stored = await this.store.listVersions(head.uid);
    await this.sealed.learn(stored);
    const versions = this.sealed.intact(stored);
    return {
      name,
      current_version: head.version,
      versions: versions.map((v) => ({ version: v.version, create_time: v.createTime, keys: v.keys, operation: v.operation, restored_from: v.restoredFrom })),
    };
  }

  /** ListSecrets (secret-list.ts), once the scope is authorized. */
  async list(request: ListSecretsRequest, ctx: CallContext): Promise<{ secrets: SecretMessage[]; next_cursor: string }> {
    return this.lister.list(this.resolveScope(request.scope, ctx, 'read-metadata'), request);
  }

  /**
   * The check a batch starts with (the scope, and write access to it), on its own: for callers
   * that must refuse a caller before reading the items (the REST batch). A refusal is audited.
   */
  authorizeBatch(scope: ScopeMessage | undefined, ctx: CallContext): Promise<ScopeKey> {
    return this.audited(ctx, 'secret.batch', scope, '', async () => this.resolveScope(scope, ctx, 'write'));
  }

  async batch(request: BatchRequest, ctx: CallContext) {
    return this.audited(ctx, 'secret.batch', request.scope, '', () => this.batchAudited(request, ctx));
  }

  private async batchAudited(request: BatchRequest, ctx: CallContext) {
    return this.batches.run(this.resolveScope(request.scope, ctx, 'write'), request, ctx);
  }
}
