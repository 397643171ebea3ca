/**
 * Table rows (snake_case columns, as both SQL stores name them) to the store's records. One set
 * of mappers for SQLite and PostgreSQL: the tables are the same, only the dialects differ.
 */
import type { MountSpec, SecretType } from '../../../shared/src/validate.js';
import type { AgentReport, AppliedRecord, AuditRecord, DeploymentRecord, SecretHead, TokenRecord, VersionRecord } from './store.js';

/** A row as a driver returns it: numbers may come as strings (PostgreSQL BIGINT) or numbers. */
export type Row = Record<string, any>;

export const versionColumns = `v.uid, v.version, v.tenant, v.resource_group, v.name, v.operation, v.restored_from, v.type,
  v.template, v.description, v.labels, v.mount, v.keys, v.create_time, v.change_seq, v.master_key_id, v.wrapped_key, v.ciphertext`;

export function toVersionRecord(row: Row): VersionRecord {
  return {
    tenant: row.tenant,
    resourceGroup: row.resource_group,
    name: row.name,
    uid: row.uid,
    version: Number(row.version),
    operation: row.operation as VersionRecord['operation'],
    restoredFrom: Number(row.restored_from),
    type: row.type as SecretType,
    template: row.template,
    description: row.description,
    labels: JSON.parse(row.labels) as Record<string, string>,
    mount: JSON.parse(row.mount) as MountSpec,
    keys: JSON.parse(row.keys) as string[],
    createTime: row.create_time,
    changeSeq: Number(row.change_seq),
    envelope: { masterKeyId: row.master_key_id, wrappedKey: row.wrapped_key, ciphertext: row.ciphertext },
  };
}

export function toHead(row: Row): SecretHead {
  return { ...toVersionRecord(row), secretCreateTime: row.secret_create_time ?? row.create_time };
}

export function toDeployment(row: Row): DeploymentRecord {
  return {
    tenant: row.tenant,
    resourceGroup: row.resource_group,
    name: row.name,
    uid: row.uid,
    version: Number(row.version),
    secrets: JSON.parse(row.secrets) as string[],
    description: row.description,
    labels: JSON.parse(row.labels) as Record<string, string>,
    createTime: row.create_time,
    updateTime: row.update_time,
  };
}

export function toToken(row: Row): TokenRecord {
  return {
    id: row.id,
    hash: row.hash,
    role: row.role,
    tenant: row.tenant,
    resourceGroups: JSON.parse(row.resource_groups) as string[],
    deployment: row.deployment,
    deploymentResourceGroup: row.deployment_resource_group,
    description: row.description,
    createTime: row.create_time,
    expireTime: row.expire_time,
    revokeTime: row.revoke_time,
    createdBy: row.created_by,
  };
}

export function toAuditRecord(r: Row): AuditRecord {
  return {
    seq: Number(r.seq),
    time: String(r.time),
    tokenId: String(r.token_id),
    role: String(r.role),
    tenant: String(r.tenant),
    resourceGroup: String(r.resource_group),
    action: String(r.action),
    target: String(r.target),
    version: Number(r.version),
    outcome: String(r.outcome),
    requestId: String(r.request_id),
    count: Number(r.count),
    prevHash: String(r.prev_hash),
    hash: String(r.hash),
  };
}

/** A row of agent_applied joined with its agent's last report. */
export function toAgentHolding(r: Row): AppliedRecord & { report: AgentReport } {
  return {
    agentId: String(r.agent_id),
    tenant: String(r.tenant),
    resourceGroup: String(r.resource_group),
    name: String(r.name),
    uid: String(r.uid),
    version: Number(r.version),
    appliedTime: String(r.applied_time),
    report: {
      agentId: String(r.agent_id),
      tenant: String(r.tenant),
      deployment: String(r.deployment),
      deploymentResourceGroup: String(r.deployment_resource_group),
      tokenId: String(r.token_id),
      lastSeenTime: String(r.last_seen_time),
      resyncIntervalSeconds: Number(r.resync_interval_seconds),
      problems: JSON.parse(String(r.problems)) as string[],
    },
  };
}
