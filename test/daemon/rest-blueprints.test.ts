/** The AI Blueprints `/secrets` API: GET lists, POST is a batch; every mode × type, 200 or 400, over a real socket. */
import t from 'tap';
import { startTestDaemon } from '../helpers/daemon.js';
import { restClient } from '../helpers/rest.js';

const CANARY = 'bp-canary-5d1e';

/** A body per type: what a create sends, and what an update changes. */
const shapes = {
  opaque: { create: { data: { HF_TOKEN: `${CANARY}-hf`, EXTRA: 'x' } }, update: { data: { HF_TOKEN: `${CANARY}-hf-2` } }, changedKey: 'HF_TOKEN' },
  container_registry: {
    create: { data: { server: 'nvcr.io', username: '$oauthtoken', password: `${CANARY}-ngc`, email: 'ml@example.com' } },
    update: { data: { password: `${CANARY}-ngc-2` } },
    changedKey: 'password',
  },
} as const;

t.test('every mode × type: 200 when it applies, 400 with the item\'s status when it does not', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);
  const post = (items: unknown[]) => rest('POST', '/secrets', { body: { items } });
  const answers: string[] = [];
  for (const type of ['opaque', 'container_registry'] as const) {
    const name = `bp-${type.replace('_', '-')}`;
    const shape = shapes[type];

    const created = await post([{ mode: 'create', type, name, ...shape.create }]);
    t.equal(created.status, 200, `create ${type}`);
    t.match(created.json, { succeeded: 1, failed: 0, results: [{ index: 0, name, mode: 'create', status: 200, ok: true, secret: { type, version: 1 } }] });
    const createdAgain = await post([{ mode: 'create', type, name, ...shape.create }]);
    t.equal(createdAgain.status, 400, `create ${type} that exists`);
    t.match(createdAgain.json.results[0], { status: 409, ok: false, error: { code: 'SECRET_EXISTS' } });

    const updated = await post([{ mode: 'update', type, name, ...shape.update }]);
    t.equal(updated.status, 200, `update ${type}`);
    t.match(updated.json.results[0], { mode: 'update', ok: true, secret: { version: 2 } });
    const stored = await d.call('GetSecret', { name, include_values: true });
    t.equal(stored.data[shape.changedKey].toString(), Object.values(shape.update.data)[0], 'the update is stored');
    t.equal(Object.keys(stored.data).length, Object.keys(shape.create.data).length, 'an update sets keys; the others stay');
    const updatedMissing = await post([{ mode: 'update', type, name: `${name}-missing`, ...shape.update }]);
    t.equal(updatedMissing.status, 400, `update ${type} that does not exist`);
    t.match(updatedMissing.json.results[0], { status: 404, ok: false, error: { code: 'SECRET_NOT_FOUND' } });

    const deleted = await post([{ mode: 'delete', type, name }]);
    t.equal(deleted.status, 200, `delete ${type}`);
    t.match(deleted.json.results[0], { mode: 'delete', ok: true });
    await t.rejects(d.call('GetSecret', { name }), /SECRET_NOT_FOUND|not found/, 'deleted');
    const deletedMissing = await post([{ mode: 'delete', type, name }]);
    t.equal(deletedMissing.status, 400, `delete ${type} that does not exist`);
    t.match(deletedMissing.json.results[0], { status: 404, ok: false, error: { code: 'SECRET_NOT_FOUND' } });
    answers.push(...[created, createdAgain, updated, updatedMissing, deleted, deletedMissing].map((a) => a.text));
  }
  t.notOk(answers.some((text) => text.includes(CANARY)), 'no answer carries a value');
  t.notOk(d.logs.some((line) => line.includes(CANARY)), 'no log line does');
});

t.test('a batch: a status per item, the good ones applied; the type rules hold', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);
  await d.call('CreateSecret', { scope: { resource_group: 'team-a' }, secret: { name: 'old-registry', type: 'container_registry', data: { server: Buffer.from('s'), username: Buffer.from('u'), password: Buffer.from('p') } } });
  const answer = await rest('POST', '/secrets', {
    body: [
      { mode: 'create', type: 'opaque', name: 'good', data: { K: 'v' } },
      { mode: 'create', type: 'container_registry', name: 'no-password', data: { server: 'ghcr.io', username: 'bot' } },
      { mode: 'create', type: 'container_registry', name: 'stray-key', data: { server: 'ghcr.io', username: 'bot', password: 'p', token: 't' } },
      { mode: 'create', type: 'container_registry', name: 'registry', data: { server: 'ghcr.io', username: 'bot', password: 'p' } },
      { mode: 'update', type: 'opaque', name: 'old-registry', data: { password: 'q' } },
    ],
    headers: { 'AI-Resource-Group': 'team-a' },
  });
  t.equal(answer.status, 400, 'some item failed');
  t.same(
    answer.json.results.map((r: { status: number; error?: { code: string } }) => [r.status, r.error?.code ?? '']),
    [[200, ''], [400, 'TEMPLATE_KEYS_MISSING'], [400, 'INVALID_ARGUMENT'], [200, ''], [400, 'INVALID_ARGUMENT']],
  );
  t.match(answer.json.results[1].error.message, /needs keys password/);
  t.match(answer.json.results[4].error.message, /type container_registry, not "opaque"/);
  t.match(answer.json, { succeeded: 2, failed: 3 });
  t.equal((await d.call('GetSecret', { scope: { resource_group: 'team-a' }, name: 'good' })).version, 1, 'the good items applied, in the group the header named');
  t.equal((await d.call('GetSecret', { scope: { resource_group: 'team-a' }, name: 'old-registry' })).version, 1, 'the failed update changed nothing');

  // GET /secrets: the same list as /v1, filters included.
  const all = await rest('GET', '/secrets', { headers: { 'AI-Resource-Group': 'team-a' } });
  t.equal(all.status, 200);
  t.same(all.json.secrets.map((s: { name: string; type: string }) => [s.name, s.type]), [['good', 'opaque'], ['old-registry', 'container_registry'], ['registry', 'container_registry']]);
  const registries = await rest('GET', '/secrets?type=container_registry&limit=1', { headers: { 'AI-Resource-Group': 'team-a' } });
  t.same(registries.json.secrets.map((s: { name: string }) => s.name), ['old-registry'], 'filtered by type, a page of one');
  t.ok(registries.json.next_cursor, 'with a cursor to the next');
  t.same(all.json, (await rest('GET', '/v1/admin/secrets', { headers: { 'AI-Resource-Group': 'team-a' } })).json, 'a Blueprints client and a /v1 client see the same secrets');
  t.equal((await rest('GET', '/secrets')).json.secrets.length, 0, 'no header: the main-tenant scope');
  t.notMatch(all.text, /"data"/, 'a list carries no values');
});

t.test('a request refused as a whole is 400 in the one error shape', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);
  const cases: Array<[string, Parameters<typeof rest>[2], string, RegExp]> = [
    ['malformed JSON', { raw: '{"items": [' }, 'MALFORMED_JSON', /^body: is not valid JSON/],
    ['empty batch', { body: { items: [] } }, 'INVALID_ARGUMENT', /^items: a batch needs at least one item$/],
    ['unknown field', { body: { items: [{ mode: 'create', name: 'x', data: { K: 'v' }, colour: 'red' }] } }, 'UNKNOWN_FIELD', /colour/],
    ['unknown mode', { body: { items: [{ mode: 'upsert', name: 'x' }] } }, 'INVALID_ARGUMENT', /mode: must be one of create, update, delete/],
    ['no body', {}, 'MALFORMED_JSON', /^body: a JSON body is required/],
  ];
  for (const [label, options, code, message] of cases) {
    const answer = await rest('POST', '/secrets', options);
    t.equal(answer.status, 400, label);
    t.match(answer.json.error, { code, message }, label);
  }
  const reader = (await d.rpc('TokensService', 'CreateToken', { role: 'reader' })).token;
  t.equal((await rest('POST', '/secrets', { token: reader, body: { items: [{ mode: 'delete', name: 'x' }] } })).status, 403, 'a reader may not write');
  t.equal((await rest('POST', '/secrets', { token: null, body: { items: [{ mode: 'delete', name: 'x' }] } })).status, 401, 'no token');
  t.equal((await rest('PUT', '/secrets', { body: {} })).status, 405, 'GET and POST only');
});
