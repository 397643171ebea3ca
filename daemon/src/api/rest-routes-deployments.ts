/**
 * REST routes for deployments (create, read, update, delete), the clash check the console runs
 * before saving, and a deployment's rollout. Each calls the service the gRPC DeploymentsService
 * calls, with the same token checks; the scope comes from the headers as for /v1 secrets.
 */
import type { CallContext } from '../services/context.js';
import type { DeploymentsService } from '../services/service-deployments.js';
import type { RolloutService } from '../services/service-rollout.js';
import { errorResponses, scopeFromHeaders, scopeHeaders, type RestRequest, type RestRoute } from './rest-common.js';
import * as schemas from './rest-schemas-console.js';

export interface DeploymentRouteServices {
  deployments: DeploymentsService;
  rollout: RolloutService;
}

interface DeploymentBody {
  name?: string;
  secrets?: string[];
  description?: string;
  labels?: Record<string, string>;
  expected_version?: number;
}

export function deploymentRoutes({ deployments, rollout }: DeploymentRouteServices): RestRoute[] {
  const scope = (request: RestRequest, ctx: CallContext) => scopeFromHeaders(request, ctx, true);
  const path = '/v1/admin/deployments';
  return [
    {
      method: 'GET',
      path,
      operationId: 'v1ListDeployments',
      summary: 'List the deployments of the scope named by the headers',
      tag: 'deployments',
      headers: scopeHeaders,
      responses: { 200: { description: 'the deployments', schema: schemas.deploymentList }, ...errorResponses('GET') },
      handle: async (request, ctx) => ({ status: 200, body: await deployments.list({ scope: scope(request, ctx) }, ctx) }),
    },
    {
      method: 'POST',
      path,
      operationId: 'v1CreateDeployment',
      summary: 'Create a deployment; refused with every missing secret or every mount collision',
      tag: 'deployments',
      headers: scopeHeaders,
      body: schemas.deploymentBody,
      responses: { 201: { description: 'created', schema: schemas.deployment }, ...errorResponses('POST', 404, 409, 429) },
      async handle(request, ctx) {
        const body = request.body as DeploymentBody;
        return { status: 201, body: await deployments.create({ scope: scope(request, ctx), deployment: body }, ctx) };
      },
    },
    {
      method: 'POST',
      path: `${path}:check`,
      operationId: 'v1CheckDeploymentSecrets',
      summary: 'What saving a deployment with these secrets would meet: the missing secrets and one line per mount collision (nothing is written)',
      tag: 'deployments',
      headers: scopeHeaders,
      body: schemas.deploymentCheckBody,
      responses: { 200: { description: 'the check', schema: schemas.deploymentCheck }, ...errorResponses('POST') },
      async handle(request, ctx) {
        const body = request.body as { secrets: string[] };
        return { status: 200, body: await deployments.check({ scope: scope(request, ctx), secrets: body.secrets }, ctx) };
      },
    },
    {
      method: 'GET',
      path: `${path}/{name}`,
      operationId: 'v1GetDeployment',
      summary: 'Get a deployment and where each of its secrets resolves',
      tag: 'deployments',
      params: schemas.deploymentParam,
      headers: scopeHeaders,
      responses: { 200: { description: 'the deployment', schema: schemas.deployment }, ...errorResponses('GET', 404) },
      handle: async (request, ctx) => ({ status: 200, body: await deployments.get({ scope: scope(request, ctx), name: request.params.name }, ctx) }),
    },
    {
      method: 'PATCH',
      path: `${path}/{name}`,
      operationId: 'v1UpdateDeployment',
      summary: 'Change the secrets, description or labels of a deployment (the same checks as create)',
      tag: 'deployments',
      params: schemas.deploymentParam,
      headers: scopeHeaders,
      body: schemas.deploymentUpdateBody,
      responses: { 200: { description: 'the new version', schema: schemas.deployment }, ...errorResponses('PATCH', 404, 409) },
      async handle(request, ctx) {
        const at = scope(request, ctx);
        const body = request.body as DeploymentBody;
        deployments.authorizeWrite(at, ctx);
        const current = await deployments.get({ scope: at, name: request.params.name }, ctx);
        const deployment = {
          name: current.name,
          secrets: body.secrets ?? current.secrets,
          description: body.description ?? current.description,
          labels: body.labels ?? current.labels,
        };
        // Compare-and-set on the version read above, so a concurrent edit is refused, not lost.
        return { status: 200, body: await deployments.update({ scope: at, deployment, expected_version: body.expected_version ?? current.version }, ctx) };
      },
    },
    {
      method: 'DELETE',
      path: `${path}/{name}`,
      operationId: 'v1DeleteDeployment',
      summary: 'Delete a deployment (its agents stop receiving its secrets)',
      tag: 'deployments',
      params: schemas.deploymentParam,
      headers: scopeHeaders,
      responses: { 200: { description: 'deleted', schema: schemas.deploymentParam }, ...errorResponses('DELETE', 404) },
      handle: async (request, ctx) => ({ status: 200, body: await deployments.delete({ scope: scope(request, ctx), name: request.params.name }, ctx) }),
    },
    {
      method: 'GET',
      path: `${path}/{name}/rollout`,
      operationId: 'v1DeploymentRollout',
      summary: 'Per secret of the deployment: each of its agents, the version it holds, when applied, stale or its problems; "1/1 on v2"',
      tag: 'deployments',
      params: schemas.deploymentParam,
      headers: scopeHeaders,
      responses: { 200: { description: 'the rollout', schema: schemas.deploymentRollout }, ...errorResponses('GET', 404) },
      handle: async (request, ctx) => ({ status: 200, body: await rollout.deployment({ scope: scope(request, ctx), name: request.params.name }, ctx) }),
    },
  ];
}
