/**
 * The REST routes the web console uses (deployments, the clash check, rollout, versions and
 * restore, tokens, audit, whoami, templates) and how lockboxd serves the console at /ui/: over
 * real sockets, every answer checked against /openapi.json by the rest helper.
 */
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify from 'fastify';
import { registerConsole } from '../../daemon/src/api/console-static.js';
import { parseDaemonConfig } from '../../daemon/src/config.js';
import { templateKeys } from '../../shared/src/validate.js';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';
import { restClient } from '../helpers/rest.js';

const CANARY = 'sk-rest-console-CANARY-5d1e';
const main = { 'AI-Tenant-Scope': 'true' };

t.test('whoami: the scopes and abilities of each role', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);
  const admin = await rest('GET', '/v1/whoami');
  t.same(admin.json.scopes.map((s: { resource_group: string; write: boolean }) => [s.resource_group, s.write]), [['', true], ['*', true]]);
  t.same([admin.json.role, admin.json.any_resource_group, admin.json.may.verify_audit], ['tenant-admin', true, true]);
  const token = async (body: object) => (await rest('POST', '/v1/admin/tokens', { body })).json.token as string;
  const rgAdmin = await rest('GET', '/v1/whoami', { token: await token({ role: 'rg-admin', resource_groups: ['team-a'] }) });
  t.same(rgAdmin.json.scopes.map((s: { resource_group: string; write: boolean }) => [s.resource_group, s.write]), [['team-a', true], ['*', false]], 'its group, and tenant-wide to read');
  t.same([rgAdmin.json.any_resource_group, rgAdmin.json.may.audit, rgAdmin.json.may.tokens], [false, false, true]);
  const viewer = await rest('GET', '/v1/whoami', { token: await token({ role: 'viewer' }) });
  t.same([viewer.json.any_resource_group, viewer.json.may.reveal, viewer.json.may.write], [true, false, false], 'a viewer of the whole tenant: any group, no values');
  const agentToken = await (async () => {
    await rest('POST', '/v1/admin/deployments', { headers: main, body: { name: 'app' } });
    return token({ role: 'agent', deployment: 'app' });
  })();
  t.same((await rest('GET', '/v1/whoami', { token: agentToken })).json.scopes, [], 'an agent browses nothing');
  t.equal((await rest('GET', '/v1/whoami', { token: null })).status, 401);
  const templates = await rest('GET', '/v1/templates');
  t.same(templates.json.templates, templateKeys, 'the templates are the daemon\'s own');
  t.same(templates.json.registry_keys.required, ['server', 'username', 'password']);
});

t.test('deployments: create, the clash check, edit with compare-and-set, rollout, delete', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);
  for (const [name, mount] of [['a', { kind: 'env' }], ['b', { kind: 'env' }], ['c', { kind: 'file', path: 'c' }]] as const)
    t.equal((await rest('POST', '/v1/admin/secrets', { body: { name, data: { API_KEY: CANARY }, mount } })).status, 201);
  const check = await rest('POST', '/v1/admin/deployments:check', { headers: main, body: { secrets: ['a', 'b', 'nope'] } });
  t.same(check.json, { ok: false, resolved: { a: '', b: '', nope: '' }, missing: ['nope'], collisions: ['environment variable "API_KEY" from secrets "a" and "b"'] }, 'every problem, one line per clash');
  t.same((await rest('POST', '/v1/admin/deployments:check', { body: { secrets: ['a', 'c'] } })).json.ok, true);
  const refused = await rest('POST', '/v1/admin/deployments', { body: { name: 'app', secrets: ['a', 'b'] } });
  t.same([refused.status, refused.json.error.code], [409, 'MOUNT_COLLISION'], 'create refuses what the check reported');
  const created = await rest('POST', '/v1/admin/deployments', { body: { name: 'app', secrets: ['a'], description: '<b>x</b>' } });
  t.same([created.status, created.json.version, created.json.secrets], [201, 1, ['a']]);
  t.same((await rest('GET', '/v1/admin/deployments')).json.deployments.map((x: { name: string }) => x.name), ['app']);
  const edited = await rest('PATCH', '/v1/admin/deployments/app', { body: { secrets: ['a', 'c'] } });
  t.same([edited.json.version, edited.json.secrets, edited.json.description], [2, ['a', 'c'], '<b>x</b>'], 'PATCH keeps what it does not name');
  const stale = await rest('PATCH', '/v1/admin/deployments/app', { body: { description: 'late', expected_version: 1 } });
  t.equal(stale.status, 409, 'an edit from an old version is refused, not lost');
  const rollout = await rest('GET', '/v1/admin/deployments/app/rollout');
  t.same(rollout.json.secrets.map((s: { name: string; summary: string; agents: unknown[] }) => [s.name, s.summary, s.agents.length]), [['a', '0/0 on v1', 0], ['c', '0/0 on v1', 0]], 'no agent yet');
  await rest('DELETE', '/v1/admin/secrets/c?force=true');
  const missing = await rest('GET', '/v1/admin/deployments/app/rollout');
  t.same(missing.json.secrets[1], { name: 'c', resource_group: '', missing: true, current_version: 0, agents: [], current: 0, total: 0, summary: 'not found' }, 'a secret deleted with force shows as not found');
  t.equal((await rest('GET', '/v1/admin/deployments/nope/rollout')).status, 404);
  t.equal((await rest('DELETE', '/v1/admin/deployments/app')).status, 200);
  t.equal((await rest('GET', '/v1/admin/deployments/app')).status, 404);
  t.equal((await rest('GET', '/v1/admin/deployments', { headers: { 'AI-Tenant-Scope': 'true', 'AI-Resource-Group': '*' } })).status, 400, 'no deployments tenant-wide');
});

t.test('versions and restore', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);
  await rest('POST', '/v1/admin/secrets', { body: { name: 's', data: { K: CANARY } } });
  await rest('PATCH', '/v1/admin/secrets/s', { body: { data: { K: 'second', L: 'new' } } });
  const versions = await rest('GET', '/v1/admin/secrets/s/versions');
  t.same(versions.json.versions.map((v: { version: number; operation: string; keys: string[] }) => [v.version, v.operation, v.keys]), [[2, 'update', ['K', 'L']], [1, 'create', ['K']]], 'newest first');
  const restored = await rest('POST', '/v1/admin/secrets/s/versions/1/restore', { body: { expected_version: 2 } });
  t.same([restored.status, restored.json.version, restored.json.keys, restored.json.data], [200, 3, ['K'], undefined], 'a new version, no values in the answer');
  t.equal((await rest('GET', '/v1/admin/secrets/s?reveal=true')).json.data.K, CANARY, 'with the old data');
  t.equal((await rest('POST', '/v1/admin/secrets/s/versions/1/restore', { body: { expected_version: 2 } })).status, 409, 'compare-and-set');
  t.equal((await rest('POST', '/v1/admin/secrets/s/versions/9/restore', { body: {} })).status, 404);
  t.equal((await rest('POST', '/v1/admin/secrets/s/versions/0/restore', { body: {} })).status, 400);
  t.match((await rest('GET', '/v1/admin/secrets/s/rollout')).json, { name: 's', current_version: 3, agents: [], summary: '0/0 agents on v3' });
  t.notOk(d.logs.some((l) => l.includes(CANARY)), 'no value in the log');
});

t.test('tokens and audit', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);
  const created = await rest('POST', '/v1/admin/tokens', { body: { role: 'reader', description: 'ci', ttl_seconds: 3600 } });
  t.equal(created.status, 201);
  t.match(created.json.token, /^lbx_[0-9a-f]{16}_/);
  const listed = await rest('GET', '/v1/admin/tokens');
  t.ok(listed.json.tokens.some((x: { id: string; description: string }) => x.id === created.json.info.id && x.description === 'ci'));
  t.notOk(listed.text.includes(created.json.token), 'the list never holds a token');
  t.equal((await rest('GET', '/v1/admin/secrets', { token: created.json.token })).status, 200, 'the new token works');
  t.equal((await rest('DELETE', `/v1/admin/tokens/${created.json.info.id}`)).status, 200);
  t.equal((await rest('GET', '/v1/admin/secrets', { token: created.json.token })).status, 401, 'revoked at once');
  t.ok((await rest('GET', '/v1/admin/tokens?include_revoked=true')).json.tokens.some((x: { revoke_time: string }) => x.revoke_time));
  t.equal((await rest('DELETE', '/v1/admin/tokens/nothex')).status, 400);

  await rest('POST', '/v1/admin/secrets', { body: { name: 'audited', value: CANARY } });
  await rest('GET', '/v1/admin/secrets/audited?reveal=true');
  const reads = await rest('GET', '/v1/admin/audit?action=secret.read&target=audited');
  t.same(reads.json.entries.map((e: { action: string; target: string; outcome: string }) => [e.action, e.target, e.outcome]), [['secret.read', 'audited', 'ok']]);
  const future = new Date(Date.now() + 3600_000).toISOString();
  t.same((await rest('GET', `/v1/admin/audit?since=${future}`)).json.entries, [], 'nothing after a time to come');
  t.ok((await rest('GET', `/v1/admin/audit?until=${future}&limit=1000`)).json.entries.length >= 4, 'everything before it');
  const bad = await rest('GET', '/v1/admin/audit?since=yesterday');
  t.same([bad.status, bad.json.error.message], [400, 'since: "yesterday" is not an RFC 3339 time: give a date (2026-01-31) or a date and time with its zone (2026-01-31T12:00:00Z)']);
  t.same((await rest('POST', '/v1/admin/audit:verify')).json.ok, true);
  const reader = (await rest('POST', '/v1/admin/tokens', { body: { role: 'reader' } })).json.token;
  t.equal((await rest('GET', '/v1/admin/audit', { token: reader })).status, 403, 'readers do not read the audit log');
  t.equal((await rest('GET', '/v1/admin/audit?since=yesterday', { token: reader })).status, 403, 'a reader is refused before its filters are looked at');
});

t.test('the console at /ui/: the built page with the security headers; off with --ui off', async (t) => {
  const d = await startTestDaemon(t);
  const base = d.daemon.httpUrl!;
  const page = await fetch(`${base}/ui/`);
  t.equal(page.status, 200, 'served (npm run build made dist/console)');
  t.match(page.headers.get('content-security-policy'), /default-src 'none'; script-src 'self';.*frame-ancestors 'none'/);
  t.equal(page.headers.get('x-frame-options'), 'DENY');
  t.equal(page.headers.get('x-content-type-options'), 'nosniff');
  const script = /src="(\/ui\/assets\/[^"]+\.js)"/.exec(await page.text())![1];
  const asset = await fetch(base + script);
  t.same([asset.status, asset.headers.get('content-type')], [200, 'text/javascript; charset=utf-8']);
  const redirect = await fetch(`${base}/ui`, { redirect: 'manual' });
  t.same([redirect.status, redirect.headers.get('location')], [308, '/ui/']);
  const off = await startTestDaemon(t, { ui: false });
  t.equal((await fetch(`${off.daemon.httpUrl}/ui/`)).status, 404, 'no console with --ui off');
});

t.test('registerConsole serves only the files it read, whatever the path says', async (t) => {
  const dir = tempDir(t, 'lockbox-console-dist-');
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>console</title>');
  writeFileSync(join(dir, 'assets', 'app.js'), 'export {}');
  writeFileSync(join(dir, 'notes.txt'), CANARY); // a kind of file the console never has
  const app = Fastify();
  t.teardown(() => app.close());
  t.equal(registerConsole(app, dir), true);
  t.equal(registerConsole(Fastify(), join(dir, 'missing')), false, 'a console that was not built registers nothing');
  t.equal((await app.inject({ url: '/ui/' })).body, '<!doctype html><title>console</title>');
  t.equal((await app.inject({ url: '/ui/assets/app.js' })).statusCode, 200);
  for (const url of ['/ui/notes.txt', '/ui/../package.json', '/ui/%2e%2e/%2e%2e/package.json', '/ui/assets/..%2f..%2fnotes.txt', '/ui/assets/nope.js', '/ui/index.html/x']) {
    const answer = await app.inject({ url });
    t.equal(answer.statusCode, 404, `${url}: not served`);
    t.notOk(answer.body.includes(CANARY));
  }
});

t.test('--ui and LOCKBOX_UI', async (t) => {
  const saved = process.env.LOCKBOX_UI;
  t.teardown(() => (saved === undefined ? delete process.env.LOCKBOX_UI : (process.env.LOCKBOX_UI = saved)));
  delete process.env.LOCKBOX_UI;
  t.equal(parseDaemonConfig([]).ui, true, 'on by default');
  t.equal(parseDaemonConfig(['--ui', 'off']).ui, false);
  process.env.LOCKBOX_UI = 'off';
  t.equal(parseDaemonConfig([]).ui, false, 'the env var turns it off');
  t.equal(parseDaemonConfig(['--ui', 'on']).ui, true, 'the flag wins');
  t.throws(() => parseDaemonConfig(['--ui', 'maybe']), /--ui/, 'anything else is refused naming the flag');
});
