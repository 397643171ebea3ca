/**
 * The REST routes: each one translates HTTP into a call of the same service the gRPC API calls,
 * and the answer back into JSON. No rule of the API lives here; what is here is only the HTTP
 * shape: where the scope comes from (headers), how values are spelled (text in /v1, base64 in
 * /v2), and which status a result gets.
 */
import { InvalidArgumentError, LockboxError, errorKinds } from '../../../shared/src/errors.js';
import { templateKeys } from '../../../shared/src/validate.js';
import type { CallContext } from '../services/context.js';
import type { MountMessage, ScopeMessage, SecretMessage, UpdateSecretRequest } from '../services/messages.js';
import * as schemas from './rest-schemas.js';
import type { JsonSchema } from './rest-schemas.js';
import type { AgentService } from '../services/service-agent.js';
import type { SecretsService } from '../services/service-secrets.js';

export interface RestRequest {
  params: Record<string, string>;
  query: Record<string, unknown>;
  header(name: string): string | undefined;
  body: unknown;
}

export interface RestReply {
  status: number;
  body: unknown;
}

export interface HeaderParam {
  name: string;
  description: string;
}

export interface RestRoute {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** OpenAPI style: `/v1/admin/secrets/{id}`. */
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  params?: JsonSchema;
  query?: JsonSchema;
  body?: JsonSchema;
  headers?: HeaderParam[];
  responses: Record<number, { description: string; schema?: JsonSchema }>;
  handle(request: RestRequest, ctx: CallContext): Promise<RestReply>;
}

export interface RestServices {
  secrets: SecretsService;
  agents: AgentService;
}

// ---- scope from headers ---------------------------------------------------------------------

export const scopeHeaders: HeaderParam[] = [
  { name: 'AI-Resource-Group', description: 'the resource group; "*" with AI-Tenant-Scope: true for tenant-wide secrets' },
  { name: 'AI-Tenant-Scope', description: '"true": the main-tenant scope (or, with AI-Resource-Group: *, tenant-wide)' },
];

/**
 * The scope a request names by its headers, in the caller's tenant:
 * - `AI-Resource-Group: g` → resource group g;
 * - `AI-Tenant-Scope: true` → the main-tenant scope (resource group "");
 * - `AI-Tenant-Scope: true` with `AI-Resource-Group: *` → tenant-wide.
 * Neither header: the main-tenant scope where `fallbackToMain`, else an error.
 */
export function scopeFromHeaders(request: RestRequest, ctx: CallContext, fallbackToMain: boolean): ScopeMessage {
  const group = request.header('ai-resource-group');
  const tenantScopeText = request.header('ai-tenant-scope');
  if (tenantScopeText !== undefined && !/^(true|false)$/i.test(tenantScopeText)) throw new InvalidArgumentError('AI-Tenant-Scope', 'must be true or false');
  const tenantScope = tenantScopeText?.toLowerCase() === 'true';
  const tenant = ctx.principal.tenant;
  if (tenantScope) {
    if (group === undefined || group === '') return { tenant, resource_group: '' };
    if (group === '*') return { tenant, resource_group: '*' };
    throw new InvalidArgumentError('AI-Resource-Group', 'with AI-Tenant-Scope: true it must be absent (main-tenant scope) or "*" (tenant-wide)');
  }
  if (group === '*') throw new InvalidArgumentError('AI-Resource-Group', '"*" (tenant-wide) needs AI-Tenant-Scope: true');
  if (group !== undefined && group !== '') return { tenant, resource_group: group };
  if (fallbackToMain) return { tenant, resource_group: '' };
  throw new InvalidArgumentError('AI-Resource-Group', 'is required (or send AI-Tenant-Scope: true for the main-tenant scope)');
}

/** Scope headers plus Idempotency-Key, for the routes that honour it (create and batch). */
const writeHeaders: HeaderParam[] = [...scopeHeaders, { name: 'Idempotency-Key', description: 'a retry with the same key returns the first answer; the same key with another body is refused' }];

// ---- values ---------------------------------------------------------------------------------

function textBytes(values: Record<string, string>): Record<string, Uint8Array> {
  const bytes: Record<string, Uint8Array> = {};
  for (const [key, value] of Object.entries(values)) bytes[key] = Buffer.from(value, 'utf8');
  return bytes;
}

const base64Pattern = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** /v2 values: standard base64, strictly (Buffer.from would skip bad characters silently). */
function base64Bytes(values: Record<string, string>, field: string): Record<string, Uint8Array> {
  const bytes: Record<string, Uint8Array> = {};
  for (const [key, value] of Object.entries(values)) {
    if (!base64Pattern.test(value)) throw new InvalidArgumentError(`${field}[${JSON.stringify(key.slice(0, 64))}]`, 'is not valid base64', 'INVALID_BASE64');
    bytes[key] = Buffer.from(value, 'base64');
  }
  return bytes;
}

/** The key a one-value create stores its value under: the provider's only key, else "value". */
export function oneValueKey(providerSlug: string | undefined): string {
  const keys = templateKeys[providerSlug || 'custom'] ?? [];
  return keys.length === 1 ? keys[0] : 'value';
}

// ---- /v1 shapes ------------------------------------------------------------------------------

interface V1SecretFields {
  name: string;
  value?: string;
  data?: Record<string, string | null>;
  labels?: Record<string, string | null>;
  type?: string;
  provider_slug?: string;
  description?: string;
  mount?: MountMessage;
  replace?: boolean;
  expected_version?: number;
  force?: boolean;
}

function v1Secret(secret: SecretMessage): Record<string, unknown> {
  const { name, scope, uid, type, template, data, ...rest } = secret;
  const shown: Record<string, unknown> = { id: name, name, scope, uid, type, provider_slug: template, ...rest };
  if (data) {
    const text: Record<string, string> = {};
    const binary: Record<string, string> = {};
    const decoder = new TextDecoder('utf-8', { fatal: true });
    for (const [key, value] of Object.entries(data)) {
      try {
        text[key] = decoder.decode(value);
      } catch {
        binary[key] = Buffer.from(value).toString('base64');
      }
    }
    shown.data = text;
    if (Object.keys(binary).length) shown.data_base64 = binary;
  }
  return shown;
}

/** A map without null values (null means "remove", which only an update can do). */
function onlyStrings(values: Record<string, string | null> | undefined, field: string): Record<string, string> | undefined {
  if (!values) return undefined;
  for (const [key, value] of Object.entries(values))
    if (value === null) throw new InvalidArgumentError(`${field}[${JSON.stringify(key.slice(0, 64))}]`, 'null (remove) applies to updates only');
  return values as Record<string, string>;
}

function v1SecretInput(body: V1SecretFields, field: string) {
  if (body.value !== undefined && body.data !== undefined) throw new InvalidArgumentError(`${field}value`, 'give value or data, not both');
  const data = body.value !== undefined ? { [oneValueKey(body.provider_slug)]: body.value } : (onlyStrings(body.data, `${field}data`) ?? {});
  return {
    name: body.name,
    type: body.type,
    template: body.provider_slug,
    description: body.description,
    labels: onlyStrings(body.labels, `${field}labels`),
    mount: body.mount,
    data: textBytes(data),
  };
}

/** A /v1 update (PATCH body or batch item) as an UpdateSecretRequest. */
async function v1UpdateRequest(services: RestServices, ctx: CallContext, scope: ScopeMessage, name: string, body: Omit<V1SecretFields, 'name'>, field: string): Promise<UpdateSecretRequest> {
  const set: Record<string, string> = {};
  const remove: string[] = [];
  for (const [key, value] of Object.entries(body.data ?? {})) {
    if (value === null) remove.push(key);
    else set[key] = value;
  }
  if (body.value !== undefined) {
    if (body.data !== undefined) throw new InvalidArgumentError(`${field}value`, 'give value or data, not both');
    const current = await services.secrets.get({ scope, name }, ctx);
    if (current.keys.length !== 1)
      throw new InvalidArgumentError(`${field}value`, `secret "${name}" has ${current.keys.length} keys; name the key in data`);
    set[current.keys[0]] = body.value;
  }
  const setLabels: Record<string, string> = {};
  const removeLabels: string[] = [];
  for (const [key, value] of Object.entries(body.labels ?? {})) {
    if (value === null) removeLabels.push(key);
    else setLabels[key] = value;
  }
  return {
    scope,
    name,
    set: textBytes(set),
    remove,
    replace: body.replace ?? false,
    expected_version: body.expected_version,
    description: body.description,
    set_labels: setLabels,
    remove_labels: removeLabels,
    mount: body.mount,
    template: body.provider_slug,
    type: body.type,
  };
}

// ---- batch -----------------------------------------------------------------------------------

interface BatchItemBody extends V1SecretFields {
  mode: 'create' | 'update' | 'delete';
}

const modeFields: Record<BatchItemBody['mode'], Array<keyof BatchItemBody>> = {
  create: ['value', 'data', 'labels', 'type', 'provider_slug', 'description', 'mount'],
  update: ['value', 'data', 'labels', 'type', 'provider_slug', 'description', 'mount', 'replace', 'expected_version'],
  delete: ['type', 'force', 'expected_version'],
};

function statusOfKind(kind: string): number {
  return (errorKinds as Record<string, { http: number }>)[kind]?.http ?? 500;
}

async function batch(services: RestServices, request: RestRequest, ctx: CallContext): Promise<RestReply> {
  const scope = scopeFromHeaders(request, ctx, true);
  await services.secrets.authorizeBatch(scope, ctx); // refuse a caller who may not write before looking at any item
  const items = (Array.isArray(request.body) ? request.body : (request.body as { items: BatchItemBody[] }).items) as BatchItemBody[];
  type Result = { index: number; name: string; mode: string; status: number; ok: boolean; error?: { code: string; message: string }; secret?: unknown };
  const results: Array<Result | undefined> = [];
  const forService: Array<{ index: number; item: object }> = [];
  for (const [index, item] of items.entries()) {
    const field = `items[${index}].`;
    try {
      const stray = Object.keys(item).filter((key) => key !== 'mode' && key !== 'name' && !modeFields[item.mode].includes(key as keyof BatchItemBody));
      if (stray.length) throw new InvalidArgumentError(`${field}${stray[0]}`, `does not apply to mode ${item.mode}`);
      const serviceItem =
        item.mode === 'create'
          ? { create: v1SecretInput(item, field) }
          : item.mode === 'update'
            ? { update: await v1UpdateRequest(services, ctx, scope, item.name, item, field) }
            : { delete: { name: item.name, force: item.force ?? false, expected_version: item.expected_version, type: item.type } };
      forService.push({ index, item: serviceItem });
    } catch (error) {
      if (!(error instanceof LockboxError)) throw error;
      results[index] = { index, name: item.name, mode: item.mode, status: error.httpStatus, ok: false, error: { code: error.code, message: error.message } };
    }
  }
  if (forService.length > 0 || items.length === 0) {
    const response = await services.secrets.batch({ scope, items: forService.map((f) => f.item) }, ctx);
    for (const r of response.results) {
      const index = forService[r.index].index;
      results[index] =
        r.code === 0
          ? { index, name: r.name, mode: r.operation, status: 200, ok: true, ...(r.secret ? { secret: v1Secret(r.secret) } : {}) }
          : { index, name: r.name, mode: r.operation, status: statusOfKind(r.status), ok: false, error: { code: r.error_code || r.status, message: r.message } };
    }
  }
  const failed = results.filter((r) => !r!.ok).length;
  return { status: failed ? 400 : 200, body: { results, succeeded: results.length - failed, failed } };
}

// ---- /v2 shapes ------------------------------------------------------------------------------

function v2Labels(labels: Record<string, string>) {
  return Object.entries(labels).map(([key, value]) => ({ key, value }));
}

function labelsFromList(list: Array<{ key: string; value: string }> | undefined): Record<string, string> | undefined {
  if (!list) return undefined;
  const labels: Record<string, string> = {};
  for (const [i, { key, value }] of list.entries()) {
    if (key in labels) throw new InvalidArgumentError(`labels[${i}].key`, `"${key.slice(0, 64)}" appears more than once`);
    labels[key] = value;
  }
  return labels;
}

/** Every secret of a scope (v2 lists count them all and page by $skip/$top). */
async function allSecrets(services: RestServices, scope: ScopeMessage, ctx: CallContext): Promise<SecretMessage[]> {
  const all: SecretMessage[] = [];
  let cursor = '';
  do {
    const page = await services.secrets.list({ scope, limit: 1000, cursor }, ctx);
    all.push(...page.secrets);
    cursor = page.next_cursor;
  } while (cursor);
  return all;
}

// ---- the table -------------------------------------------------------------------------------

const errors = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((s) => [s, { description: httpReasons[s] ?? 'error', schema: schemas.errorResponse }]));

const httpReasons: Record<number, string> = {
  400: 'bad request: the message names the field and the rule',
  401: 'no token, or a token that is malformed, unknown, expired or revoked',
  403: 'the token may not do this in this scope',
  404: 'no such secret (or version)',
  409: 'exists already, version conflict, or in use by deployments',
  413: 'body over the limit',
  415: 'body not sent as application/json',
  429: 'quota reached',
  500: 'internal error (the request id is in the log)',
};

export function restRoutes(services: RestServices): RestRoute[] {
  const { secrets, agents } = services;
  const v1Scope = (request: RestRequest, ctx: CallContext) => scopeFromHeaders(request, ctx, true);
  const v2Scope = (request: RestRequest, ctx: CallContext) => scopeFromHeaders(request, ctx, false);
  const v1Id = schemas.nameParam('id');
  const v2Name = schemas.nameParam('secretName');
  return [
    {
      method: 'GET',
      path: '/v1/admin/secrets',
      operationId: 'v1ListSecrets',
      summary: 'List secrets (metadata only), a page at a time',
      tag: 'v1',
      query: schemas.v1ListQuery,
      headers: scopeHeaders,
      responses: { 200: { description: 'a page of secrets', schema: schemas.v1ListResponse }, ...errors(400, 401, 403, 500) },
      async handle(request, ctx) {
        const q = request.query as { limit?: number; cursor?: string; provider_slug?: string; type?: string; label?: string[] };
        const page = await secrets.list({ scope: v1Scope(request, ctx), limit: q.limit, cursor: q.cursor, template: q.provider_slug, type: q.type, labels: q.label }, ctx);
        return { status: 200, body: { secrets: page.secrets.map(v1Secret), next_cursor: page.next_cursor } };
      },
    },
    {
      method: 'POST',
      path: '/v1/admin/secrets',
      operationId: 'v1CreateSecret',
      summary: 'Create a secret: {"name", "value"} for one value, or the full shape with data',
      tag: 'v1',
      body: schemas.v1CreateBody,
      headers: writeHeaders,
      responses: { 201: { description: 'created', schema: schemas.v1Secret }, ...errors(400, 401, 403, 409, 413, 415, 429, 500) },
      async handle(request, ctx) {
        const secret = await secrets.create({ scope: v1Scope(request, ctx), secret: v1SecretInput(request.body as V1SecretFields, '') }, ctx);
        return { status: 201, body: v1Secret(secret) };
      },
    },
    {
      method: 'POST',
      path: '/v1/admin/secrets:batch',
      operationId: 'v1BatchSecrets',
      summary: 'Create, update and delete many secrets; a status per item, the rest applied',
      tag: 'v1',
      body: schemas.batchBody,
      headers: writeHeaders,
      responses: {
        200: { description: 'every item applied', schema: schemas.batchResponse },
        400: { description: 'some item failed (the others applied), or the request is malformed', schema: schemas.batchResponse },
        ...errors(401, 403, 413, 415, 500),
      },
      handle: (request, ctx) => batch(services, request, ctx),
    },
    {
      method: 'GET',
      path: '/v1/admin/secrets/{id}',
      operationId: 'v1GetSecret',
      summary: 'Get a secret; values only with reveal=true (audited)',
      tag: 'v1',
      params: v1Id,
      query: schemas.v1GetQuery,
      headers: scopeHeaders,
      responses: { 200: { description: 'the secret', schema: schemas.v1Secret }, ...errors(400, 401, 403, 404, 500) },
      async handle(request, ctx) {
        const q = request.query as { version?: number; reveal?: boolean };
        const secret = await secrets.get({ scope: v1Scope(request, ctx), name: request.params.id, version: q.version, include_values: q.reveal ?? false }, ctx);
        return { status: 200, body: v1Secret(secret) };
      },
    },
    {
      method: 'PATCH',
      path: '/v1/admin/secrets/{id}',
      operationId: 'v1UpdateSecret',
      summary: 'Update a secret: set or remove keys and labels, replace the data, change mount or description',
      tag: 'v1',
      params: v1Id,
      body: schemas.v1PatchBody,
      headers: scopeHeaders,
      responses: { 200: { description: 'the new version', schema: schemas.v1Secret }, ...errors(400, 401, 403, 404, 409, 413, 415, 500) },
      async handle(request, ctx) {
        const scope = v1Scope(request, ctx);
        const update = await v1UpdateRequest(services, ctx, scope, request.params.id, request.body as V1SecretFields, '');
        return { status: 200, body: v1Secret(await secrets.update(update, ctx)) };
      },
    },
    {
      method: 'DELETE',
      path: '/v1/admin/secrets/{id}',
      operationId: 'v1DeleteSecret',
      summary: 'Delete a secret (refused while deployments mount it, unless force=true)',
      tag: 'v1',
      params: v1Id,
      query: schemas.v1DeleteQuery,
      headers: scopeHeaders,
      responses: { 200: { description: 'deleted', schema: schemas.v1DeleteResponse }, ...errors(400, 401, 403, 404, 409, 500) },
      async handle(request, ctx) {
        const q = request.query as { force?: boolean; expected_version?: number };
        const deleted = await secrets.delete({ scope: v1Scope(request, ctx), name: request.params.id, force: q.force ?? false, expected_version: q.expected_version }, ctx);
        return { status: 200, body: { id: deleted.name, name: deleted.name, version: deleted.version, change_seq: deleted.change_seq, deleted: true } };
      },
    },
    {
      method: 'GET',
      path: '/v2/admin/secrets',
      operationId: 'v2ListSecrets',
      summary: 'List the secrets of the scope named by the headers',
      tag: 'v2',
      query: schemas.v2ListQuery,
      headers: scopeHeaders,
      responses: { 200: { description: 'count and a page of secrets', schema: schemas.v2ListResponse }, ...errors(400, 401, 403, 500) },
      async handle(request, ctx) {
        const q = request.query as { $top?: number; $skip?: number };
        const all = await allSecrets(services, v2Scope(request, ctx), ctx);
        const skip = q.$skip ?? 0;
        const page = all.slice(skip, skip + (q.$top ?? 100));
        return { status: 200, body: { count: all.length, resources: page.map((s) => ({ name: s.name, createdAt: s.create_time, labels: v2Labels(s.labels) })) } };
      },
    },
    {
      method: 'POST',
      path: '/v2/admin/secrets',
      operationId: 'v2CreateSecret',
      summary: 'Create a secret from base64 values',
      tag: 'v2',
      body: schemas.v2CreateBody,
      headers: writeHeaders,
      responses: { 200: { description: 'created', schema: schemas.v2Message }, ...errors(400, 401, 403, 409, 413, 415, 429, 500) },
      async handle(request, ctx) {
        const body = request.body as { name: string; data: Record<string, string>; labels?: Array<{ key: string; value: string }> };
        const scope = v2Scope(request, ctx);
        const secret = await secrets.create({ scope, secret: { name: body.name, data: base64Bytes(body.data, 'data'), labels: labelsFromList(body.labels) } }, ctx);
        return { status: 200, body: { message: 'secret has been created', name: secret.name } };
      },
    },
    {
      method: 'GET',
      path: '/v2/admin/secrets/{secretName}',
      operationId: 'v2GetSecret',
      summary: 'Get a secret\'s metadata; for a tenant-wide secret, its replication per resource group',
      tag: 'v2',
      params: v2Name,
      headers: scopeHeaders,
      query: schemas.emptyQuery,
      responses: { 200: { description: 'the secret (no values)', schema: schemas.v2Secret }, ...errors(400, 401, 403, 404, 500) },
      async handle(request, ctx) {
        const scope = v2Scope(request, ctx);
        const secret = await secrets.get({ scope, name: request.params.secretName }, ctx);
        const body: Record<string, unknown> = { name: secret.name, createdAt: secret.create_time, labels: v2Labels(secret.labels) };
        if (secret.scope.resource_group === '*')
          body.resourceGroupSecretReplicationStatus = await agents.replicationByResourceGroup({ scope: secret.scope, name: secret.name }, ctx);
        return { status: 200, body };
      },
    },
    {
      method: 'PATCH',
      path: '/v2/admin/secrets/{secretName}',
      operationId: 'v2UpdateSecret',
      summary: 'Replace a secret\'s data (and labels, when given)',
      tag: 'v2',
      params: v2Name,
      body: schemas.v2PatchBody,
      headers: scopeHeaders,
      responses: { 200: { description: 'updated', schema: schemas.v2Message }, ...errors(400, 401, 403, 404, 409, 413, 415, 500) },
      async handle(request, ctx) {
        const body = request.body as { data?: Record<string, string>; labels?: Array<{ key: string; value: string }> };
        const scope = v2Scope(request, ctx);
        const name = request.params.secretName;
        const labels = labelsFromList(body.labels);
        const removeLabels = labels ? Object.keys((await secrets.get({ scope, name }, ctx)).labels).filter((k) => !(k in labels)) : [];
        const set = body.data ? base64Bytes(body.data, 'data') : {};
        await secrets.update({ scope, name, set, replace: body.data !== undefined, set_labels: labels, remove_labels: removeLabels }, ctx);
        return { status: 200, body: { message: 'secret has been modified', name } };
      },
    },
    {
      method: 'DELETE',
      path: '/v2/admin/secrets/{secretName}',
      operationId: 'v2DeleteSecret',
      summary: 'Delete a secret (refused while deployments mount it)',
      tag: 'v2',
      params: v2Name,
      headers: scopeHeaders,
      query: schemas.emptyQuery,
      responses: { 200: { description: 'deleted', schema: schemas.v2Message }, ...errors(400, 401, 403, 404, 409, 500) },
      async handle(request, ctx) {
        const deleted = await secrets.delete({ scope: v2Scope(request, ctx), name: request.params.secretName }, ctx);
        return { status: 200, body: { message: 'secret has been deleted', name: deleted.name } };
      },
    },
  ];
}
