/**
 * A deployment's create, update or delete on PostgreSQL, inside the caller's transaction: the row
 * locked and its version checked (store-postgres.ts step (2)), quotas under the tenant's lock
 * (step (3)), the secret references rewritten, and the notice that sends its agents to re-read it.
 */
import type pg from 'pg';
import { AlreadyExistsError, ConflictError, NotFoundError } from '../../../shared/src/errors.js';
import { deploymentSubject } from '../../../shared/src/subject.js';
import { describeScope } from '../services/scope.js';
import type { DeploymentChange } from './store.js';
import { checkQuotas } from './store-postgres-changes.js';

export async function applyDeploymentChange(db: pg.PoolClient, change: DeploymentChange): Promise<void> {
  const { record } = change;
  const where = describeScope(record);
  const existing = (
    await db.query('SELECT version FROM deployments WHERE tenant = $1 AND resource_group = $2 AND name = $3 FOR UPDATE', [record.tenant, record.resourceGroup, record.name])
  ).rows[0] as { version: number } | undefined;
  if (change.operation === 'create') {
    if (existing) throw new AlreadyExistsError(`deployment "${record.name}" already exists in ${where}`, 'DEPLOYMENT_EXISTS');
    await checkQuotas(db, record.tenant, record.resourceGroup, change.quotas, 'deployment');
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
}
