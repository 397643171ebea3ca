/**
 * Idempotency keys belong to the token that sent them (another token's same key is a new call:
 * it neither learns the key was used nor gets the first answer), and update, delete and restore
 * take them like create does, over gRPC and REST, so a retry after a timeout never applies twice.
 */
import t from 'tap';
import { status } from '@grpc/grpc-js';
import { createRequest, startTestDaemon } from '../helpers/daemon.js';
import { restClient } from '../helpers/rest.js';

t.test('idempotency keys are per token', async (t) => {
  const d = await startTestDaemon(t);
  const other = (await d.rpc('TokensService', 'CreateToken', { role: 'tenant-admin', description: 'second admin' })).token as string;
  const first = await d.call('CreateSecret', createRequest('mine', { K: 'CANARY-first-caller' }), { idempotencyKey: 'shared-key' });
  t.equal(first.version, 1);

  // The other token, same key, same body: its call runs, so it meets the secret, not the first answer.
  const err = await d.call('CreateSecret', createRequest('mine', { K: 'CANARY-first-caller' }), { token: other, idempotencyKey: 'shared-key' }).catch((e) => e);
  t.equal(err.code, status.ALREADY_EXISTS, 'no replay of another token\'s answer');
  t.notMatch(err.details, /idempotency/);
  // The other token, a key the first used, another body: its own call runs (no IDEMPOTENCY_KEY_REUSED).
  await d.call('CreateSecret', createRequest('a', { K: 'v' }), { idempotencyKey: 'key-2' });
  const theirs = await d.call('CreateSecret', createRequest('theirs', { K: 'v' }), { token: other, idempotencyKey: 'key-2' });
  t.equal(theirs.name, 'theirs');

  // The first token's retry still gets its own first answer, and its key still guards its body.
  t.same(await d.call('CreateSecret', createRequest('mine', { K: 'CANARY-first-caller' }), { idempotencyKey: 'shared-key' }), first);
  await t.rejects(d.call('CreateSecret', createRequest('theirs', { K: 'v' }), { idempotencyKey: 'shared-key' }), { code: status.INVALID_ARGUMENT, details: /already used/ });
  await t.rejects(d.call('CreateSecret', createRequest('other-2', { K: 'v' }), { token: other, idempotencyKey: 'key-2' }), { code: status.INVALID_ARGUMENT, details: /already used/ });
});

t.test('update, delete and restore take an idempotency key (gRPC)', async (t) => {
  const d = await startTestDaemon(t);
  await d.call('CreateSecret', createRequest('s', { K: 'v1' }));
  const update = { name: 's', set: { K: Buffer.from('v2') } };
  const updated = await d.call('UpdateSecret', update, { idempotencyKey: 'u-1' });
  t.equal(updated.version, 2);
  t.same(await d.call('UpdateSecret', update, { idempotencyKey: 'u-1' }), updated, 'a retried update returns the first answer');
  t.equal((await d.call('GetSecret', { name: 's' })).version, 2, 'and is not applied again');
  await t.rejects(d.call('UpdateSecret', { name: 's', set: { K: Buffer.from('v3') } }, { idempotencyKey: 'u-1' }), { code: status.INVALID_ARGUMENT, details: /already used/ });

  const restored = await d.call('RestoreVersion', { name: 's', version: 1 }, { idempotencyKey: 'r-1' });
  t.equal(restored.version, 3);
  t.same(await d.call('RestoreVersion', { name: 's', version: 1 }, { idempotencyKey: 'r-1' }), restored);
  t.equal((await d.call('GetSecret', { name: 's' })).version, 3, 'one restore');

  // A failure is not stored: the same key may succeed once the cause is gone.
  await t.rejects(d.call('UpdateSecret', { ...update, expected_version: 2 }, { idempotencyKey: 'u-2' }), { code: status.ABORTED });
  await t.rejects(d.call('UpdateSecret', { ...update, expected_version: 2 }, { idempotencyKey: 'u-2' }), { code: status.ABORTED });

  const deleted = await d.call('DeleteSecret', { name: 's' }, { idempotencyKey: 'd-1' });
  t.same(await d.call('DeleteSecret', { name: 's' }, { idempotencyKey: 'd-1' }), deleted, 'a retried delete returns the first answer, not NOT_FOUND');
  await t.rejects(d.call('DeleteSecret', { name: 's' }), { code: status.NOT_FOUND });
});

t.test('REST PATCH and DELETE take Idempotency-Key (v1 and v2)', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);
  t.equal((await rest('POST', '/v1/admin/secrets', { body: { name: 'r', data: { K: 'a' }, labels: { old: 'x' } } })).status, 201);
  const patch = (key: string) => rest('PATCH', '/v1/admin/secrets/r', { body: { data: { K: 'b' } }, headers: { 'idempotency-key': key } });
  const first = await patch('p-1');
  t.equal(first.json.version, 2);
  const again = await patch('p-1');
  t.equal(again.status, 200);
  t.equal(again.json.version, 2, 'the retry answers version 2 and applies nothing');
  t.equal((await rest('GET', '/v1/admin/secrets/r')).json.version, 2);

  // v2 PATCH derives the labels to remove from the current state; a retry is still a retry.
  const v2 = (key: string) =>
    rest('PATCH', '/v2/admin/secrets/r', { body: { data: { K: Buffer.from('c').toString('base64') }, labels: [{ key: 'new', value: 'y' }] }, headers: { 'ai-tenant-scope': 'true', 'idempotency-key': key } });
  t.equal((await v2('p-2')).status, 200);
  t.equal((await v2('p-2')).status, 200);
  const after = (await rest('GET', '/v1/admin/secrets/r')).json;
  t.equal(after.version, 3, 'one v2 update');
  t.same(after.labels, { new: 'y' });

  const del = (key: string) => rest('DELETE', '/v1/admin/secrets/r', { headers: { 'idempotency-key': key } });
  t.equal((await del('d-1')).status, 200);
  const retried = await del('d-1');
  t.equal(retried.status, 200, 'a retried DELETE answers as the first did');
  t.equal(retried.json.version, 3);
  t.equal((await del('d-2')).status, 404, 'a new key is a new call');
  const headers = (await rest('GET', '/openapi.json')).json.paths['/v1/admin/secrets/{id}'].delete.parameters.map((p: { name: string }) => p.name);
  t.ok(headers.includes('Idempotency-Key'), 'documented in /openapi.json');
  t.notOk(d.logs.some((l) => l.includes('CANARY')), 'no value logged');
});
