/**
 * The JSON Schemas of the REST gateway. The gateway validates every body, query and path with
 * them, and /openapi.json is built from them, so the contract and the check cannot drift.
 *
 * They check shape only: types, required fields and unknown fields. What a value may be (a name's
 * characters, a mount path, a label's syntax, sizes) is the secrets service's rule, checked there
 * once for gRPC and REST alike.
 */
import { limits } from '../../../shared/src/limits.js';

export type JsonSchema = Record<string, unknown>;

export const text = (description: string): JsonSchema => ({ type: 'string', description });
/**
 * An integer the API takes: bounded above by 2^53 − 1 at most (JSON numbers past it are already
 * rounded by the parser; 1e300 parses as a number), so no value past what the store holds and a
 * JavaScript number keeps exactly ever reaches a service.
 */
export const wholeNumber = (minimum: number, description: string, maximum = Number.MAX_SAFE_INTEGER): JsonSchema => ({ type: 'integer', minimum, maximum, description });
export const stringMap = (description: string): JsonSchema => ({ type: 'object', additionalProperties: { type: 'string' }, description });
/** A map whose null values mean "remove this entry". */
const patchMap = (description: string): JsonSchema => ({ type: 'object', additionalProperties: { type: ['string', 'null'] }, description });
export const closed = (properties: Record<string, JsonSchema>, required: string[] = [], description?: string): JsonSchema => ({
  type: 'object',
  properties,
  ...(required.length ? { required } : {}),
  additionalProperties: false,
  ...(description ? { description } : {}),
});

export const mountSchema = closed(
  {
    kind: text('"file" (one file per key, the default) or "env" (one env file)'),
    path: text('directory under $BENTOML_HOME; default: the secret name'),
    sub_paths: stringMap('file mounts: key -> directory under `path`'),
    format: text('env mounts: "dotenv" (default), "sh" or "json"'),
  },
  [],
  'where lockbox-agent writes the secret under $BENTOML_HOME',
);

const secretFields = {
  type: text('"opaque" (default) or "container_registry"'),
  provider_slug: text('template: "openai", "aws", "huggingface", "github" or "custom" (default); checks the keys it needs'),
  description: text('free text, at most 1024 characters'),
  mount: mountSchema,
};

const oneValue = text(
  'a one-value secret: the value is stored under the provider\'s key when the provider needs exactly one (openai: OPENAI_API_KEY, huggingface: HF_TOKEN, github: GITHUB_TOKEN), else under the key "value"',
);

export const v1CreateBody = closed(
  {
    name: text('the secret name (also its id in paths)'),
    value: oneValue,
    data: stringMap('key -> value (UTF-8 text); give `value` or `data`'),
    labels: stringMap('label key -> value'),
    ...secretFields,
  },
  ['name'],
);

const updateFields = {
  value: text('sets the only key of a one-key secret'),
  data: patchMap('key -> new value; null removes the key'),
  replace: { type: 'boolean', description: 'true: `data` becomes the whole data (keys not in it are removed)' },
  labels: patchMap('label key -> value; null removes the label'),
  expected_version: wholeNumber(1, 'compare-and-set: apply only if the current version is this one (else 409)'),
  provider_slug: secretFields.provider_slug,
  description: secretFields.description,
  mount: mountSchema,
};

export const v1PatchBody = closed(updateFields, [], 'what to change; anything absent stays as it is');

export const batchItemSchema = closed(
  {
    mode: { type: 'string', enum: ['create', 'update', 'delete'] },
    name: text('the secret name'),
    ...updateFields,
    type: text('"opaque" or "container_registry"; on update and delete it must be the secret\'s type'),
    force: { type: 'boolean', description: 'delete even when deployments mount the secret' },
  },
  ['mode', 'name'],
);

export const batchBody: JsonSchema = {
  oneOf: [
    closed({ items: { type: 'array', items: batchItemSchema, maxItems: limits.maxBatchItems } }, ['items']),
    { type: 'array', items: batchItemSchema, maxItems: limits.maxBatchItems },
  ],
  description: '{"items": [...]} or the bare list of items',
};

export const v2CreateBody = closed(
  {
    name: text('the secret name'),
    data: { type: 'object', additionalProperties: { type: 'string' }, description: 'key -> base64-encoded value' },
    labels: { type: 'array', items: closed({ key: { type: 'string' }, value: { type: 'string' } }, ['key', 'value']) },
  },
  ['name', 'data'],
);

export const v2PatchBody = closed(
  {
    data: { type: 'object', additionalProperties: { type: 'string' }, description: 'key -> base64-encoded value; replaces the whole data' },
    labels: { type: 'array', items: closed({ key: { type: 'string' }, value: { type: 'string' } }, ['key', 'value']), description: 'replaces every label' },
  },
  [],
);

export const v1ListQuery = closed({
  limit: wholeNumber(1, `1..${limits.maxListLimit}, default ${limits.defaultListLimit}`, limits.maxListLimit),
  cursor: text('next_cursor of the previous page (same filters)'),
  provider_slug: text('only secrets of this provider template'),
  type: text('only secrets of this type'),
  label: { type: 'array', items: { type: 'string' }, description: 'only secrets with this label, as key=value; repeat for several (all must match)' },
  own_only: { type: 'boolean', description: "only the scope's own secrets: a resource group's list otherwise holds the tenant-wide secrets visible there too (scope.resource_group \"*\")" },
});

export const v1GetQuery = closed({
  version: wholeNumber(1, 'a kept version (default: the current one)'),
  reveal: { type: 'boolean', description: 'include the values (the read is audited)' },
});

export const v1DeleteQuery = closed({
  force: { type: 'boolean', description: 'delete even when deployments mount the secret' },
  expected_version: wholeNumber(1, 'compare-and-set'),
});

export const v2ListQuery = closed({
  $top: wholeNumber(1, 'page size (default 100)', limits.maxListLimit),
  $skip: wholeNumber(0, 'how many secrets to skip'),
  $count: { type: 'boolean', description: 'accepted for compatibility; the count is always returned' },
});

export const nameParam = (name: string): JsonSchema => closed({ [name]: text('the secret name') }, [name]);

export const emptyQuery = closed({});

// ---- responses (documentation) -------------------------------------------------------------

export const errorResponse = closed(
  {
    error: closed({ code: text('stable code, see docs/errors.md'), message: text('what is wrong, naming the field'), request_id: text('also in the daemon log') }, ['code', 'message']),
  },
  ['error'],
);

export const v1Secret = closed(
  {
    id: text('the secret name'),
    name: text('the secret name'),
    scope: closed({ tenant: { type: 'string' }, resource_group: { type: 'string' } }),
    uid: { type: 'string' },
    type: { type: 'string' },
    provider_slug: { type: 'string' },
    description: { type: 'string' },
    labels: stringMap('labels'),
    mount: mountSchema,
    keys: { type: 'array', items: { type: 'string' } },
    version: { type: 'integer' },
    create_time: { type: 'string', format: 'date-time' },
    update_time: { type: 'string', format: 'date-time' },
    change_seq: { type: 'integer' },
    data: stringMap('values, only with reveal=true (UTF-8 text)'),
    data_base64: stringMap('values that are not UTF-8 text, base64, only with reveal=true'),
  },
  ['id', 'name', 'keys', 'version'],
);

export const v1ListResponse = closed({ secrets: { type: 'array', items: v1Secret }, next_cursor: text('empty on the last page') });

export const v1DeleteResponse = closed({ id: { type: 'string' }, name: { type: 'string' }, version: { type: 'integer' }, change_seq: { type: 'integer' }, deleted: { type: 'boolean' } });

export const batchResponse = closed({
  results: {
    type: 'array',
    items: closed({
      index: { type: 'integer' },
      name: { type: 'string' },
      mode: { type: 'string' },
      status: { type: 'integer', description: 'the HTTP status this item alone would have had' },
      ok: { type: 'boolean' },
      error: closed({ code: { type: 'string' }, message: { type: 'string' } }),
      secret: v1Secret,
    }),
  },
  succeeded: { type: 'integer' },
  failed: { type: 'integer' },
});

/** A batch's 400: some items failed (the results), or the request was refused before any item was read (the error). */
export const batchFailure: JsonSchema = { anyOf: [batchResponse, errorResponse] };

export const v2Message = closed({ message: { type: 'string' }, name: { type: 'string' } });

const v2Labels = { type: 'array', items: closed({ key: { type: 'string' }, value: { type: 'string' } }) };

export const v2Secret = closed({
  name: { type: 'string' },
  scope: {
    type: 'string',
    enum: ['resource-group', 'tenant-wide', 'main-tenant'],
    description: 'lists: where the secret lives; in a resource group\'s list, "tenant-wide" marks a tenant-wide secret visible there',
  },
  createdAt: { type: 'string', format: 'date-time' },
  labels: v2Labels,
  resourceGroupSecretReplicationStatus: {
    type: 'object',
    additionalProperties: { type: 'boolean' },
    description: 'tenant-wide secrets: per resource group whose deployments mount it, whether all its live agents hold the current version',
  },
});

export const v2ListResponse = closed({ count: { type: 'integer' }, resources: { type: 'array', items: v2Secret } });

export const healthResponse = closed({ status: { type: 'string' }, nats: { type: 'string' }, database: { type: 'string' } });
