/**
 * One change of a `commit()` on SQLite, inside the group transaction and the change's own
 * SAVEPOINT (store-sqlite-group-commit.ts step (2)): existence and version checks, quotas, then
 * the notice, head row, version and pruning of versions past --max-versions.
 */
import { AlreadyExistsError, ConflictError, NotFoundError, ResourceExhaustedError } from '../../../shared/src/errors.js';
import { describeScope } from '../services/scope.js';
import type { Change, Quotas } from './store.js';
import type { SqliteStatements } from './store-sqlite-statements.js';

/** Quotas that a create in `scope` must respect; throws RESOURCE_EXHAUSTED past them. */
export function checkQuotas(stmt: SqliteStatements, tenant: string, resourceGroup: string, quotas: Quotas | undefined, what: string): void {
  if (!quotas) return;
  if (what === 'secret' && resourceGroup === '*') {
    const n = stmt.countTenantWide.get(tenant)!.n;
    if (n >= quotas.maxTenantWideSecrets)
      throw new ResourceExhaustedError(`tenant "${tenant}" has ${n} tenant-wide secrets; the limit is ${quotas.maxTenantWideSecrets}`);
  }
  if (resourceGroup !== '' && resourceGroup !== '*' && stmt.groupInUse.get(tenant, resourceGroup, tenant, resourceGroup)!.n === 0) {
    const n = stmt.countGroups.get(tenant, tenant)!.n;
    if (n >= quotas.maxResourceGroups)
      throw new ResourceExhaustedError(`tenant "${tenant}" has ${n} resource groups in use; the limit is ${quotas.maxResourceGroups}`);
  }
}

export function applySecretChange(stmt: SqliteStatements, change: Change, maxVersions: number): number {
  const { scope, name } = change;
  const head = stmt.headRow.get(scope.tenant, scope.resourceGroup, name);
  const where = describeScope(scope);
  if (change.operation === 'create') {
    if (head) throw new AlreadyExistsError(`secret "${name}" already exists in ${where}`, 'SECRET_EXISTS');
    checkQuotas(stmt, scope.tenant, scope.resourceGroup, change.quotas, 'secret');
  } else {
    if (!head) throw new NotFoundError(`secret "${name}" not found in ${where}`, 'SECRET_NOT_FOUND');
    if (head.uid !== change.expectUid || head.version !== change.expectVersion)
      throw new ConflictError(
        `secret "${name}" is at version ${head.version}, not ${change.expectVersion}: it changed since it was read`,
      );
  }
  const seq = Number(stmt.insertNotice.run(change.notice).lastInsertRowid);
  const record = change.record;
  if (change.operation === 'delete' || !record) {
    stmt.deleteSecret.run(head!.uid);
    stmt.deleteVersions.run(head!.uid);
    return seq;
  }
  record.changeSeq = seq;
  if (change.operation === 'create') {
    stmt.insertSecret.run(scope.tenant, scope.resourceGroup, name, record.uid, record.version, record.createTime);
  } else {
    stmt.setVersion.run(record.version, record.uid);
  }
  stmt.insertVersion.run({
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
    ad_format: record.envelope.adFormat,
  });
  stmt.pruneVersions.run(record.uid, record.version - maxVersions);
  return seq;
}
