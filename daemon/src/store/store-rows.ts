/**
 * Table rows (snake_case columns, as both SQL stores name them) to the store's records. One set
 * of mappers for SQLite and PostgreSQL: the tables are the same, only the dialects differ.
 */
import type { MountSpec, SecretType } from '../../../shared/src/validate.js';
import type { AgentReport, AppliedRecord, AuditRecord, DeploymentRecord, SecretHead, TokenRecord, VersionRecord } from './store.js';

/** A row as a driver returns it: numbers may come as strings (PostgreSQL BIGINT) or numbers. */
export type Row = Record<string, any>;

export const versionColumns = `v.uid, v.version, v.tenant, v.resource_group, v.name, v.operation, v.restored_from, v.type,
  v.template, v.description, v.labels, v.mount, v.keys, v.create_time, v.change_seq, v.master_key_id, v.wrapped_key, v.ciphertext, v.ad_format`;

const isStringMap = (value: unknown): value is Record<string, string> =>
  value !== null && typeof value === 'object' && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string');

/** A JSON column parsed and checked for shape; undefined when it is neither. */
function parseColumn<T>(text: unknown, isShape: (value: unknown) => boolean): T | undefined {
  try {
    const value: unknown = JSON.parse(String(text));
    return isShape(value) ? (value as T) : undefined;
  } catch {
    return undefined;
  }
}

const shapes = {
  labels: isStringMap,
  keys: (v: unknown) => Array.isArray(v) && v.every((k) => typeof k === 'string'),
  mount: (v: unknown) => {
    const m = v as MountSpec | null;
    return m !== null && typeof m === 'object' && typeof m.kind === 'string' && typeof m.path === 'string' && isStringMap(m.subPaths) && typeof (m.format ?? '') === 'string';
  },
};

/**
 * A version row as a record. A metadata column that does not parse, or has the wrong shape, does
 * not throw (one bad row must not fail a whole listing): the record is marked `damaged`, with
 * empty metadata, and the services skip or refuse it.
 */
export function toVersionRecord(row: Row): VersionRecord {
  const labels = parseColumn<Record<string, string>>(row.labels, shapes.labels);
  const mount = parseColumn<MountSpec>(row.mount, shapes.mount);
  const keys = parseColumn<string[]>(row.keys, shapes.keys);
  const bad = [!labels && 'labels', !mount && 'mount', !keys && 'keys'].filter(Boolean);
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
    labels: labels ?? {},
    mount: mount ?? { kind: 'file', path: '', subPaths: {}, format: '' },
    keys: keys ?? [],
    createTime: row.create_time,
    changeSeq: Number(row.change_seq),
    envelope: { adFormat: Number(row.ad_format ?? 1), masterKeyId: row.master_key_id, wrappedKey: row.wrapped_key, ciphertext: row.ciphertext },
    ...(bad.length > 0 ? { damaged: `stored ${bad.join(', ')} not readable` } : {}),
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
