/**
 * The preparation of a change to one secret, steps (2)–(4) of service-secrets.ts: validate the
 * input (secret-input.ts), read what it changes, apply the scope rules (secret-scope-rules.ts),
 * seal the new version. Nothing here writes; the service commits what it returns.
 */
import { randomUUID } from 'node:crypto';
import { sealSecret } from '../../../shared/src/crypto.js';
import { ConflictError, InvalidArgumentError, LockboxError, NotFoundError } from '../../../shared/src/errors.js';
import { changeSubject } from '../../../shared/src/subject.js';
import { checkSecretName } from '../../../shared/src/validate.js';
import type { Keyring } from '../security/keyring.js';
import type { SealedRecords } from '../security/record-integrity.js';
import type { Change, Operation, Quotas, ScopeKey, SecretHead, Store, VersionRecord } from '../store/store.js';
import type { CallContext } from './context.js';
import { secretMessage, type DeleteSecretRequest, type RestoreVersionRequest, type SecretInputMessage, type SecretMessage, type UpdateSecretRequest } from './messages.js';
import { describeScope } from './scope.js';
import { applyUpdateEdits, readCreateInput, readUpdateEdits } from './secret-input.js';
import type { SecretScopeRules } from './secret-scope-rules.js';

/** One prepared change (or the error that stopped it), with how to describe it once committed. */
export interface Prepared {
  index: number;
  name: string;
  operation: Operation;
  change?: Change;
  error?: LockboxError;
  /** How to describe the committed result. */
  describe?: (seq: number) => SecretMessage | undefined;
}

export class SecretChanges {
  constructor(
    private readonly store: Store,
    private readonly keyring: Keyring,
    private readonly quotas: Quotas,
    private readonly rules: SecretScopeRules,
    private readonly sealed: SealedRecords,
  ) {}

  private newRecord(
    scope: ScopeKey,
    fields: Omit<VersionRecord, 'tenant' | 'resourceGroup' | 'keys' | 'createTime' | 'changeSeq' | 'envelope'>,
    data: Record<string, Uint8Array>,
    now: string,
  ): VersionRecord {
    const unsealed = { ...fields, tenant: scope.tenant, resourceGroup: scope.resourceGroup, keys: Object.keys(data).sort(), createTime: now, changeSeq: 0 };
    return { ...unsealed, envelope: sealSecret(data, this.keyring.active, unsealed) }; // (4), bound to its identity and metadata
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
  async requireHead(scope: ScopeKey, name: string, statedType?: string): Promise<SecretHead> {
    const head = await this.store.getHead(scope, name);
    if (!head) throw new NotFoundError(`secret "${name}" not found in ${describeScope(scope)}`, 'SECRET_NOT_FOUND');
    if (statedType !== undefined && statedType !== head.type)
      throw new InvalidArgumentError('type', `secret "${name}" is of type ${head.type}, not ${JSON.stringify(statedType.slice(0, 64))}; a secret's type never changes`);
    return head;
  }

  /** A version's values; DECRYPTION_FAILED when the row was altered (record-integrity.ts). */
  openRecord(record: VersionRecord): Record<string, Uint8Array> {
    return this.sealed.open(record);
  }

  async prepareCreate(ctx: CallContext, scope: ScopeKey, input: SecretInputMessage | undefined, field: string, now: string): Promise<Prepared & { change: Change }> {
    const { name, data, ...fields } = readCreateInput(input, field);
    await this.rules.guardShadowing(ctx, scope, name);
    const record = this.newRecord(scope, { ...fields, name, uid: randomUUID(), version: 1, operation: 'create', restoredFrom: 0 }, data, now);
    return {
      index: 0,
      name,
      operation: 'create',
      change: { ...this.change('create', scope, name, record, undefined, now), quotas: this.quotas },
      describe: () => secretMessage(record, now),
    };
  }

  async prepareUpdate(ctx: CallContext, scope: ScopeKey, request: UpdateSecretRequest, now: string): Promise<Prepared & { change: Change }> {
    const name = request.name ?? '';
    const edits = readUpdateEdits(request);
    await this.rules.guardShadowing(ctx, scope, name);
    const head = await this.requireHead(scope, name, request.type); // (3)
    if (request.expected_version && head.version !== request.expected_version)
      throw new ConflictError(`secret "${name}" is at version ${head.version}, not the expected ${request.expected_version}`);
    await this.sealed.learn([head]);
    const { data, ...fields } = applyUpdateEdits(head, request, edits, () => this.openRecord(head));
    await this.rules.checkDeploymentsStillFit(scope, { name, mount: fields.mount, keys: Object.keys(data) });
    const record = this.newRecord(scope, { ...fields, uid: head.uid, version: head.version + 1, operation: 'update', restoredFrom: 0 }, data, now);
    return {
      index: 0,
      name,
      operation: 'update',
      change: this.change('update', scope, name, record, head, now),
      describe: () => secretMessage(record, head.secretCreateTime),
    };
  }

  async prepareDelete(scope: ScopeKey, request: DeleteSecretRequest, now: string): Promise<Prepared & { change: Change }> {
    const name = request.name ?? '';
    checkSecretName(name);
    const head = await this.requireHead(scope, name, request.type);
    if (request.expected_version && head.version !== request.expected_version)
      throw new ConflictError(`secret "${name}" is at version ${head.version}, not the expected ${request.expected_version}`);
    if (!request.force) await this.rules.checkNotMounted(scope, name);
    return { index: 0, name, operation: 'delete', change: this.change('delete', scope, name, undefined, head, now) };
  }

  async prepareRestore(ctx: CallContext, scope: ScopeKey, request: RestoreVersionRequest, now: string): Promise<Prepared & { change: Change }> {
    const name = request.name ?? '';
    const head = await this.requireHead(scope, name);
    if (request.expected_version && head.version !== request.expected_version)
      throw new ConflictError(`secret "${name}" is at version ${head.version}, not the expected ${request.expected_version}`);
    const source = await this.store.getVersion(head.uid, request.version!);
    if (!source) throw new NotFoundError(`version ${request.version} of secret "${name}" is not kept (current is ${head.version})`, 'VERSION_NOT_FOUND');
    await this.rules.guardShadowing(ctx, scope, name);
    await this.rules.checkDeploymentsStillFit(scope, source);
    await this.sealed.learn([source]);
    const data = this.openRecord(source);
    const record = this.newRecord(scope, { ...source, version: head.version + 1, operation: 'restore', restoredFrom: source.version }, data, now);
    return {
      index: 0,
      name,
      operation: 'restore',
      change: this.change('restore', scope, name, record, head, now),
      describe: (seq) => secretMessage({ ...record, changeSeq: seq }, head.secretCreateTime),
    };
  }
}
