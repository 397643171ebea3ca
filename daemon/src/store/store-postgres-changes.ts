/**
 * One change of a `commit()` on PostgreSQL, inside the caller's transaction and savepoint: the
 * row lock and version check (store-postgres.ts step (2)), the quotas under the tenant's lock
 * (step (3)), then the notice, head, version and pruning in one statement.
 */
import type pg from 'pg';
import { AlreadyExistsError, ConflictError, NotFoundError, ResourceExhaustedError } from '../../../shared/src/errors.js';
import { describeScope } from '../services/scope.js';
import type { Change, Quotas } from './store.js';
import type { Row } from './store-rows.js';
import { isUniqueViolation } from './store-postgres-pool.js';

export async function applyChange(db: pg.PoolClient, change: Change, maxVersions: number): Promise<number> {
  const { scope, name } = change;
  const where = describeScope(scope);
  // A create reads nothing first: a taken name fails its INSERT on the primary key (2), one
  // round trip fewer on the path bench:create measures.
  const head =
    change.operation === 'create'
      ? undefined
      : ((
          await db.query('SELECT uid, version FROM secrets WHERE tenant = $1 AND resource_group = $2 AND name = $3 FOR UPDATE', [scope.tenant, scope.resourceGroup, name])
        ).rows[0] as { uid: string; version: number } | undefined); // (2)
  if (change.operation === 'create') {
    await checkQuotas(db, scope.tenant, scope.resourceGroup, change.quotas, 'secret');
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
                      labels, mount, keys, create_time, change_seq, master_key_id, wrapped_key, ciphertext, ad_format)
                    SELECT $12, $13, $9, $10, $11, $15, $16, $17, $18, $19, $20, $21, $22, $14, n.seq, $23, $24, $25, $27 FROM n),
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
          record.version - maxVersions,
          record.envelope.adFormat,
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
export async function checkQuotas(db: pg.PoolClient, tenant: string, resourceGroup: string, quotas: Quotas | undefined, what: string): Promise<void> {
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
