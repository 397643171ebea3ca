/**
 * `/v2/admin/secrets` (SAP AI Core): values in base64 (line breaks allowed), labels as
 * `[{key, value}]`, lists paged by `$top`/`$skip` with a `count` and holding the tenant-wide
 * secrets visible in the scope, and the scope named by the headers (required: a resource group,
 * or `AI-Tenant-Scope: true`).
 */
import { InvalidArgumentError } from '../../../shared/src/errors.js';
import { hasKey, userRecord } from '../../../shared/src/user-keys.js';
import { limits } from '../../../shared/src/limits.js';
import type { CallContext } from '../services/context.js';
import type { ScopeMessage, SecretMessage } from '../services/messages.js';
import { errorResponses, scopeFromHeaders, scopeHeaders, writeHeaders, type RestRequest, type RestRoute, type RestServices } from './rest-common.js';
import * as schemas from './rest-schemas.js';

const base64Pattern = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** What RFC 2045 lets a base64 body carry between its characters: `base64 FILE` wraps at 76. */
const base64Whitespace = /[ \t\r\n]/g;

/**
 * /v2 values: standard base64, strictly (Buffer.from would skip bad characters silently), with
 * spaces, tabs and line breaks anywhere ignored (RFC 2045); any other stray character is refused.
 */
function base64Bytes(values: Record<string, string>, field: string): Record<string, Uint8Array> {
  const bytes = userRecord<Uint8Array>();
  for (const [key, value] of Object.entries(values)) {
    const compact = value.replace(base64Whitespace, '');
    if (!base64Pattern.test(compact)) throw new InvalidArgumentError(`${field}[${JSON.stringify(key.slice(0, 64))}]`, 'is not valid base64', 'INVALID_BASE64');
    bytes[key] = Buffer.from(compact, 'base64');
  }
  return bytes;
}

function v2Labels(labels: Record<string, string>) {
  return Object.entries(labels).map(([key, value]) => ({ key, value }));
}

function labelsFromList(list: Array<{ key: string; value: string }> | undefined): Record<string, string> | undefined {
  if (!list) return undefined;
  const labels = userRecord<string>();
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
    const page = await services.secrets.list({ scope, limit: limits.maxListLimit, cursor, own_only: true }, ctx);
    all.push(...page.secrets);
    cursor = page.next_cursor;
  } while (cursor);
  return all;
}

type ListedScope = 'resource-group' | 'tenant-wide' | 'main-tenant';

function scopeLabel(group: string): ListedScope {
  return group === '*' ? 'tenant-wide' : group === '' ? 'main-tenant' : 'resource-group';
}

/**
 * What a GET finds in a scope, listed: the scope's own secrets and, outside the tenant-wide scope,
 * the tenant-wide ones visible there (SAP: they propagate to every resource group). A secret of
 * the scope's own that shadows a tenant-wide one is listed once, as its own. By name.
 * (1) the scope's own list first, so a caller who may not read the scope is refused before
 *     anything else is read; (2) then the tenant-wide list, which every reader of the tenant may
 *     see; (3) merged by name, the scope's own winning.
 */
async function visibleSecrets(services: RestServices, scope: ScopeMessage, ctx: CallContext): Promise<Array<{ secret: SecretMessage; scope: ListedScope }>> {
  const own = await allSecrets(services, scope, ctx); // (1)
  const listed = new Map(own.map((secret) => [secret.name, { secret, scope: scopeLabel(scope.resource_group ?? '') }]));
  if (scope.resource_group !== '*')
    for (const secret of await allSecrets(services, { ...scope, resource_group: '*' }, ctx)) // (2)
      if (!listed.has(secret.name)) listed.set(secret.name, { secret, scope: 'tenant-wide' }); // (3)
  return [...listed.values()].sort((a, b) => (a.secret.name < b.secret.name ? -1 : a.secret.name > b.secret.name ? 1 : 0));
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
      summary: 'List the secrets of the scope named by the headers, with the tenant-wide secrets visible there (each marked with its scope)',
      tag: 'v2',
      query: schemas.v2ListQuery,
      headers: scopeHeaders,
      responses: { 200: { description: 'count and a page of secrets', schema: schemas.v2ListResponse }, ...errorResponses('GET') },
      async handle(request, ctx) {
        const q = request.query as { $top?: number; $skip?: number };
        const all = await visibleSecrets(services, v2Scope(request, ctx), ctx);
        const skip = q.$skip ?? 0;
        const page = all.slice(skip, skip + (q.$top ?? limits.defaultListLimit));
        const resources = page.map(({ secret, scope }) => ({ name: secret.name, createdAt: secret.create_time, labels: v2Labels(secret.labels), scope }));
        return { status: 200, body: { count: all.length, resources } };
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
      responses: { 200: { description: 'created', schema: schemas.v2Message }, ...errorResponses('POST', 409, 429) },
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
      responses: { 200: { description: 'the secret (no values)', schema: schemas.v2Secret }, ...errorResponses('GET', 404) },
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
      headers: writeHeaders,
      responses: { 200: { description: 'updated', schema: schemas.v2Message }, ...errorResponses('PATCH', 404, 409) },
      async handle(request, ctx) {
        const body = request.body as { data?: Record<string, string>; labels?: Array<{ key: string; value: string }> };
        const scope = v2Scope(request, ctx);
        const name = request.params.secretName;
        const labels = labelsFromList(body.labels);
        const removeLabels = labels ? Object.keys((await secrets.get({ scope, name }, ctx)).labels).filter((k) => !hasKey(labels, k)) : [];
        const set = body.data ? base64Bytes(body.data, 'data') : {};
        // The labels to remove come from the current state, which the first try changed: a retry
        // is recognised by the PATCH it repeats, not by the update derived from it.
        const retryable = { ...ctx, idempotencyRequest: { scope, name, body } };
        await secrets.update({ scope, name, set, replace: body.data !== undefined, set_labels: labels, remove_labels: removeLabels }, retryable);
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
      headers: writeHeaders,
      query: schemas.emptyQuery,
      responses: { 200: { description: 'deleted', schema: schemas.v2Message }, ...errorResponses('DELETE', 404, 409) },
      async handle(request, ctx) {
        const deleted = await secrets.delete({ scope: v2Scope(request, ctx), name: request.params.secretName }, ctx);
        return { status: 200, body: { message: 'secret has been deleted', name: deleted.name } };
      },
    },
  ];
}
