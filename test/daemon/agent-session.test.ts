import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { loadServices } from '../../shared/src/proto.js';
import { pino } from 'pino';
import { AgentSession, SessionRequestError, type SecretPush } from '../../agent/src/session.js';
import { AgentSessions } from '../../daemon/src/api/grpc-agent-session.js';
import { session } from '../helpers/session.js';
import { createRequest, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';

const scope = { tenant: 'default', resource_group: 'team-a' };
const CANARY = 'sk-canary-7f3a9c1e-session';

async function setup(t: { teardown(fn: () => unknown): void }) {
  const d = await startTestDaemon(t);
  await d.call('CreateSecret', { scope, ...createRequest('openai', { OPENAI_API_KEY: CANARY }, { template: 'openai', mount: { path: 'demo' } }) });
  await d.call('CreateSecret', { scope, ...createRequest('other', { X: 'x' }) });
  await d.rpc('DeploymentsService', 'CreateDeployment', { scope, deployment: { name: 'app', secrets: ['openai'] } });
  const created = await d.rpc('TokensService', 'CreateToken', { role: 'agent', deployment: 'app', deployment_resource_group: 'team-a' });
  return { d, token: created.token as string, tokenId: created.info.id as string };
}

/** A raw session: every response and the call's end, as a test sees them. */
const rawSession = (d: Pick<TestDaemon, 'daemon'>, token: string) => session(t, d, token);

t.test('a session answers config, fetch and report like the unary calls, each by its id', async (t) => {
  const { d, token } = await setup(t);
  const s = rawSession(d, token);
  t.teardown(s.close);
  s.call.write({ id: 1, config: {} });
  s.call.write({ id: 2, fetch: { names: ['openai'] } });
  const config = await s.answer(1);
  t.equal(config.kind, 'config');
  t.same(config.config.deployment.secrets, ['openai']);
  t.same(config.config, await d.rpc('AgentService', 'GetAgentConfig', {}, { token }), 'the same answer as GetAgentConfig');
  const fetched = await s.answer(2);
  t.equal(fetched.kind, 'fetch');
  const held = fetched.fetch.secrets[0].secret;
  t.equal(Buffer.from(held.data.OPENAI_API_KEY).toString(), CANARY);
  s.call.write({ id: 3, report: { agent_id: 'pod-1', applied: [{ name: 'openai', resource_group: 'team-a', uid: held.uid, version: held.version }], resync_interval_seconds: 60 } });
  t.equal((await s.answer(3)).kind, 'report');
  t.match(await d.rpc('AgentService', 'SecretStatus', { scope, name: 'openai' }), { summary: '1/1 agents on v1' }, 'the report counted');

  // A failed request is answered with its error; the session goes on.
  s.call.write({ id: 4, fetch: { names: ['other'] } });
  const denied = await s.answer(4);
  t.equal(denied.kind, 'error');
  t.match(denied.error, { code: grpc.status.PERMISSION_DENIED, error_code: 'PERMISSION_DENIED', message: /does not mount "other"/ });
  s.call.write({ id: 5 });
  t.match((await s.answer(5)).error, { code: grpc.status.INVALID_ARGUMENT, message: /set one of resync, ack, config, fetch or report/ });
  s.call.write({ id: 6, report: { agent_id: 'bad id with spaces' } });
  t.match((await s.answer(6)).error, { code: grpc.status.INVALID_ARGUMENT, message: /agent_id/ });
  s.call.write({ id: 7, fetch: {} });
  t.equal((await s.answer(7)).kind, 'fetch', 'still open after the errors');

  // Each request is logged as its unary call, by a request id of its own; never a value.
  const lines = d.logs.filter((l) => l.includes('"method":"FetchSecrets"'));
  t.ok(lines.length >= 3, 'one line per fetch request');
  t.ok(lines.some((l) => /"request_id":"[\w.-]+\.2"/.test(l)), 'request id <session>.<id>');
  t.notOk(d.logs.join('\n').includes(CANARY), 'no value in any log line');

  s.call.end();
  t.equal((await s.status).code, grpc.status.OK, 'the agent ends its side: the session ends cleanly');
});

t.test('status reports are written together, seen by SecretStatus at once, and written when the daemon stops', async (t) => {
  const { d, token } = await setup(t);
  const head = await d.call('GetSecret', { scope, name: 'openai' });
  const report = (agent: string) =>
    d.rpc('AgentService', 'ReportStatus', { agent_id: agent, applied: [{ name: 'openai', resource_group: 'team-a', uid: head.uid, version: head.version }], resync_interval_seconds: 60 }, { token });
  await Promise.all(Array.from({ length: 20 }, (_, i) => report(`pod-${i}`)));
  t.match(await d.rpc('AgentService', 'SecretStatus', { scope, name: 'openai' }), { summary: '20/20 agents on v1' }, 'every report taken counts at once');
  await report('pod-last');
  await d.restart(); // the daemon stops right after the answer: what it kept is written first
  t.match(await d.rpc('AgentService', 'SecretStatus', { scope, name: 'openai' }), { summary: '21/21 agents on v1' }, 'kept reports survive a stop');
});

t.test('the token is checked for every request: a revoked token ends the session', async (t) => {
  const { d, token, tokenId } = await setup(t);
  const s = rawSession(d, token);
  t.teardown(s.close);
  s.call.write({ id: 1, fetch: { names: ['openai'] } });
  t.equal((await s.answer(1)).kind, 'fetch');
  await d.rpc('TokensService', 'RevokeToken', { id: tokenId });
  s.call.write({ id: 2, fetch: { names: ['openai'] } });
  t.match((await s.answer(2)).error, { code: grpc.status.UNAUTHENTICATED, message: /revoked/ });
  t.match(await s.status, { code: grpc.status.UNAUTHENTICATED, details: /revoked/ });

  const bad = rawSession(d, 'lbx_0000000000000000_' + 'A'.repeat(43));
  t.teardown(bad.close);
  bad.call.write({ id: 1, config: {} });
  t.match((await bad.answer(1)).error, { code: grpc.status.UNAUTHENTICATED });
  t.equal((await bad.status).code, grpc.status.UNAUTHENTICATED);

  const admin = rawSession(d, d.adminToken);
  t.teardown(admin.close);
  admin.call.write({ id: 1, config: {} });
  t.match((await admin.answer(1)).error, { code: grpc.status.PERMISSION_DENIED, message: /agent tokens/ }, 'other roles are refused per request');
});

t.test('a session runs at most 16 requests at once', async (t) => {
  const { d, token } = await setup(t);
  // Requests that never finish (a fake service behind the real session handler and token check):
  // the only way to hold 16 in flight.
  const hung = { config: () => new Promise(() => {}), fetch: () => new Promise(() => {}), report: () => new Promise(() => {}) };
  const sessions = new AgentSessions(d.daemon.auth, hung as never, d.daemon.registry, pino({ level: 'silent' }), (response) => response);
  const server = new grpc.Server();
  server.addService(loadServices().AgentService.service, { Session: sessions.handler } as never);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  t.teardown(() => server.forceShutdown());
  const s = rawSession({ daemon: { address: `127.0.0.1:${port}` } } as TestDaemon, token);
  t.teardown(s.close);
  for (let id = 1; id <= 17; id++) s.call.write({ id, fetch: { names: ['openai'] } });
  t.match((await s.answer(17)).error, { code: grpc.status.RESOURCE_EXHAUSTED, message: /at most 16 requests/ }, 'the 17th is refused');
  t.equal(s.responses.length, 1, 'the 16 others are still running');
});

t.test('a stopping daemon ends sessions with UNAVAILABLE and does not wait for them', async (t) => {
  const { d, token } = await setup(t);
  const s = rawSession(d, token);
  t.teardown(s.close);
  s.call.write({ id: 1, config: {} });
  await s.answer(1);
  const started = Date.now();
  await d.stop();
  t.ok(Date.now() - started < d.config.drainTimeoutMs, `stopped in ${Date.now() - started} ms, under the drain timeout`);
  t.match(await s.status, { code: grpc.status.UNAVAILABLE, details: /stopping/ });
});

function sessionTo(addr: string, token: string, timeoutMs = 5000) {
  const pushes: SecretPush[] = [];
  const broken: SessionRequestError[] = [];
  const session = new AgentSession({
    addresses: async () => addr.split(',').map((target) => ({ target })),
    client: { token },
    timeoutMs,
    onPush: (push) => pushes.push(push),
    onBroken: (error) => broken.push(error),
  });
  return { session, pushes, broken };
}

t.test('AgentSession: a resync is answered by a push, errors carry code and details, a broken call moves to the next address', async (t) => {
  const { d, token } = await setup(t);
  const other = await startTestDaemon(t); // a second daemon: the next address
  const { session, pushes, broken } = sessionTo(`${d.daemon.address},${other.daemon.address}`, token);
  t.teardown(() => session.close());
  const [config] = await Promise.all([session.config(), session.resync({ agent_id: 'pod-1', held: [], resync_interval_seconds: 60 })]);
  t.same(config.deployment?.secrets, ['openai']);
  t.equal(pushes.length, 1, 'the resync was answered before it resolved');
  t.equal(pushes[0].secrets?.[0].secret.version, 1);
  t.equal(session.address, d.daemon.address);
  const refused = await session.resync({ agent_id: 'bad id', held: [], resync_interval_seconds: 60 }).catch((e: SessionRequestError) => e);
  t.type(refused, SessionRequestError);
  t.match(refused, { code: grpc.status.INVALID_ARGUMENT, errorCode: 'INVALID_ARGUMENT', details: /agent id of its first resync/ });

  await d.stop();
  await t.resolveMatch(new Promise((r) => (function wait() { if (broken.length) r(broken[0]); else setTimeout(wait, 5); })()), { code: grpc.status.UNAVAILABLE });
  t.equal(session.address, other.daemon.address, 'the next address is current once the call broke');
});

t.test('AgentSession: a daemon that stops answering fails the request with DEADLINE_EXCEEDED and drops the call', async (t) => {
  // A server that takes the call and never answers (a hung daemon, a half-open connection).
  const server = new grpc.Server();
  let opened = 0;
  server.addService(loadServices().AgentService.service, {
    Session: (call: grpc.ServerDuplexStream<unknown, unknown>) => {
      opened++;
      call.on('data', () => {});
      call.on('error', () => {});
    },
  } as never);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  t.teardown(() => server.forceShutdown());
  const { session, broken } = sessionTo(`127.0.0.1:${port}`, 'lbx_0000000000000000_' + 'A'.repeat(43), 200);
  t.teardown(() => session.close());
  await t.rejects(session.config(), { name: 'SessionRequestError', code: grpc.status.DEADLINE_EXCEEDED, details: /within 200 ms/ });
  await t.rejects(session.resync({ agent_id: 'a', held: [], resync_interval_seconds: 60 }), { code: grpc.status.DEADLINE_EXCEEDED });
  t.equal(opened, 2, 'each timed-out call was dropped; the next request opened a new one');
  t.equal(broken.length, 2, 'and each drop was told to the agent');
});
