/**
 * Keys named like Object.prototype members are ordinary keys everywhere users send keys: data
 * keys, label keys, sub-path keys and env variables, through create, update (set / remove),
 * labels, list filters and batch, over gRPC and REST, in the CLI's inputs, and in the files and
 * env file the real agent writes. `__proto__` alone is refused as a key, with a clear error.
 */
import t from 'tap';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { parseApplyFile, type BatchEntry, type DeclaredSecret } from '../../cli/src/apply-file.js';
import { readMap, readValues } from '../../cli/src/inputs.js';
import { presentData } from '../../cli/src/output.js';
import { defaultScope as scope, startAgentWith } from '../helpers/agent.js';
import { restClient } from '../helpers/rest.js';
import { runLockbox } from '../helpers/cli.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { userRecord } from '../../shared/src/user-keys.js';

const names = ['constructor', 'toString', 'valueOf', 'hasOwnProperty', '__defineGetter__', 'isPrototypeOf'];
/** Label keys must start with a letter or digit: the names that can be label keys. */
const labelNames = ['constructor', 'toString', 'valueOf', 'hasOwnProperty'];
const bytes = (entries: Array<[string, string]>) => userRecord(entries.map(([k, v]) => [k, Buffer.from(v)] as const));
const text = (data: Record<string, Uint8Array>) => Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString()]));
const valueOf = (name: string) => `v-${name}`;

t.test('gRPC: create, get, update set/remove, labels, sub-paths, list filters and batch', async (t) => {
  const d = await startTestDaemon(t);
  const data = bytes([...names.map((n) => [n, valueOf(n)] as [string, string]), ['plain', 'p']]);
  const labels = Object.fromEntries(labelNames.map((n) => [n, `l-${n.toLowerCase()}`]));
  const subPaths = { constructor: 'ctor', toString: 'ts/deeper' };
  await d.call('CreateSecret', { scope, secret: { name: 'proto', data, labels, mount: { path: 'proto', sub_paths: subPaths } } });
  const got = await d.call('GetSecret', { scope, name: 'proto', include_values: true });
  t.same(text(got.data), text(data), 'every key and value, exactly');
  t.same(got.keys.sort(), [...names, 'plain'].sort());
  t.same(got.labels, labels, 'label keys too');
  t.same(got.mount.sub_paths, subPaths, 'sub-path keys too');

  const updated = await d.call('UpdateSecret', { scope, name: 'proto', set: bytes([['valueOf', 'v2']]), remove: ['toString', 'hasOwnProperty'], set_labels: { toString: 'z' }, remove_labels: ['constructor'] });
  t.same(updated.keys.sort(), ['__defineGetter__', 'constructor', 'isPrototypeOf', 'plain', 'valueOf'], 'removing toString is not "set and removed"');
  t.same(updated.mount.sub_paths, { constructor: 'ctor' }, "the removed key's sub-path goes with it");
  t.same(updated.labels, { toString: 'z', valueOf: 'l-valueof', hasOwnProperty: 'l-hasownproperty' });
  const after = await d.call('GetSecret', { scope, name: 'proto', include_values: true });
  t.equal(Buffer.from(after.data.valueOf).toString(), 'v2');
  await t.rejects(d.call('UpdateSecret', { scope, name: 'proto', remove: ['toString'] }), { message: /has no key "toString"/ }, 'a key it no longer has is not found on the prototype');
  await t.rejects(d.call('UpdateSecret', { scope, name: 'proto', set: bytes([['constructor', 'x']]), remove: ['constructor'] }), { message: /both set and removed/ }, 'the real conflict is still refused');

  const listed = async (label: string) => ((await d.call('ListSecrets', { scope, labels: [label] })).secrets ?? []).map((s: { name: string }) => s.name);
  t.same(await listed('toString=z'), ['proto'], 'a label filter on toString');
  t.same(await listed('constructor=x'), [], 'a removed label matches nothing');
  t.same(await listed('hasOwnProperty=l-hasownproperty'), ['proto']);

  const batch = await d.call('BatchSecrets', {
    scope,
    items: [
      { create: { name: 'b1', data: bytes([['toString', 'a'], ['valueOf', 'b']]), labels: { valueOf: 'x' } } },
      { update: { name: 'proto', remove: ['valueOf'], set: bytes([['hasOwnProperty', 'back']]) } },
    ],
  });
  t.same(batch.results.map((r: { code: number }) => r.code), [0, 0], 'batch items with these keys apply');
  t.same(batch.results[1].secret.keys.sort(), ['__defineGetter__', 'constructor', 'hasOwnProperty', 'isPrototypeOf', 'plain']);

  await t.rejects(d.call('CreateSecret', { scope, secret: { name: 'p2', data: bytes([['__proto__', 'x']]) } }), { code: 3, message: /"__proto__" is reserved/ }, '__proto__ is refused, clearly');
});

t.test('REST: /v1 create, reveal, PATCH remove; /v2 labels; batch', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);
  const data = Object.fromEntries(names.map((n) => [n, valueOf(n)]));
  const created = await rest('POST', '/v1/admin/secrets', { body: { name: 'proto', data, labels: { toString: 'a', constructor: 'b' } } });
  t.equal(created.status, 201, created.text);
  const shown = await rest('GET', '/v1/admin/secrets/proto?reveal=true');
  t.same(shown.json.data, data);
  t.same(shown.json.labels, { toString: 'a', constructor: 'b' });
  const patched = await rest('PATCH', '/v1/admin/secrets/proto', { body: { data: { toString: null, valueOf: 'v2' }, labels: { constructor: null } } });
  t.equal(patched.status, 200, patched.text);
  t.same(patched.json.keys.sort(), ['__defineGetter__', 'constructor', 'hasOwnProperty', 'isPrototypeOf', 'valueOf']);
  t.same(patched.json.labels, { toString: 'a' });

  const headers = { 'AI-Resource-Group': 'team-a' };
  const v2 = await rest('POST', '/v2/admin/secrets', { headers, body: { name: 'v2proto', data: { toString: Buffer.from('x').toString('base64') }, labels: [{ key: 'toString', value: 'a' }, { key: 'valueOf', value: 'b' }] } });
  t.equal(v2.status, 200, `a v2 label key toString does not "appear more than once": ${v2.text}`);
  const v2Patched = await rest('PATCH', '/v2/admin/secrets/v2proto', { headers, body: { labels: [{ key: 'constructor', value: 'c' }] } });
  t.ok(v2Patched.status < 300, v2Patched.text);
  const v2Shown = await rest('GET', '/v2/admin/secrets/v2proto', { headers });
  t.same(v2Shown.json.labels, [{ key: 'constructor', value: 'c' }], 'labels replaced: toString and valueOf gone, constructor set');

  const batch = await rest('POST', '/v1/admin/secrets:batch', { body: { items: [{ mode: 'create', type: 'opaque', name: 'b1', data: { hasOwnProperty: 'x' } }, { mode: 'update', type: 'opaque', name: 'proto', data: { hasOwnProperty: null } }] } });
  t.equal(batch.status, 200, batch.text);
  const proto = await rest('GET', '/v1/admin/secrets/proto');
  t.same(proto.json.keys.sort(), ['__defineGetter__', 'constructor', 'isPrototypeOf', 'valueOf']);
});

t.test('CLI inputs: these names are keys, not "given twice"', async (t) => {
  const values = readValues(names.map((n) => `${n}=${valueOf(n)}`));
  t.same(text(values), Object.fromEntries(names.map((n) => [n, valueOf(n)])));
  t.same({ ...readMap(['toString=a', 'constructor=b'], '--label') }, { toString: 'a', constructor: 'b' });
  t.throws(() => readValues(['toString=a', 'toString=b']), /"toString" is given twice/);
  const file = parseApplyFile('items:\n  - name: x\n    data: {constructor: a, valueOf: b}\n  - {mode: update, name: x, set: {toString: c}, remove: [constructor]}\n', 'f.yaml');
  const [declared, update] = file.secrets as [DeclaredSecret, BatchEntry];
  t.same(text(declared.data), { constructor: 'a', valueOf: 'b' });
  t.same(text((update.item as { update: { set: Record<string, Buffer> } }).update.set), { toString: 'c' });
  t.throws(() => parseApplyFile('- {mode: constructor, name: x}', 'f.yaml'), /mode "constructor" must be create, update or delete/);
  t.same({ ...presentData(bytes([['toString', 'a']])).data }, { toString: 'a' });
});

t.test('the CLI end to end: create, get --reveal, update --remove, labels, sub-paths', async (t) => {
  const d = await startTestDaemon(t);
  const lockbox = (...args: string[]) => runLockbox(['--addr', d.daemon.address, '--token', d.adminToken, ...args]);
  let r = await lockbox('secret', 'create', 'proto', ...names.map((n) => `${n}=${valueOf(n)}`), '--label', 'toString=a', '--label', 'valueOf=b', '--path', 'p', '--subpath', 'constructor=ctor');
  t.equal(r.code, 0, r.stderr);
  r = await lockbox('secret', 'update', 'proto', 'valueOf=v2', '--remove', 'toString', '--remove-label', 'valueOf', '--label', 'constructor=c');
  t.equal(r.code, 0, r.stderr);
  r = await lockbox('secret', 'get', 'proto', '--reveal', '-o', 'json');
  t.equal(r.code, 0, r.stderr);
  const shown = JSON.parse(r.stdout);
  t.same(shown.data, { ...Object.fromEntries(names.filter((n) => n !== 'toString').map((n) => [n, valueOf(n)])), valueOf: 'v2' });
  t.same(shown.labels, { toString: 'a', constructor: 'c' });
  t.same(shown.mount.sub_paths, { constructor: 'ctor' });
});

t.test('the real agent writes these keys as files, under their sub-paths, and into env files', async (t) => {
  const data = Object.fromEntries(names.map((n) => [n, valueOf(n)]));
  const { agent, home } = await startAgentWith(t, [
    { name: 'files', data, path: 'files', mount: { path: 'files', sub_paths: { constructor: 'ctor', valueOf: 'v/o' } } },
    { name: 'envs', data, path: 'envs', mount: { kind: 'env', path: 'envs' } },
  ], 'proto-keys');
  const dir = join(home, 'files');
  t.equal(readFileSync(join(dir, 'ctor', 'constructor'), 'utf8'), 'v-constructor', 'constructor under its own sub-path');
  t.equal(readFileSync(join(dir, 'v/o', 'valueOf'), 'utf8'), 'v-valueOf');
  for (const n of ['toString', 'hasOwnProperty', '__defineGetter__', 'isPrototypeOf']) t.equal(readFileSync(join(dir, n), 'utf8'), valueOf(n), `${n} at the top`);
  const version = readlinkSync(join(dir, '..data'));
  t.notOk(JSON.stringify(readdirSync(join(dir, version), { recursive: true })).includes('native code'), 'no inherited member became a path');
  t.equal(readFileSync(join(home, 'envs', 'envs.env'), 'utf8'), names.slice().sort().map((n) => `${n}='${valueOf(n)}'\n`).join(''));
  t.same({ ...agent.lastRendered!.env }, data, 'exec gets them too');
  t.same(agent.problems, []);
});
