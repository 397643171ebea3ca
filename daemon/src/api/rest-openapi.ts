/**
 * /openapi.json: an OpenAPI 3.1 document built from the route table and the very schemas the
 * gateway validates with (rest-schemas.ts), so what is published is what is enforced.
 */
import type { RestRoute } from './rest-common.js';
import { errorResponse, healthResponse, type JsonSchema } from './rest-schemas.js';

function parameters(where: 'path' | 'query', schema: JsonSchema | undefined) {
  const properties = (schema?.properties ?? {}) as Record<string, JsonSchema>;
  const required = (schema?.required ?? []) as string[];
  return Object.entries(properties).map(([name, property]) => ({
    name,
    in: where,
    required: where === 'path' || required.includes(name),
    ...(property.description ? { description: property.description } : {}),
    schema: property,
    ...(property.type === 'array' ? { style: 'form', explode: true } : {}),
  }));
}

export function buildOpenApi(routes: RestRoute[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const operation = {
      operationId: route.operationId,
      summary: route.summary,
      tags: [route.tag],
      security: [{ apiKey: [] }, { bearer: [] }],
      parameters: [
        ...parameters('path', route.params),
        ...parameters('query', route.query),
        ...(route.headers ?? []).map((h) => ({ name: h.name, in: 'header', required: false, description: h.description, schema: { type: 'string' } })),
      ],
      ...(route.body ? { requestBody: { required: true, content: { 'application/json': { schema: route.body } } } } : {}),
      responses: Object.fromEntries(
        Object.entries(route.responses).map(([status, r]) => [status, { description: r.description, ...(r.schema ? { content: { 'application/json': { schema: r.schema } } } : {}) }]),
      ),
    };
    (paths[route.path] ??= {})[route.method.toLowerCase()] = operation;
  }
  const probe = (summary: string, codes: Record<string, string>) => ({
    get: {
      summary,
      tags: ['health'],
      security: [],
      responses: Object.fromEntries(Object.entries(codes).map(([code, description]) => [code, { description, content: { 'application/json': { schema: healthResponse } } }])),
    },
  });
  paths['/healthz'] = probe('Liveness: the process answers', { 200: 'alive' });
  paths['/openapi.json'] = {
    get: { summary: 'This document', tags: ['meta'], security: [], responses: { 200: { description: 'the OpenAPI 3.1 document', content: { 'application/json': { schema: { type: 'object' } } } } } },
  };
  paths['/readyz'] = probe('Readiness: serving calls, and the database answers (reports the NATS connection, which is not required)', { 200: 'ready', 503: 'stopping, or the database does not answer' });
  return {
    openapi: '3.1.0',
    info: {
      title: 'lockbox REST gateway',
      version: '1',
      description:
        'HTTP/JSON over the same services as the gRPC API (proto/lockbox/v1). Errors: {"error": {"code", "message", "request_id"}}; the codes are listed in docs/errors.md.',
    },
    // Relative: the gateway that serves this document (whatever address or proxy it is reached by).
    servers: [{ url: '/', description: 'this lockboxd REST gateway' }],
    paths,
    components: {
      securitySchemes: {
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
        bearer: { type: 'http', scheme: 'bearer' },
      },
      schemas: { Error: errorResponse },
    },
  };
}
