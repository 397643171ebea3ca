/**
 * Delivery on AgentService.Session (daemon/src/delivery/): pushes at once without NATS, resync by
 * version (an unchanged one decrypts nothing and audits nothing), a change announced twice sent
 * once, ACK/NACK as the rollout report, and what an agent token may report or read (issue 11.6,
 * 11.7). Raw sessions, so each message the daemon sends is seen.
 */
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { createRequest, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { session as rawSession } from '../helpers/session.js';
import { until } from '../helpers/wait.js';

const scope = { tenant: 'default', resource_group: 'team-a' };
const wide = { tenant: 'default', resource_group: '*' };
const CANARY = 'sk-canary-4e1d-delivery';

async function setup(t: { teardown(fn: () => unknown): void }, overrides = {}) {
  const d = await startTestDaemon(t, overrides);
  await d.call('CreateSecret', { scope, ...createRequest('openai', { OPENAI_API_KEY: CANARY }, { template: 'openai', mount: { path: 'demo' } }) });
  await d.call('CreateSecret', { scope: wide, ...createRequest('hf', { HF_TOKEN: 'hf-wide' }, { mount: { path: 'hf' } }) });
  await d.call('CreateSecret', { scope, ...createRequest('other', { X: 'x' }, { mount: { path: 'other' } }) });
  await d.rpc('DeploymentsService', 'CreateDeployment', { scope, deployment: { name: 'app', secrets: ['openai', 'hf'] } });
  const created = await d.rpc('TokensService', 'CreateToken', { role: 'agent', deployment: 'app', deployment_resource_group: 'team-a' });
  return { d, token: created.token as string };
}

const session = (d: TestDaemon, token: string) => rawSession(t, d, token);

const deliveries = async (d: TestDaemon) => {
  await d.daemon.secrets.flushReads();
  const { entries } = await d.rpc('AuditService', 'ListAudit', { action: 'secret.deliver' });
  return entries.reduce((n: number, e: { count: number }) => n + (e.count || 1), 0);
};

t.test('resync by version: the first gets everything, an unchanged one decrypts nothing and audits nothing; a commit is pushed at once without NATS', async (t) => {
  const { d, token } = await setup(t); // natsUrl none: only the in-process change feed can push
  const s = session(d, token);
  s.call.write({ id: 1, resync: { agent_id: 'pod-1', held: [], resync_interval_seconds: 60 } });
  const first = (await s.next((r) => Number(r.id) === 1)).push;
  t.same(first.deployment.secrets, ['openai', 'hf']);
  t.same(first.secrets.map((p: any) => p.name).sort(), ['hf', 'openai']);
  const openai = first.secrets.find((p: any) => p.name === 'openai');
  t.equal(Buffer.from(openai.secret.data.OPENAI_API_KEY).toString(), CANARY);
  t.equal(first.secrets.find((p: any) => p.name === 'hf').secret.scope.resource_group, '*', 'the tenant-wide one, as the deployment resolves it');
  t.equal(await deliveries(d), 2, 'each value delivered is audited');
  const held = first.secrets.map((p: any) => ({ name: p.name, uid: p.secret.uid, version: p.secret.version, digest: p.digest }));

  let opened = 0;
  const open = d.daemon.secrets.openRecord.bind(d.daemon.secrets);
  d.daemon.secrets.openRecord = (record) => (opened++, open(record));
  s.call.write({ id: 2, resync: { agent_id: 'pod-1', held, resync_interval_seconds: 60 } });
  const unchanged = (await s.next((r) => Number(r.id) === 2)).push;
  t.same(unchanged.secrets ?? [], [], 'nothing differs, nothing sent');
  t.equal(opened, 0, 'nothing decrypted');
  t.equal(await deliveries(d), 2, 'no audit entry');

  // A digest that does not match what the daemon has (bytes the agent holds are not the version's) is sent again.
  s.call.write({ id: 3, resync: { agent_id: 'pod-1', held: held.map((h: any) => (h.name === 'hf' ? { ...h, digest: 'forged' } : h)), resync_interval_seconds: 60 } });
  t.same((await s.next((r) => Number(r.id) === 3)).push.secrets.map((p: any) => p.name), ['hf']);

  const before = s.responses.length;
  await d.call('UpdateSecret', { scope, name: 'openai', set: { OPENAI_API_KEY: Buffer.from('sk-2') } });
  const pushed = (await s.next((r) => r.push && Number(r.id) === 0, before)).push;
  t.same(pushed.secrets.map((p: any) => [p.name, p.secret.version]), [['openai', 2]], 'only what changed');
  t.ok(pushed.nonce, 'with a nonce to acknowledge');
  t.notOk(d.logs.join('\n').includes(CANARY), 'no value in any log line');
});

t.test('a change announced twice (own commit, then its notice) is pushed once; a deployment change pushes the new list', async (t) => {
  const { d, token } = await setup(t);
  const s = session(d, token);
  s.call.write({ id: 1, resync: { agent_id: 'pod-1', held: [], resync_interval_seconds: 60 } });
  await s.next((r) => Number(r.id) === 1);
  const before = s.responses.length;
  await d.call('UpdateSecret', { scope, name: 'openai', set: { OPENAI_API_KEY: Buffer.from('sk-2') } });
  await s.next((r) => r.push, before);
  d.daemon.feed.announce({ kind: 'secret', tenant: 'default', resourceGroup: 'team-a', name: 'openai', version: 2, origin: 'replica' });
  d.daemon.feed.announce({ kind: 'all', origin: 'replica' });
  await d.rpc('DeploymentsService', 'UpdateDeployment', { scope, deployment: { name: 'app', secrets: ['openai'] } }); // a later push marks the end
  const detached = (await s.next((r) => r.push?.deployment, before)).push;
  t.same(detached.removed, ['hf']);
  t.same(detached.deployment.secrets, ['openai']);
  const pushesOfV2 = s.responses.slice(before).filter((r) => r.push?.secrets?.some((p: any) => p.name === 'openai' && Number(p.secret.version) === 2));
  t.equal(pushesOfV2.length, 1, 'version 2 went down the stream once');
});

t.test('one rotation to several sessions: agents of one deployment share one push (one nonce, one audit entry per version counting both); another deployment gets nothing', async (t) => {
  const { d, token } = await setup(t);
  await d.rpc('DeploymentsService', 'CreateDeployment', { scope, deployment: { name: 'batch', secrets: ['other'] } });
  const otherToken = (await d.rpc('TokensService', 'CreateToken', { role: 'agent', deployment: 'batch', deployment_resource_group: 'team-a' })).token as string;
  const pods = [session(d, token), session(d, token)];
  const elsewhere = session(d, otherToken);
  for (const [i, s] of [...pods, elsewhere].entries()) {
    s.call.write({ id: 1, resync: { agent_id: `pod-${i}`, held: [], resync_interval_seconds: 60 } });
    await s.next((r) => Number(r.id) === 1);
  }
  const marks = [...pods, elsewhere].map((s) => s.responses.length);
  const before = await deliveries(d);
  let opened = 0;
  const open = d.daemon.secrets.openRecord.bind(d.daemon.secrets);
  d.daemon.secrets.openRecord = (record) => (opened++, open(record));
  await d.call('UpdateSecret', { scope, name: 'openai', set: { OPENAI_API_KEY: Buffer.from(`${CANARY}-2`) } });
  const pushes = await Promise.all(pods.map((s, i) => s.next((r) => r.push?.secrets?.length, marks[i]).then((r) => r.push)));
  for (const push of pushes) {
    t.same(push.secrets.map((p: any) => [p.name, Number(p.secret.version)]), [['openai', 2]]);
    t.equal(Buffer.from(push.secrets[0].secret.data.OPENAI_API_KEY).toString(), `${CANARY}-2`, 'the new value');
  }
  t.equal(pushes[0].nonce, pushes[1].nonce, 'one push built for both sessions');
  t.equal(opened, 1, 'decrypted once');
  t.equal((await deliveries(d)) - before, 2, 'each session\'s delivery counted');
  const { entries } = await d.rpc('AuditService', 'ListAudit', { action: 'secret.deliver', target: 'openai' });
  t.same(entries.filter((e: any) => Number(e.version) === 2).map((e: any) => e.count || 1).reduce((a: number, b: number) => a + b, 0), 2, 'audited as version 2 under the agents\' token');
  // A change only the other deployment mounts marks the end: the first was never sent there.
  await d.call('UpdateSecret', { scope, name: 'other', set: { X: Buffer.from('x2') } });
  const theirs = (await elsewhere.next((r) => r.push?.secrets?.length, marks[2])).push;
  t.same(theirs.secrets.map((p: any) => p.name), ['other']);
  t.notOk(elsewhere.responses.slice(marks[2]).some((r) => r.push?.secrets?.some((p: any) => p.name === 'openai')), 'the other deployment got nothing of openai');
  t.notOk([...pods].some((s, i) => s.responses.slice(marks[i]).some((r) => r.push?.secrets?.some((p: any) => p.name === 'other'))), 'nor the first of other');
});

t.test('ACK and NACK are the rollout report: version held, applied time, NACK reason, scope from the token', async (t) => {
  const { d, token } = await setup(t);
  const s = session(d, token);
  s.call.write({ id: 1, resync: { agent_id: 'pod-1', held: [], resync_interval_seconds: 60 } });
  const push = (await s.next((r) => Number(r.id) === 1)).push;
  const uid = push.secrets.find((p: any) => p.name === 'hf').secret.uid;
  // The agent claims another resource group: ignored, the deployment's resolution is what counts.
  s.call.write({ id: 2, ack: { nonce: push.nonce, applied: [{ name: 'hf', uid, version: 1, applied_time: '2026-01-02T03:04:05.000Z', resource_group: 'team-b' }], nack_reason: 'mount "hf" not written: ENOSPC' } });
  s.call.write({ id: 3, ack: { nonce: '', applied: [{ name: 'other', uid: 'x', version: 1 }] } });
  t.match((await s.next((r) => Number(r.id) === 3)).error, { code: grpc.status.INVALID_ARGUMENT, message: /does not mount "other"/ }, 'a report for a secret the deployment does not resolve is refused');
  const status = await d.rpc('AgentService', 'SecretStatus', { scope: wide, name: 'hf' });
  t.match(status.agents, [{ agent_id: 'pod-1', deployment_resource_group: 'team-a', version: 1, applied_time: '2026-01-02T03:04:05.000Z', nack_reason: 'mount "hf" not written: ENOSPC' }]);
  t.same(status.agents[0].problems ?? [], [], 'the NACK reason is its own field');
  const elsewhere = await d.rpc('AgentService', 'SecretStatus', { scope: { ...scope, resource_group: 'team-b' }, name: 'hf' }).catch((e: grpc.ServiceError) => e);
  t.equal((elsewhere as grpc.ServiceError).code, grpc.status.NOT_FOUND, 'nothing was recorded under the group the agent named');
  s.call.write({ id: 4, ack: { nonce: push.nonce, applied: [{ name: 'hf', uid, version: 1 }], nack_reason: '' } });
  let cleared = false;
  for (const deadline = Date.now() + 10_000; !cleared && Date.now() < deadline; ) {
    const again = await d.rpc('AgentService', 'SecretStatus', { scope: wide, name: 'hf' });
    cleared = !again.agents[0].nack_reason;
  }
  t.ok(cleared, 'an ACK clears the NACK reason');
  const openai = push.secrets.find((p: any) => p.name === 'openai').secret;
  s.call.write({ id: 5, ack: { nonce: push.nonce, applied: [{ name: 'openai', uid: openai.uid, version: 1 }] } });
  s.call.write({ id: 6, ack: { nonce: '', applied: [{ name: 'other', uid: 'x', version: 1 }] } }); // refused: marks that id 5 was taken
  await s.next((r) => Number(r.id) === 6);
  t.match(await d.rpc('AgentService', 'SecretStatus', { scope: wide, name: 'hf' }), { total: 0 }, 'a name the agent no longer holds leaves its status');
  t.match(await d.rpc('AgentService', 'SecretStatus', { scope, name: 'openai' }), { current: 1, total: 1 }, 'what it still holds is updated in place');
});

t.test('agents per deployment are capped (AGENT_LIMIT); silent agents age out of status', async (t) => {
  const { d, token } = await setup(t, { maxAgentsPerDeployment: 2 });
  const head = await d.call('GetSecret', { scope, name: 'openai' });
  const report = (agent: string, interval = 60) =>
    d.rpc('AgentService', 'ReportStatus', { agent_id: agent, applied: [{ name: 'openai', uid: head.uid, version: 1 }], resync_interval_seconds: interval }, { token });
  await report('pod-1');
  await report('pod-2');
  await report('pod-1');
  await t.rejects(report('invented-3'), { code: grpc.status.RESOURCE_EXHAUSTED, details: /deployment "app" already has 2 agents reporting.*--max-agents-per-deployment/ });
  const s = session(d, token);
  s.call.write({ id: 1, resync: { agent_id: 'invented-4', held: [], resync_interval_seconds: 60 } });
  t.match((await s.next((r) => Number(r.id) === 1)).error, { code: grpc.status.RESOURCE_EXHAUSTED, error_code: 'AGENT_LIMIT' }, 'a session past the cap is refused too');
  t.match(await d.rpc('AgentService', 'SecretStatus', { scope, name: 'openai' }), { summary: '2/2 agents on v1' });

  // An agent silent for more than ten intervals is no longer listed (its report written as if long ago).
  await d.daemon.store.reportAgents([{
    report: { agentId: JSON.stringify(['default', 'team-a', 'app']) + '|gone', tenant: 'default', deployment: 'app', deploymentResourceGroup: 'team-a', tokenId: 'x', lastSeenTime: new Date(Date.now() - 11_000).toISOString(), resyncIntervalSeconds: 1, problems: [] },
    applied: [{ agentId: JSON.stringify(['default', 'team-a', 'app']) + '|gone', tenant: 'default', resourceGroup: 'team-a', name: 'openai', uid: head.uid, version: 1, appliedTime: new Date().toISOString() }],
  }]);
  const status = await d.rpc('AgentService', 'SecretStatus', { scope, name: 'openai' });
  t.same(status.agents.map((a: { agent_id: string }) => a.agent_id).sort(), ['pod-1', 'pod-2'], 'aged out');
});

t.test('an agent token reads exactly what its deployment resolves, at the current version (issue 11.7)', async (t) => {
  const { d, token } = await setup(t);
  await d.call('CreateSecret', { scope, ...createRequest('hf', { HF_TOKEN: 'hf-team-a' }, { mount: { path: 'hf' } }) }); // the group overrides the tenant-wide one
  await t.rejects(d.call('GetSecret', { scope: wide, name: 'hf', include_values: true }, { token }), { code: grpc.status.PERMISSION_DENIED, details: /resolves "hf" from tenant "default", resource group "team-a"/ }, 'not the tenant-wide value its group overrides');
  const own = await d.call('GetSecret', { scope, name: 'hf', include_values: true }, { token });
  t.equal(Buffer.from(own.data.HF_TOKEN).toString(), 'hf-team-a');
  await d.call('UpdateSecret', { scope, name: 'openai', set: { OPENAI_API_KEY: Buffer.from('sk-2') } });
  await t.rejects(d.call('GetSecret', { scope, name: 'openai', version: 1, include_values: true }, { token }), { code: grpc.status.PERMISSION_DENIED, details: /only the current version/ }, 'no older version');
  t.equal((await d.call('GetSecret', { scope, name: 'openai', version: 2, include_values: true }, { token })).version, 2, 'the current one by number is fine');
  const s = session(d, token);
  s.call.write({ id: 1, resync: { agent_id: 'pod-1', held: [], resync_interval_seconds: 60 } });
  const push = (await s.next((r) => Number(r.id) === 1)).push;
  t.equal(Buffer.from(push.secrets.find((p: any) => p.name === 'hf').secret.data.HF_TOKEN).toString(), 'hf-team-a', 'the push carries what the deployment resolves');
});

t.test('a resync that arrives while a change is pushed to idle sessions is still answered (step 6: queued work is merged, never replaced)', async (t) => {
  const { d, token } = await setup(t);
  const s = session(d, token);
  s.call.write({ id: 1, resync: { agent_id: 'pod-1', held: [], resync_interval_seconds: 60 } });
  const holding = (await s.answer(1)).push.secrets.map((p: any) => ({ name: p.name, uid: p.secret.uid, version: p.secret.version, digest: p.digest }));

  // Hold the pushToIdle wave at its head read for "openai", so the resync lands during that await.
  let entered!: () => void;
  const atHeadRead = new Promise<void>((r) => (entered = r));
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let held = true;
  const resolveHead = d.daemon.secrets.resolveHead.bind(d.daemon.secrets);
  d.daemon.secrets.resolveHead = async (scope, name) => {
    if (held && name === 'openai') {
      held = false;
      entered();
      await released;
    }
    return resolveHead(scope, name);
  };
  let resynced!: () => void;
  const resyncTaken = new Promise<void>((r) => (resynced = r));
  const resync = d.daemon.registry.resync.bind(d.daemon.registry);
  d.daemon.registry.resync = async (...args) => {
    await resync(...args);
    resynced();
  };

  const deleted = d.call('DeleteSecret', { scope, name: 'openai', force: true });
  await atHeadRead;
  s.call.write({ id: 2, resync: { agent_id: 'pod-1', held: holding, resync_interval_seconds: 60 } });
  await resyncTaken; // queued behind the running wave
  release();
  await deleted;

  s.call.write({ id: 3, resync: { agent_id: 'pod-1', held: [], resync_interval_seconds: 60 } });
  const third = await s.answer(3);
  const second = s.responses.find((r) => Number(r.id) === 2);
  t.ok(second && s.responses.indexOf(second) < s.responses.indexOf(third), 'resync 2 answered (before resync 3), not dropped by the wave');
  t.same(second?.push?.removed, ['openai'], 'its answer removes the secret deleted meanwhile');
});

t.test('one_shot on a resync does not get past the agent cap: an open session counts whatever it says, and gives its place back when it closes', async (t) => {
  const { d, token } = await setup(t, { maxAgentsPerDeployment: 2 });
  const resync = async (agent: string) => {
    const s = session(d, token);
    s.call.write({ id: 1, resync: { agent_id: agent, held: [], resync_interval_seconds: 60, one_shot: true } });
    return { s, answer: await s.answer(1) };
  };
  const first = await resync('run-1');
  t.ok(first.answer.push, 'a one-shot session is served');
  t.ok((await resync('run-2')).answer.push);
  t.match((await resync('run-3')).answer.error, { code: grpc.status.RESOURCE_EXHAUSTED, error_code: 'AGENT_LIMIT' }, 'the third one-shot session is refused as an ordinary one would be');

  first.s.call.end();
  await first.s.status;
  await until('the closed one-shot session leaves the roster', async () => {
    const { answer, s } = await resync('run-4');
    s.call.end();
    return !!answer.push;
  });
  t.pass('its place is free once it closed');
});
