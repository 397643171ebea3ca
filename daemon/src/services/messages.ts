/**
 * The wire shapes of proto/lockbox/v1/secrets.proto as @grpc/proto-loader decodes them
 * (keepCase, defaults: false: absent fields are undefined), and the conversions between them and
 * the store's records.
 */
import type { MountSpec } from '../../../shared/src/validate.js';
import type { AuditRecord, DeploymentRecord, SecretHead, TokenRecord, VersionRecord } from '../store/store.js';

export interface ScopeMessage {
  tenant?: string;
  resource_group?: string;
}

export type { MountMessage } from '../../../shared/src/layout.js';
import type { MountMessage } from '../../../shared/src/layout.js';

export interface SecretInputMessage {
  name?: string;
  type?: string;
  template?: string;
  description?: string;
  labels?: Record<string, string>;
  mount?: MountMessage;
  data?: Record<string, Uint8Array>;
}

export interface SecretMessage {
  scope: { tenant: string; resource_group: string };
  name: string;
  uid: string;
  type: string;
  template: string;
  description: string;
  labels: Record<string, string>;
  mount: { kind: string; path: string; sub_paths: Record<string, string>; format: string };
  keys: string[];
  data?: Record<string, Uint8Array>;
  version: number;
  create_time: string;
  update_time: string;
  change_seq: number;
}

export interface CreateSecretRequest {
  scope?: ScopeMessage;
  secret?: SecretInputMessage;
}

export interface GetSecretRequest {
  scope?: ScopeMessage;
  name?: string;
  version?: number;
  include_values?: boolean;
}

export interface UpdateSecretRequest {
  scope?: ScopeMessage;
  name?: string;
  set?: Record<string, Uint8Array>;
  remove?: string[];
  replace?: boolean;
  expected_version?: number;
  description?: string;
  set_labels?: Record<string, string>;
  remove_labels?: string[];
  mount?: MountMessage;
  template?: string;
  type?: string;
}

export interface DeleteSecretRequest {
  scope?: ScopeMessage;
  name?: string;
  expected_version?: number;
  force?: boolean;
  type?: string;
}

export interface ListSecretsRequest {
  scope?: ScopeMessage;
  limit?: number;
  cursor?: string;
  template?: string;
  type?: string;
  labels?: string[];
  own_only?: boolean;
}

export interface BatchItemMessage {
  op?: 'create' | 'update' | 'delete';
  create?: SecretInputMessage;
  update?: UpdateSecretRequest;
  delete?: DeleteSecretRequest;
}

export interface BatchRequest {
  scope?: ScopeMessage;
  items?: BatchItemMessage[];
}

export interface BatchResultMessage {
  index: number;
  name: string;
  operation: string;
  code: number;
  status: string;
  message: string;
  /** The stable code (docs/errors.md); "" when applied. */
  error_code: string;
  secret?: SecretMessage;
}

export interface RestoreVersionRequest {
  scope?: ScopeMessage;
  name?: string;
  version?: number;
  expected_version?: number;
}

export function mountMessage(mount: MountSpec): SecretMessage['mount'] {
  return { kind: mount.kind, path: mount.path, sub_paths: { ...mount.subPaths }, format: mount.kind === 'env' ? mount.format : '' };
}

/** Metadata of a version as the API shows it; values only when `data` is given. */
export function secretMessage(record: VersionRecord, secretCreateTime: string, data?: Record<string, Uint8Array>): SecretMessage {
  return {
    scope: { tenant: record.tenant, resource_group: record.resourceGroup },
    name: record.name,
    uid: record.uid,
    type: record.type,
    template: record.template,
    description: record.description,
    labels: { ...record.labels },
    mount: mountMessage(record.mount),
    keys: [...record.keys],
    ...(data ? { data } : {}),
    version: record.version,
    create_time: secretCreateTime,
    update_time: record.createTime,
    change_seq: record.changeSeq,
  };
}

export function headMessage(head: SecretHead, data?: Record<string, Uint8Array>): SecretMessage {
  return secretMessage(head, head.secretCreateTime, data);
}

export interface TokenInfoMessage {
  id: string;
  role: string;
  tenant: string;
  resource_groups: string[];
  deployment: string;
  deployment_resource_group: string;
  description: string;
  create_time: string;
  expire_time: string;
  revoke_time: string;
  created_by: string;
}

export function tokenInfo(record: TokenRecord): TokenInfoMessage {
  return {
    id: record.id,
    role: record.role,
    tenant: record.tenant,
    resource_groups: [...record.resourceGroups],
    deployment: record.deployment,
    deployment_resource_group: record.deploymentResourceGroup,
    description: record.description,
    create_time: record.createTime,
    expire_time: record.expireTime,
    revoke_time: record.revokeTime,
    created_by: record.createdBy,
  };
}

export interface DeploymentInputMessage {
  name?: string;
  secrets?: string[];
  description?: string;
  labels?: Record<string, string>;
}

export function deploymentMessage(record: DeploymentRecord, resolved: Record<string, string>) {
  return {
    scope: { tenant: record.tenant, resource_group: record.resourceGroup },
    name: record.name,
    uid: record.uid,
    secrets: [...record.secrets],
    description: record.description,
    labels: { ...record.labels },
    version: record.version,
    create_time: record.createTime,
    update_time: record.updateTime,
    resolved,
  };
}

export function auditMessage(entry: AuditRecord) {
  return {
    seq: entry.seq,
    time: entry.time,
    token_id: entry.tokenId,
    role: entry.role,
    tenant: entry.tenant,
    resource_group: entry.resourceGroup,
    action: entry.action,
    target: entry.target,
    version: entry.version,
    outcome: entry.outcome,
    request_id: entry.requestId,
    count: entry.count ?? 1,
    prev_hash: entry.prevHash,
    hash: entry.hash,
  };
}
