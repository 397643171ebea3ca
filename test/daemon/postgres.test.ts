/**
 * lockboxd on PostgreSQL: the same API on the other store, and several replicas sharing one
 * database (create on one, read on another; races settled by row locks, advisory locks and keys;
 * one audit chain; notices from any replica).
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { connect, StringCodec } from 'nats';
import { createRequest, startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js';
import { startNats } from '../helpers/nats.js';
import { freshSchema } from '../helpers/postgres.js';
import { until } from '../helpers/wait.js';
import pg from 'pg';
import { PostgresStore } from '../../daemon/src/store/store-postgres.js';
import { unavailable } from '../../daemon/src/store/store-postgres-pool.js';
import { UnavailableError } from '../../shared/src/errors.js';

function sharedKeyFile(t: { teardown(fn: () => unknown): void }): string {
  const path = join(tempDir(t), 'master.key');
  writeFileSync(path, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
  return path;
}

t.test('the secrets API on PostgreSQL', async (t) => {
  const d = await startTestDaemon(t, { databaseUrl: await freshSchema(t) });
  t.ok(d.logs.some((l) => l.includes('"store":"postgres"')));
  const ready = await fetch(`${d.daemon.httpUrl}/readyz`);
  t.same(await ready.json(), { status: 'ready', nats: 'disabled', database: 'reachable' }, '/readyz asks the database');
  const created = await d.call('CreateSecret', createRequest('demo', { OPENAI_API_KEY: 'sk-pg-1' }, { template: 'openai', labels: { team: 'ml' } }));
  t.equal(created.version, 1);
  t.ok(created.change_seq > 0);
  await t.rejects(d.call('CreateSecret', createRequest('demo', { K: 'x' })), { code: status.ALREADY_EXISTS });
  const updated = await d.call('UpdateSecret', { name: 'demo', set: { OPENAI_API_KEY: Buffer.from('sk-pg-2') } });
  t.equal(updated.version, 2);
  await t.rejects(d.call('UpdateSecret', { name: 'demo', set: { OPENAI_API_KEY: Buffer.from('x') }, expected_version: 1 }), { code: status.ABORTED });
  t.equal((await d.call('GetSecret', { name: 'demo', include_values: true })).data.OPENAI_API_KEY.toString(), 'sk-pg-2');
  t.equal((await d.call('GetSecret', { name: 'demo', version: 1, include_values: true })).data.OPENAI_API_KEY.toString(), 'sk-pg-1');
  const restored = await d.call('RestoreVersion', { name: 'demo', version: 1 });
  t.equal(restored.version, 3);
  t.same((await d.call('ListVersions', { name: 'demo' })).versions.map((v: { version: number }) => v.version), [3, 2, 1]);

  for (const name of ['b', 'a', 'C', 'c']) await d.call('CreateSecret', createRequest(name, { K: name }));
  const page1 = await d.call('ListSecrets', { limit: 3 });
  const page2 = await d.call('ListSecrets', { limit: 3, cursor: page1.next_cursor });
  t.same([...page1.secrets, ...page2.secrets].map((s: { name: string }) => s.name), ['C', 'a', 'b', 'c', 'demo'], 'byte order, as with SQLite');
  t.same((await d.call('ListSecrets', { labels: ['team=ml'] })).secrets.map((s: { name: string }) => s.name), ['demo']);

  const batch = await d.call('BatchSecrets', { items: [{ create: { name: 'new', data: { K: Buffer.from('n') } } }, { create: { name: 'a', data: { K: Buffer.from('x') } } }, { delete: { name: 'missing' } }] });
  t.same(batch.results.map((r: { status: string }) => r.status), ['OK', 'ALREADY_EXISTS', 'NOT_FOUND']);
  const first = await d.call('CreateSecret', createRequest('idem', { K: 'v' }), { idempotencyKey: 'key-1' });
  t.same(await d.call('CreateSecret', createRequest('idem', { K: 'v' }), { idempotencyKey: 'key-1' }), first, 'a retry replays');
  await t.rejects(d.call('CreateSecret', createRequest('idem', { K: 'other' }), { idempotencyKey: 'key-1' }), { code: status.INVALID_ARGUMENT, details: /already used/ });

  await d.rpc('DeploymentsService', 'CreateDeployment', { deployment: { name: 'app', secrets: ['demo', 'a'] } });
  await t.rejects(d.rpc('DeploymentsService', 'CreateDeployment', { deployment: { name: 'app', secrets: ['demo'] } }), { code: status.ALREADY_EXISTS });
  await t.rejects(d.call('DeleteSecret', { name: 'demo' }), { code: status.FAILED_PRECONDITION, details: /mounted by deployment "app"/ });
  const reader = await d.rpc('TokensService', 'CreateToken', { role: 'reader' });
  t.equal((await d.call('GetSecret', { name: 'a' }, { token: reader.token })).name, 'a');
  await d.rpc('TokensService', 'RevokeToken', { id: reader.info.id });
  await t.rejects(d.call('GetSecret', { name: 'a' }, { token: reader.token }), { code: status.UNAUTHENTICATED });
  await d.keysCall('RotateMasterKey', {});
  t.equal((await d.call('GetSecret', { name: 'demo', include_values: true })).data.OPENAI_API_KEY.toString(), 'sk-pg-1', 'readable after a key rotation');
  const agent = await d.rpc('TokensService', 'CreateToken', { role: 'agent', deployment: 'app' });
  const fetched = await d.rpc('AgentService', 'FetchSecrets', {}, { token: agent.token });
  t.same(fetched.secrets.map((s: { name: string }) => s.name).sort(), ['a', 'demo']);
  const held = fetched.secrets.map((s: { name: string; secret: { uid: string; version: number } }) => ({ name: s.name, uid: s.secret.uid, version: s.secret.version }));
  await d.rpc('AgentService', 'ReportStatus', { agent_id: 'pod-1', applied: held, resync_interval_seconds: 60 }, { token: agent.token });
  await d.rpc('AgentService', 'ReportStatus', { agent_id: 'pod-1', applied: held, resync_interval_seconds: 60 }, { token: agent.token });
  t.match(await d.rpc('AgentService', 'SecretStatus', { name: 'demo' }), { summary: '1/1 agents on v3' }, 'rollout status');
  await d.rpc('DeploymentsService', 'UpdateDeployment', { deployment: { name: 'app', secrets: ['a'] }, expected_version: 1 });
  await d.rpc('AgentService', 'ReportStatus', { agent_id: 'pod-1', applied: held.filter((h: { name: string }) => h.name === 'a'), resync_interval_seconds: 60 }, { token: agent.token });
  t.match(await d.rpc('AgentService', 'SecretStatus', { name: 'demo' }), { total: 0 }, 'a name the agent no longer holds leaves its status');
  t.match(await d.rpc('AgentService', 'SecretStatus', { name: 'a' }), { current: 1, total: 1 }, 'what it still holds stays');
  await t.rejects(d.rpc('DeploymentsService', 'UpdateDeployment', { deployment: { name: 'app', secrets: ['a'] }, expected_version: 1 }), { code: status.ABORTED });
  t.same((await d.rpc('DeploymentsService', 'ListDeployments', {})).deployments.map((x: { name: string }) => x.name), ['app']);
  await d.rpc('DeploymentsService', 'DeleteDeployment', { name: 'app' });
  await t.rejects(d.rpc('DeploymentsService', 'GetDeployment', { name: 'app' }), { code: status.NOT_FOUND });
  t.equal(await d.daemon.store.pruneIdempotency(new Date(Date.now() + 1000).toISOString()), 1, 'idempotency keys expire');
  const verified = await d.rpc('AuditService', 'VerifyAudit', {});
  t.equal(verified.ok, true);
  t.ok(verified.checked > 15);

  await d.restart();
  t.equal((await d.call('GetSecret', { name: 'demo' })).version, 3, 'everything is there after a restart');
});

t.test('two replicas share one database', async (t) => {
  const url = await freshSchema(t);
  const masterKeyFile = sharedKeyFile(t);
  const quotas = { maxTenantWideSecrets: 5, maxResourceGroups: 50 };
  const a = await startTestDaemon(t, { databaseUrl: url, masterKeyFile, quotas });
  const b = await startTestDaemon(t, { databaseUrl: url, masterKeyFile, quotas });
  const token = a.adminToken; // B started after A: the bootstrap token already existed
  const onB = { token };

  await a.call('CreateSecret', createRequest('shared', { K: 'from-a' }));
  t.equal((await b.call('GetSecret', { name: 'shared', include_values: true }, onB)).data.K.toString(), 'from-a', 'written on A, read on B');

  // Updates racing on both replicas: every one applies, none is lost.
  const updates = await Promise.allSettled(
    Array.from({ length: 30 }, (_, i) => (i % 2 ? a : b).call('UpdateSecret', { name: 'shared', set: { [`K${i}`]: Buffer.from(String(i)) } }, i % 2 ? {} : onB)),
  );
  t.same(updates.filter((u) => u.status === 'rejected').map((u) => String((u as PromiseRejectedResult).reason)), [], 'no update failed');
  const after = await a.call('GetSecret', { name: 'shared' });
  t.equal(after.version, 31, '30 concurrent updates from two replicas, each applied once');
  t.equal(after.keys.length, 31);

  // The quota holds across replicas.
  const outcomes = await Promise.allSettled(
    Array.from({ length: 12 }, (_, i) => (i % 2 ? a : b).call('CreateSecret', { scope: { resource_group: '*' }, ...createRequest(`w${i}`, { K: 'x' }) }, i % 2 ? {} : onB)),
  );
  t.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 5, 'exactly the quota of tenant-wide secrets');
  t.ok(outcomes.filter((o) => o.status === 'rejected').every((o) => (o as PromiseRejectedResult).reason.code === status.RESOURCE_EXHAUSTED));

  // One idempotency key sent to both replicas at once: one secret, one answer.
  const [x, y] = await Promise.all([
    a.call('CreateSecret', createRequest('once', { K: 'v' }), { idempotencyKey: 'shared-key' }),
    b.call('CreateSecret', createRequest('once', { K: 'v' }), { idempotencyKey: 'shared-key', token }),
  ]);
  t.same(x, y, 'both replicas answer the first result');

  // Creates of one name racing on both replicas: one wins, the other is told it exists.
  const race = await Promise.allSettled([a.call('CreateSecret', createRequest('race', { K: '1' })), b.call('CreateSecret', createRequest('race', { K: '2' }), onB)]);
  t.equal(race.filter((r) => r.status === 'fulfilled').length, 1);
  t.equal((race.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason.code, status.ALREADY_EXISTS);

  // A rotates the master key in the keyring file both replicas read; B picks the new key up the
  // first time it meets a data key wrapped by it.
  const rotated = await a.keysCall('RotateMasterKey', {});
  await a.call('UpdateSecret', { name: 'race', set: { K: Buffer.from('after-rotation') } });
  t.equal((await b.call('GetSecret', { name: 'race', include_values: true }, onB)).data.K.toString(), 'after-rotation', 'B reads what A wrapped with the new key');
  await b.call('CreateSecret', createRequest('made-on-b', { K: 'b' }), onB);
  const keys = await b.keysCall('ListMasterKeys', {}, onB);
  t.equal(keys.keys.find((k: { active: boolean }) => k.active).id, rotated.active_key_id, 'and makes it its active key too');

  const token2 = await b.rpc('TokensService', 'CreateToken', { role: 'reader' }, onB);
  t.equal((await a.call('GetSecret', { name: 'shared' }, { token: token2.token })).name, 'shared', 'a token made on B works on A');
  for (const replica of [a, b]) t.equal((await replica.rpc('AuditService', 'VerifyAudit', {}, replica === a ? {} : onB)).ok, true, 'one unbroken audit chain');
  const entries = (await a.rpc('AuditService', 'ListAudit', { limit: 1000 })).entries as Array<{ seq: number }>;
  t.same(entries.map((e) => e.seq), entries.map((_, i) => i + 1), 'sequence numbers without gaps');
});

t.test('notices from either replica reach NATS', async (t) => {
  const nats = await startNats(t);
  const url = await freshSchema(t);
  const masterKeyFile = sharedKeyFile(t);
  const a = await startTestDaemon(t, { databaseUrl: url, masterKeyFile, natsUrl: nats.url });
  const b = await startTestDaemon(t, { databaseUrl: url, masterKeyFile, natsUrl: nats.url });
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const seen: Array<{ name: string; version: number }> = [];
  const sc = StringCodec();
  nc.subscribe('lockbox.v1.changes.>', { callback: (_e, m) => seen.push(JSON.parse(sc.decode(m.data))) });
  await nc.flush();
  await a.call('CreateSecret', createRequest('n1', { K: '1' }));
  await b.call('UpdateSecret', { name: 'n1', set: { K: Buffer.from('2') } }, { token: a.adminToken });
  // Changes on both replicas at once: both publishers drain the one outbox.
  await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).call('CreateSecret', createRequest(`m${i}`, { K: 'x' }), { token: a.adminToken })));
  await until('42 notices seen', () => seen.length >= 42);
  // A notice is published before its outbox row goes, so once the outbox is empty every notice
  // either replica will ever send has reached the server; one round trip on the subscriber's
  // connection then brings in any duplicate the server passed on before it.
  await until('the shared outbox drained', async () => (await a.daemon.store.pendingNotices(10)).length === 0);
  await nc.flush();
  t.ok(seen.some((n) => n.name === 'n1' && n.version === 1), 'the create on A');
  t.ok(seen.some((n) => n.name === 'n1' && n.version === 2), 'the update on B');
  t.equal(seen.length, 42, 'each notice sent once, though two publishers share the outbox');
  t.equal(new Set(seen.map((n) => `${n.name}@${n.version}`)).size, 42);
  t.same(await b.daemon.store.pendingNotices(10), [], 'the shared outbox is empty for both replicas');
});

t.test('notices a dead replica held are sent by another once the hold runs out', async (t) => {
  const nats = await startNats(t);
  const url = await freshSchema(t);
  const masterKeyFile = sharedKeyFile(t);
  const quiet = await startTestDaemon(t, { databaseUrl: url, masterKeyFile, natsUrl: '' }); // writes, never publishes
  const dead = await PostgresStore.open({ url, maxVersions: 10, auditHasher: () => 'x', noticeHoldMs: 500 });
  t.teardown(() => dead.close());
  await quiet.call('CreateSecret', createRequest('held', { K: '1' }));
  const claimed = await dead.claimNotices(10);
  t.same(claimed.map((n) => n.name), ['held'], 'the "dead" replica holds the notice');
  t.same(await dead.claimNotices(10), [], 'held: nobody else gets it');
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const arrived: number[] = [];
  const started = Date.now();
  nc.subscribe('lockbox.v1.changes.>', { callback: () => arrived.push(Date.now() - started) });
  await nc.flush();
  await startTestDaemon(t, { databaseUrl: url, masterKeyFile, natsUrl: nats.url });
  const deadline = Date.now() + 10_000;
  while (arrived.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.equal(arrived.length, 1, 'sent by the live replica after the hold ran out');
});

t.test('a lost database is UNAVAILABLE; dropped connections are replaced', async (t) => {
  const lost = unavailable(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
  t.type(lost, UnavailableError);
  t.match((lost as UnavailableError).message, /the database is unreachable; retry/);
  t.type(unavailable(Object.assign(new Error('terminating connection'), { code: '57P01' })), UnavailableError, 'admin shutdown');
  t.type(unavailable(Object.assign(new Error('x'), { code: '08006' })), UnavailableError, 'connection failure');
  t.type(unavailable(new Error('Connection terminated unexpectedly')), UnavailableError);
  const duplicate = Object.assign(new Error('duplicate key'), { code: '23505' });
  t.equal(unavailable(duplicate), duplicate, 'other errors pass unchanged');

  const url = new URL(await freshSchema(t));
  const app = `lockboxd_test_${process.pid}_${Date.now()}`;
  url.searchParams.set('application_name', app);
  const d = await startTestDaemon(t, { databaseUrl: url.toString() });
  await d.call('CreateSecret', createRequest('survives', { K: 'v' }));
  const admin = new pg.Client({ connectionString: url.toString().replace(app, 'lockbox_test_admin') });
  await admin.connect();
  const killed = await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [app]);
  await admin.end();
  t.ok(killed.rowCount! > 0, `the database dropped ${killed.rowCount} connections`);
  await new Promise((r) => setTimeout(r, 100));
  let value: string | undefined;
  for (let i = 0; i < 3 && value === undefined; i++) {
    try {
      value = (await d.call('GetSecret', { name: 'survives', include_values: true })).data.K.toString();
    } catch (error) {
      t.equal((error as { code: number }).code, status.UNAVAILABLE, 'a call caught on a dropped connection is UNAVAILABLE, never INTERNAL');
    }
  }
  t.equal(value, 'v', 'new connections serve the next calls');
});

t.test('an unreachable database stops the daemon with a clear error', async (t) => {
  const error = await startTestDaemon(t, { databaseUrl: 'postgres://nobody:hunter2@127.0.0.1:1/none' }).catch((e: Error) => e);
  t.match(String(error), /--database-url \(LOCKBOX_DATABASE_URL\): cannot use the database: .*ECONNREFUSED/);
  t.notMatch(String(error), /hunter2/, 'the password in the URL is not repeated');
});

t.test('a window of agent reports on PostgreSQL: one the database refuses is rolled back alone, the others are written', async (t) => {
  const d = await startTestDaemon(t, { databaseUrl: await freshSchema(t) });
  await reportWindow(t, d, (entry) => [entry('pod-a'), entry('pod-b\0'), entry('pod-c')]); // a NUL byte: PostgreSQL refuses it in text
});

t.test('the same on SQLite: one report that fails is rolled back alone, to its savepoint', async (t) => {
  const d = await startTestDaemon(t);
  // A report whose problems cannot be written (JSON.stringify throws on a BigInt) fails in the job.
  await reportWindow(t, d, (entry) => [entry('pod-a'), { ...entry('pod-b'), report: { ...entry('pod-b').report, problems: [1n] as never } }, entry('pod-c')]);
});

type ReportEntry = { report: { agentId: string; problems: unknown[] } & Record<string, unknown>; applied: Array<Record<string, unknown>> };

async function reportWindow(t: Test, d: TestDaemon, window: (entry: (agent: string) => ReportEntry) => ReportEntry[]) {
  const prefix = JSON.stringify(['default', 'team-a', 'app']) + '|';
  const entry = (agent: string) => {
    const agentId = prefix + agent;
    return {
      report: { agentId, tenant: 'default', deployment: 'app', deploymentResourceGroup: 'team-a', tokenId: 'x', lastSeenTime: new Date().toISOString(), resyncIntervalSeconds: 60, problems: [] },
      applied: [{ agentId, tenant: 'default', resourceGroup: 'team-a', name: 'openai', uid: 'u', version: 1, appliedTime: new Date().toISOString() }],
    };
  };
  await t.rejects(d.daemon.store.reportAgents(window(entry) as never), /1 of 3 agent reports were not written .*the others were/);
  const holding = await d.daemon.store.agentsHolding('default', 'team-a', 'openai');
  t.same(holding.map((h) => h.agentId), [prefix + 'pod-a', prefix + 'pod-c'], 'the good reports of the window were kept');
}
