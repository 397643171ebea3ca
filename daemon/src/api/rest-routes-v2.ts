/**
 * `/v2/admin/secrets` (SAP AI Core): values in base64, labels as `[{key, value}]`, lists paged by
 * `$top`/`$skip` with a `count`, and the scope named by the headers (required: a resource group,
 * or `AI-Tenant-Scope: true`).
 */
import { InvalidArgumentError } from '../../../shared/src/errors.js';
import type { CallContext } from '../services/context.js';
import type { ScopeMessage, SecretMessage } from '../services/messages.js';
import { errorResponses, scopeFromHeaders, scopeHeaders, writeHeaders, type RestRequest, type RestRoute, type RestServices } from './rest-common.js';
import * as schemas from './rest-schemas.js';

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

export function v2Routes(services: RestServices): RestRoute[] {
  const { secrets, agents } = services;
  const v2Scope = (request: RestRequest, ctx: CallContext) => scopeFromHeaders(request, ctx, false);
  const v2Name = schemas.nameParam('secretName');
  return [
    {
      method: 'GET',
      path: '/v2/admin/secrets',
      operationId: 'v2ListSecrets',
      summary: 'List the secrets of the scope named by the headers',
      tag: 'v2',
      query: schemas.v2ListQuery,
      headers: scopeHeaders,
      responses: { 200: { description: 'count and a page of secrets', schema: schemas.v2ListResponse }, ...errorResponses(400, 401, 403, 500) },
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
      responses: { 200: { description: 'created', schema: schemas.v2Message }, ...errorResponses(400, 401, 403, 409, 413, 415, 429, 500) },
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
      responses: { 200: { description: 'the secret (no values)', schema: schemas.v2Secret }, ...errorResponses(400, 401, 403, 404, 500) },
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
      responses: { 200: { description: 'updated', schema: schemas.v2Message }, ...errorResponses(400, 401, 403, 404, 409, 413, 415, 500) },
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
      responses: { 200: { description: 'deleted', schema: schemas.v2Message }, ...errorResponses(400, 401, 403, 404, 409, 500) },
      async handle(request, ctx) {
        const deleted = await secrets.delete({ scope: v2Scope(request, ctx), name: request.params.secretName }, ctx);
        return { status: 200, body: { message: 'secret has been deleted', name: deleted.name } };
      },
    },
  ];
}
