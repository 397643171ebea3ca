/**
 * `/v1/admin/secrets` (FastAPI-style): list, create, get, update, delete, with the scope from
 * the headers (the main-tenant scope when none is sent). The batch route is rest-routes-batch.ts.
 */
import type { CallContext } from '../services/context.js';
import { errorResponses, scopeFromHeaders, scopeHeaders, writeHeaders, type RestRequest, type RestRoute, type RestServices } from './rest-common.js';
import * as schemas from './rest-schemas.js';
import { v1Secret, v1SecretInput, v1UpdateRequest, type V1SecretFields } from './rest-shapes-v1.js';

/** The list, a page at a time; also the AI Blueprints `GET /secrets` (rest-routes-blueprints.ts). */
export function v1ListRoute(services: RestServices): RestRoute {
  return {
    method: 'GET',
    path: '/v1/admin/secrets',
    operationId: 'v1ListSecrets',
    summary: 'List secrets (metadata only), a page at a time',
    tag: 'v1',
    query: schemas.v1ListQuery,
    headers: scopeHeaders,
    responses: { 200: { description: 'a page of secrets', schema: schemas.v1ListResponse }, ...errorResponses('GET') },
    async handle(request, ctx) {
      const q = request.query as { limit?: number; cursor?: string; provider_slug?: string; type?: string; label?: string[]; own_only?: boolean };
      const scope = scopeFromHeaders(request, ctx, true);
      const page = await services.secrets.list({ scope, limit: q.limit, cursor: q.cursor, template: q.provider_slug, type: q.type, labels: q.label, own_only: q.own_only }, ctx);
      return { status: 200, body: { secrets: page.secrets.map(v1Secret), next_cursor: page.next_cursor } };
    },
  };
}

export function v1Routes(services: RestServices): RestRoute[] {
  const { secrets } = services;
  const v1Scope = (request: RestRequest, ctx: CallContext) => scopeFromHeaders(request, ctx, true);
  const v1Id = schemas.nameParam('id');
  return [
    v1ListRoute(services),
    {
      method: 'POST',
      path: '/v1/admin/secrets',
      operationId: 'v1CreateSecret',
      summary: 'Create a secret: {"name", "value"} for one value, or the full shape with data',
      tag: 'v1',
      body: schemas.v1CreateBody,
      headers: writeHeaders,
      responses: { 201: { description: 'created', schema: schemas.v1Secret }, ...errorResponses('POST', 409, 429) },
      async handle(request, ctx) {
        const secret = await secrets.create({ scope: v1Scope(request, ctx), secret: v1SecretInput(request.body as V1SecretFields, '') }, ctx);
        return { status: 201, body: v1Secret(secret) };
      },
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
      responses: { 200: { description: 'the secret', schema: schemas.v1Secret }, ...errorResponses('GET', 404) },
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
      headers: writeHeaders,
      responses: { 200: { description: 'the new version', schema: schemas.v1Secret }, ...errorResponses('PATCH', 404, 409) },
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
      headers: writeHeaders,
      responses: { 200: { description: 'deleted', schema: schemas.v1DeleteResponse }, ...errorResponses('DELETE', 404, 409) },
      async handle(request, ctx) {
        const q = request.query as { force?: boolean; expected_version?: number };
        const deleted = await secrets.delete({ scope: v1Scope(request, ctx), name: request.params.id, force: q.force ?? false, expected_version: q.expected_version }, ctx);
        return { status: 200, body: { id: deleted.name, name: deleted.name, version: deleted.version, change_seq: deleted.change_seq, deleted: true } };
      },
    },
  ];
}
