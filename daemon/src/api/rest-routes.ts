/**
 * The REST route table: every family's routes, in the order /openapi.json lists them. Each route
 * translates HTTP into a call of the same service the gRPC API calls, and the answer back into
 * JSON. No rule of the API lives in a route; only the HTTP shape does: where the scope comes from
 * (headers), how values are spelled (text in /v1, base64 in /v2), which status a result gets.
 *
 * One file per API family, named `rest-routes-<family>.ts`; a new family (the console's routes,
 * say) gets a file of its own and one line here. What families share
 * is in rest-common.ts.
 */
import { batchRoutes } from './rest-routes-batch.js';
import { blueprintsRoutes } from './rest-routes-blueprints.js';
import { v1Routes } from './rest-routes-v1.js';
import { v2Routes } from './rest-routes-v2.js';
import { versionRoutes } from './rest-routes-versions.js';
import { deploymentRoutes } from './rest-routes-deployments.js';
import { accessRoutes } from './rest-routes-access.js';
import type { RestRoute, RestServices } from './rest-common.js';

export function restRoutes(services: RestServices): RestRoute[] {
  return [
    ...v1Routes(services), // /v1/admin/secrets (FastAPI-style)
    ...batchRoutes(services), // /v1/admin/secrets:batch
    ...v2Routes(services), // /v2/admin/secrets (SAP AI Core)
    ...blueprintsRoutes(services), // /secrets (AI Blueprints)
    ...versionRoutes(services), // /v1/admin/secrets/{id}/versions, …/rollout (the console's)
    ...deploymentRoutes(services), // /v1/admin/deployments
    ...accessRoutes(services), // /v1/whoami, /v1/templates, /v1/admin/tokens, /v1/admin/audit
  ];
}
