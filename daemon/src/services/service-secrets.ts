/**
 * The secrets service: every rule of the API lives here once, whatever transport called it.
 * A call (1) resolves and authorizes the scope, (2) validates the input, (3) reads what it
 * changes, (4) seals the new version, (5) commits the change with its outbox notice (and the
 * idempotency record) in one transaction, (6) wakes the notice publisher.
 */
import { randomUUID } from 'node:crypto';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { DataKeyCache, keyedHash, openSecret, sealSecret } from '../../../shared/src/crypto.js';
import {
  ConflictError,
  FailedPreconditionError,
  InvalidArgumentError,
  LockboxError,
  NotFoundError,
  PermissionDeniedError,
  errorKinds,
  type ErrorKind,
} from '../../../shared/src/errors.js';
import { limits } from '../../../shared/src/limits.js';
import { changeSubject } from '../../../shared/src/subject.js';
import {
  checkData,
  checkDescription,
  checkKeyName,
  checkLabels,
  checkMount,
  checkRequiredKeys,
  checkResourceGroup,
  checkSecretName,
  checkTemplate,
  checkTenant,
  checkType,
  splitAssignment,
  type MountSpec as MountSpecType,
  type MountSpec,
  type SecretType,
} from '../../../shared/src/validate.js';
import { auditDraft, auditFailures, outcomeOf } from '../security/audit.js';
import { authorizeSecret, type SecretAction } from '../security/auth.js';
import type { CallContext } from './context.js';
import { KeyedMutex } from './keyed-mutex.js';
import { ListCursors } from './list-cursor.js';
import { ReadAuditLog } from '../security/read-audit.js';
import type { Keyring } from '../security/keyring.js';
import {
  headMessage,
  secretMessage,
  type BatchRequest,
  type BatchResultMessage,
  type CreateSecretRequest,
  type DeleteSecretRequest,
  type GetSecretRequest,
  type ListSecretsRequest,
  type RestoreVersionRequest,
  type ScopeMessage,
  type SecretInputMessage,
  type SecretMessage,
  type UpdateSecretRequest,
} from './messages.js';
import { describeScope, scopeOf } from './scope.js';
import { mountCollisions, mountFromMessage } from '../../../shared/src/layout.js';
import {
  IdempotencyReplayError,
  type AuditDraft,
  type Change,
  type CommitOutcome,
  type DeploymentRecord,
  type IdempotencyRecord,
  type Operation,
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
}

const statusNames = Object.fromEntries(Object.entries(GrpcStatus).map(([name, code]) => [code, name])) as Record<number, string>;

/** How a failed outcome is stored for an idempotent replay. */
interface StoredError {
  kind: ErrorKind;
  code: string;
  message: string;
}

function storedError(error: LockboxError): StoredError {
  return { kind: error.kind, code: error.code, message: error.message };
}

function replayError(stored: StoredError): LockboxError {
  return new LockboxError(stored.kind, stored.code, stored.message);
}

function utf8(value: Uint8Array | undefined): Uint8Array {
  return value ?? new Uint8Array();
}

interface Prepared {
  index: number;
  name: string;
  operation: Operation;
  change?: Change;
  error?: LockboxError;
  /** How to describe the committed result. */
  describe?: (seq: number) => SecretMessage | undefined;
}

export class SecretsService {
  private readonly store: Store;
  private readonly keyring: Keyring;
  private readonly onCommitted: () => void;
  private readonly maxConflictRetries: number;
  private readonly quotas: Quotas;
  private readonly reads: ReadAuditLog;
  private readonly dataKeys = new DataKeyCache();
  private readonly writers = new KeyedMutex();
  private readonly cursors: ListCursors;

  constructor(options: SecretsServiceOptions) {
    this.store = options.store;
    this.keyring = options.keyring;
    this.quotas = options.quotas;
    this.cursors = new ListCursors(options.keyring.tokenKey);
    this.reads = new ReadAuditLog(options.store, options.durableReadAudit ?? true, options.onBackgroundError ?? (() => {}));
    this.onCommitted = options.onCommitted ?? (() => {});
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

  /**
   * The shadowing rule: in a resource group, a secret of the group's own wins over a tenant-wide
   * secret of the same name. Only a tenant admin may create (or change) such a shadow; an rg-admin
   * is refused, so a group admin can never override what the tenant set for everyone.
   */
  private async guardShadowing(ctx: CallContext, scope: ScopeKey, name: string): Promise<void> {
    if (ctx.principal.role !== 'rg-admin' || scope.resourceGroup === '*') return;
    if (await this.store.getHead({ tenant: scope.tenant, resourceGroup: '*' }, name))
      throw new PermissionDeniedError(
        `secret "${name}" would shadow the tenant-wide secret of the same name in ${describeScope(scope)}; only a tenant-admin may do that`,
      );
  }

  /** Deployments that mount the secret `name` of `scope` (directly, or through the tenant-wide fallback). */
  async deploymentsMounting(scope: ScopeKey, name: string): Promise<DeploymentRecord[]> {
    const listing = await this.store.deploymentsListing(scope.tenant, name);
    const result: DeploymentRecord[] = [];
    for (const d of listing) {
      if (d.resourceGroup === scope.resourceGroup) result.push(d);
      else if (scope.resourceGroup === '*' && !(await this.store.getHead({ tenant: d.tenant, resourceGroup: d.resourceGroup }, name))) result.push(d);
    }
    return result;
  }

  /** A new version must still fit beside the other secrets of every deployment that mounts it. */
  private async checkDeploymentsStillFit(scope: ScopeKey, record: { name: string; mount: MountSpecType; keys: string[] }): Promise<void> {
    for (const deployment of await this.deploymentsMounting(scope, record.name)) {
      const others = [];
      for (const other of deployment.secrets) {
        if (other === record.name) continue;
        const head = await this.resolveHead({ tenant: deployment.tenant, resourceGroup: deployment.resourceGroup }, other);
        if (head) others.push({ name: other, mount: head.mount, keys: head.keys });
      }
      const collisions = mountCollisions([...others, record]);
      if (collisions.length)
        throw new FailedPreconditionError(`deployment "${deployment.name}" mounts this secret and would then clash: ${collisions.join('; ')}`, 'MOUNT_COLLISION');
    }
  }

  /** The precedence rule for reads: the scope's own secret, then the tenant-wide one. */
  async resolveHead(scope: ScopeKey, name: string): Promise<SecretHead | undefined> {
    const own = await this.store.getHead(scope, name);
    if (own || scope.resourceGroup === '*') return own;
    return this.store.getHead({ tenant: scope.tenant, resourceGroup: '*' }, name);
  }

  private checkRecord(type: SecretType, template: string, data: Record<string, Uint8Array>, mount: MountSpec, fieldPrefix: string): void {
    checkData(data, `${fieldPrefix}data`);
    const keys = Object.keys(data);
    checkMount(mount, keys, `${fieldPrefix}mount`);
    checkRequiredKeys(type, template, data, `${fieldPrefix}data`);
  }

  private newRecord(
    scope: ScopeKey,
    fields: Omit<VersionRecord, 'tenant' | 'resourceGroup' | 'keys' | 'createTime' | 'changeSeq' | 'envelope'>,
    data: Record<string, Uint8Array>,
    now: string,
  ): VersionRecord {
    const identity = { tenant: scope.tenant, resourceGroup: scope.resourceGroup, name: fields.name, uid: fields.uid, version: fields.version };
    const envelope = sealSecret(data, this.keyring.active, identity); // (4)
    return { ...fields, tenant: scope.tenant, resourceGroup: scope.resourceGroup, keys: Object.keys(data).sort(), createTime: now, changeSeq: 0, envelope };
  }

  private change(operation: Operation, scope: ScopeKey, name: string, record: VersionRecord | undefined, head: SecretHead | undefined, now: string): Change {
    const uid = record?.uid ?? head!.uid;
    const version = record?.version ?? head!.version;
    return {
      operation,
      scope,
      name,
      expectUid: head?.uid,
      expectVersion: head?.version,
      record,
      notice: { subject: changeSubject(scope.tenant, scope.resourceGroup, name), tenant: scope.tenant, resourceGroup: scope.resourceGroup, name, uid, version, operation, time: now },
    };
  }

  /** The current head of `name`, which must exist (and, when the caller states a type, be of that type). */
  private async requireHead(scope: ScopeKey, name: string, statedType?: string): Promise<SecretHead> {
    const head = await this.store.getHead(scope, name);
    if (!head) throw new NotFoundError(`secret "${name}" not found in ${describeScope(scope)}`, 'SECRET_NOT_FOUND');
    if (statedType !== undefined && statedType !== head.type)
      throw new InvalidArgumentError('type', `secret "${name}" is of type ${head.type}, not ${JSON.stringify(statedType.slice(0, 64))}; a secret's type never changes`);
    return head;
  }

  private openRecord(record: VersionRecord): Record<string, Uint8Array> {
    // A key id this replica does not know: another replica sharing the keyring file rotated.
    const master = this.keyring.get(record.envelope.masterKeyId) ?? (this.keyring.refresh() ? this.keyring.get(record.envelope.masterKeyId) : undefined);
    if (!master) throw new LockboxError('INTERNAL', 'DECRYPTION_FAILED', `master key ${record.envelope.masterKeyId} is not in the keyring`);
    return openSecret(record.envelope, master, record, this.dataKeys);
  }

  // ---- preparation: validate, read, seal; no writes -----------------------------------------

  private async prepareCreate(ctx: CallContext, scope: ScopeKey, input: SecretInputMessage | undefined, field: string, now: string): Promise<Prepared & { change: Change }> {
    const name = input?.name ?? '';
    checkSecretName(name, `${field}name`);
    const type = checkType(input?.type || 'opaque', `${field}type`);
    const template = checkTemplate(input?.template || 'custom', `${field}template`);
    const description = input?.description ?? '';
    checkDescription(description, `${field}description`);
    const labels = { ...(input?.labels ?? {}) };
    checkLabels(labels, `${field}labels`);
    const data: Record<string, Uint8Array> = {};
    for (const [key, value] of Object.entries(input?.data ?? {})) data[key] = utf8(value);
    if (Object.keys(data).length === 0) throw new InvalidArgumentError(`${field}data`, 'a secret needs at least one key');
    const mount = mountFromMessage(input?.mount, name);
    this.checkRecord(type, template, data, mount, field);
    await this.guardShadowing(ctx, scope, name);
    const record = this.newRecord(scope, { name, uid: randomUUID(), version: 1, operation: 'create', restoredFrom: 0, type, template, description, labels, mount }, data, now);
    return {
      index: 0,
      name,
      operation: 'create',
      change: { ...this.change('create', scope, name, record, undefined, now), quotas: this.quotas },
      describe: () => secretMessage(record, now),
    };
  }

  private async prepareUpdate(ctx: CallContext, scope: ScopeKey, request: UpdateSecretRequest, now: string): Promise<Prepared & { change: Change }> {
    const name = request.name ?? '';
    checkSecretName(name);
    const set: Record<string, Uint8Array> = {};
    for (const [key, value] of Object.entries(request.set ?? {})) set[key] = utf8(value);
    const remove = request.remove ?? [];
    const setLabels = request.set_labels ?? {};
    const removeLabels = request.remove_labels ?? [];
    const changesSomething =
      Object.keys(set).length > 0 || remove.length > 0 || request.replace || request.description !== undefined ||
      Object.keys(setLabels).length > 0 || removeLabels.length > 0 || request.mount !== undefined || request.template !== undefined;
    if (!changesSomething)
      throw new InvalidArgumentError('update', 'changes nothing: give set, remove, replace, description, labels, mount or template');
    for (const key of remove) {
      checkKeyName(key, `remove[${JSON.stringify(key)}]`);
      if (key in set) throw new InvalidArgumentError(`remove[${JSON.stringify(key)}]`, 'a key cannot be both set and removed');
    }
    if (request.replace && remove.length > 0) throw new InvalidArgumentError('remove', 'replace already removes every key not in set');
    await this.guardShadowing(ctx, scope, name);
    const head = await this.requireHead(scope, name, request.type); // (3)
    if (request.expected_version && head.version !== request.expected_version)
      throw new ConflictError(`secret "${name}" is at version ${head.version}, not the expected ${request.expected_version}`);
    for (const key of remove)
      if (!head.keys.includes(key)) throw new InvalidArgumentError(`remove[${JSON.stringify(key)}]`, `secret "${name}" has no key "${key}"`);

    const current = this.openRecord(head);
    const data: Record<string, Uint8Array> = request.replace ? {} : { ...current };
    for (const key of remove) delete data[key];
    Object.assign(data, set);
    if (Object.keys(data).length === 0) throw new InvalidArgumentError('remove', 'would leave the secret without keys; delete it instead');

    const template = request.template !== undefined ? checkTemplate(request.template || 'custom') : head.template;
    const description = request.description ?? head.description;
    checkDescription(description);
    const labels = { ...head.labels, ...setLabels };
    for (const key of removeLabels) delete labels[key];
    checkLabels(labels);
    const mount = request.mount !== undefined ? mountFromMessage(request.mount, name) : { ...head.mount, subPaths: { ...head.mount.subPaths } };
    if (request.mount === undefined)
      for (const key of Object.keys(mount.subPaths)) if (!(key in data)) delete mount.subPaths[key]; // a removed key's sub-path goes with it
    this.checkRecord(head.type, template, data, mount, '');
    await this.checkDeploymentsStillFit(scope, { name, mount, keys: Object.keys(data) });
    const record = this.newRecord(scope, { name, uid: head.uid, version: head.version + 1, operation: 'update', restoredFrom: 0, type: head.type, template, description, labels, mount }, data, now);
    return {
      index: 0,
      name,
      operation: 'update',
      change: this.change('update', scope, name, record, head, now),
      describe: () => secretMessage(record, head.secretCreateTime),
    };
  }

  private async prepareDelete(scope: ScopeKey, request: DeleteSecretRequest, now: string): Promise<Prepared & { change: Change }> {
    const name = request.name ?? '';
    checkSecretName(name);
    const head = await this.requireHead(scope, name, request.type);
    if (request.expected_version && head.version !== request.expected_version)
      throw new ConflictError(`secret "${name}" is at version ${head.version}, not the expected ${request.expected_version}`);
    if (!request.force) {
      const users = await this.deploymentsMounting(scope, name);
      if (users.length)
        throw new FailedPreconditionError(
          `secret "${name}" is mounted by deployment${users.length > 1 ? 's' : ''} ${users.map((d) => `"${d.name}"${d.resourceGroup !== scope.resourceGroup ? ` (resource group "${d.resourceGroup}")` : ''}`).join(', ')}; detach it or delete with force`,
          'SECRET_IN_USE',
        );
    }
    return { index: 0, name, operation: 'delete', change: this.change('delete', scope, name, undefined, head, now) };
  }

  // ---- commit ---------------------------------------------------------------------------------

  private fingerprint(method: string, request: unknown): string {
    const canonical = JSON.stringify(request, (_key, value: unknown) =>
      value instanceof Uint8Array ? Buffer.from(value).toString('base64') : value && typeof value === 'object' && !Array.isArray(value)
        ? Object.fromEntries(Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : value,
    );
    return keyedHash(`${method}\0${canonical}`, this.keyring.tokenKey);
  }

  private idempotencyKey(ctx: CallContext): string | undefined {
    const key = ctx.idempotencyKey;
    if (key === undefined) return undefined;
    if (key.length === 0 || key.length > limits.maxIdempotencyKeyLength || !/^[\x21-\x7e]+$/.test(key))
      throw new InvalidArgumentError('idempotency-key', `must be 1-${limits.maxIdempotencyKeyLength} printable ASCII characters without spaces`);
    return key;
  }

  /**
   * Runs `attempt` with idempotency: a stored answer for the key is replayed (or the call refused
   * when the body differs); otherwise the answer is stored in the same transaction as the change.
   */
  private async withIdempotency<T>(
    ctx: CallContext,
    tenant: string,
    method: string,
    request: unknown,
    attempt: (idempotency?: IdempotencyRecord) => Promise<T>,
    encode: (outcomes: CommitOutcome[]) => string,
    decode: (stored: string) => T,
  ): Promise<T> {
    const key = this.idempotencyKey(ctx);
    if (key === undefined) return attempt();
    const fingerprint = this.fingerprint(method, request);
    const replay = (stored: { method: string; fingerprint: string; response: string }): T => {
      if (stored.method !== method || stored.fingerprint !== fingerprint)
        throw new InvalidArgumentError('idempotency-key', `"${key}" was already used for a different request; use a new key for a new request`, 'IDEMPOTENCY_KEY_REUSED');
      return decode(stored.response);
    };
    const stored = await this.store.getIdempotency(tenant, key);
    if (stored) return replay(stored);
    try {
      return await attempt({ tenant, key, method, fingerprint, createTime: new Date().toISOString(), respond: encode });
    } catch (error) {
      if (error instanceof IdempotencyReplayError) return replay(error.stored);
      throw error;
    }
  }

  private async commitOne(ctx: CallContext, change: Change, idempotency?: IdempotencyRecord): Promise<number> {
    const audit = (outcomes: CommitOutcome[]): AuditDraft[] => [
      auditDraft(ctx, `secret.${change.operation}`, change.scope, change.name, change.record?.version ?? change.expectVersion ?? 0, outcomeOf(outcomes[0].ok ? undefined : outcomes[0].error)),
    ];
    const [outcome] = await this.store.commit([change], idempotency, audit); // (5)
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
    return this.withIdempotency(ctx, scope.tenant, 'CreateSecret', request, async (idempotency) => {
      prepared = await this.prepareCreate(ctx, scope, request.secret, 'secret.', now);
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

  private async getAuthorized(request: GetSecretRequest, ctx: CallContext): Promise<SecretMessage> {
    const action = request.include_values ? 'read-values' : 'read-metadata';
    const scope = ctx.principal.role === 'agent' ? await this.authorizeAgent(request, ctx) : this.resolveScope(request.scope, ctx, action);
    const name = request.name ?? '';
    checkSecretName(name);
    const head = await this.resolveHead(scope, name);
    if (!head) throw new NotFoundError(`secret "${name}" not found in ${describeScope(scope)}${scope.resourceGroup === '*' ? '' : ' or tenant-wide'}`, 'SECRET_NOT_FOUND');
    if (head.resourceGroup !== scope.resourceGroup && ctx.principal.role !== 'agent') this.resolveScope({ tenant: head.tenant, resource_group: head.resourceGroup }, ctx, action);
    let record: VersionRecord = head;
    if (request.version && request.version !== head.version) {
      if (request.version < 0) throw new InvalidArgumentError('version', 'must be positive');
      const found = await this.store.getVersion(head.uid, request.version);
      if (!found) throw new NotFoundError(`version ${request.version} of secret "${name}" is not kept (current is ${head.version}; see ListVersions)`, 'VERSION_NOT_FOUND');
      record = found;
    }
    return secretMessage(record, head.secretCreateTime, request.include_values ? this.openRecord(record) : undefined);
  }

  async update(request: UpdateSecretRequest, ctx: CallContext): Promise<SecretMessage> {
    return this.audited(ctx, 'secret.update', request.scope, request.name, async () => {
      const scope = this.resolveScope(request.scope, ctx, 'write');
      return this.retryOnConflict(scope, request.name ?? '', Boolean(request.expected_version), async () => {
        const prepared = await this.prepareUpdate(ctx, scope, request, new Date().toISOString());
        return prepared.describe!(await this.commitOne(ctx, prepared.change))!;
      });
    });
  }

  async delete(request: DeleteSecretRequest, ctx: CallContext): Promise<{ name: string; version: number; change_seq: number }> {
    return this.audited(ctx, 'secret.delete', request.scope, request.name, async () => {
      const scope = this.resolveScope(request.scope, ctx, 'write');
      return this.retryOnConflict(scope, request.name ?? '', Boolean(request.expected_version), async () => {
        const prepared = await this.prepareDelete(scope, request, new Date().toISOString());
        const seq = await this.commitOne(ctx, prepared.change);
        return { name: prepared.name, version: prepared.change.expectVersion!, change_seq: seq };
      });
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
    return this.retryOnConflict(scope, name, Boolean(request.expected_version), async () => {
      const head = await this.requireHead(scope, name);
      if (request.expected_version && head.version !== request.expected_version)
        throw new ConflictError(`secret "${name}" is at version ${head.version}, not the expected ${request.expected_version}`);
      const source = await this.store.getVersion(head.uid, request.version!);
      if (!source) throw new NotFoundError(`version ${request.version} of secret "${name}" is not kept (current is ${head.version})`, 'VERSION_NOT_FOUND');
      await this.guardShadowing(ctx, scope, name);
      await this.checkDeploymentsStillFit(scope, source);
      const now = new Date().toISOString();
      const data = this.openRecord(source);
      const record = this.newRecord(scope, { ...source, version: head.version + 1, operation: 'restore', restoredFrom: source.version }, data, now);
      const seq = await this.commitOne(ctx, this.change('restore', scope, name, record, head, now));
      record.changeSeq = seq;
      return secretMessage(record, head.secretCreateTime);
    });
  }

  async listVersions(request: { scope?: ScopeMessage; name?: string }, ctx: CallContext) {
    const scope = this.resolveScope(request.scope, ctx, 'read-metadata');
    const name = request.name ?? '';
    checkSecretName(name);
    const head = await this.requireHead(scope, name);
    const versions = await this.store.listVersions(head.uid);
    return {
      name,
      current_version: head.version,
      versions: versions.map((v) => ({ version: v.version, create_time: v.createTime, keys: v.keys, operation: v.operation, restored_from: v.restoredFrom })),
    };
  }

  async list(request: ListSecretsRequest, ctx: CallContext): Promise<{ secrets: SecretMessage[]; next_cursor: string }> {
    const scope = this.resolveScope(request.scope, ctx, 'read-metadata');
    const limit = request.limit || limits.defaultListLimit;
    if (limit < 1 || limit > limits.maxListLimit) throw new InvalidArgumentError('limit', `must be between 1 and ${limits.maxListLimit}`);
    const type = request.type ? checkType(request.type) : '';
    const template = request.template ? checkTemplate(request.template) : '';
    const labelFilter = (request.labels ?? []).map((text, i) => splitAssignment(text, `labels[${i}]`));
    const filterKey = keyedHash(JSON.stringify([scope, type, template, labelFilter]), this.keyring.tokenKey).slice(0, 16);
    const after = request.cursor ? this.cursors.decode(request.cursor, filterKey) : '';
    const matches = (head: SecretHead) =>
      (!type || head.type === type) && (!template || head.template === template) && labelFilter.every(([k, v]) => head.labels[k] === v);
    // Keyset pagination by name: stable under concurrent writes (no item is skipped or repeated).
    const found: SecretHead[] = [];
    let cursorName = after;
    const chunk = Math.min(limits.maxListLimit, limit + 1);
    for (;;) {
      const heads = await this.store.listHeads(scope, cursorName, chunk);
      for (const head of heads) {
        if (matches(head)) found.push(head);
        if (found.length > limit) break;
      }
      if (found.length > limit || heads.length < chunk) break;
      cursorName = heads[heads.length - 1].name;
    }
    const page = found.slice(0, limit);
    const more = found.length > limit;
    return { secrets: page.map((h) => headMessage(h)), next_cursor: more ? this.cursors.encode(page[page.length - 1].name, filterKey) : '' };
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
    const scope = this.resolveScope(request.scope, ctx, 'write');
    const items = request.items ?? [];
    if (items.length === 0) throw new InvalidArgumentError('items', 'a batch needs at least one item');
    if (items.length > limits.maxBatchItems) throw new InvalidArgumentError('items', `at most ${limits.maxBatchItems} items per batch (got ${items.length})`);
    const now = new Date().toISOString();
    const seen = new Set<string>();
    const prepared: Prepared[] = [];
    for (const [index, item] of items.entries()) {
      const operation: Operation = item.op ?? (item.create ? 'create' : item.update ? 'update' : 'delete');
      const name = item.create?.name ?? item.update?.name ?? item.delete?.name ?? '';
      try {
        if (!item.create && !item.update && !item.delete) throw new InvalidArgumentError(`items[${index}]`, 'needs one of create, update, delete');
        const own = item.update?.scope ?? item.delete?.scope;
        if (own && ((own.tenant || 'default') !== scope.tenant || (own.resource_group ?? '') !== scope.resourceGroup))
          throw new InvalidArgumentError(`items[${index}].scope`, 'must be empty or equal to the batch scope');
        if (seen.has(name)) throw new InvalidArgumentError(`items[${index}].name`, `"${name}" appears more than once in this batch`);
        if (name) seen.add(name);
        const one = item.create
          ? await this.prepareCreate(ctx, scope, item.create, `items[${index}].create.`, now)
          : item.update
            ? await this.prepareUpdate(ctx, scope, item.update, now)
            : await this.prepareDelete(scope, item.delete!, now);
        prepared.push({ ...one, index });
      } catch (error) {
        if (!(error instanceof LockboxError)) throw error;
        prepared.push({ index, name, operation, error });
      }
    }
    const toCommit = prepared.filter((p) => p.change);
    const build = (outcomes: CommitOutcome[]) => {
      let next = 0;
      const results: BatchResultMessage[] = prepared.map((p) => {
        const outcome: CommitOutcome = p.change ? outcomes[next++] : { ok: false, error: p.error! };
        if (!outcome.ok) {
          const code = errorKinds[outcome.error.kind].grpc;
          return { index: p.index, name: p.name, operation: p.operation, code, status: statusNames[code], message: outcome.error.message, error_code: outcome.error.code };
        }
        const secret = p.describe?.(outcome.seq);
        return { index: p.index, name: p.name, operation: p.operation, code: 0, status: 'OK', message: '', error_code: '', ...(secret ? { secret } : {}) };
      });
      const failed = results.filter((r) => r.code !== 0).length;
      return { results, succeeded: results.length - failed, failed };
    };
    return this.withIdempotency(ctx, scope.tenant, 'BatchSecrets', request, async (idempotency) => {
      const audit = (outcomes: CommitOutcome[]): AuditDraft[] => {
        let next = 0;
        return prepared.map((p) => {
          const outcome = p.change ? outcomes[next++] : undefined;
          const error = p.change ? (outcome!.ok ? undefined : outcome!.error) : p.error;
          return auditDraft(ctx, `secret.${p.operation}`, scope, p.name, p.change?.record?.version ?? p.change?.expectVersion ?? 0, outcomeOf(error));
        });
      };
      const outcomes = await this.store.commit(toCommit.map((p) => p.change!), idempotency, audit);
      if (toCommit.length) this.onCommitted();
      return build(outcomes);
    }, (outcomes) => JSON.stringify(build(outcomes)), (text) => JSON.parse(text) as ReturnType<typeof build>);
  }
}
