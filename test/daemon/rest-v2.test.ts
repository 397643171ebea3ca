/** The /v2 REST API (scope in AI-Resource-Group / AI-Tenant-Scope headers, base64 values), over a real socket. */
import t from 'tap';
import { startTestDaemon } from '../helpers/daemon.js';
import { b64, restClient } from '../helpers/rest.js';

const group = (g: string) => ({ 'AI-Resource-Group': g });
const tenantWide = { 'AI-Tenant-Scope': 'true', 'AI-Resource-Group': '*' };
const mainTenant = { 'AI-Tenant-Scope': 'true' };

t.test('create, list, get, patch, delete in a resource group', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);

  // curl -X POST /v2/admin/secrets -H 'AI-Resource-Group: team-a' -d '{"name": "hf", "data": {"HF_TOKEN": "<base64>"}}'
  const created = await rest('POST', '/v2/admin/secrets', { body: { name: 'hf', data: { HF_TOKEN: b64('hf-canary-1') }, labels: [{ key: 'ext.ai.sap.com/team', value: 'ml' }] }, headers: group('team-a') });
  t.equal(created.status, 200);
  t.same(created.json, { message: 'secret has been created', name: 'hf' });
  const viaGrpc = await d.call('GetSecret', { scope: { resource_group: 'team-a' }, name: 'hf', include_values: true });
  t.equal(viaGrpc.data.HF_TOKEN.toString(), 'hf-canary-1', 'stored decoded, in the scope the header named');
  t.same(viaGrpc.labels, { 'ext.ai.sap.com/team': 'ml' });

  for (const name of ['a1', 'a2', 'a3']) await rest('POST', '/v2/admin/secrets', { body: { name, data: { K: b64(name) } }, headers: group('team-a') });
  const all = await rest('GET', '/v2/admin/secrets', { headers: group('team-a') });
  t.equal(all.json.count, 4);
  t.same(all.json.resources.map((r: { name: string }) => r.name), ['a1', 'a2', 'a3', 'hf']);
  t.match(all.json.resources[3], { name: 'hf', createdAt: String, labels: [{ key: 'ext.ai.sap.com/team', value: 'ml' }] });
  const page = await rest('GET', '/v2/admin/secrets?$top=2&$skip=1&$count=true', { headers: group('team-a') });
  t.equal(page.json.count, 4, 'count is the whole scope');
  t.same(page.json.resources.map((r: { name: string }) => r.name), ['a2', 'a3']);
  t.equal((await rest('GET', '/v2/admin/secrets', { headers: group('team-b') })).json.count, 0, 'another group sees none of them');
  t.notMatch(all.text + page.text, /canary/);

  const got = await rest('GET', '/v2/admin/secrets/hf', { headers: group('team-a') });
  t.equal(got.status, 200);
  t.match(got.json, { name: 'hf', createdAt: String });
  t.notOk('resourceGroupSecretReplicationStatus' in got.json, 'only tenant-wide secrets report replication');
  t.notMatch(got.text, /canary|aGYtY2FuYXJ5/, 'no value, plain or base64');

  const patched = await rest('PATCH', '/v2/admin/secrets/hf', { body: { data: { HF_TOKEN: b64('hf-canary-2'), EXTRA: b64('e') } }, headers: group('team-a') });
  t.same(patched.json, { message: 'secret has been modified', name: 'hf' });
  const after = await d.call('GetSecret', { scope: { resource_group: 'team-a' }, name: 'hf', include_values: true });
  t.equal(after.version, 2);
  t.same(Object.keys(after.data).sort(), ['EXTRA', 'HF_TOKEN']);
  const replaced = await rest('PATCH', '/v2/admin/secrets/hf', { body: { data: { HF_TOKEN: b64('hf-canary-3') }, labels: [{ key: 'tier', value: 'gold' }] }, headers: group('team-a') });
  t.equal(replaced.status, 200);
  const third = await d.call('GetSecret', { scope: { resource_group: 'team-a' }, name: 'hf' });
  t.same(third.keys, ['HF_TOKEN'], 'PATCH data replaces the whole data');
  t.same(third.labels, { tier: 'gold' }, 'labels, when given, replace the labels');

  const deleted = await rest('DELETE', '/v2/admin/secrets/hf', { headers: group('team-a') });
  t.same(deleted.json, { message: 'secret has been deleted', name: 'hf' });
  const missing = await rest('GET', '/v2/admin/secrets/hf', { headers: group('team-a') });
  t.equal(missing.status, 404);
  t.equal(missing.json.error.code, 'SECRET_NOT_FOUND');
  t.equal((await rest('DELETE', '/v2/admin/secrets/hf', { headers: group('team-a') })).status, 404);
  t.equal((await rest('PATCH', '/v2/admin/secrets/hf', { body: { data: { K: b64('x') } }, headers: group('team-a') })).status, 404);
  const again = await rest('POST', '/v2/admin/secrets', { body: { name: 'a1', data: { K: b64('x') } }, headers: group('team-a') });
  t.equal(again.status, 409);
});

t.test('scope headers: main tenant, tenant-wide, and what is refused', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);
  t.equal((await rest('POST', '/v2/admin/secrets', { body: { name: 'm', data: { K: b64('main') } }, headers: mainTenant })).status, 200);
  t.equal((await d.call('GetSecret', { scope: { resource_group: '' }, name: 'm' })).name, 'm', 'AI-Tenant-Scope: true is the main-tenant scope');
  t.equal((await rest('POST', '/v2/admin/secrets', { body: { name: 'w', data: { K: b64('wide') } }, headers: tenantWide })).status, 200);
  t.equal((await d.call('GetSecret', { scope: { resource_group: '*' }, name: 'w' })).name, 'w', 'with AI-Resource-Group: * it is tenant-wide');

  const cases: Array<[Record<string, string>, RegExp]> = [
    [{}, /^AI-Resource-Group: is required/],
    [{ 'AI-Resource-Group': '*' }, /^AI-Resource-Group: "\*" \(tenant-wide\) needs AI-Tenant-Scope: true/],
    [{ 'AI-Tenant-Scope': 'yes' }, /^AI-Tenant-Scope: must be true or false/],
    [{ 'AI-Tenant-Scope': 'true', 'AI-Resource-Group': 'team-a' }, /^AI-Resource-Group: with AI-Tenant-Scope: true/],
    [{ 'AI-Resource-Group': 'Bad_Group' }, /resource_group|resource group/],
  ];
  for (const [headers, message] of cases) {
    const answer = await rest('POST', '/v2/admin/secrets', { body: { name: 'x', data: { K: b64('x') } }, headers });
    t.equal(answer.status, 400, JSON.stringify(headers));
    t.match(answer.json.error.message, message);
  }
  const listNoScope = await rest('GET', '/v2/admin/secrets');
  t.equal(listNoScope.status, 400);
});

t.test('bad base64 is refused naming the key; line breaks and spaces are not bad (RFC 2045)', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);
  for (const bad of ['not base64!', 'YWJj=', 'YWJjZA', '-_-_', 'YW\u00a0Jj', 'YWJj\v', 'YW.Jj']) {
    const answer = await rest('POST', '/v2/admin/secrets', { body: { name: 'x', data: { GOOD: b64('ok'), BAD_KEY: bad } }, headers: mainTenant });
    t.equal(answer.status, 400, bad);
    t.match(answer.json.error, { code: 'INVALID_BASE64', message: 'data["BAD_KEY"]: is not valid base64' });
    t.notMatch(answer.text, bad.replace(/[!*+?^$()|[\]\\]/g, '\\$&'), 'the value is not echoed');
  }
  const patch = await rest('PATCH', '/v2/admin/secrets/x', { body: { data: { K: '%%%' } }, headers: mainTenant });
  t.equal(patch.json.error.code, 'INVALID_BASE64');
  const empty = await rest('POST', '/v2/admin/secrets', { body: { name: 'e', data: { K: '' } }, headers: mainTenant });
  t.equal(empty.status, 200, 'an empty value is valid base64');

  // What `base64 FILE` prints (76 columns, a final newline), Windows line ends, and spaces: the same bytes.
  const value = Buffer.from(Array.from({ length: 200 }, (_, i) => i));
  const wrapped = value.toString('base64').replace(/.{76}/g, '$&\n') + '\n';
  const variants = { UNIX: wrapped, WINDOWS: wrapped.replace(/\n/g, '\r\n'), SPACED: ` ${value.toString('base64').replace(/.{4}/g, '$& ')}\t`, SHORT: 'YW Jj' };
  t.equal((await rest('POST', '/v2/admin/secrets', { body: { name: 'wrapped', data: variants }, headers: mainTenant })).status, 200);
  const stored = await d.call('GetSecret', { name: 'wrapped', include_values: true });
  for (const key of ['UNIX', 'WINDOWS', 'SPACED']) t.ok(Buffer.from(stored.data[key]).equals(value), `${key}: decoded to the exact bytes`);
  t.equal(Buffer.from(stored.data.SHORT).toString(), 'abc');
  const patched = await rest('PATCH', '/v2/admin/secrets/wrapped', { body: { data: { UNIX: 'aGVs\nbG8=' } }, headers: mainTenant });
  t.equal(patched.status, 200, 'PATCH takes wrapped base64 too');
  t.equal(Buffer.from((await d.call('GetSecret', { name: 'wrapped', include_values: true })).data.UNIX).toString(), 'hello');
});

t.test('a tenant-wide secret reports replication per resource group', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);
  await rest('POST', '/v2/admin/secrets', { body: { name: 'shared', data: { OPENAI_API_KEY: b64('sk-wide') } }, headers: tenantWide });
  for (const g of ['team-a', 'team-b', 'team-c'])
    await d.rpc('DeploymentsService', 'CreateDeployment', { scope: { resource_group: g }, deployment: { name: 'app', secrets: ['shared'] } });
  // team-c shadows it with a secret of its own: its deployment does not use the tenant-wide one.
  await rest('POST', '/v2/admin/secrets', { body: { name: 'shared', data: { OPENAI_API_KEY: b64('sk-own') } }, headers: group('team-c') });

  const agentToken = async (g: string) => (await d.rpc('TokensService', 'CreateToken', { role: 'agent', deployment: 'app', deployment_resource_group: g })).token;
  const head = await d.call('GetSecret', { scope: { resource_group: '*' }, name: 'shared' });
  const report = (token: string, id: string, version: number) =>
    d.rpc('AgentService', 'ReportStatus', { agent_id: id, applied: [{ name: 'shared', resource_group: '*', uid: head.uid, version }], resync_interval_seconds: 60 }, { token });

  const before = await rest('GET', '/v2/admin/secrets/shared', { headers: tenantWide });
  t.same(before.json.resourceGroupSecretReplicationStatus, { 'team-a': false, 'team-b': false }, 'no agent has reported yet');

  const a = await agentToken('team-a');
  const b = await agentToken('team-b');
  await report(a, 'pod-a1', 1);
  await report(a, 'pod-a2', 1);
  await report(b, 'pod-b1', 1);
  t.same((await rest('GET', '/v2/admin/secrets/shared', { headers: tenantWide })).json.resourceGroupSecretReplicationStatus, { 'team-a': true, 'team-b': true });

  await rest('PATCH', '/v2/admin/secrets/shared', { body: { data: { OPENAI_API_KEY: b64('sk-wide-2') } }, headers: tenantWide });
  await report(a, 'pod-a1', 2);
  const mid = await rest('GET', '/v2/admin/secrets/shared', { headers: tenantWide });
  t.same(mid.json.resourceGroupSecretReplicationStatus, { 'team-a': false, 'team-b': false }, 'pod-a2 and pod-b1 still hold v1');
  await report(a, 'pod-a2', 2);
  await report(b, 'pod-b1', 2);
  const done = await rest('GET', '/v2/admin/secrets/shared', { headers: tenantWide });
  t.same(done.json.resourceGroupSecretReplicationStatus, { 'team-a': true, 'team-b': true });
  t.notMatch(done.text, /sk-/);
});

t.test('a resource group\'s list holds the tenant-wide secrets visible there, marked; a shadowed one once', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);
  for (const name of ['wide-a', 'shadowed', 'wide-z']) await rest('POST', '/v2/admin/secrets', { body: { name, data: { K: b64(`wide-canary-${name}`) } }, headers: tenantWide });
  for (const name of ['own', 'shadowed']) await rest('POST', '/v2/admin/secrets', { body: { name, data: { K: b64(`own-canary-${name}`) } }, headers: group('team-a') });
  await rest('POST', '/v2/admin/secrets', { body: { name: 'elsewhere', data: { K: b64('x') } }, headers: group('team-b') });

  const list = await rest('GET', '/v2/admin/secrets', { headers: group('team-a') });
  t.equal(list.status, 200);
  t.equal(list.json.count, 4, 'own, shadowed (once) and the two other tenant-wide secrets');
  t.same(
    list.json.resources.map((r: { name: string; scope: string }) => [r.name, r.scope]),
    [['own', 'resource-group'], ['shadowed', 'resource-group'], ['wide-a', 'tenant-wide'], ['wide-z', 'tenant-wide']],
    'by name; the group\'s own secret wins over the tenant-wide one it shadows',
  );
  for (const r of list.json.resources as Array<{ name: string }>) {
    const got = await rest('GET', `/v2/admin/secrets/${r.name}`, { headers: group('team-a') });
    t.equal(got.status, 200, `${r.name}: what the list shows, a GET in the group finds`);
  }
  t.notMatch(list.text, /canary/);

  const page = await rest('GET', '/v2/admin/secrets?$top=2&$skip=1', { headers: group('team-a') });
  t.equal(page.json.count, 4, 'count is the merged list');
  t.same(page.json.resources.map((r: { name: string }) => r.name), ['shadowed', 'wide-a'], 'paging runs over the merged list');

  const wideList = await rest('GET', '/v2/admin/secrets', { headers: tenantWide });
  t.same(
    wideList.json.resources.map((r: { name: string; scope: string }) => [r.name, r.scope]),
    [['shadowed', 'tenant-wide'], ['wide-a', 'tenant-wide'], ['wide-z', 'tenant-wide']],
    'the tenant-wide scope lists only its own',
  );
  const main = await rest('GET', '/v2/admin/secrets', { headers: mainTenant });
  t.same(main.json.resources.map((r: { name: string; scope: string }) => r.scope), ['tenant-wide', 'tenant-wide', 'tenant-wide'], 'the main-tenant scope sees the tenant-wide ones too, as a GET there does');

  // A reader of team-a sees the same list; one of team-b is refused before anything is listed.
  const readerA = (await d.rpc('TokensService', 'CreateToken', { role: 'reader', resource_groups: ['team-a'] })).token;
  t.same((await rest('GET', '/v2/admin/secrets', { token: readerA, headers: group('team-a') })).json, list.json);
  const readerB = (await d.rpc('TokensService', 'CreateToken', { role: 'reader', resource_groups: ['team-b'] })).token;
  t.equal((await rest('GET', '/v2/admin/secrets', { token: readerB, headers: group('team-a') })).status, 403);
});
