/**
 * The REST gateway (fastify). A request goes through, in order:
 * (1) the request id (`x-request-id` or a new one), echoed in the answer;
 * (2) the token (`Authorization: Bearer` or `X-API-Key`) for every /v1 and /v2 route, before the
 *     body is read, so an unauthenticated caller learns nothing about its body;
 * (3) the body: JSON only, at most `bodyLimit` bytes, parsed without ever quoting it back;
 * (4) path, query and body checked against the route's JSON Schemas (the same ones /openapi.json
 *     publishes), unknown fields refused by name;
 * (5) the route's translation into a service call (rest-routes.ts lists the families' files);
 * (6) one error shape, `{"error": {"code", "message", "request_id"}}`, with the HTTP status of the
 *     error's kind (shared/src/errors.ts), and one log line per request (boundary.ts).
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { InvalidArgumentError, LockboxError } from '../../../shared/src/errors.js';
import type { Principal, TokenAuthority } from '../security/auth.js';
import { logCall, publicError, requestIdFrom, tokenFromHeaders } from './boundary.js';
import type { CallContext } from '../services/context.js';
import type { Logger } from '../log.js';
import { buildOpenApi } from './rest-openapi.js';
import { drainRequest } from './rest-drain.js';
import type { RestRequest, RestRoute, RestServices } from './rest-common.js';
import { restRoutes } from './rest-routes.js';
import { registerConsole } from './console-static.js';
import { scrape } from '../../../shared/src/metrics.js';
import type { DaemonMetrics } from '../metrics.js';

export interface RestServerOptions extends RestServices {
  /** The built web console to serve at /ui/ (console-static.ts); undefined: no console. */
  consoleDir?: string;
  auth: TokenAuthority;
  log: Logger;
  bodyLimit: number;
  /** TLS as the gRPC server has it; mTLS when `ca` is set. */
  tls?: { cert: Buffer; key: Buffer; ca?: Buffer };
  /** What /readyz reports. */
  readiness(): Promise<{ ready: boolean; nats: string; database: string }>;
  /** Calls are counted here; `/metrics` is served too when `serveMetrics`. */
  metrics?: DaemonMetrics;
  serveMetrics?: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    lockbox: { requestId: string; started: bigint; principal?: Principal; error?: LockboxError };
  }
}

/** What the gateway keeps about a request from its start: its id and when it began. */
function callState(request: FastifyRequest): FastifyRequest['lockbox'] {
  return { requestId: requestIdFrom(request.headers['x-request-id'] as string | undefined), started: process.hrtime.bigint() };
}

/** Path `/v1/admin/secrets/{id}` → fastify's `/v1/admin/secrets/:id` (a literal ":" doubled). */
function fastifyPath(path: string): string {
  return path.replace(/:/g, '::').replace(/\{(\w+)\}/g, ':$1');
}

/** `/items/2/data/KEY` → `items[2].data.KEY`. */
function fieldOf(where: string, instancePath: string): string {
  let field = where;
  for (const raw of instancePath.split('/').slice(1)) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    field += /^\d+$/.test(segment) ? `[${segment}]` : /^[A-Za-z_$][\w$]*$/.test(segment) ? `.${segment}` : `[${JSON.stringify(segment.slice(0, 64))}]`;
  }
  return field;
}

/** The first schema error as our error: the field and the rule, never the value. */
function schemaError(where: string, errors: ErrorObject[]): LockboxError {
  const unknown = errors.find((e) => e.keyword === 'additionalProperties');
  if (unknown) {
    const name = String((unknown.params as { additionalProperty: string }).additionalProperty);
    return new InvalidArgumentError(fieldOf(where, unknown.instancePath), `unknown field ${JSON.stringify(name.slice(0, 64))}`, 'UNKNOWN_FIELD');
  }
  // A oneOf failure reports its branches' errors too; the most specific one is the most useful.
  const first = errors.filter((e) => e.keyword !== 'oneOf').sort((a, b) => b.instancePath.length - a.instancePath.length)[0] ?? errors[0];
  const params = first.params as { allowedValues?: unknown[]; missingProperty?: string };
  if (first.keyword === 'required') return new InvalidArgumentError(fieldOf(where, first.instancePath) + `.${params.missingProperty}`, 'is required');
  const rule = first.keyword === 'enum' ? `must be one of ${params.allowedValues!.join(', ')}` : (first.message ?? 'is not valid');
  return new InvalidArgumentError(fieldOf(where, first.instancePath) || where, rule);
}

/**
 * Ajv coerces "1e400" or "Infinity" in a query or path to Infinity and then lets it pass as an
 * integer under any maximum; no route takes a number that is not finite.
 */
function refuseInfinity(parts: Record<string, Record<string, unknown>>): void {
  for (const [where, values] of Object.entries(parts))
    for (const [name, value] of Object.entries(values))
      if (typeof value === 'number' && !Number.isFinite(value)) throw new InvalidArgumentError(fieldOf(where, `/${name}`), 'must be a finite number');
}

/** Parses a JSON body; a syntax error gives the position only (the text may hold a value). */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text, (key, value: unknown) => {
      if (key === '__proto__') throw new InvalidArgumentError('body', 'the key "__proto__" is not accepted', 'MALFORMED_JSON');
      return value;
    });
  } catch (error) {
    if (error instanceof LockboxError) throw error;
    const position = /position (\d+)/.exec((error as Error).message)?.[1];
    throw new InvalidArgumentError('body', `is not valid JSON${position ? ` (at byte ${position})` : ''}`, 'MALFORMED_JSON');
  }
}

/** fastify's own errors (body too large, wrong content type, …) as ours. */
function fromFastifyError(error: { code?: string; statusCode?: number }, bodyLimit: number): LockboxError | undefined {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new LockboxError('PAYLOAD_TOO_LARGE', 'PAYLOAD_TOO_LARGE', `the request body is over the limit of ${bodyLimit} bytes (--http-body-limit)`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new LockboxError('UNSUPPORTED_MEDIA_TYPE', 'UNSUPPORTED_MEDIA_TYPE', 'send the body as JSON with content-type: application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new InvalidArgumentError('body', 'is empty but content-type says application/json', 'MALFORMED_JSON');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new InvalidArgumentError('content-length', 'does not match the body');
  }
  if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500)
    return new InvalidArgumentError('request', `could not be read (${error.code ?? error.statusCode})`);
  return undefined;
}

export async function buildRestServer(options: RestServerOptions): Promise<FastifyInstance> {
  const { auth, log, bodyLimit } = options;
  const app = Fastify({
    logger: false,
    bodyLimit,
    routerOptions: { maxParamLength: 1024 }, // names may be 253 characters; past this fastify would answer a bare 404
    requestTimeout: 30_000, // a client that trickles its request in is cut off
    connectionTimeout: 60_000,
    ...(options.tls ? { https: { cert: options.tls.cert, key: options.tls.key, ...(options.tls.ca ? { ca: options.tls.ca, requestCert: true, rejectUnauthorized: true } : {}) } } : {}),
  }) as unknown as FastifyInstance;
  const routes = restRoutes(options);
  const strict = new Ajv2020({ allErrors: true, strict: true, coerceTypes: false });
  const coercing = new Ajv2020({ allErrors: true, strict: true, coerceTypes: 'array' }); // query and path arrive as text
  const openapi = buildOpenApi(routes);

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    try {
      done(null, (body as string).length ? parseJson(body as string) : undefined);
    } catch (error) {
      done(error as Error, undefined);
    }
  });

  app.addHook('onRequest', async (request, reply) => { // (1)
    request.lockbox = callState(request);
    void reply.header('x-request-id', request.lockbox.requestId).header('cache-control', 'no-store');
  });
  app.addHook('onResponse', async (request, reply) => {
    const { started, requestId, principal, error } = request.lockbox;
    const counted = options.metrics && { metrics: options.metrics, transport: 'http' as const, method: `${request.method} ${request.routeOptions.url ?? '(no route)'}` };
    logCall(log, { method: `${request.method} ${request.routeOptions.url ?? request.url.split('?')[0]}`, started, requestId, principal, status: reply.statusCode, error }, counted);
  });

  const sendError = (request: FastifyRequest, reply: FastifyReply, error: LockboxError) => {
    request.lockbox.error = error;
    if (error.kind === 'UNAUTHENTICATED') void reply.header('www-authenticate', 'Bearer realm="lockbox"');
    return reply.code(error.httpStatus).send({ error: { code: error.code, message: error.message, request_id: request.lockbox.requestId } }); // (6)
  };

  app.setErrorHandler(async (caught: Error & { code?: string; statusCode?: number }, request, reply) => {
    request.lockbox ??= callState(request); // fastify may fail a request before onRequest runs
    const known = caught instanceof LockboxError ? undefined : fromFastifyError(caught, bodyLimit);
    if (known?.kind === 'PAYLOAD_TOO_LARGE') await drainRequest(request.raw); // read the rest first, so the client reads the 413
    return sendError(request, reply, known ?? publicError(caught, request.lockbox.requestId, log));
  });

  const header = (request: FastifyRequest) => (name: string) => {
    const value = request.headers[name];
    return Array.isArray(value) ? value[0] : value;
  };

  for (const route of routes) {
    const validators = {
      params: route.params ? coercing.compile(route.params) : undefined,
      query: coercing.compile(route.query ?? { type: 'object', additionalProperties: false }),
      body: route.body ? strict.compile(route.body) : undefined,
    };
    const check = (where: string, validate: ValidateFunction | undefined, value: unknown) => {
      if (validate && !validate(value)) throw schemaError(where, validate.errors ?? []);
    };
    app.route({
      method: route.method,
      url: fastifyPath(route.path),
      onRequest: async (request) => { // (2)
        request.lockbox.principal = await auth.authenticate(tokenFromHeaders(header(request)));
      },
      handler: async (request, reply) => {
        const principal = request.lockbox.principal!;
        const params = { ...(request.params as Record<string, string>) };
        const query = { ...(request.query as Record<string, unknown>) };
        check('path', validators.params, params); // (4)
        check('query', validators.query, query);
        refuseInfinity({ path: params, query });
        if (route.body) {
          if (request.body === undefined) throw new InvalidArgumentError('body', 'a JSON body is required (content-type: application/json)', 'MALFORMED_JSON');
          check('body', validators.body, request.body);
        }
        const ctx: CallContext = { principal, requestId: request.lockbox.requestId, idempotencyKey: header(request)('idempotency-key') };
        const restRequest: RestRequest = { params, query, header: header(request), body: request.body };
        const answer = await route.handle(restRequest, ctx); // (5)
        return reply.code(answer.status).send(answer.body);
      },
    });
  }

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const { ready, nats, database } = await options.readiness();
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', nats, database });
  });
  app.get('/openapi.json', async () => openapi);
  if (options.consoleDir !== undefined && !registerConsole(app, options.consoleDir))
    log.warn({ dir: options.consoleDir }, 'the web console is not built (npm run build); /ui/ is off');
  if (options.serveMetrics && options.metrics) {
    const registry = options.metrics.registry;
    app.get('/metrics', async (_request, reply) => {
      const { contentType, body } = await scrape(registry);
      return reply.type(contentType).send(body);
    });
  }

  const paths = routes.map((r) => ({ pattern: new RegExp(`^${r.path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{\w+\}/g, '[^/]+')}$`), method: r.method }));
  app.setNotFoundHandler(async (request, reply) => {
    request.lockbox ??= callState(request); // fastify may fail a request before onRequest runs
    const path = request.url.split('?')[0];
    const allowed = [...new Set(paths.filter((p) => p.pattern.test(path)).map((p) => p.method))];
    if (allowed.length === 0) return sendError(request, reply, new LockboxError('NOT_FOUND', 'ROUTE_NOT_FOUND', `no route ${request.method} ${path.slice(0, 200)}; see /openapi.json`));
    void reply.header('allow', allowed.join(', '));
    return sendError(request, reply, new LockboxError('METHOD_NOT_ALLOWED', 'METHOD_NOT_ALLOWED', `${path.slice(0, 200)} takes ${allowed.join(', ')}, not ${request.method}`));
  });
  return app;
}
