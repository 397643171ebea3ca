/**
 * Retention of agents (issue 13.6, service-agent.ts step (6)): a `lockbox-agent once` run is a
 * one-shot run in status, rollout and metrics, never a stale sidecar; an agent silent past
 * --agent-retention leaves status at once and is deleted by the daemon's sweep.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { Agent } from '../../agent/src/agent.js';
import { configFromOptions, defaults } from '../../daemon/src/config.js';
import { createRequest, startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js';
import { freshSchema } from '../helpers/postgres.js';
import { scrapeMetrics } from '../helpers/prometheus.js';
import { restClient } from '../helpers/rest.js';
import { agentBin, agentEnv, agentFlags } from '../helpers/spawn.js';
import { until } from '../helpers/wait.js';

const scope = { tenant: 'default', resource_group: '' };
const quiet = { info() {}, warn() {}, error() {} };

async function deployment(t: { teardown(fn: () => unknown): void }, agentRetentionMs: number, databaseUrl = '') {
  const d = await startTestDaemon(t, { agentRetentionMs, databaseUrl });
  await d.call('CreateSecret', { scope, ...createRequest('api', { API_KEY: 'k1' }, { mount: { path: 'api' } }) });
  await d.rpc('DeploymentsService', 'CreateDeployment', { scope, deployment: { name: 'app', secrets: ['api'] } });
  const { token } = await d.rpc('TokensService', 'CreateToken', { role: 'agent', deployment: 'app' });
  return { d, token };
}

function agent(t: { teardown(fn: () => unknown): void }, d: TestDaemon, token: string, agentId: string, oneShot = false): Agent {
  const a = new Agent({ client: { addr: d.daemon.address, token }, bentomlHome: realpathSync(tempDir(t)), natsUrl: 'none', resyncIntervalMs: 60_000, modes: { fileMode: 0o400, dirMode: 0o500 }, agentId, oneShot, log: quiet });
  t.teardown(() => a.stop());
  return a;
}

/** The status, its empty list of agents as [] (gRPC leaves an empty repeated field out). */
const status = async (d: TestDaemon) => {
  const s = await d.rpc('AgentService', 'SecretStatus', { scope, name: 'api' });
  return { ...s, agents: s.agents ?? [] };
};

/** A one-shot run "init-1" that synced and exited, then a sidecar "sidecar-1" (returned), both reported. */
async function runThenSidecar(t: { teardown(fn: () => unknown): void }, d: TestDaemon, token: string): Promise<Agent> {
  const run = agent(t, d, token, 'init-1', true);
  await run.syncOnce();
  await run.stop();
  const sidecar = agent(t, d, token, 'sidecar-1');
  await sidecar.start();
  await until('both reported', async () => (await status(d)).agents.length === 2);
  return sidecar;
}

t.test('--agent-retention: a duration, 0 or off keeps agents; 168h by default', async (t) => {
  const base = { dataDir: 'x', grpcAddr: '127.0.0.1:0', natsUrl: 'none', maxVersions: '10', logLevel: 'info', drainTimeout: '1s', idempotencyTtl: '1h' };
  t.equal(configFromOptions(base).agentRetentionMs, 168 * 3_600_000, defaults.agentRetention);
  t.equal(configFromOptions({ ...base, agentRetention: '90s' }).agentRetentionMs, 90_000);
  t.equal(configFromOptions({ ...base, agentRetention: '30' }).agentRetentionMs, 30_000, 'a bare number is seconds');
  t.equal(configFromOptions({ ...base, agentRetention: 'off' }).agentRetentionMs, 0);
  t.equal(configFromOptions({ ...base, agentRetention: '0' }).agentRetentionMs, 0);
  t.throws(() => configFromOptions({ ...base, agentRetention: 'a week' }), /--agent-retention \(LOCKBOX_AGENT_RETENTION\): "a week" is not a duration/);
});

t.test('a once run is a one-shot run in status, rollout and metrics; a sidecar beside it is the live agent', async (t) => {
  const { d, token } = await deployment(t, 0);
  await runThenSidecar(t, d, token);
  const s = await status(d);
  const byId = Object.fromEntries(s.agents.map((a: any) => [a.agent_id, a]));
  t.equal(byId['init-1'].one_shot, true);
  t.equal(byId['init-1'].stale, false, 'a run is never stale');
  t.equal(Number(byId['init-1'].version), 1, 'the version it applied');
  t.ok(Date.parse(byId['init-1'].applied_time), 'and when');
  t.equal(byId['sidecar-1'].one_shot, false);
  t.equal(s.total, 1, 'only the sidecar is a live agent');
  t.equal(s.summary, '1/1 agents on v1, 1 one-shot run');

  // A new version: the run stays on v1 and does not hold the rollout back.
  await d.call('UpdateSecret', { scope, name: 'api', set: { API_KEY: Buffer.from('k2') } });
  await until('the sidecar applied v2', async () => (await status(d)).current === 1 && (await status(d)).current_version === 2);
  const rest = restClient(d);
  const rollout = (await rest('GET', '/v1/admin/deployments/app/rollout')).json as any;
  const agents = rollout.secrets[0].agents;
  t.same(agents.map((a: any) => [a.agent_id, a.one_shot, a.stale]).sort(), [['init-1', true, false], ['sidecar-1', false, false]]);
  t.equal(rollout.secrets[0].summary, '1/1 on v2, 1 one-shot run');

  const scraped = await scrapeMetrics(`${d.daemon.httpUrl}/metrics`);
  t.equal(scraped.value('lockbox_agents', { state: 'one_shot' }), 1);
  t.equal(scraped.value('lockbox_agents', { state: 'current' }), 1);
  t.equal(scraped.value('lockbox_agents', { state: 'stale' }), 0);
});

t.test('lockbox-agent once says it is a one-shot run; lockbox status shows it so', async (t) => {
  const { d, token } = await deployment(t, 0);
  const home = realpathSync(tempDir(t));
  const child = spawn(process.execPath, [...agentFlags, agentBin, 'once', '--agent-id', 'init-pod'], { env: agentEnv({ LOCKBOX_ADDR: d.daemon.address, LOCKBOX_TOKEN: token, BENTOML_HOME: home, LOCKBOX_NATS_URL: 'none' }) });
  t.equal(await new Promise((resolve) => child.on('close', resolve)), 0);
  await until('the run reported', async () => (await status(d)).agents.length === 1);
  const [run] = (await status(d)).agents;
  t.same([run.agent_id, run.one_shot, run.stale], ['init-pod', true, false]);
});

for (const store of ['sqlite', 'postgres'] as const)
  t.test(`an agent silent past --agent-retention leaves status at once and is deleted by the sweep (${store})`, async (t) => {
    // 3 s: long enough that both are listed together first on a busy machine, short for a test.
    const { d, token } = await deployment(t, 3000, store === 'postgres' ? await freshSchema(t) : '');
    const sidecar = await runThenSidecar(t, d, token);
    await sidecar.stop();
    await until('both left status', async () => (await status(d)).agents.length === 0);
    t.equal((await status(d)).summary, '0/0 agents on v1');
    await until('the sweep deleted them', async () => (await d.daemon.store.agentHeartbeats()).length === 0);
  });

t.test('the unary ReportStatus (older agents\' path) takes one_shot too; without it an agent is a sidecar', async (t) => {
  const { d, token } = await deployment(t, 0);
  const applied = [{ name: 'api', uid: '', version: 1 }];
  await d.rpc('AgentService', 'ReportStatus', { agent_id: 'old-init', applied, resync_interval_seconds: 60, one_shot: true }, { token });
  await d.rpc('AgentService', 'ReportStatus', { agent_id: 'old-sidecar', applied, resync_interval_seconds: 60 }, { token });
  await until('both reported', async () => (await status(d)).agents.length === 2);
  const s = await status(d);
  t.same(s.agents.map((a: any) => [a.agent_id, a.one_shot]).sort(), [['old-init', true], ['old-sidecar', false]]);
  t.equal(s.total, 1);
});
