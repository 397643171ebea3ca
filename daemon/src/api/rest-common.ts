/**
 * What every REST route family shares: the route's shape (which rest-server.ts serves and
 * rest-openapi.ts publishes), the scope a request names by its headers, and the error answers
 * a route declares. A family file (rest-routes-v1.ts, …) holds only its own HTTP dialect.
 */
import { InvalidArgumentError, errorKinds } from '../../../shared/src/errors.js';
import type { CallContext } from '../services/context.js';
import type { ScopeMessage } from '../services/messages.js';
import type { AgentService } from '../services/service-agent.js';
import type { AuditService } from '../services/service-audit.js';
import type { DeploymentsService } from '../services/service-deployments.js';
import type { RolloutService } from '../services/service-rollout.js';
import type { SecretsService } from '../services/service-secrets.js';
import type { TokensService } from '../services/service-tokens.js';
import * as schemas from './rest-schemas.js';
import type { JsonSchema } from './rest-schemas.js';

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
  deployments: DeploymentsService;
  rollout: RolloutService;
  tokens: TokensService;
  audit: AuditService;
}

// ---- scope from headers ---------------------------------------------------------------------

export const scopeHeaders: HeaderParam[] = [
  { name: 'AI-Resource-Group', description: 'the resource group; "*" with AI-Tenant-Scope: true for tenant-wide secrets' },
  { name: 'AI-Tenant-Scope', description: '"true": the main-tenant scope (or, with AI-Resource-Group: *, tenant-wide)' },
];

/** Scope headers plus Idempotency-Key, for the routes that honour it (create and batch). */
export const writeHeaders: HeaderParam[] = [...scopeHeaders, { name: 'Idempotency-Key', description: 'a retry with the same key (from the same token) returns the first answer; the same key with another body is refused' }];

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

// ---- answers ---------------------------------------------------------------------------------

const httpReasons: Record<number, string> = {
  400: 'bad request: the message names the field and the rule (malformed JSON, unknown field, bad header, query or value)',
  401: 'no token, or a token that is malformed, unknown, expired or revoked',
  403: 'the token may not do this in this scope',
  404: 'no such secret (or version)',
  409: 'exists already, version conflict, or in use by deployments',
  413: 'body over the limit',
  415: 'body not sent as application/json',
  429: 'quota reached',
  500: 'internal error (the request id is in the log)',
  503: 'the database cannot be reached, or the daemon is stopping; retry',
};

/** What any route can answer: its headers or query refused, the token, the scope, a failure, a store away. */
const everyRoute = [400, 401, 403, 500, 503];
/** What a route whose method carries a body can answer too (fastify reads a DELETE's body as well). */
const bodyMethods: Record<RestRoute['method'], number[]> = { GET: [], POST: [413, 415], PATCH: [413, 415], DELETE: [413, 415] };

/**
 * The error answers a route declares: those every route of `method` can give, plus the route's
 * own (`specific`), each with the one error shape. /openapi.json lists them, and the tests check
 * every answer they get against that list.
 */
export function errorResponses(method: RestRoute['method'], ...specific: number[]): RestRoute['responses'] {
  const statuses = [...new Set([...everyRoute, ...bodyMethods[method], ...specific])].sort((a, b) => a - b);
  return Object.fromEntries(statuses.map((s) => [s, { description: httpReasons[s] ?? 'error', schema: schemas.errorResponse }]));
}

/** The HTTP status of an error kind's name (a batch item's status), 500 for one unknown. */
export function statusOfKind(kind: string): number {
  return (errorKinds as Record<string, { http: number }>)[kind]?.http ?? 500;
}
