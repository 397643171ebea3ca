/** The REST gateway's edges: every error class, auth on every route, the OpenAPI contract, health. */
import t from 'tap';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { b64, restClient } from '../helpers/rest.js';
import * as schemas from '../../daemon/src/api/rest-schemas.js';
import { OpenApiAnswers } from '../helpers/openapi-answers.js';

const CANARY = 'canary-rest-7f3a9c';

/** A valid request for each operation, so only the token decides the answer. */
function validRequest(operationId: string): { body?: unknown; query?: string } {
  switch (operationId) {
    case 'v1CreateSecret':
      return { body: { name: 'new', value: CANARY } };
    case 'v1BatchSecrets':
    case 'blueprintsBatchSecrets':
      return { body: { items: [{ mode: 'create', name: 'new', value: CANARY }] } };
    case 'v1UpdateSecret':
      return { body: { data: { K: CANARY } } };
    case 'v2CreateSecret':
      return { body: { name: 'new', data: { K: b64(CANARY) } } };
    case 'v2UpdateSecret':
      return { body: { data: { K: b64(CANARY) } } };
    case 'v1CreateDeployment':
      return { body: { name: 'd', secrets: ['x'] } };
    case 'v1UpdateDeployment':
    case 'v1RestoreVersion':
      return { body: {} };
    case 'v1CheckDeploymentSecrets':
      return { body: { secrets: ['x'] } };
    case 'v1CreateToken':
      return { body: { role: 'reader', resource_groups: ['team-a'] } };
    case 'v1PruneAudit':
      return { body: { before: '2000-01-01T00:00:00Z' } };
    default:
      return {};
  }
}

/** Routes about the calling token itself (console-side), which an rg-admin of any group may call. */
const notScoped = new Set(['v1WhoAmI', 'v1Templates', 'v1ListTokens', 'v1CreateToken', 'v1RevokeToken']);

async function operations(d: TestDaemon) {
  const doc = (await restClient(d)('GET', '/openapi.json', { token: null })).json as { paths: Record<string, Record<string, { operationId: string; security: unknown[] }>> };
  const ops: Array<{ method: string; path: string; operationId: string }> = [];
  for (const [path, methods] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(methods))
      if (op.security.length) ops.push({ method: method.toUpperCase(), path: path.replace(/\{(\w+)\}/g, (_m, param) => (param === 'version' ? '1' : 'x')), operationId: op.operationId });
  return ops;
}

t.test('auth on every route: 401 without or with a bad token, 403 outside the token\'s scope', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);
  await d.call('CreateSecret', { scope: { resource_group: 'team-a' }, secret: { name: 'x', data: { K: Buffer.from('v') } } });
  const ops = await operations(d);
  t.equal(ops.length, 31, 'every /v1, /v2 and /secrets route is in the contract and needs a token');
  const outsider = (await d.rpc('TokensService', 'CreateToken', { role: 'rg-admin', resource_groups: ['team-z'] })).token;
  const revoked = await d.rpc('TokensService', 'CreateToken', { role: 'tenant-admin' });
  await d.rpc('TokensService', 'RevokeToken', { id: revoked.info.id });
  for (const op of ops) {
    const { body } = validRequest(op.operationId);
    const name = `${op.method} ${op.path}`;
    const none = await rest(op.method, op.path, { token: null, body, headers: { 'AI-Resource-Group': 'team-a' } });
    t.equal(none.status, 401, `${name} without a token`);
    t.equal(none.json.error.code, 'UNAUTHENTICATED');
    t.equal(none.headers.get('www-authenticate'), 'Bearer realm="lockbox"');
    t.equal((await rest(op.method, op.path, { token: 'lbx_0000000000000000_' + 'A'.repeat(43), body, headers: { 'AI-Resource-Group': 'team-a' }, scheme: 'x-api-key' })).status, 401, `${name} with an unknown X-API-Key`);
    t.equal((await rest(op.method, op.path, { token: 'not-a-token', body, headers: { 'AI-Resource-Group': 'team-a' } })).status, 401, `${name} with a malformed token`);
    t.equal((await rest(op.method, op.path, { token: revoked.token, body, headers: { 'AI-Resource-Group': 'team-a' } })).status, 401, `${name} with a revoked token`);
    if (notScoped.has(op.operationId)) continue; // the caller's own identity and tokens: no resource group to be outside of
    const denied = await rest(op.method, op.path, { token: outsider, body, headers: { 'AI-Resource-Group': 'team-a' } });
    t.equal(denied.status, 403, `${name} by an rg-admin of another group`);
    t.equal(denied.json.error.code, 'PERMISSION_DENIED');
  }
  const reader = (await d.rpc('TokensService', 'CreateToken', { role: 'reader', resource_groups: ['team-a'] })).token;
  // Not writes: the clash check only reads; a token id the reader may not manage is NOT_FOUND (service-tokens.ts).
  for (const op of ops.filter((o) => o.method !== 'GET' && o.operationId !== 'v1CheckDeploymentSecrets' && o.operationId !== 'v1RevokeToken')) {
    const answer = await rest(op.method, op.path, { token: reader, ...validRequest(op.operationId), headers: { 'AI-Resource-Group': 'team-a' } });
    t.equal(answer.status, 403, `${op.method} ${op.path} by a reader`);
  }
  t.equal((await rest('GET', '/v2/admin/secrets/x', { token: reader, headers: { 'AI-Resource-Group': 'team-a' } })).status, 200, 'a reader reads metadata');
  t.equal((await rest('GET', '/v1/admin/secrets/x?reveal=true', { token: reader, headers: { 'AI-Resource-Group': 'team-a' } })).status, 200, 'and values');
  t.equal((await rest('GET', '/healthz', { token: null })).status, 200, 'probes need no token');
  t.equal((await rest('GET', '/readyz', { token: null })).status, 200);
  t.notOk(d.logs.some((l) => l.includes(CANARY)), 'no value in any log line');
});

t.test('every error class has its status and the one error shape; nothing echoes a value', async (t) => {
  const d = await startTestDaemon(t, { httpBodyLimit: 64 * 1024, quotas: { maxTenantWideSecrets: 2, maxResourceGroups: 50 } });
  const rest = restClient(d);
  const answers: string[] = [];
  const expectError = async (label: string, answer: Awaited<ReturnType<typeof rest>>, status: number, code: string, message?: RegExp) => {
    answers.push(answer.text);
    t.equal(answer.status, status, `${label}: HTTP ${status}`);
    t.equal(answer.json?.error?.code, code, `${label}: ${code}`);
    t.type(answer.json?.error?.message, 'string');
    t.match(answer.json?.error?.request_id, /^[\w.-]+$/);
    if (message) t.match(answer.json.error.message, message, label);
    t.equal(answer.headers.get('content-type'), 'application/json; charset=utf-8');
  };

  await expectError('malformed JSON', await rest('POST', '/v1/admin/secrets', { raw: `{"name": "x", "value": "${CANARY}",}` }), 400, 'MALFORMED_JSON', /^body: is not valid JSON \(at byte \d+\)$/);
  await expectError('truncated JSON', await rest('POST', '/v1/admin/secrets', { raw: `{"name": "x", "value": "${CANARY}` }), 400, 'MALFORMED_JSON');
  await expectError('empty JSON body', await rest('POST', '/v1/admin/secrets', { raw: '' }), 400, 'MALFORMED_JSON');
  await expectError('no body', await rest('POST', '/v2/admin/secrets', { headers: { 'AI-Tenant-Scope': 'true' } }), 400, 'MALFORMED_JSON', /body: a JSON body is required/);
  await expectError('__proto__', await rest('POST', '/v1/admin/secrets', { raw: `{"name": "x", "__proto__": {"a": 1}}` }), 400, 'MALFORMED_JSON');
  await expectError('unknown body field', await rest('POST', '/v1/admin/secrets', { body: { name: 'x', value: CANARY, valeu: CANARY } }), 400, 'UNKNOWN_FIELD', /^body: unknown field "valeu"$/);
  await expectError('unknown nested field', await rest('POST', '/v1/admin/secrets', { body: { name: 'x', value: 'v', mount: { kind: 'env', paht: 'a' } } }), 400, 'UNKNOWN_FIELD', /^body\.mount: unknown field "paht"$/);
  await expectError('unknown batch item field', await rest('POST', '/v1/admin/secrets:batch', { body: { items: [{ mode: 'create', name: 'x', colour: 'red' }] } }), 400, 'UNKNOWN_FIELD', /colour/);
  await expectError('unknown query parameter', await rest('GET', '/v1/admin/secrets?limt=5'), 400, 'UNKNOWN_FIELD', /^query: unknown field "limt"$/);
  await expectError('wrong type', await rest('POST', '/v1/admin/secrets', { body: { name: 'x', value: 42 } }), 400, 'INVALID_ARGUMENT', /^body\.value: must be string$/);
  await expectError('missing field', await rest('POST', '/v2/admin/secrets', { body: { name: 'x' }, headers: { 'AI-Tenant-Scope': 'true' } }), 400, 'INVALID_ARGUMENT', /^body\.data: is required$/);
  await expectError('bad query number', await rest('GET', '/v1/admin/secrets?limit=lots'), 400, 'INVALID_ARGUMENT', /^query\.limit: must be integer$/);
  await expectError('over a documented limit', await rest('GET', '/v1/admin/secrets?limit=5000'), 400, 'INVALID_ARGUMENT', /^query\.limit: must be <= 1000$/);
  await expectError('service rule', await rest('GET', '/v1/admin/secrets?label=no-equals-sign'), 400, 'INVALID_ARGUMENT', /^labels\[0\]: "no-equals-sign" must look like key=value$/);
  await expectError('too large', await rest('POST', '/v1/admin/secrets', { body: { name: 'x', value: CANARY + 'x'.repeat(70 * 1024) } }), 413, 'PAYLOAD_TOO_LARGE', /over the limit of 65536 bytes/);
  await expectError('not JSON', await rest('POST', '/v1/admin/secrets', { raw: `name=x&value=${CANARY}`, contentType: 'application/x-www-form-urlencoded' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
  await expectError('no route', await rest('GET', '/v3/admin/secrets'), 404, 'ROUTE_NOT_FOUND', /see \/openapi\.json/);
  const wrongMethod = await rest('PUT', '/v1/admin/secrets/x', { body: { value: 'v' } });
  await expectError('wrong method', wrongMethod, 405, 'METHOD_NOT_ALLOWED', /takes GET, PATCH, DELETE, not PUT/);
  t.equal(wrongMethod.headers.get('allow'), 'GET, PATCH, DELETE');
  await expectError('missing secret', await rest('GET', '/v1/admin/secrets/absent'), 404, 'SECRET_NOT_FOUND');
  await rest('POST', '/v1/admin/secrets', { body: { name: 'dup', value: CANARY } });
  await expectError('exists', await rest('POST', '/v1/admin/secrets', { body: { name: 'dup', value: CANARY } }), 409, 'SECRET_EXISTS');
  await expectError('long name', await rest('GET', `/v1/admin/secrets/${'n'.repeat(300)}`), 400, 'INVALID_ARGUMENT', /^name: must be at most 253 characters$/);

  const wide = { 'AI-Tenant-Scope': 'true', 'AI-Resource-Group': '*' };
  for (const name of ['w1', 'w2']) t.equal((await rest('POST', '/v2/admin/secrets', { body: { name, data: { K: b64('x') } }, headers: wide })).status, 200);
  await expectError('quota', await rest('POST', '/v2/admin/secrets', { body: { name: 'w3', data: { K: b64(CANARY) } }, headers: wide }), 429, 'RESOURCE_EXHAUSTED', /tenant-wide/);

  // A kept version whose ciphertext was damaged on disk: named, never served.
  await rest('POST', '/v1/admin/secrets', { body: { name: 'damaged', value: 'v1' } });
  await rest('PATCH', '/v1/admin/secrets/damaged', { body: { value: 'v2' } });
  const db = new Database(join(d.dataDir, 'lockbox.db'));
  db.prepare("UPDATE secret_versions SET ciphertext = zeroblob(length(ciphertext)) WHERE name = 'damaged' AND version = 1").run();
  const damaged = await rest('GET', '/v1/admin/secrets/damaged?version=1&reveal=true');
  await expectError('damaged', damaged, 500, 'DECRYPTION_FAILED', /^version 1 of secret "damaged" failed its integrity check/);
  // An internal failure: a table gone from under the store.
  db.prepare('DROP TABLE idempotency').run();
  db.close();
  const broken = await rest('POST', '/v1/admin/secrets', { body: { name: 'after-drop', value: 'v' }, headers: { 'x-request-id': 'req-500-test', 'idempotency-key': 'k-500' } });
  await expectError('internal', broken, 500, 'INTERNAL', /^internal error \(request id req-500-test\)$/);
  t.equal(broken.headers.get('x-request-id'), 'req-500-test', 'the request id comes back');
  t.ok(d.logs.some((l) => l.includes('req-500-test') && l.includes('"internal error"')), 'the detail is in the log under the request id');

  for (const text of answers) t.notOk(text.includes(CANARY), 'no answer echoes a value');
  t.notOk(d.logs.some((l) => l.includes(CANARY)), 'no log line holds a value');
  const logged = d.logs.map((l) => JSON.parse(l) as { msg: string; method?: string; code?: number }).filter((l) => l.msg === 'call failed' && l.method?.startsWith('POST /v1/admin/secrets'));
  t.ok(logged.length > 5, 'one line per failed REST call');
  t.ok(logged.every((l) => typeof l.code === 'number'));
});

t.test('/openapi.json is built from the schemas that validate requests', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);
  const doc = (await rest('GET', '/openapi.json', { token: null })).json;
  t.equal(doc.openapi, '3.1.0');
  t.same(Object.keys(doc.paths).sort(), [
    '/healthz',
    '/openapi.json',
    '/readyz',
    '/secrets',
    '/v1/admin/audit',
    '/v1/admin/audit:prune',
    '/v1/admin/audit:verify',
    '/v1/admin/deployments',
    '/v1/admin/deployments/{name}',
    '/v1/admin/deployments/{name}/rollout',
    '/v1/admin/deployments:check',
    '/v1/admin/secrets',
    '/v1/admin/secrets/{id}',
    '/v1/admin/secrets/{id}/rollout',
    '/v1/admin/secrets/{id}/versions',
    '/v1/admin/secrets/{id}/versions/{version}/restore',
    '/v1/admin/secrets:batch',
    '/v1/admin/tokens',
    '/v1/admin/tokens/{id}',
    '/v1/templates',
    '/v1/whoami',
    '/v2/admin/secrets',
    '/v2/admin/secrets/{secretName}',
  ]);
  t.same(doc.paths['/v1/admin/secrets'].post.requestBody.content['application/json'].schema, schemas.v1CreateBody, 'the create body schema is the one the gateway checks with');
  t.same(doc.paths['/v1/admin/secrets:batch'].post.requestBody.content['application/json'].schema, schemas.batchBody);
  t.same(doc.paths['/v2/admin/secrets'].post.requestBody.content['application/json'].schema, schemas.v2CreateBody);
  t.same(doc.paths['/v1/admin/secrets/{id}'].patch.requestBody.content['application/json'].schema, schemas.v1PatchBody);
  const limit = doc.paths['/v1/admin/secrets'].get.parameters.find((p: { name: string }) => p.name === 'limit');
  t.match(limit, { in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 1000 } });
  t.same(doc.servers, [{ url: '/', description: 'this lockboxd REST gateway' }], 'servers: relative to wherever the document was fetched');
  for (const [path, methods] of Object.entries(doc.paths as Record<string, Record<string, { security: unknown[]; responses: Record<string, unknown> }>>))
    for (const [method, op] of Object.entries(methods)) {
      if (!op.security.length) continue;
      const listed = Object.keys(op.responses);
      const expected = ['400', '401', '403', '500', '503', ...(method === 'get' ? [] : ['413', '415'])];
      t.same(expected.filter((s) => !listed.includes(s)), [], `${method.toUpperCase()} ${path} lists every status the gateway can give it`);
    }

  // The checker every REST test runs its answers through (helpers/rest.ts) refuses what the document does not describe.
  const answers = await OpenApiAnswers.fromDocument(doc);
  const error = { error: { code: 'MALFORMED_JSON', message: 'body: is not valid JSON', request_id: 'r' } };
  t.equal(answers.problem('POST', '/v1/admin/secrets:batch', 400, error, '{}'), undefined, 'a batch refused as a whole answers the error shape, as documented');
  t.equal(answers.problem('POST', '/secrets', 400, { results: [], succeeded: 0, failed: 0 }, '{}'), undefined);
  t.match(answers.problem('GET', '/v1/admin/secrets/x', 418, error, '{}'), /status 418 is not listed/);
  t.match(answers.problem('GET', '/v1/admin/secrets', 200, { secrets: 'none' }, '{}'), /does not fit the documented schema/);
  t.match(answers.problem('GET', '/v1/admin/secrets/x', 200, { id: 'x', name: 'x', keys: [], version: 1, value: 'v' }, '{}'), /does not fit/, 'an undocumented field is refused');
  t.equal(answers.problem('GET', '/v3/nothing', 404, error, '{}'), undefined, 'no such path: the gateway\'s 404 in the error shape');
  t.match(answers.problem('GET', '/v3/nothing', 200, {}, '{}'), /only 404 is possible/);
  t.equal(answers.problem('PUT', '/v1/admin/secrets/x', 405, error, '{}'), undefined);
  await t.rejects(OpenApiAnswers.fromDocument({ ...doc, openapi: '3.1.0', paths: { nope: {} } }), /not a valid OpenAPI document/, 'the document itself is checked against the OpenAPI schema');
  t.ok(doc.paths['/v2/admin/secrets'].post.parameters.some((p: { name: string; in: string }) => p.name === 'AI-Resource-Group' && p.in === 'header'));
  t.ok(doc.paths['/v2/admin/secrets'].post.parameters.some((p: { name: string }) => p.name === 'Idempotency-Key'));
  t.same(doc.components.securitySchemes.apiKey, { type: 'apiKey', in: 'header', name: 'X-API-Key' });

  // A client that validates with the published document accepts what the gateway accepts and refuses what it refuses.
  const ajv = new Ajv2020({ strict: false, logger: false });
  const published = ajv.compile(doc.paths['/v1/admin/secrets'].post.requestBody.content['application/json'].schema);
  for (const body of [{ name: 'ok-1', value: 'v' }, { name: 'ok-2', value: 'v', extra: 1 }, { name: 'ok-3', value: 5 }]) {
    const answer = await rest('POST', '/v1/admin/secrets', { body });
    t.equal(published(body), answer.status === 201, `${JSON.stringify(body)}: document and gateway agree`);
  }
  // Every response the gateway gave above fits its documented schema.
  const secretSchema = ajv.compile(doc.paths['/v1/admin/secrets/{id}'].get.responses['200'].content['application/json'].schema);
  t.ok(secretSchema((await rest('GET', '/v1/admin/secrets/ok-1?reveal=true')).json), 'a v1 secret fits the documented shape');
  const errorSchema = ajv.compile(doc.components.schemas.Error);
  t.ok(errorSchema((await rest('GET', '/v1/admin/secrets/none')).json), 'an error fits the documented shape');
});

t.test('health, readiness, and a daemon without the gateway', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);
  t.same((await rest('GET', '/healthz', { token: null })).json, { status: 'ok' });
  t.same((await rest('GET', '/readyz', { token: null })).json, { status: 'ready', nats: 'disabled', database: 'local' });
  const off = await startTestDaemon(t, { httpAddr: '' });
  t.equal(off.daemon.httpUrl, undefined, 'http-addr none: no gateway');
  await off.call('CreateSecret', { secret: { name: 'still', data: { K: Buffer.from('grpc') } } });
});
