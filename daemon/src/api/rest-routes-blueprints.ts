/**
 * AI Blueprints `/secrets`: `GET` lists the secrets of the scope (the /v1 list: `limit`,
 * `cursor`, filters), `POST` is a batch of creates, updates and deletes of `opaque` and
 * `container_registry` secrets with a status per item: 200 when every item applied, else 400.
 * The same token, the same scope headers (none: the main-tenant scope) and the same services as
 * /v1; a Blueprints client and a /v1 client see the same secrets.
 */
import type { RestRoute, RestServices } from './rest-common.js';
import { batchRoutes } from './rest-routes-batch.js';
import { v1ListRoute } from './rest-routes-v1.js';

export function blueprintsRoutes(services: RestServices): RestRoute[] {
  const [batch] = batchRoutes(services);
  return [
    { ...v1ListRoute(services), path: '/secrets', operationId: 'blueprintsListSecrets', summary: 'List secrets (metadata only), a page at a time (AI Blueprints)', tag: 'blueprints' },
    {
      ...batch,
      path: '/secrets',
      operationId: 'blueprintsBatchSecrets',
      summary: 'Create, update and delete opaque and container_registry secrets; a status per item (AI Blueprints)',
      tag: 'blueprints',
    },
  ];
}
