import t from 'tap';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { status } from '@grpc/grpc-js';
import { createRequest, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { until } from '../helpers/wait.js';

const OK = 'OK';
const DENIED = 'PERMISSION_DENIED';
const codeName = (code: number) => Object.entries(status).find(([, v]) => v === code)?.[0];

async function outcome(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return OK;
  } catch (error) {
    return codeName((error as { code: number }).code) ?? String(error);
  }
}

async function token(d: TestDaemon, request: object, as?: string): Promise<string> {
  return (await d.rpc('TokensService', 'CreateToken', request, { token: as })).token;
}

const scope = (resource_group: string, tenant = 'default') => ({ tenant, resource_group });

t.test('role × scope × operation', async (t) => {
  const d = await startTestDaemon(t);
  await d.call('CreateSecret', { scope: scope(''), ...createRequest('m', { K: 'main' }) });
  await d.call('CreateSecret', { scope: scope('team-a'), ...createRequest('a', { K: 'a' }, { mount: { path: 'a' } }) });
  await d.call('CreateSecret', { scope: scope('team-a'), ...createRequest('a2', { K: 'a2' }) });
  await d.call('CreateSecret', { scope: scope('team-b'), ...createRequest('b', { K: 'b' }) });
  await d.call('CreateSecret', { scope: scope('*'), ...createRequest('w', { K: 'wide' }, { mount: { path: 'w' } }) });
  await d.rpc('DeploymentsService', 'CreateDeployment', { scope: scope('team-a'), deployment: { name: 'app', secrets: ['a', 'w'] } });
  await d.rpc('DeploymentsService', 'CreateDeployment', { scope: scope('team-b'), deployment: { name: 'other', secrets: ['b'] } });

  const tokens: Record<string, string> = {
    'tenant-admin': d.adminToken,
    'rg-admin(team-a)': await token(d, { role: 'rg-admin', resource_groups: ['team-a'] }),
    'reader(team-a)': await token(d, { role: 'reader', resource_groups: ['team-a'] }),
    'reader(tenant)': await token(d, { role: 'reader' }),
    'viewer(team-a)': await token(d, { role: 'viewer', resource_groups: ['team-a'] }),
    'agent(app)': await token(d, { role: 'agent', deployment: 'app', deployment_resource_group: 'team-a' }),
    'tenant-admin(acme)': await token(d, { role: 'tenant-admin', tenant: 'acme' }),
  };
  let n = 0;
  const ops: Record<string, (s: string, name: string, tok: string) => Promise<unknown>> = {
    get: (s, name, tok) => d.call('GetSecret', { scope: scope(s), name }, { token: tok }),
    reveal: (s, name, tok) => d.call('GetSecret', { scope: scope(s), name, include_values: true }, { token: tok }),
    create: (s, _name, tok) => d.call('CreateSecret', { scope: scope(s), ...createRequest(`new-${n++}`, { K: 'v' }) }, { token: tok }),
    update: (s, name, tok) => d.call('UpdateSecret', { scope: scope(s), name, description: `d${n++}` }, { token: tok }),
    list: (s, _name, tok) => d.call('ListSecrets', { scope: scope(s) }, { token: tok }),
    'deployment.get': (s, name, tok) => d.rpc('DeploymentsService', 'GetDeployment', { scope: scope(s), name }, { token: tok }),
    'deployment.list': (s, _name, tok) => d.rpc('DeploymentsService', 'ListDeployments', { scope: scope(s) }, { token: tok }),
    'deployment.write': (s, name, tok) => d.rpc('DeploymentsService', 'UpdateDeployment', { scope: scope(s), deployment: { name, secrets: name === 'app' ? ['a', 'w'] : ['b'] } }, { token: tok }),
  };
  // [token, operation, resource group, name, expected]
  const table: Array<[string, string, string, string, string]> = [
    ['tenant-admin', 'reveal', '', 'm', OK],
    ['tenant-admin', 'create', '*', '', OK],
    ['tenant-admin', 'update', 'team-b', 'b', OK],
    ['tenant-admin', 'deployment.write', 'team-b', 'other', OK],

    ['rg-admin(team-a)', 'reveal', 'team-a', 'a', OK],
    ['rg-admin(team-a)', 'create', 'team-a', '', OK],
    ['rg-admin(team-a)', 'update', 'team-a', 'a', OK],
    ['rg-admin(team-a)', 'list', 'team-a', '', OK],
    ['rg-admin(team-a)', 'reveal', '*', 'w', OK],
    ['rg-admin(team-a)', 'reveal', 'team-a', 'w', OK],
    ['rg-admin(team-a)', 'deployment.write', 'team-a', 'app', OK],
    ['rg-admin(team-a)', 'create', '*', '', DENIED],
    ['rg-admin(team-a)', 'update', '*', 'w', DENIED],
    ['rg-admin(team-a)', 'get', 'team-b', 'b', DENIED],
    ['rg-admin(team-a)', 'create', 'team-b', '', DENIED],
    ['rg-admin(team-a)', 'get', '', 'm', DENIED],
    ['rg-admin(team-a)', 'list', 'team-b', '', DENIED],
    ['rg-admin(team-a)', 'deployment.write', 'team-b', 'other', DENIED],

    ['reader(team-a)', 'reveal', 'team-a', 'a', OK],
    ['reader(team-a)', 'reveal', '*', 'w', OK],
    ['reader(team-a)', 'list', 'team-a', '', OK],
    ['reader(team-a)', 'deployment.get', 'team-a', 'app', OK],
    ['reader(team-a)', 'create', 'team-a', '', DENIED],
    ['reader(team-a)', 'update', 'team-a', 'a', DENIED],
    ['reader(team-a)', 'get', 'team-b', 'b', DENIED],
    ['reader(team-a)', 'get', '', 'm', DENIED],
    ['reader(team-a)', 'deployment.write', 'team-a', 'app', DENIED],

    ['reader(tenant)', 'reveal', '', 'm', OK],
    ['reader(tenant)', 'reveal', 'team-b', 'b', OK],
    ['reader(tenant)', 'create', '', '', DENIED],

    ['viewer(team-a)', 'get', 'team-a', 'a', OK],
    ['viewer(team-a)', 'list', 'team-a', '', OK],
    ['viewer(team-a)', 'reveal', 'team-a', 'a', DENIED],
    ['viewer(team-a)', 'update', 'team-a', 'a', DENIED],

    ['agent(app)', 'reveal', 'team-a', 'a', OK],
    ['agent(app)', 'reveal', '*', 'w', OK],
    ['agent(app)', 'reveal', 'team-a', 'w', OK],
    ['agent(app)', 'get', 'team-a', 'a', OK],
    ['agent(app)', 'deployment.get', 'team-a', 'app', OK],
    ['agent(app)', 'reveal', 'team-a', 'a2', DENIED],
    ['agent(app)', 'reveal', 'team-b', 'b', DENIED],
    ['agent(app)', 'reveal', '', 'm', DENIED],
    ['agent(app)', 'list', 'team-a', '', DENIED],
    ['agent(app)', 'create', 'team-a', '', DENIED],
    ['agent(app)', 'update', 'team-a', 'a', DENIED],
    ['agent(app)', 'deployment.get', 'team-b', 'other', DENIED],
    ['agent(app)', 'deployment.list', 'team-a', '', DENIED],

    ['tenant-admin(acme)', 'get', '', 'm', DENIED],
    ['tenant-admin(acme)', 'create', 'team-a', '', DENIED],
  ];
  for (const [who, op, group, name, expected] of table)
    t.equal(await outcome(ops[op](group, name, tokens[who])), expected, `${who} ${op} ${group === '' ? '(main)' : group}/${name}`);

  // A denial never says whether the secret exists: same answer for a missing name.
  t.equal(await outcome(ops.get('team-b', 'no-such-secret', tokens['rg-admin(team-a)'])), DENIED);
  t.equal(await outcome(ops.reveal('team-a', 'no-such-secret', tokens['agent(app)'])), DENIED);
  // The acme admin works in its own tenant.
  t.equal(await outcome(d.call('CreateSecret', { scope: scope('', 'acme'), ...createRequest('x', { K: 'v' }) }, { token: tokens['tenant-admin(acme)'] })), OK);
});

t.test('precedence and shadowing', async (t) => {
  const d = await startTestDaemon(t);
  const rgAdmin = await token(d, { role: 'rg-admin', resource_groups: ['team-a'] });
  await d.call('CreateSecret', { scope: scope('*'), ...createRequest('shared', { K: 'tenant-wide' }) });
  const wide = await d.call('GetSecret', { scope: scope('team-a'), name: 'shared', include_values: true });
  t.equal(wide.scope.resource_group, '*', 'a group without its own secret reads the tenant-wide one');
  t.equal(Buffer.from(wide.data.K).toString(), 'tenant-wide');

  await t.rejects(d.call('CreateSecret', { scope: scope('team-a'), ...createRequest('shared', { K: 'mine' }) }, { token: rgAdmin }), {
    code: status.PERMISSION_DENIED,
    details: /would shadow the tenant-wide secret/,
  });
  await d.call('CreateSecret', { scope: scope('team-a'), ...createRequest('shared', { K: 'group' }) });
  const own = await d.call('GetSecret', { scope: scope('team-a'), name: 'shared', include_values: true });
  t.equal(own.scope.resource_group, 'team-a', "the group's own secret wins");
  t.equal(Buffer.from(own.data.K).toString(), 'group');
  await t.rejects(d.call('UpdateSecret', { scope: scope('team-a'), name: 'shared', set: { K: Buffer.from('x') } }, { token: rgAdmin }), { code: status.PERMISSION_DENIED, details: /shadow/ });
  const batch = await d.call('BatchSecrets', { scope: scope('team-a'), items: [{ update: { name: 'shared', set: { K: Buffer.from('y') } } }] }, { token: rgAdmin });
  t.equal(batch.results[0].status, 'PERMISSION_DENIED', 'batches follow the same rule');
  const third = await d.call('GetSecret', { scope: scope('team-b'), name: 'shared', include_values: true });
  t.equal(Buffer.from(third.data.K).toString(), 'tenant-wide', 'other groups still see the tenant-wide one');
});

t.test('quotas hold under concurrent creates', async (t) => {
  const d = await startTestDaemon(t, { quotas: { maxTenantWideSecrets: 5, maxResourceGroups: 3 } });
  const wide = await Promise.all(Array.from({ length: 20 }, (_, i) => outcome(d.call('CreateSecret', { scope: scope('*'), ...createRequest(`w${i}`, { K: 'v' }) }))));
  t.equal(wide.filter((o) => o === OK).length, 5, 'exactly the limit of tenant-wide secrets');
  t.equal(wide.filter((o) => o === 'RESOURCE_EXHAUSTED').length, 15);
  const err = await d.call('CreateSecret', { scope: scope('*'), ...createRequest('w-late', { K: 'v' }) }).catch((e) => e);
  t.match(err.details, /has 5 tenant-wide secrets; the limit is 5/);

  const groups = await Promise.all(Array.from({ length: 10 }, (_, i) => outcome(d.call('CreateSecret', { scope: scope(`g${i}`), ...createRequest('s', { K: 'v' }) }))));
  t.equal(groups.filter((o) => o === OK).length, 3, 'exactly the limit of resource groups');
  const inUse = (await Promise.all(Array.from({ length: 10 }, (_, i) => outcome(d.call('GetSecret', { scope: scope(`g${i}`), name: 's' }))))).map((o, i) => (o === OK ? `g${i}` : '')).filter(Boolean);
  t.equal(inUse.length, 3);
  t.equal(await outcome(d.call('CreateSecret', { scope: scope(inUse[0]), ...createRequest('s2', { K: 'v' }) })), OK, 'a group in use takes more secrets');
  t.equal(await outcome(d.rpc('DeploymentsService', 'CreateDeployment', { scope: scope('g-new'), deployment: { name: 'dep' } })), 'RESOURCE_EXHAUSTED', 'deployments count toward groups');
  t.equal(await outcome(d.call('CreateSecret', { scope: scope(''), ...createRequest('main', { K: 'v' }) })), OK, 'the main-tenant scope is not a group');
  t.equal(await outcome(d.call('CreateSecret', { scope: scope('', 'other'), ...createRequest('main', { K: 'v' }) }, { token: await token(d, { role: 'tenant-admin', tenant: 'other' }) })), OK);
});

t.test('deployments: collisions, missing secrets, deleting what is mounted', async (t) => {
  const d = await startTestDaemon(t);
  const create = (name: string, data: Record<string, string>, mount: object) => d.call('CreateSecret', { scope: scope('team-a'), ...createRequest(name, data, { mount }) });
  await create('s1', { K: '1' }, { path: 'demo' });
  await create('s2', { K: '2' }, { path: 'demo' });
  await create('s3', { OTHER: '3' }, { path: 'demo' });
  await create('e1', { API_KEY: '1' }, { kind: 'env', path: 'env' });
  await create('e2', { API_KEY: '2' }, { kind: 'env', path: 'env2' });
  await create('dir', { x: '1' }, { path: 'demo/K' });
  const deploy = (name: string, secrets: string[]) => d.rpc('DeploymentsService', 'CreateDeployment', { scope: scope('team-a'), deployment: { name, secrets } });

  await t.rejects(deploy('clash', ['s1', 's2']), { code: status.FAILED_PRECONDITION, details: /file "demo\/K" from secrets "s1" and "s2"/ });
  await t.rejects(deploy('clash', ['e1', 'e2']), { code: status.FAILED_PRECONDITION, details: /environment variable "API_KEY" from secrets "e1" and "e2"/ });
  await t.rejects(deploy('clash', ['s1', 'dir']), { code: status.FAILED_PRECONDITION, details: /file "demo\/K" from secret "s1" is a directory for "demo\/K\/x"/ });
  const all = await deploy('clash', ['s1', 's2', 'e1', 'e2']).catch((e) => e);
  t.equal(all.details.split(';').length, 2, 'every collision is listed');
  await t.rejects(deploy('ghost', ['s1', 'nope', 'nada']), { code: status.NOT_FOUND, details: /secrets "nope", "nada" not found/ });
  await t.rejects(deploy('bad', ['s1', 's1']), { code: status.INVALID_ARGUMENT, details: /listed twice/ });
  await t.rejects(d.rpc('DeploymentsService', 'CreateDeployment', { scope: scope('*'), deployment: { name: 'x' } }), { code: status.INVALID_ARGUMENT, details: /not "\*"/ });

  const app = await deploy('app', ['s1', 's3', 'e1']);
  t.equal(app.version, 1);
  t.same(app.resolved, { s1: 'team-a', s3: 'team-a', e1: 'team-a' });
  await t.rejects(deploy('app', ['s1']), { code: status.ALREADY_EXISTS });

  // A change to a mounted secret that would clash is refused; one that fits is fine.
  await t.rejects(d.call('UpdateSecret', { scope: scope('team-a'), name: 's3', set: { K: Buffer.from('x') } }), { code: status.FAILED_PRECONDITION, details: /deployment "app" mounts this secret.*"demo\/K"/ });
  t.ok(await d.call('UpdateSecret', { scope: scope('team-a'), name: 's3', set: { MORE: Buffer.from('x') } }));

  await t.rejects(d.call('DeleteSecret', { scope: scope('team-a'), name: 's1' }), { code: status.FAILED_PRECONDITION, details: /mounted by deployment "app"/ });
  t.ok(await d.call('DeleteSecret', { scope: scope('team-a'), name: 's1', force: true }), 'force deletes anyway');
  const after = await d.rpc('DeploymentsService', 'GetDeployment', { scope: scope('team-a'), name: 'app' });
  t.equal(after.resolved.s1, '', 'the deployment shows the secret as missing');

  const updated = await d.rpc('DeploymentsService', 'UpdateDeployment', { scope: scope('team-a'), deployment: { name: 'app', secrets: ['s3', 'e1'] } });
  t.equal(updated.version, 2);
  await t.rejects(d.rpc('DeploymentsService', 'UpdateDeployment', { scope: scope('team-a'), deployment: { name: 'app', secrets: ['s3'] }, expected_version: 1 }), { code: status.ABORTED });
  await t.rejects(d.rpc('DeploymentsService', 'UpdateDeployment', { scope: scope('team-a'), deployment: { name: 'none', secrets: [] } }), { code: status.NOT_FOUND });
  const list = await d.rpc('DeploymentsService', 'ListDeployments', { scope: scope('team-a') });
  t.same(list.deployments.map((x: any) => x.name), ['app']);
  t.ok(await d.rpc('DeploymentsService', 'DeleteDeployment', { scope: scope('team-a'), name: 'app' }));
  await t.rejects(d.rpc('DeploymentsService', 'DeleteDeployment', { scope: scope('team-a'), name: 'app' }), { code: status.NOT_FOUND });
  t.ok(await d.call('DeleteSecret', { scope: scope('team-a'), name: 's3' }), 'no longer mounted');

  // Tenant-wide secrets mounted through the fallback are protected too.
  await d.call('CreateSecret', { scope: scope('*'), ...createRequest('wide', { W: '1' }) });
  await deploy('uses-wide', ['wide']);
  await t.rejects(d.call('DeleteSecret', { scope: scope('*'), name: 'wide' }), { code: status.FAILED_PRECONDITION, details: /"uses-wide" \(resource group "team-a"\)/ });
});

t.test('tokens: shown once, listed without the secret, expiry, revocation, who may mint', async (t) => {
  const d = await startTestDaemon(t);
  await d.call('CreateSecret', { scope: scope('team-a'), ...createRequest('a', { K: 'v' }) });
  const created = await d.rpc('TokensService', 'CreateToken', { role: 'reader', resource_groups: ['team-a'], description: 'ci', ttl_seconds: 1 });
  t.match(created.token, /^lbx_[0-9a-f]{16}_/);
  t.equal(created.info.role, 'reader');
  t.ok(created.info.expire_time);
  const list = await d.rpc('TokensService', 'ListTokens', {});
  t.notMatch(JSON.stringify(list), created.token.slice(21), 'lists never carry the secret part');
  t.ok(list.tokens.some((x: any) => x.id === created.info.id));
  t.equal(await outcome(d.call('GetSecret', { scope: scope('team-a'), name: 'a' }, { token: created.token })), OK);
  await sleep(1100);
  await t.rejects(d.call('GetSecret', { scope: scope('team-a'), name: 'a' }, { token: created.token }), { code: status.UNAUTHENTICATED, details: /expired/ });

  const rg = await d.rpc('TokensService', 'CreateToken', { role: 'rg-admin', resource_groups: ['team-a'] });
  const mine = await d.rpc('TokensService', 'CreateToken', { role: 'reader', resource_groups: ['team-a'] }, { token: rg.token });
  t.equal(mine.info.created_by, rg.info.id);
  await t.rejects(d.rpc('TokensService', 'CreateToken', { role: 'reader', resource_groups: ['team-b'] }, { token: rg.token }), { code: status.PERMISSION_DENIED, details: /does not administer "team-b"/ });
  await t.rejects(d.rpc('TokensService', 'CreateToken', { role: 'reader' }, { token: rg.token }), { code: status.PERMISSION_DENIED, details: /whole tenant/ });
  await t.rejects(d.rpc('TokensService', 'CreateToken', { role: 'tenant-admin' }, { token: rg.token }), { code: status.PERMISSION_DENIED });
  await t.rejects(d.rpc('TokensService', 'CreateToken', { role: 'reader' }, { token: mine.token }), { code: status.PERMISSION_DENIED, details: /cannot create tokens/ });
  await t.rejects(d.rpc('TokensService', 'CreateToken', { role: 'root' }), { code: status.INVALID_ARGUMENT, details: /role: "root"/ });
  await t.rejects(d.rpc('TokensService', 'CreateToken', { role: 'rg-admin' }), { code: status.INVALID_ARGUMENT, details: /at least one resource group/ });
  await t.rejects(d.rpc('TokensService', 'CreateToken', { role: 'agent', deployment: 'nope', deployment_resource_group: 'team-a' }), { code: status.NOT_FOUND });
  await t.rejects(d.rpc('TokensService', 'CreateToken', { role: 'reader', ttl_seconds: -1 }), { code: status.INVALID_ARGUMENT });
  const rgList = await d.rpc('TokensService', 'ListTokens', {}, { token: rg.token });
  t.same(rgList.tokens.map((x: any) => x.id).sort(), [rg.info.id, mine.info.id].sort(), 'an rg-admin sees itself and what it created');

  t.ok(await d.rpc('TokensService', 'RevokeToken', { id: mine.info.id }, { token: rg.token }));
  await t.rejects(d.call('ListSecrets', { scope: scope('team-a') }, { token: mine.token }), { code: status.UNAUTHENTICATED, details: /revoked/ }, 'revocation takes effect at once');
  await t.rejects(d.rpc('TokensService', 'RevokeToken', { id: 'ffffffffffffffff' }), { code: status.NOT_FOUND });
  await t.rejects(d.rpc('TokensService', 'RevokeToken', { id: 'xyz' }), { code: status.INVALID_ARGUMENT });
  const acme = await d.rpc('TokensService', 'CreateToken', { role: 'tenant-admin', tenant: 'acme' });
  await t.rejects(d.rpc('TokensService', 'RevokeToken', { id: rg.info.id }, { token: acme.token }), { code: status.NOT_FOUND }, "another tenant's token is not confirmed to exist");
  t.ok(await d.rpc('TokensService', 'RevokeToken', { id: acme.info.id }, { token: acme.token }), 'a token may revoke itself');
  const withRevoked = await d.rpc('TokensService', 'ListTokens', { include_revoked: true });
  t.ok(withRevoked.tokens.some((x: any) => x.id === mine.info.id && x.revoke_time));
});

t.test('async read audit: reads are buffered, written within the window and on stop', async (t) => {
  const d = await startTestDaemon(t, { auditReads: 'async' });
  await d.call('CreateSecret', createRequest('s', { K: 'v' }));
  // Five identical reads at once: the buffer writes them as one entry once its window closes,
  // without a stop.
  await Promise.all(Array.from({ length: 5 }, (_, i) => d.call('GetSecret', { name: 's', include_values: true }, { metadata: { 'x-request-id': `read-${i}` } })));
  let reads: any = {};
  await until('the buffered reads are written', async () => ((reads = await d.rpc('AuditService', 'ListAudit', { action: 'secret.read' })).entries ?? []).length > 0);
  t.equal(reads.entries.length, 1, 'five identical reads in one entry');
  t.match(reads.entries[0], { count: 5, request_id: /^read-[0-4]$/, version: 1, outcome: 'ok' });
  await d.call('GetSecret', { name: 's', include_values: true });
  await d.restart();
  reads = await d.rpc('AuditService', 'ListAudit', { action: 'secret.read' });
  t.equal(reads.entries.reduce((n: number, e: { count: number }) => n + e.count, 0), 6, 'a stop writes what is buffered');
  t.equal((await d.rpc('AuditService', 'VerifyAudit', {})).ok, true);
});

t.test('durable read audit: reads that arrive together share one entry per token and version', async (t) => {
  const d = await startTestDaemon(t);
  await d.call('CreateSecret', createRequest('s', { K: 'v' }));
  await d.call('UpdateSecret', { name: 's', set: { K: Buffer.from('v2') } });
  const reader = await token(d, { role: 'reader' });
  await Promise.all([
    ...Array.from({ length: 20 }, () => d.call('GetSecret', { name: 's', include_values: true })),
    ...Array.from({ length: 7 }, () => d.call('GetSecret', { name: 's', include_values: true }, { token: reader })),
    ...Array.from({ length: 3 }, () => d.call('GetSecret', { name: 's', version: 1, include_values: true })),
  ]);
  const { entries } = await d.rpc('AuditService', 'ListAudit', { action: 'secret.read' });
  const counted = (filter: (e: { role: string; version: number }) => boolean) =>
    entries.filter(filter).reduce((n: number, e: { count: number }) => n + e.count, 0);
  t.equal(counted((e) => e.role === 'tenant-admin' && e.version === 2), 20, 'every read is counted');
  t.equal(counted((e) => e.role === 'reader'), 7, 'per token');
  t.equal(counted((e) => e.version === 1), 3, 'per version');
  t.ok(entries.length < 30, `coalesced into ${entries.length} entries`);
  t.ok(entries.every((e: { count: number }) => e.count >= 1));
  t.equal((await d.rpc('AuditService', 'VerifyAudit', {})).ok, true, 'counts are covered by the hash chain');
  const db = new Database(join(d.dataDir, 'lockbox.db'));
  t.teardown(() => db.close());
  const counted2 = entries.find((e: { count: number }) => e.count > 1);
  db.prepare('UPDATE audit SET count = count + 1 WHERE seq = ?').run(counted2.seq);
  const edited = await d.rpc('AuditService', 'VerifyAudit', {});
  t.equal(edited.first_broken_seq, counted2.seq, 'an edited count breaks the chain');
});

t.test('audit: changes and value reads recorded, never values, tampering detected', async (t) => {
  const d = await startTestDaemon(t);
  const CANARY = 'AUDIT-CANARY-VALUE';
  await d.call('CreateSecret', createRequest('s', { K: CANARY }), { metadata: { 'x-request-id': 'req-1' } } as never);
  await d.call('GetSecret', { name: 's', include_values: true });
  await d.call('GetSecret', { name: 's' });
  await d.call('UpdateSecret', { name: 's', set: { K: Buffer.from(CANARY + '2') } });
  const viewer = await token(d, { role: 'viewer' });
  await d.call('GetSecret', { name: 's', include_values: true }, { token: viewer }).catch(() => {});
  await d.call('BatchSecrets', { items: [{ create: { name: 'b1', data: { K: Buffer.from('1') } } }, { delete: { name: 'missing' } }] });
  await d.call('DeleteSecret', { name: 's' });
  const rotated = await d.keysCall('RotateMasterKey', {});

  const { entries } = await d.rpc('AuditService', 'ListAudit', { limit: 100 });
  const actions = entries.map((e: any) => `${e.action}:${e.target}:${e.outcome}`);
  t.same(actions, [
    'secret.create:s:ok',
    'secret.read:s:ok',
    'secret.update:s:ok',
    'token.create:' + entries[3].target + ':ok',
    'secret.read:s:PERMISSION_DENIED',
    'secret.create:b1:ok',
    'secret.delete:missing:NOT_FOUND',
    'secret.delete:s:ok',
    `key.rotate:${rotated.active_key_id}:ok`,
  ]);
  t.equal(entries[0].request_id, 'req-1');
  t.equal(entries[1].version, 1);
  t.equal(entries[2].version, 2);
  t.equal(entries[4].role, 'viewer');
  t.notMatch(JSON.stringify(entries), CANARY, 'no value in the audit log');
  const filtered = await d.rpc('AuditService', 'ListAudit', { action: 'secret.read' });
  t.equal(filtered.entries.length, 2);
  const page = await d.rpc('AuditService', 'ListAudit', { limit: 3 });
  t.equal(page.next_after_seq, 3);
  await t.rejects(d.rpc('AuditService', 'ListAudit', {}, { token: viewer }), { code: status.PERMISSION_DENIED });
  await t.rejects(d.rpc('AuditService', 'VerifyAudit', {}, { token: await token(d, { role: 'tenant-admin', tenant: 'acme' }) }), { code: status.PERMISSION_DENIED });

  const ok = await d.rpc('AuditService', 'VerifyAudit', {});
  t.equal(ok.ok, true);
  t.ok(ok.checked >= 8);

  const db = new Database(join(d.dataDir, 'lockbox.db'));
  t.teardown(() => db.close());
  const original = db.prepare('SELECT outcome FROM audit WHERE seq = 3').get() as { outcome: string };
  db.prepare("UPDATE audit SET outcome = 'PERMISSION_DENIED' WHERE seq = 3").run();
  const edited = await d.rpc('AuditService', 'VerifyAudit', {});
  t.equal(edited.ok, false);
  t.equal(edited.first_broken_seq, 3);
  t.match(edited.problem, /edited/);
  db.prepare('UPDATE audit SET outcome = ? WHERE seq = 3').run(original.outcome);
  t.equal((await d.rpc('AuditService', 'VerifyAudit', {})).ok, true, 'restored, it verifies again');
  db.prepare('DELETE FROM audit WHERE seq = 5').run();
  const removed = await d.rpc('AuditService', 'VerifyAudit', {});
  t.equal(removed.ok, false);
  t.equal(removed.first_broken_seq, 6);
  t.match(removed.problem, /removed or changed/);
});

t.test('an agent token reads its own deployment only: not another in its group, not its name in another group', async (t) => {
  const d = await startTestDaemon(t);
  const at = (resource_group: string) => ({ tenant: 'default', resource_group });
  for (const group of ['team-a', 'team-b']) {
    await d.call('CreateSecret', { scope: at(group), ...createRequest('s', { K: 'v' }) });
    for (const name of ['app', 'other']) await d.rpc('DeploymentsService', 'CreateDeployment', { scope: at(group), deployment: { name, secrets: ['s'] } });
  }
  const agent = await d.rpc('TokensService', 'CreateToken', { role: 'agent', deployment: 'app', deployment_resource_group: 'team-a' });
  const get = (group: string, name: string) => d.rpc('DeploymentsService', 'GetDeployment', { scope: at(group), name }, { token: agent.token });
  t.match(await get('team-a', 'app'), { name: 'app' }, 'its own deployment');
  await t.rejects(get('team-a', 'other'), { code: status.PERMISSION_DENIED }, 'another deployment in its group');
  await t.rejects(get('team-b', 'app'), { code: status.PERMISSION_DENIED }, 'a deployment of the same name in another group');
});
