/**
 * REST routes for who the caller is, the secret templates, tokens (create, list, revoke) and the
 * audit log (list, verify, prune). Each calls the service the gRPC API calls, with the same token checks.
 */
import { checkTime, envFormats, mountKinds, registryKeys, secretTypes, templateKeys } from '../../../shared/src/validate.js';
import { tokenAbilities, visibleScopes } from '../security/token-scopes.js';
import type { AuditService } from '../services/service-audit.js';
import type { TokensService } from '../services/service-tokens.js';
import { errorResponses, type RestRoute } from './rest-common.js';
import * as schemas from './rest-schemas-console.js';
import { emptyQuery } from './rest-schemas.js';

export interface AccessRouteServices {
  tokens: TokensService;
  audit: AuditService;
}

interface AuditQuery {
  action?: string;
  target?: string;
  since?: string;
  until?: string;
  after_seq?: number;
  limit?: number;
}

/** An RFC 3339 time from a query parameter (checkTime), as milliseconds; none when it is absent or empty. */
function timeParam(value: string | undefined, field: string): number | undefined {
  return value === undefined || value === '' ? undefined : checkTime(value, field);
}

export function accessRoutes({ tokens, audit }: AccessRouteServices): RestRoute[] {
  return [
    {
      method: 'GET',
      path: '/v1/whoami',
      operationId: 'v1WhoAmI',
      summary: 'The calling token: its role, tenant, the scopes it may see and what it may do',
      tag: 'access',
      query: emptyQuery,
      responses: { 200: { description: 'the token', schema: schemas.identity }, ...errorResponses('GET') },
      async handle(_request, ctx) {
        const { principal } = ctx;
        return {
          status: 200,
          body: {
            token_id: principal.tokenId,
            role: principal.role,
            tenant: principal.tenant,
            resource_groups: [...principal.resourceGroups],
            deployment: principal.deployment,
            ...visibleScopes(principal),
            may: tokenAbilities(principal),
          },
        };
      },
    },
    {
      method: 'GET',
      path: '/v1/templates',
      operationId: 'v1Templates',
      summary: 'The provider templates and the keys each requires, secret types, mount kinds and env formats',
      tag: 'access',
      query: emptyQuery,
      responses: { 200: { description: 'what a secret may be', schema: schemas.templates }, ...errorResponses('GET') },
      handle: async () => ({
        status: 200,
        body: {
          templates: Object.fromEntries(Object.entries(templateKeys).map(([slug, keys]) => [slug, [...keys]])),
          secret_types: [...secretTypes],
          registry_keys: { required: [...registryKeys.required], optional: [...registryKeys.optional] },
          mount_kinds: [...mountKinds],
          env_formats: [...envFormats],
        },
      }),
    },
    {
      method: 'GET',
      path: '/v1/admin/tokens',
      operationId: 'v1ListTokens',
      summary: 'List the tokens the caller may manage (never the tokens themselves)',
      tag: 'access',
      query: schemas.tokenListQuery,
      responses: { 200: { description: 'the tokens', schema: schemas.tokenList }, ...errorResponses('GET') },
      async handle(request, ctx) {
        const q = request.query as { include_revoked?: boolean };
        return { status: 200, body: await tokens.list({ include_revoked: q.include_revoked ?? false }, ctx) };
      },
    },
    {
      method: 'POST',
      path: '/v1/admin/tokens',
      operationId: 'v1CreateToken',
      summary: 'Create a token; the answer holds it this once (only a keyed hash is kept)',
      tag: 'access',
      body: schemas.tokenCreateBody,
      responses: { 201: { description: 'created', schema: schemas.tokenCreated }, ...errorResponses('POST', 404) },
      handle: async (request, ctx) => ({ status: 201, body: await tokens.create(request.body as object, ctx) }),
    },
    {
      method: 'DELETE',
      path: '/v1/admin/tokens/{id}',
      operationId: 'v1RevokeToken',
      summary: 'Revoke a token (at once, on every replica within its cache time)',
      tag: 'access',
      params: schemas.tokenParam,
      responses: { 200: { description: 'revoked', schema: schemas.tokenInfo }, ...errorResponses('DELETE', 404) },
      handle: async (request, ctx) => ({ status: 200, body: await tokens.revoke({ id: request.params.id }, ctx) }),
    },
    {
      method: 'GET',
      path: '/v1/admin/audit',
      operationId: 'v1ListAudit',
      summary: 'Audit entries of the caller\'s tenant, oldest first, filtered by action, target and time',
      tag: 'access',
      query: schemas.auditListQuery,
      responses: { 200: { description: 'a page of entries', schema: schemas.auditList }, ...errorResponses('GET') },
      async handle(request, ctx) {
        const q = request.query as AuditQuery;
        // After the service's permission check: a caller who may not list learns nothing of its filters.
        const page = await audit.list({ action: q.action, target: q.target, after_seq: q.after_seq, limit: q.limit }, ctx);
        const since = timeParam(q.since, 'since');
        const until = timeParam(q.until, 'until');
        // The time filter narrows the page read; next_after_seq still walks every entry.
        const entries = page.entries.filter((e) => (since === undefined || Date.parse(e.time) >= since) && (until === undefined || Date.parse(e.time) <= until));
        return { status: 200, body: { entries, next_after_seq: page.next_after_seq } };
      },
    },
    {
      method: 'POST',
      path: '/v1/admin/audit:verify',
      operationId: 'v1VerifyAudit',
      summary: 'Walk the whole audit hash chain from its first entry; where it breaks, if it does',
      tag: 'access',
      query: emptyQuery,
      responses: { 200: { description: 'the result', schema: schemas.auditVerify }, ...errorResponses('POST') },
      handle: async (_request, ctx) => ({ status: 200, body: await audit.verify({}, ctx) }),
    },
    {
      method: 'POST',
      path: '/v1/admin/audit:prune',
      operationId: 'v1PruneAudit',
      summary: 'Remove entries older than `before` after verifying the chain, keeping a signed cut that verify starts from (operator admins; audited)',
      tag: 'access',
      query: emptyQuery,
      body: schemas.auditPruneBody,
      responses: { 200: { description: 'what was removed, and the cut', schema: schemas.auditPrune }, ...errorResponses('POST') },
      async handle(request, ctx) {
        // The service checks `before` (one parser, one message for gRPC and REST).
        return { status: 200, body: await audit.prune({ before: (request.body as { before: string }).before }, ctx) };
      },
    },
  ];
}
