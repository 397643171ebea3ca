/**
 * JSON Schemas of the REST routes the web console uses beyond secrets: deployments, rollout,
 * versions, tokens, audit and the caller's own identity. Same rules as rest-schemas.ts: shape
 * only; what a value may be is checked by the service, once for gRPC and REST.
 */
import { closed, stringMap, text, wholeNumber, type JsonSchema } from './rest-schemas.js';

const integer = (description: string): JsonSchema => ({ type: 'integer', description });
const strings = (description: string): JsonSchema => ({ type: 'array', items: { type: 'string' }, description });
const time = (description: string): JsonSchema => ({ type: 'string', description });
const scope = closed({ tenant: { type: 'string' }, resource_group: { type: 'string' } });

// ---- requests --------------------------------------------------------------------------------

export const deploymentParam = closed({ name: text('the deployment name') }, ['name']);
export const tokenParam = closed({ id: text('the token id: 16 hex characters (the part after lbx_)') }, ['id']);
export const versionParam = closed({ id: text('the secret name'), version: wholeNumber(1, 'a kept version') }, ['id', 'version']);

export const deploymentBody = closed(
  {
    name: text('the deployment name'),
    secrets: strings('the secrets it mounts, by name (its own resource group first, then tenant-wide)'),
    description: text('free text, at most 1024 characters'),
    labels: stringMap('label key -> value'),
  },
  ['name'],
);

export const deploymentUpdateBody = closed(
  {
    secrets: strings('the secrets it mounts (the whole list)'),
    description: text('free text'),
    labels: stringMap('label key -> value (the whole map)'),
    expected_version: wholeNumber(1, 'compare-and-set: apply only if the deployment is at this version (else 409)'),
  },
  [],
  'anything absent stays as it is',
);

export const deploymentCheckBody = closed({ secrets: strings('the secrets to mount together') }, ['secrets']);

export const restoreBody = closed({
  expected_version: wholeNumber(1, 'compare-and-set: restore only if the secret is at this version'),
});

export const tokenCreateBody = closed(
  {
    role: { type: 'string', enum: ['tenant-admin', 'rg-admin', 'reader', 'viewer', 'agent'] },
    tenant: text('default: the caller\'s tenant'),
    resource_groups: strings('rg-admin: the groups it administers; reader/viewer: the groups it reads (none: the whole tenant)'),
    deployment: text('agent tokens: the deployment'),
    deployment_resource_group: text('agent tokens: the deployment\'s resource group ("" for the main-tenant scope)'),
    description: text('free text'),
    ttl_seconds: wholeNumber(0, '0: never expires'),
  },
  ['role'],
);

export const tokenListQuery = closed({ include_revoked: { type: 'boolean', description: 'list revoked tokens too' } });

export const auditListQuery = closed({
  action: text('only this action, e.g. secret.read'),
  target: text('only entries about this target (a secret, deployment or token id)'),
  since: time('only entries at or after this time (RFC 3339)'),
  until: time('only entries at or before this time (RFC 3339)'),
  after_seq: wholeNumber(0, 'next_after_seq of the previous page'),
  limit: wholeNumber(1, 'entries read per page (default 100); the time filter applies within the page', 1000),
});

// ---- responses (documentation) -------------------------------------------------------------

export const deployment = closed({
  scope,
  name: { type: 'string' },
  uid: { type: 'string' },
  secrets: strings('the secrets it mounts'),
  description: { type: 'string' },
  labels: stringMap('labels'),
  version: { type: 'integer' },
  create_time: time('RFC 3339'),
  update_time: time('RFC 3339'),
  resolved: stringMap('secret -> the resource group it resolves to ("*" tenant-wide; "" the main-tenant scope or not found)'),
});

export const deploymentList = closed({ deployments: { type: 'array', items: deployment } });

export const deploymentCheck = closed({
  ok: { type: 'boolean', description: 'true: saving this list would be accepted' },
  resolved: stringMap('secret -> where it resolves'),
  missing: strings('secrets not found in the scope or tenant-wide'),
  collisions: strings('one line per clash: a file or environment variable two secrets both write'),
});

export const deploymentRollout = closed({
  name: { type: 'string' },
  resource_group: { type: 'string' },
  version: integer('the deployment\'s version'),
  time: time('when this status was read'),
  secrets: {
    type: 'array',
    items: closed({
      name: { type: 'string' },
      resource_group: { type: 'string' },
      missing: { type: 'boolean' },
      current_version: { type: 'integer' },
      agents: {
        type: 'array',
        items: closed({
          agent_id: { type: 'string' },
          version: integer('the version it holds (0: none, or of an older secret by that name)'),
          applied_time: time('when it wrote that version'),
          last_seen_time: time('its latest report'),
          stale: { type: 'boolean', description: 'silent for three resync intervals' },
          one_shot: { type: 'boolean', description: 'a `lockbox-agent once` run: it applied that version and exited; never stale, not counted in total' },
          problems: strings('what it could not do, as it reported'),
        }),
      },
      current: integer('live agents on the current version'),
      total: integer('live agents'),
      summary: text('e.g. "1/1 on v2"'),
    }),
  },
});

export const secretRollout = closed({
  name: { type: 'string' },
  resource_group: { type: 'string' },
  current_version: { type: 'integer' },
  agents: { type: 'array', items: { type: 'object' } },
  current: { type: 'integer' },
  total: { type: 'integer' },
  summary: { type: 'string' },
});

export const versionList = closed({
  name: { type: 'string' },
  current_version: { type: 'integer' },
  versions: {
    type: 'array',
    items: closed({ version: { type: 'integer' }, create_time: time('RFC 3339'), keys: strings('its keys'), operation: { type: 'string' }, restored_from: { type: 'integer' } }),
  },
});

export const tokenInfo = closed({
  id: { type: 'string' },
  role: { type: 'string' },
  tenant: { type: 'string' },
  resource_groups: strings('its resource groups'),
  deployment: { type: 'string' },
  deployment_resource_group: { type: 'string' },
  description: { type: 'string' },
  create_time: { type: 'string' },
  expire_time: { type: 'string' },
  revoke_time: { type: 'string' },
  created_by: { type: 'string' },
});

export const tokenCreated = closed({ token: text('the token itself: shown this once, never again'), info: tokenInfo });
export const tokenList = closed({ tokens: { type: 'array', items: tokenInfo } });

export const auditEntry = closed({
  seq: { type: 'integer' },
  time: { type: 'string' },
  token_id: { type: 'string' },
  role: { type: 'string' },
  tenant: { type: 'string' },
  resource_group: { type: 'string' },
  action: { type: 'string' },
  target: { type: 'string' },
  version: { type: 'integer' },
  outcome: { type: 'string' },
  request_id: { type: 'string' },
  count: { type: 'integer' },
  prev_hash: { type: 'string' },
  hash: { type: 'string' },
});

export const auditList = closed({ entries: { type: 'array', items: auditEntry }, next_after_seq: integer('0 on the last page') });
export const auditVerify = closed({
  ok: { type: 'boolean' },
  checked: { type: 'integer' },
  first_broken_seq: { type: 'integer' },
  problem: { type: 'string' },
  verified_from: integer('the signed cut of the last prune the walk started from; 0: the first entry'),
});

export const auditPruneBody = closed({ before: time('entries older than this (RFC 3339) are removed; the newest entry always stays') }, ['before']);

const auditCheckpoint = closed({
  seq: { type: 'integer' },
  hash: { type: 'string' },
  time: { type: 'string' },
  public_key: text('hex; verifies the signature'),
  signature: text('Ed25519 (hex) over "lockbox/v1/audit-checkpoint", seq, hash and time joined by NUL bytes'),
});

export const auditPrune = closed({
  removed: integer('entries removed by this call'),
  checkpoint: { ...auditCheckpoint, description: 'the signed cut the chain is verified from (absent when nothing was ever pruned); its signature is over "lockbox/v1/audit-cut" in place of "lockbox/v1/audit-checkpoint"' },
});

export const identity = closed({
  token_id: { type: 'string' },
  role: { type: 'string' },
  tenant: { type: 'string' },
  resource_groups: strings('the groups the token is limited to (none: the whole tenant, for reader and viewer)'),
  deployment: { type: 'string' },
  scopes: {
    type: 'array',
    description: 'the scopes this token may see, for a scope picker',
    items: closed({ resource_group: text('"" main-tenant scope, "*" tenant-wide, else a resource group'), label: { type: 'string' }, write: { type: 'boolean' } }),
  },
  any_resource_group: { type: 'boolean', description: 'true: the token may also name resource groups not listed' },
  may: closed({ write: { type: 'boolean' }, reveal: { type: 'boolean' }, tokens: { type: 'boolean' }, audit: { type: 'boolean' }, verify_audit: { type: 'boolean' } }),
});

export const templates = closed({
  templates: { type: 'object', additionalProperties: strings('required keys'), description: 'provider slug -> the keys it requires' },
  secret_types: strings('secret types'),
  registry_keys: closed({ required: strings('required keys'), optional: strings('optional keys') }),
  mount_kinds: strings('file or env'),
  env_formats: strings('env file formats'),
});
