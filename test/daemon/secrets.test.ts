import t from 'tap';
import { status } from '@grpc/grpc-js';
import { createRequest, startTestDaemon } from '../helpers/daemon.js';
import { restClient } from '../helpers/rest.js';

const b = (s: string) => Buffer.from(s);
const text = (data: Record<string, Uint8Array>) => Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString()]));

t.test('create, get, update, versions, restore, delete', async (t) => {
  const d = await startTestDaemon(t);
  const created = await d.call('CreateSecret', createRequest('demo', { OPENAI_API_KEY: 'sk-1' }, { template: 'openai', labels: { team: 'a' }, mount: { kind: 'file', path: 'demo', sub_paths: { OPENAI_API_KEY: 'keys' } } }));
  t.equal(created.version, 1);
  t.equal(created.name, 'demo');
  t.equal(created.type, 'opaque');
  t.equal(created.template, 'openai');
  t.same(created.keys, ['OPENAI_API_KEY']);
  t.notOk(created.data, 'create answers without values');
  t.same(created.mount, { kind: 'file', path: 'demo', sub_paths: { OPENAI_API_KEY: 'keys' }, format: '' });
  t.ok(created.change_seq > 0);

  const meta = await d.call('GetSecret', { name: 'demo' });
  t.notOk(meta.data, 'get without include_values carries no values');
  const full = await d.call('GetSecret', { name: 'demo', include_values: true });
  t.same(text(full.data), { OPENAI_API_KEY: 'sk-1' });

  const updated = await d.call('UpdateSecret', { name: 'demo', set: { OPENAI_API_KEY: b('sk-2'), EXTRA: b('x') } });
  t.equal(updated.version, 2);
  t.same(updated.keys, ['EXTRA', 'OPENAI_API_KEY']);
  t.equal(updated.create_time, created.create_time, 'creation time stays');

  const removed = await d.call('UpdateSecret', { name: 'demo', remove: ['EXTRA'], description: 'the key', set_labels: { env: 'prod' }, remove_labels: ['team'] });
  t.equal(removed.version, 3);
  t.same(removed.keys, ['OPENAI_API_KEY']);
  t.equal(removed.description, 'the key');
  t.same(removed.labels, { env: 'prod' });

  const replaced = await d.call('UpdateSecret', { name: 'demo', set: { OPENAI_API_KEY: b('sk-4') }, replace: true, expected_version: 3 });
  t.equal(replaced.version, 4);

  const v2 = await d.call('GetSecret', { name: 'demo', version: 2, include_values: true });
  t.same(text(v2.data), { OPENAI_API_KEY: 'sk-2', EXTRA: 'x' });
  t.equal(v2.version, 2);

  const history = await d.call('ListVersions', { name: 'demo' });
  t.equal(history.current_version, 4);
  t.same(history.versions.map((v: any) => v.version), [4, 3, 2, 1]);
  t.same(history.versions.map((v: any) => v.operation), ['update', 'update', 'update', 'create']);

  const restored = await d.call('RestoreVersion', { name: 'demo', version: 2 });
  t.equal(restored.version, 5);
  const now = await d.call('GetSecret', { name: 'demo', include_values: true });
  t.same(text(now.data), { OPENAI_API_KEY: 'sk-2', EXTRA: 'x' });
  t.same(now.labels, { team: 'a' }, 'restore brings back the metadata of that version');
  const h2 = await d.call('ListVersions', { name: 'demo' });
  t.equal(h2.versions[0].operation, 'restore');
  t.equal(h2.versions[0].restored_from, 2);

  const deleted = await d.call('DeleteSecret', { name: 'demo' });
  t.equal(deleted.version, 5);
  await t.rejects(d.call('GetSecret', { name: 'demo' }), { code: status.NOT_FOUND });
  const again = await d.call('CreateSecret', createRequest('demo', { A: '1' }));
  t.equal(again.version, 1, 'a name deleted and created again starts over');
  t.not(again.uid, created.uid, 'with a new uid');
});

t.test('existence rules and compare-and-set', async (t) => {
  const d = await startTestDaemon(t);
  await d.call('CreateSecret', createRequest('one', { A: '1' }));
  await t.rejects(d.call('CreateSecret', createRequest('one', { A: '2' })), { code: status.ALREADY_EXISTS, details: /already exists/ });
  await t.rejects(d.call('UpdateSecret', { name: 'missing', set: { A: b('1') } }), { code: status.NOT_FOUND, details: /secret "missing" not found/ });
  await t.rejects(d.call('DeleteSecret', { name: 'missing' }), { code: status.NOT_FOUND });
  await t.rejects(d.call('RestoreVersion', { name: 'missing', version: 1 }), { code: status.NOT_FOUND });
  await t.rejects(d.call('UpdateSecret', { name: 'one', set: { A: b('2') }, expected_version: 7 }), { code: status.ABORTED, details: /version 1, not the expected 7/ });
  await t.rejects(d.call('DeleteSecret', { name: 'one', expected_version: 2 }), { code: status.ABORTED });
  await t.rejects(d.call('GetSecret', { name: 'one', version: 9 }), { code: status.NOT_FOUND, details: /version 9/ });
  await t.rejects(d.call('RestoreVersion', { name: 'one', version: 9 }), { code: status.NOT_FOUND });

  // Concurrent updates without expected_version all apply (internal retry), each a new version.
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => d.call('UpdateSecret', { name: 'one', set: { [`K${i}`]: b(String(i)) } })));
  t.same(results.map((r) => r.version).sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i + 2));
  const final = await d.call('GetSecret', { name: 'one', include_values: true });
  t.equal(Object.keys(final.data).length, 21, 'no update was lost');
});

t.test('versions kept are bounded', async (t) => {
  const d = await startTestDaemon(t, { maxVersions: 3 });
  await d.call('CreateSecret', createRequest('v', { A: '0' }));
  for (let i = 1; i <= 5; i++) await d.call('UpdateSecret', { name: 'v', set: { A: b(String(i)) } });
  const history = await d.call('ListVersions', { name: 'v' });
  t.same(history.versions.map((v: any) => v.version), [6, 5, 4]);
  await t.rejects(d.call('GetSecret', { name: 'v', version: 3 }), { code: status.NOT_FOUND });
});

t.test('types and templates', async (t) => {
  const d = await startTestDaemon(t);
  await t.rejects(d.call('CreateSecret', createRequest('o', { KEY: 'x' }, { template: 'openai' })), { code: status.INVALID_ARGUMENT, details: /template openai needs keys OPENAI_API_KEY/ });
  await t.rejects(d.call('CreateSecret', createRequest('a', { AWS_ACCESS_KEY_ID: 'x' }, { template: 'aws' })), { code: status.INVALID_ARGUMENT, details: /AWS_SECRET_ACCESS_KEY/ });
  await t.rejects(d.call('CreateSecret', createRequest('h', { X: 'x' }, { template: 'huggingface' })), { code: status.INVALID_ARGUMENT, details: /HF_TOKEN/ });
  await t.rejects(d.call('CreateSecret', createRequest('g', { X: 'x' }, { template: 'github' })), { code: status.INVALID_ARGUMENT, details: /GITHUB_TOKEN/ });
  await t.rejects(d.call('CreateSecret', createRequest('c', { X: 'x' }, { template: 'nope' })), { code: status.INVALID_ARGUMENT, details: /template: "nope" must be one of/ });
  await t.rejects(d.call('CreateSecret', createRequest('c', { X: 'x' }, { type: 'weird' })), { code: status.INVALID_ARGUMENT, details: /type: "weird" must be one of opaque, container_registry/ });
  for (const [template, data] of [
    ['aws', { AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b' }],
    ['huggingface', { HF_TOKEN: 'h' }],
    ['github', { GITHUB_TOKEN: 'g' }],
    ['custom', { anything: 'x' }],
  ] as const)
    t.equal((await d.call('CreateSecret', createRequest(`t-${template}`, data, { template }))).template, template);
  await t.rejects(d.call('UpdateSecret', { name: 't-aws', remove: ['AWS_SECRET_ACCESS_KEY'] }), { code: status.INVALID_ARGUMENT, details: /AWS_SECRET_ACCESS_KEY/ }, 'templates are checked on update too');

  const reg = await d.call('CreateSecret', createRequest('registry', { server: 'ghcr.io', username: 'u', password: 'p' }, { type: 'container_registry' }));
  t.equal(reg.type, 'container_registry');
  await t.rejects(d.call('CreateSecret', createRequest('reg2', { server: 'x', username: 'u' }, { type: 'container_registry' })), { code: status.INVALID_ARGUMENT, details: /needs keys password/ });
  await t.rejects(d.call('CreateSecret', createRequest('reg3', { server: 'x', username: 'u', password: 'p', token: 't' }, { type: 'container_registry' })), { code: status.INVALID_ARGUMENT, details: /accepts only server, username, password, email/ });
});

t.test('a template\'s required key with an empty value is refused by every API, naming the key', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);
  const empty = { code: status.INVALID_ARGUMENT, details: /(^|\.)data\["HF_TOKEN"\]: is empty; template huggingface needs a value for it$/ };
  await t.rejects(d.call('CreateSecret', createRequest('hf', { HF_TOKEN: '' }, { template: 'huggingface' })), empty, 'gRPC create');
  await t.rejects(d.call('CreateSecret', createRequest('aws', { AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: '' }, { template: 'aws' })), { code: status.INVALID_ARGUMENT, details: /AWS_SECRET_ACCESS_KEY.*is empty/ });
  t.equal((await d.call('CreateSecret', createRequest('hf', { HF_TOKEN: 'h', NOTE: '' }, { template: 'huggingface' }))).version, 1, 'a key the template does not need may be empty');
  t.equal((await d.call('CreateSecret', createRequest('plain', { TOKEN: '' }))).version, 1, 'custom checks nothing');
  await t.rejects(d.call('UpdateSecret', { name: 'hf', set: { HF_TOKEN: b('') } }), empty, 'gRPC update');
  const batch = await d.call('BatchSecrets', { items: [{ update: { name: 'hf', set: { HF_TOKEN: b('') } } }] });
  t.match(batch.results[0], { status: 'INVALID_ARGUMENT', message: /HF_TOKEN.*is empty/ }, 'gRPC batch item');
  const v1 = await rest('POST', '/v1/admin/secrets', { body: { name: 'hf-rest', value: '', provider_slug: 'huggingface' } });
  t.match([v1.status, v1.json.error], [400, { code: 'TEMPLATE_KEYS_MISSING', message: /HF_TOKEN/ }], 'REST /v1');
  const v2 = await rest('PATCH', '/v2/admin/secrets/hf', { body: { data: { HF_TOKEN: '', NOTE: '' } }, headers: { 'AI-Tenant-Scope': 'true' } });
  t.equal(v2.status, 400, 'REST /v2');
  t.equal((await d.call('GetSecret', { name: 'hf' })).version, 1, 'nothing was changed');
});

t.test('each class of bad input is INVALID_ARGUMENT naming the field', async (t) => {
  const d = await startTestDaemon(t);
  const big = 'x'.repeat(1024 * 1024 + 1);
  const cases: Array<[string, object, RegExp]> = [
    ['empty name', createRequest('', { A: '1' }), /secret\.name: is required/],
    ['name with space', createRequest('a b', { A: '1' }), /secret\.name: "a b" must start/],
    ['name with slash', createRequest('a/b', { A: '1' }), /secret\.name/],
    ['name with ..', createRequest('a..b', { A: '1' }), /no "\.\."/],
    ['name too long', createRequest('a'.repeat(254), { A: '1' }), /at most 253/],
    ['no data', createRequest('n', {}), /secret\.data: a secret needs at least one key/],
    ['key with slash', createRequest('n', { 'a/b': '1' }), /secret\.data\["a\/b"\]/],
    ['key ..', createRequest('n', { '..': '1' }), /secret\.data/],
    ['key ..data', createRequest('n', { '..data': '1' }), /must not start with "\.\."/],
    ['key with NUL', createRequest('n', { 'a\0b': '1' }), /secret\.data/],
    ['values over 1 MiB', createRequest('n', { A: big }), /at most 1048576 bytes/],
    ['too many keys', createRequest('n', Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`K${i}`, 'v']))), /at most 100 keys/],
    ['absolute path', createRequest('n', { A: '1' }, { mount: { path: '/etc' } }), /secret\.mount\.path: "\/etc" must be relative/],
    ['.. path', createRequest('n', { A: '1' }, { mount: { path: 'a/../../etc' } }), /must not contain a "\.\." segment/],
    ['leading .. path', createRequest('n', { A: '1' }, { mount: { path: '..sneaky' } }), /must not start with "\.\."/],
    ['NUL path', createRequest('n', { A: '1' }, { mount: { path: 'a\0b' } }), /must not contain NUL/],
    ['backslash path', createRequest('n', { A: '1' }, { mount: { path: 'a\\..\\b' } }), /must use "\/"/],
    ['empty segment', createRequest('n', { A: '1' }, { mount: { path: 'a//b' } }), /empty segments/],
    ['bad mount kind', createRequest('n', { A: '1' }, { mount: { kind: 'disk' } }), /mount\.kind: "disk"/],
    ['bad env format', createRequest('n', { A: '1' }, { mount: { kind: 'env', format: 'toml' } }), /mount\.format: "toml"/],
    ['env key not a variable', createRequest('n', { 'a-b': '1' }, { mount: { kind: 'env' } }), /environment variable names/],
    ['sub-path of a missing key', createRequest('n', { A: '1' }, { mount: { sub_paths: { B: 'x' } } }), /names a key the secret does not have/],
    ['hostile sub-path', createRequest('n', { A: '1' }, { mount: { sub_paths: { A: '../../x' } } }), /sub_paths\["A"\]: "\.\.\/\.\.\/x"/],
    ['bad label key', createRequest('n', { A: '1' }, { labels: { 'bad key': 'v' } }), /secret\.labels\["bad key"\]/],
    ['bad label value', createRequest('n', { A: '1' }, { labels: { k: 'a b' } }), /label value/],
    ['description too long', createRequest('n', { A: '1' }, { description: 'd'.repeat(1025) }), /description: must be at most 1024/],
    ['bad tenant', { scope: { tenant: 'Bad_Tenant' }, ...createRequest('n', { A: '1' }) }, /scope\.tenant/],
    ['bad resource group', { scope: { resource_group: 'a b' }, ...createRequest('n', { A: '1' }) }, /scope\.resource_group/],
  ];
  for (const [what, request, message] of cases)
    await t.rejects(d.call('CreateSecret', request), { code: status.INVALID_ARGUMENT, details: message }, what);

  await d.call('CreateSecret', createRequest('u', { A: '1' }));
  await t.rejects(d.call('UpdateSecret', { name: 'u' }), { code: status.INVALID_ARGUMENT, details: /changes nothing/ });
  await t.rejects(d.call('UpdateSecret', { name: 'u', remove: ['Z'] }), { code: status.INVALID_ARGUMENT, details: /has no key "Z"/ });
  await t.rejects(d.call('UpdateSecret', { name: 'u', remove: ['A'] }), { code: status.INVALID_ARGUMENT, details: /without keys/ });
  await t.rejects(d.call('UpdateSecret', { name: 'u', set: { A: b('2') }, remove: ['A'] }), { code: status.INVALID_ARGUMENT, details: /both set and removed/ });
  await t.rejects(d.call('ListSecrets', { limit: 5000 }), { code: status.INVALID_ARGUMENT, details: /limit/ });
  await t.rejects(d.call('ListSecrets', { cursor: 'garbage!' }), { code: status.INVALID_ARGUMENT, details: /cursor/ });
  await t.rejects(d.call('RestoreVersion', { name: 'u' }), { code: status.INVALID_ARGUMENT, details: /version/ });
  await t.rejects(d.call('BatchSecrets', { items: [] }), { code: status.INVALID_ARGUMENT, details: /at least one item/ });
  await t.rejects(d.call('CreateSecret', createRequest('n', { A: '1' }), { idempotencyKey: 'has space' }), { code: status.INVALID_ARGUMENT, details: /idempotency-key/ });

  // Hostile values in names are quoted and cut, and nothing in an error is a value.
  const err = await d.call('CreateSecret', createRequest('x'.repeat(300), { A: 'VALUE-CANARY' })).catch((e) => e);
  t.ok(err.details.length < 300, 'long hostile names are shortened in messages');
});

t.test('list: filters, cursor, stable under writes, never values', async (t) => {
  const d = await startTestDaemon(t);
  for (let i = 0; i < 25; i++)
    await d.call('CreateSecret', createRequest(`s${String(i).padStart(2, '0')}`, i % 3 === 0 ? { OPENAI_API_KEY: 'k' } : { A: 'v' }, {
      template: i % 3 === 0 ? 'openai' : 'custom',
      labels: { team: i % 2 ? 'odd' : 'even' },
    }));
  await d.call('CreateSecret', createRequest('reg', { server: 's', username: 'u', password: 'p' }, { type: 'container_registry' }));

  const names: string[] = [];
  let cursor = '';
  let pages = 0;
  do {
    const page = await d.call('ListSecrets', { limit: 7, cursor });
    for (const s of page.secrets) t.notOk(s.data, 'no values in a list');
    names.push(...page.secrets.map((s: any) => s.name));
    cursor = page.next_cursor ?? '';
    pages++;
    // Writes between pages: a new name before the cursor, a delete after it.
    if (pages === 1) {
      await d.call('CreateSecret', createRequest('a-early', { A: '1' }));
      await d.call('DeleteSecret', { name: 's24' });
    }
  } while (cursor);
  const expected = [...Array.from({ length: 24 }, (_, i) => `s${String(i).padStart(2, '0')}`), 'reg'].sort();
  t.same(names, expected, 'every secret that existed throughout appears exactly once, in order');

  const openai = await d.call('ListSecrets', { template: 'openai', limit: 100 });
  t.same(openai.secrets.map((s: any) => s.name), ['s00', 's03', 's06', 's09', 's12', 's15', 's18', 's21']);
  const registries = await d.call('ListSecrets', { type: 'container_registry' });
  t.same(registries.secrets.map((s: any) => s.name), ['reg']);
  const odd = await d.call('ListSecrets', { labels: ['team=odd'], template: 'custom', limit: 3 });
  t.same(odd.secrets.map((s: any) => s.name), ['s01', 's05', 's07']);
  t.ok(odd.next_cursor);
  const odd2 = await d.call('ListSecrets', { labels: ['team=odd'], template: 'custom', limit: 3, cursor: odd.next_cursor });
  t.same(odd2.secrets.map((s: any) => s.name), ['s11', 's13', 's17']);
  await t.rejects(d.call('ListSecrets', { labels: ['team=even'], cursor: odd.next_cursor }), { code: status.INVALID_ARGUMENT, details: /other filters/ });
  await t.rejects(d.call('ListSecrets', { labels: ['noequals'] }), { code: status.INVALID_ARGUMENT, details: /key=value/ });

  const rg = await d.call('ListSecrets', { scope: { resource_group: 'team-a' } });
  t.same(rg.secrets ?? [], [], 'scopes are separate');
});

t.test('scopes keep same-named secrets apart', async (t) => {
  const d = await startTestDaemon(t);
  await d.call('CreateSecret', { scope: { resource_group: '' }, ...createRequest('k', { A: 'main' }) });
  await d.call('CreateSecret', { scope: { resource_group: 'team-a' }, ...createRequest('k', { A: 'team' }) });
  await d.call('CreateSecret', { scope: { resource_group: '*' }, ...createRequest('k', { A: 'wide' }) });
  for (const [group, value] of [['', 'main'], ['team-a', 'team'], ['*', 'wide']]) {
    const s = await d.call('GetSecret', { scope: { resource_group: group }, name: 'k', include_values: true });
    t.equal(Buffer.from(s.data.A).toString(), value);
    t.equal(s.scope.resource_group, group);
    t.equal(s.scope.tenant, 'default');
  }
  await t.rejects(d.call('GetSecret', { scope: { tenant: 'other' }, name: 'k' }), { code: status.PERMISSION_DENIED, details: /tenant "default", not "other"/ });
});

t.test('batch: a status per item, the rest applied', async (t) => {
  const d = await startTestDaemon(t);
  await d.call('CreateSecret', createRequest('exists', { A: '1' }));
  await d.call('CreateSecret', createRequest('to-update', { A: '1' }));
  await d.call('CreateSecret', createRequest('to-delete', { A: '1' }));
  const r = await d.call('BatchSecrets', {
    items: [
      { create: { name: 'new-one', data: { A: b('1') } } },
      { create: { name: 'exists', data: { A: b('2') } } },
      { update: { name: 'to-update', set: { B: b('2') } } },
      { update: { name: 'missing', set: { B: b('2') } } },
      { delete: { name: 'to-delete' } },
      { delete: { name: 'missing-too' } },
      { create: { name: 'bad name', data: { A: b('1') } } },
      { create: { name: 'new-one', data: { A: b('1') } } },
    ],
  });
  t.same(
    r.results.map((x: any) => [x.index ?? 0, x.operation, x.name, x.status]),
    [
      [0, 'create', 'new-one', 'OK'],
      [1, 'create', 'exists', 'ALREADY_EXISTS'],
      [2, 'update', 'to-update', 'OK'],
      [3, 'update', 'missing', 'NOT_FOUND'],
      [4, 'delete', 'to-delete', 'OK'],
      [5, 'delete', 'missing-too', 'NOT_FOUND'],
      [6, 'create', 'bad name', 'INVALID_ARGUMENT'],
      [7, 'create', 'new-one', 'INVALID_ARGUMENT'],
    ],
  );
  t.match(r.results[7].message, /more than once/);
  t.equal(r.succeeded, 3);
  t.equal(r.failed, 5);
  t.equal(r.results[2].secret.version, 2);
  t.same((await d.call('GetSecret', { name: 'to-update' })).keys, ['A', 'B']);
  await t.rejects(d.call('GetSecret', { name: 'to-delete' }), { code: status.NOT_FOUND });
  t.equal((await d.call('GetSecret', { name: 'new-one' })).version, 1);
});

t.test('idempotency: a retry returns the first result, another body is refused, keys survive restarts', async (t) => {
  const d = await startTestDaemon(t);
  const first = await d.call('CreateSecret', createRequest('idem', { A: '1' }), { idempotencyKey: 'key-1' });
  const retry = await d.call('CreateSecret', createRequest('idem', { A: '1' }), { idempotencyKey: 'key-1' });
  t.same(retry, first, 'the retry returns the first result, not ALREADY_EXISTS');
  await t.rejects(d.call('CreateSecret', createRequest('idem', { A: 'other' }), { idempotencyKey: 'key-1' }), {
    code: status.INVALID_ARGUMENT,
    details: /"key-1" was already used for a different request/,
  });
  // Concurrent duplicates: all get the same answer; one secret is created.
  const many = await Promise.all(Array.from({ length: 10 }, () => d.call('CreateSecret', createRequest('race', { A: '1' }), { idempotencyKey: 'key-race' })));
  t.equal(new Set(many.map((m) => m.uid)).size, 1);
  // A failed first attempt is replayed as the same failure.
  await t.rejects(d.call('CreateSecret', createRequest('idem', { A: '1' }), { idempotencyKey: 'key-2' }), { code: status.ALREADY_EXISTS });
  await t.rejects(d.call('CreateSecret', createRequest('idem', { A: '1' }), { idempotencyKey: 'key-2' }), { code: status.ALREADY_EXISTS });

  const batch = { items: [{ create: { name: 'b1', data: { A: b('1') } } }, { create: { name: 'idem', data: { A: b('1') } } }] };
  const firstBatch = await d.call('BatchSecrets', batch, { idempotencyKey: 'batch-1' });
  t.equal(firstBatch.succeeded, 1);

  await d.restart();
  t.same(await d.call('CreateSecret', createRequest('idem', { A: '1' }), { idempotencyKey: 'key-1' }), first, 'kept across a restart');
  t.same(await d.call('BatchSecrets', batch, { idempotencyKey: 'batch-1' }), firstBatch, 'batch replays too');
  await t.rejects(d.call('BatchSecrets', { items: [{ delete: { name: 'b1' } }] }, { idempotencyKey: 'batch-1' }), { code: status.INVALID_ARGUMENT, details: /different request/ });

  // Expired keys are pruned (24 h by default): prune everything older than now.
  const pruned = await d.daemon.store.pruneIdempotency(new Date(Date.now() + 1000).toISOString());
  t.ok(pruned >= 3);
  await t.rejects(d.call('CreateSecret', createRequest('idem', { A: '1' }), { idempotencyKey: 'key-1' }), { code: status.ALREADY_EXISTS });
});
