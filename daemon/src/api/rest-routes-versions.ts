/**
 * REST routes for a secret's history and spread: its kept versions, restoring one (a new version
 * with the old data), and which agents hold which version (what `lockbox status NAME` shows).
 */
import type { AgentService } from '../services/service-agent.js';
import type { SecretsService } from '../services/service-secrets.js';
import { errorResponses, scopeFromHeaders, scopeHeaders, type RestRoute } from './rest-common.js';
import { v1Secret as v1SecretBody } from './rest-shapes-v1.js';
import * as schemas from './rest-schemas-console.js';
import { emptyQuery, nameParam, v1Secret } from './rest-schemas.js';

export function versionRoutes({ secrets, agents }: { secrets: SecretsService; agents: AgentService }): RestRoute[] {
  return [
    {
      method: 'GET',
      path: '/v1/admin/secrets/{id}/versions',
      operationId: 'v1ListVersions',
      summary: 'The kept versions of a secret (metadata: time, keys, what made each)',
      tag: 'v1',
      params: nameParam('id'),
      query: emptyQuery,
      headers: scopeHeaders,
      responses: { 200: { description: 'the versions', schema: schemas.versionList }, ...errorResponses('GET', 404) },
      handle: async (request, ctx) => ({ status: 200, body: await secrets.listVersions({ scope: scopeFromHeaders(request, ctx, true), name: request.params.id }, ctx) }),
    },
    {
      method: 'POST',
      path: '/v1/admin/secrets/{id}/versions/{version}/restore',
      operationId: 'v1RestoreVersion',
      summary: 'Restore a kept version: a new version with its data and mount',
      tag: 'v1',
      params: schemas.versionParam,
      body: schemas.restoreBody,
      headers: scopeHeaders,
      responses: { 200: { description: 'the new version', schema: v1Secret }, ...errorResponses('POST', 404, 409) },
      async handle(request, ctx) {
        const body = request.body as { expected_version?: number };
        const restored = await secrets.restore({ scope: scopeFromHeaders(request, ctx, true), name: request.params.id, version: Number(request.params.version), expected_version: body.expected_version }, ctx);
        return { status: 200, body: v1SecretBody(restored) };
      },
    },
    {
      method: 'GET',
      path: '/v1/admin/secrets/{id}/rollout',
      operationId: 'v1SecretRollout',
      summary: 'Which agents hold which version of a secret; agents silent for three resync intervals are stale',
      tag: 'v1',
      params: nameParam('id'),
      query: emptyQuery,
      headers: scopeHeaders,
      responses: { 200: { description: 'the rollout', schema: schemas.secretRollout }, ...errorResponses('GET', 404) },
      handle: async (request, ctx) => ({ status: 200, body: await agents.status({ scope: scopeFromHeaders(request, ctx, true), name: request.params.id }, ctx) }),
    },
  ];
}
