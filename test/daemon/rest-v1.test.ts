/** The /v1 REST API as curl users drive it, over a real socket, against the same daemon the gRPC tests use. */
import t from 'tap';
import { startTestDaemon } from '../helpers/daemon.js';
import { restClient } from '../helpers/rest.js';

t.test('one-value create, get, reveal, list, patch, delete', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);

  // curl -X POST /v1/admin/secrets -H 'X-API-Key: …' -d '{"name": "demo", "value": "sk-…", "provider_slug": "openai"}'
  const created = await rest('POST', '/v1/admin/secrets', { body: { name: 'demo', value: 'sk-one', provider_slug: 'openai' }, scheme: 'x-api-key' });
  t.equal(created.status, 201);
  t.match(created.json, { id: 'demo', name: 'demo', type: 'opaque', provider_slug: 'openai', keys: ['OPENAI_API_KEY'], version: 1, scope: { tenant: 'default', resource_group: '' } });
  t.notOk('data' in created.json, 'a create answers without values');
  t.notMatch(created.text, /sk-one/);

  const plain = await rest('POST', '/v1/admin/secrets', { body: { name: 'plain', value: 'v' } });
  t.same(plain.json.keys, ['value'], 'without a one-key provider the key is "value"');

  const got = await rest('GET', '/v1/admin/secrets/demo');
  t.equal(got.status, 200);
  t.notOk('data' in got.json, 'no values without reveal');
  const revealed = await rest('GET', '/v1/admin/secrets/demo?reveal=true');
  t.same(revealed.json.data, { OPENAI_API_KEY: 'sk-one' });
  const viaGrpc = await d.call('GetSecret', { name: 'demo', include_values: true });
  t.equal(viaGrpc.data.OPENAI_API_KEY.toString(), 'sk-one', 'the same secret over gRPC');

  // PATCH with value sets the only key; with data sets and (null) removes keys.
  const patched = await rest('PATCH', '/v1/admin/secrets/demo', { body: { value: 'sk-two', description: 'rotated', labels: { team: 'ml' } } });
  t.equal(patched.status, 200);
  t.match(patched.json, { version: 2, description: 'rotated', labels: { team: 'ml' } });
  t.same((await rest('GET', '/v1/admin/secrets/demo?reveal=true')).json.data, { OPENAI_API_KEY: 'sk-two' });
  t.same((await rest('GET', '/v1/admin/secrets/demo?version=1&reveal=true')).json.data, { OPENAI_API_KEY: 'sk-one' }, 'old versions stay readable');
  const more = await rest('PATCH', '/v1/admin/secrets/demo', { body: { data: { EXTRA: 'x' }, labels: { team: null } } });
  t.same(more.json.keys, ['EXTRA', 'OPENAI_API_KEY']);
  t.same(more.json.labels, {});
  const oneKey = await rest('PATCH', '/v1/admin/secrets/demo', { body: { value: 'sk-3' } });
  t.equal(oneKey.status, 400);
  t.match(oneKey.json.error, { code: 'INVALID_ARGUMENT', message: /value: secret "demo" has 2 keys/ });
  const removed = await rest('PATCH', '/v1/admin/secrets/demo', { body: { data: { EXTRA: null } } });
  t.same(removed.json.keys, ['OPENAI_API_KEY']);
  const cas = await rest('PATCH', '/v1/admin/secrets/demo', { body: { value: 'sk-4', expected_version: 1 } });
  t.equal(cas.status, 409);
  t.equal(cas.json.error.code, 'VERSION_CONFLICT');

  // List with limit, cursor and provider filter.
  for (const name of ['c1', 'c2', 'c3']) await rest('POST', '/v1/admin/secrets', { body: { name, data: { K: name } } });
  const page1 = await rest('GET', '/v1/admin/secrets?limit=2');
  t.same(page1.json.secrets.map((s: { name: string }) => s.name), ['c1', 'c2']);
  t.ok(page1.json.next_cursor);
  const page2 = await rest('GET', `/v1/admin/secrets?limit=2&cursor=${encodeURIComponent(page1.json.next_cursor)}`);
  t.same(page2.json.secrets.map((s: { name: string }) => s.name), ['c3', 'demo']);
  const openai = await rest('GET', '/v1/admin/secrets?provider_slug=openai');
  t.same(openai.json.secrets.map((s: { name: string }) => s.name), ['demo']);
  t.equal(openai.json.next_cursor, '');
  t.notMatch(page1.text + page2.text + openai.text, /sk-/, 'lists never carry values');

  const deleted = await rest('DELETE', '/v1/admin/secrets/demo');
  t.equal(deleted.status, 200);
  t.match(deleted.json, { id: 'demo', deleted: true, version: 4 });
  const gone = await rest('GET', '/v1/admin/secrets/demo');
  t.equal(gone.status, 404);
  t.equal(gone.json.error.code, 'SECRET_NOT_FOUND');
  t.equal((await rest('DELETE', '/v1/admin/secrets/demo')).status, 404, 'delete of a missing secret');
  t.equal((await rest('PATCH', '/v1/admin/secrets/demo', { body: { data: { A: 'b' } } })).status, 404, 'update of a missing secret');
});

t.test('the full shape: type, provider, data, mount, labels; scope headers', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);
  const body = {
    name: 'registry',
    type: 'container_registry',
    description: 'pull secret',
    labels: { team: 'ml' },
    mount: { kind: 'file', path: 'demo/docker', sub_paths: { password: 'secret' } },
    data: { server: 'ghcr.io', username: 'bot', password: 'pw' },
  };
  const created = await rest('POST', '/v1/admin/secrets', { body, headers: { 'AI-Resource-Group': 'team-a' } });
  t.equal(created.status, 201);
  t.match(created.json, { type: 'container_registry', scope: { resource_group: 'team-a' }, mount: { kind: 'file', path: 'demo/docker', sub_paths: { password: 'secret' } } });
  t.equal((await rest('GET', '/v1/admin/secrets/registry')).status, 404, 'the main-tenant scope is another scope');
  t.equal((await rest('GET', '/v1/admin/secrets/registry', { headers: { 'AI-Resource-Group': 'team-a' } })).status, 200);

  const env = await rest('POST', '/v1/admin/secrets', { body: { name: 'envs', data: { A: '1', B: '2' }, mount: { kind: 'env', path: 'demo', format: 'sh' } } });
  t.match(env.json.mount, { kind: 'env', format: 'sh' });

  const binary = await d.call('CreateSecret', { secret: { name: 'bin', data: { K: Buffer.from([0xff, 0x00, 0xfe]), T: Buffer.from('text') } } });
  t.ok(binary.uid);
  const shown = await rest('GET', '/v1/admin/secrets/bin?reveal=true');
  t.same(shown.json.data, { T: 'text' });
  t.same(shown.json.data_base64, { K: Buffer.from([0xff, 0x00, 0xfe]).toString('base64') }, 'values that are not text come back as base64');

  const wrongTemplate = await rest('POST', '/v1/admin/secrets', { body: { name: 'aws', provider_slug: 'aws', value: 'x' } });
  t.equal(wrongTemplate.status, 400);
  t.match(wrongTemplate.json.error, { code: 'TEMPLATE_KEYS_MISSING', message: /AWS_SECRET_ACCESS_KEY/ });
  const both = await rest('POST', '/v1/admin/secrets', { body: { name: 'x', value: 'a', data: { K: 'b' } } });
  t.match(both.json.error, { code: 'INVALID_ARGUMENT', message: 'value: give value or data, not both' });
  const nullOnCreate = await rest('POST', '/v1/admin/secrets', { body: { name: 'x', data: { K: null } } });
  t.match(nullOnCreate.json.error, { code: 'INVALID_ARGUMENT', message: 'body.data.K: must be string' });
  const badName = await rest('POST', '/v1/admin/secrets', { body: { name: 'bad name', value: 'x' } });
  t.equal(badName.status, 400);
  t.match(badName.json.error.message, /name: "bad name" must start and end with a letter or digit/, 'the service rule, word for word as over gRPC');
  const exists = await rest('POST', '/v1/admin/secrets', { body: { name: 'envs', value: 'x' } });
  t.equal(exists.status, 409);
  t.equal(exists.json.error.code, 'SECRET_EXISTS');
});

t.test('Idempotency-Key: a retried create answers the first result; another body is refused', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);
  const headers = { 'Idempotency-Key': 'create-demo-1' };
  const first = await rest('POST', '/v1/admin/secrets', { body: { name: 'demo', value: 'sk-x' }, headers });
  const retry = await rest('POST', '/v1/admin/secrets', { body: { name: 'demo', value: 'sk-x' }, headers });
  t.equal(first.status, 201);
  t.equal(retry.status, 201, 'the retry is not a conflict');
  t.same(retry.json, first.json);
  t.equal((await rest('GET', '/v1/admin/secrets/demo')).json.version, 1, 'one write');
  const other = await rest('POST', '/v1/admin/secrets', { body: { name: 'demo', value: 'sk-y' }, headers });
  t.equal(other.status, 400);
  t.equal(other.json.error.code, 'IDEMPOTENCY_KEY_REUSED');
  t.notMatch(other.text, /sk-/);

  const failedFirst = await rest('POST', '/v1/admin/secrets', { body: { name: 'demo', value: 'sk-x' }, headers: { 'Idempotency-Key': 'k2' } });
  t.equal(failedFirst.status, 409);
  await rest('DELETE', '/v1/admin/secrets/demo');
  const failedRetry = await rest('POST', '/v1/admin/secrets', { body: { name: 'demo', value: 'sk-x' }, headers: { 'Idempotency-Key': 'k2' } });
  t.equal(failedRetry.status, 409, 'a retry replays the first answer, errors included');
  const badKey = await rest('POST', '/v1/admin/secrets', { body: { name: 'demo', value: 'sk-x' }, headers: { 'Idempotency-Key': 'has space' } });
  t.match(badKey.json.error.message, /^idempotency-key: /);

  await d.restart();
  const afterRestart = await rest('POST', '/v1/admin/secrets', { body: { name: 'demo', value: 'sk-x' }, headers });
  t.same(afterRestart.json, first.json, 'keys survive a restart');
});

t.test('batch: a status per item, the rest applied', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);
  await rest('POST', '/v1/admin/secrets', { body: { name: 'exists', value: 'old' } });
  await rest('POST', '/v1/admin/secrets', { body: { name: 'to-update', data: { K: 'v1', GONE: 'x' } } });
  await rest('POST', '/v1/admin/secrets', { body: { name: 'to-delete', value: 'x' } });
  await rest('POST', '/v1/admin/secrets', { body: { name: 'typed', value: 'x' } });
  const items = [
    { mode: 'create', type: 'opaque', name: 'new-one', value: 'n1' },
    { mode: 'create', type: 'opaque', name: 'exists', value: 'again' },
    { mode: 'update', type: 'opaque', name: 'missing', data: { K: 'x' } },
    { mode: 'delete', type: 'opaque', name: 'also-missing' },
    { mode: 'update', type: 'opaque', name: 'to-update', data: { K: 'v2', GONE: null } },
    { mode: 'delete', type: 'opaque', name: 'to-delete' },
    { mode: 'create', type: 'container_registry', name: 'reg', data: { server: 's', username: 'u', password: 'p' } },
    { mode: 'delete', name: 'exists', force: true, replace: true },
    { mode: 'update', type: 'container_registry', name: 'typed', data: { K: 'v3' } },
  ];
  const answer = await rest('POST', '/v1/admin/secrets:batch', { body: { items } });
  t.equal(answer.status, 400, 'some item failed');
  const byIndex = answer.json.results.map((r: { status: number; ok: boolean; error?: { code: string } }) => [r.status, r.ok, r.error?.code ?? '']);
  t.same(byIndex, [
    [200, true, ''],
    [409, false, 'SECRET_EXISTS'],
    [404, false, 'SECRET_NOT_FOUND'],
    [404, false, 'SECRET_NOT_FOUND'],
    [200, true, ''],
    [200, true, ''],
    [200, true, ''],
    [400, false, 'INVALID_ARGUMENT'],
    [400, false, 'INVALID_ARGUMENT'],
  ]);
  t.match(answer.json.results[7].error.message, /items\[7\]\.replace: does not apply to mode delete/);
  t.match(answer.json.results[8].error.message, /type.*never changes/);
  t.match(answer.json, { succeeded: 4, failed: 5 });
  t.match(answer.json.results[0], { index: 0, name: 'new-one', mode: 'create', secret: { keys: ['value'], version: 1 } });
  t.same((await rest('GET', '/v1/admin/secrets/to-update?reveal=true')).json.data, { K: 'v2' }, 'the good items were applied');
  t.equal((await rest('GET', '/v1/admin/secrets/to-delete')).status, 404);
  t.equal((await rest('GET', '/v1/admin/secrets/exists?reveal=true')).json.data.value, 'old', 'a failed item changed nothing');
  t.notMatch(answer.text, /\bold\b|again|n1|v2/, 'no value in the answer');

  const allGood = await rest('POST', '/v1/admin/secrets:batch', {
    body: [{ mode: 'create', name: 'b1', value: 'x' }, { mode: 'update', name: 'b1-missing-ok', data: { K: 'x' } }].slice(0, 1),
    headers: { 'Idempotency-Key': 'batch-1' },
  });
  t.equal(allGood.status, 200, 'every item applied: 200 (the bare list form)');
  const replay = await rest('POST', '/v1/admin/secrets:batch', { body: [{ mode: 'create', name: 'b1', value: 'x' }], headers: { 'Idempotency-Key': 'batch-1' } });
  t.equal(replay.status, 200);
  t.same(replay.json, allGood.json, 'an idempotent retry of a batch answers the first result');

  const reader = (await d.rpc('TokensService', 'CreateToken', { role: 'reader' })).token;
  const denied = await rest('POST', '/v1/admin/secrets:batch', { body: { items: [{ mode: 'delete', name: 'b1' }] }, token: reader });
  t.equal(denied.status, 403, 'a reader may not write by batch');
  const refusals = await d.rpc('AuditService', 'ListAudit', { action: 'secret.batch' });
  t.match(refusals.entries[refusals.entries.length - 1], { role: 'reader', outcome: 'PERMISSION_DENIED' }, 'and the refusal is in the audit log');
  t.equal((await rest('POST', '/v1/admin/secrets:batch', { body: { items: [] } })).status, 400);
  const badMode = await rest('POST', '/v1/admin/secrets:batch', { body: { items: [{ mode: 'upsert', name: 'x' }] } });
  t.equal(badMode.status, 400);
  t.match(badMode.json.error.message, /mode: must be one of create, update, delete/);
});
