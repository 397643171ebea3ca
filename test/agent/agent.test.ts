import t from 'tap';
import { chmodSync, existsSync, mkdirSync, readFileSync, readlinkSync, realpathSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent } from '../../agent/src/agent.js';
import { createRequest, startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js';
import { startNats } from '../helpers/nats.js';
import { connect } from 'nats';
import { changeSubject } from '../../shared/src/subject.js';
import { until as waitUntil } from '../helpers/wait.js';

const quiet = { info() {}, warn() {}, error() {} };
const scope = { tenant: 'default', resource_group: 'team-a' };

/** This file's waits end hung tests after 10 s; the loop is test/helpers/wait.ts's. */
const until = (what: string, condition: () => boolean, ms = 10_000) => waitUntil(what, condition, ms);

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

async function setup(t: { teardown(fn: () => unknown): void }, options: { nats?: boolean; resyncMs?: number } = {}) {
  const nats = options.nats === false ? undefined : await startNats(t);
  const d = await startTestDaemon(t, { natsUrl: nats?.url ?? '' });
  await d.call('CreateSecret', { scope, ...createRequest('openai', { OPENAI_API_KEY: 'sk-0' }, { template: 'openai', mount: { path: 'demo' } }) });
  await d.call('CreateSecret', { scope, ...createRequest('pair', { A: 'v0', B: 'v0' }, { mount: { path: 'pair' } }) });
  await d.call('CreateSecret', { scope: { ...scope, resource_group: '*' }, ...createRequest('hf', { HF_TOKEN: 'hf-0' }, { mount: { kind: 'env', path: 'env' } }) });
  await d.rpc('DeploymentsService', 'CreateDeployment', { scope, deployment: { name: 'app', secrets: ['openai', 'pair', 'hf'] } });
  const { token } = await d.rpc('TokensService', 'CreateToken', { role: 'agent', deployment: 'app', deployment_resource_group: 'team-a' });
  const home = realpathSync(tempDir(t));
  const logs: string[] = [];
  const log = { info: (f: object, m: string) => logs.push(m + ' ' + JSON.stringify(f)), warn: (f: object, m: string) => logs.push(m + ' ' + JSON.stringify(f)), error: quiet.error };
  const agent = new Agent({
    client: { addr: d.daemon.address, token },
    bentomlHome: home,
    natsUrl: nats ? 'advertised' : 'none',
    resyncIntervalMs: options.resyncMs ?? 60_000,
    modes: { fileMode: 0o400, dirMode: 0o500 },
    agentId: 'test-agent',
    log,
  });
  t.teardown(() => agent.stop());
  return { d, nats, agent, home, token, logs };
}

const update = (d: TestDaemon, name: string, data: Record<string, string>, s = scope) =>
  d.call('UpdateSecret', { scope: s, name, set: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v)])) });

t.test('start-up writes everything; an update reaches the file with the agent untouched', async (t) => {
  const { d, agent, home } = await setup(t);
  await agent.start();
  t.equal(agent.ready, true);
  t.equal(read(join(home, 'demo/OPENAI_API_KEY')), 'sk-0');
  t.equal(read(join(home, 'env/hf.env')), "HF_TOKEN='hf-0'\n", 'tenant-wide secrets are mounted too');
  await update(d, 'openai', { OPENAI_API_KEY: 'sk-1' });
  await until('the new key on disk', () => read(join(home, 'demo/OPENAI_API_KEY')) === 'sk-1');
  await update(d, 'hf', { HF_TOKEN: 'hf-1' }, { ...scope, resource_group: '*' });
  await until('the tenant-wide update', () => read(join(home, 'env/hf.env')) === "HF_TOKEN='hf-1'\n");
  t.equal(read(join(home, 'demo/..version')), 'openai=2\n');

  const status = await d.rpc('AgentService', 'SecretStatus', { scope, name: 'openai' });
  await until('status reported', () => true);
  const again = await (async () => {
    for (let i = 0; i < 100; i++) {
      const s = await d.rpc('AgentService', 'SecretStatus', { scope, name: 'openai' });
      if (s.current === 1) return s;
      await sleep(20);
    }
    return status;
  })();
  t.equal(again.summary, '1/1 agents on v2');
  t.equal(again.agents[0].agent_id, 'test-agent');
});

t.test('a reader sampling through 200 rotations never sees a partial file or a mixed version', async (t) => {
  const { d, agent, home } = await setup(t);
  await agent.start();
  const dir = join(home, 'pair');
  let stop = false;
  let samples = 0;
  const bad: string[] = [];
  const reader = (async () => {
    while (!stop) {
      // A consistent reader resolves ..data once and reads the set from that version.
      let version: string;
      try {
        version = readlinkSync(join(dir, '..data'));
      } catch {
        continue;
      }
      const a = read(join(dir, version, 'A'));
      const b = read(join(dir, version, 'B'));
      const direct = read(join(dir, 'A'));
      if (a !== undefined && b !== undefined && a !== b) bad.push(`mixed ${a}/${b}`);
      for (const v of [a, b, direct]) if (v !== undefined && !/^v\d+$/.test(v)) bad.push(`partial "${v}"`);
      if (direct === undefined) bad.push('A missing');
      samples++;
      await new Promise((r) => setImmediate(r));
    }
  })();
  for (let i = 1; i <= 200; i++) {
    await update(d, 'pair', { A: `v${i}`, B: `v${i}` });
    if (i % 20 === 0) await until(`v${i} on disk`, () => read(join(dir, 'A')) === `v${i}`);
  }
  await until('the last version', () => read(join(dir, 'A')) === 'v200');
  stop = true;
  await reader;
  t.same(bad.slice(0, 5), [], `no torn or mixed read in ${samples} samples`);
  t.ok(samples > 200);
});

t.test('NATS down while updates land: the push on the session reaches the agent anyway; NATS back, it follows notices again', async (t) => {
  const { d, nats, agent, home, logs } = await setup(t);
  await agent.start();
  await until('the agent follows notices', () => logs.some((l) => l.startsWith('following change notices')));
  await nats!.stop();
  await update(d, 'openai', { OPENAI_API_KEY: 'sk-during-outage' });
  await until('pushed while NATS is down', () => read(join(home, 'demo/OPENAI_API_KEY')) === 'sk-during-outage', 15_000);
  await nats!.start();
  await until('NATS back: the agent resyncs', () => logs.some((l) => l.startsWith('NATS back: resyncing')), 15_000);
  await update(d, 'openai', { OPENAI_API_KEY: 'sk-after-outage' });
  await until('converged after NATS came back', () => read(join(home, 'demo/OPENAI_API_KEY')) === 'sk-after-outage', 15_000);
  t.pass('converged');
});

t.test('without notices, the resync interval keeps files current', async (t) => {
  const { d, agent, home } = await setup(t, { nats: false, resyncMs: 300 });
  await agent.start();
  await update(d, 'openai', { OPENAI_API_KEY: 'sk-resync' });
  await until('the change written', () => read(join(home, 'demo/OPENAI_API_KEY')) === 'sk-resync', 20_000);
});

t.test('daemon restart, deletes, removal from the deployment', async (t) => {
  const { d, agent, home } = await setup(t, { resyncMs: 300 });
  await agent.start();
  await d.restart();
  await update(d, 'openai', { OPENAI_API_KEY: 'sk-after-restart' });
  await until('after the daemon restart', () => read(join(home, 'demo/OPENAI_API_KEY')) === 'sk-after-restart', 10_000);

  await d.call('DeleteSecret', { scope, name: 'pair', force: true });
  await until('deleted secret files go', () => !existsSync(join(home, 'pair/A')) && !existsSync(join(home, 'pair/..data')));
  t.notOk(existsSync(join(home, 'pair/..version')));

  await d.rpc('DeploymentsService', 'UpdateDeployment', { scope, deployment: { name: 'app', secrets: ['openai'] } });
  await until('unmounted secret files go (next resync)', () => !existsSync(join(home, 'env/hf.env')), 5000);
  t.equal(read(join(home, 'demo/OPENAI_API_KEY')), 'sk-after-restart');
});

t.test('attaching and detaching secrets reaches the agent at once, not at the next resync', async (t) => {
  const { d, agent, home, logs } = await setup(t); // resync every 60 s: only the notice can do it
  await agent.start();
  await d.call('CreateSecret', { scope, ...createRequest('extra', { EXTRA: 'x-1' }, { mount: { path: 'extra' } }) });
  await until('the agent follows notices', () => logs.some((l) => l.startsWith('following change notices')));
  await d.rpc('DeploymentsService', 'UpdateDeployment', { scope, deployment: { name: 'app', secrets: ['openai', 'pair', 'hf', 'extra'] } });
  // The agent resyncs every 60 s: anything sooner came down its session, which is the point.
  await until('an attached secret is written before the next resync', () => read(join(home, 'extra/EXTRA')) === 'x-1', 30_000);
  await d.rpc('DeploymentsService', 'UpdateDeployment', { scope, deployment: { name: 'app', secrets: ['openai', 'extra'] } });
  await until('detached secrets go', () => !existsSync(join(home, 'pair/A')) && !existsSync(join(home, 'env/hf.env')), 5000);
  t.equal(read(join(home, 'demo/OPENAI_API_KEY')), 'sk-0', 'what stays attached stays');
  t.ok(logs.some((l) => l.startsWith('deployment changed: secrets attached or detached')));
  await d.rpc('DeploymentsService', 'DeleteDeployment', { scope, name: 'app' });
  await until('a deleted deployment is noticed', () => logs.some((l) => l.startsWith('lockboxd could not serve this deployment; keeping the files') && l.includes('no longer exists')), 5000);
  t.equal(read(join(home, 'extra/EXTRA')), 'x-1', 'files stay until someone decides otherwise');
});

t.test('tamper repair: deleted or changed files come back within a second', async (t) => {
  const { d, agent, home, logs } = await setup(t, { nats: true });
  await agent.start();
  const file = join(home, 'demo/OPENAI_API_KEY');
  unlinkSync(file);
  // Every wait below ends well before the 60 s resync: a repair this early is inotify's.
  await until('a deleted file restored', () => read(file) === 'sk-0', 30_000);
  const version = readlinkSync(join(home, 'demo/..data'));
  chmodSync(join(home, 'demo', version), 0o700);
  chmodSync(join(home, 'demo', version, 'OPENAI_API_KEY'), 0o600);
  writeFileSync(join(home, 'demo', version, 'OPENAI_API_KEY'), 'forged');
  await until('a changed file restored', () => read(file) === 'sk-0', 30_000);
  // ..data pointed at a forged version: the agent's own swaps are told apart from this one.
  const forged = join(home, 'demo/..2000_01_01_00_00_00.forged');
  mkdirSync(forged);
  writeFileSync(join(forged, 'OPENAI_API_KEY'), 'forged');
  symlinkSync('..2000_01_01_00_00_00.forged', join(home, 'demo/..data_x'));
  renameSync(join(home, 'demo/..data_x'), join(home, 'demo/..data'));
  await until('a forged ..data swapped back', () => read(file) === 'sk-0', 30_000);
  rmSync(join(home, 'pair'), { recursive: true, force: true });
  const restores = () => logs.filter((l) => l.includes('restored')).length;
  await until('a deleted dir restored, and logged', () => read(join(home, 'pair/A')) === 'v0' && logs.some((l) => l.includes('restored') && l.includes('/pair')), 30_000);
  const restoredSoFar = restores();
  unlinkSync(join(home, 'pair/A'));
  await until('a file of the re-created dir restored: the new dir is watched too', () => read(join(home, 'pair/A')) === 'v0', 30_000);
  await until('the repair logged', () => restores() > restoredSoFar, 30_000); // the file is readable a moment before the log line
  t.ok(logs.some((l) => l.includes('restored') && l.includes('/demo')), 'repairs are logged by path');
  t.notOk(logs.join('\n').includes('sk-0'), 'never the value');
  // The agent's own rotations are not tampering: nothing is "restored" while they land.
  await until('the agent follows notices', () => logs.some((l) => l.startsWith('following change notices')));
  const restoredBefore = restores();
  for (let i = 1; i <= 10; i++) {
    await update(d, 'openai', { OPENAI_API_KEY: `sk-r${i}` });
    await until(`rotation ${i} written`, () => read(file) === `sk-r${i}`, 5000);
  }
  // A real tamper after the rotations: its repair is logged after anything the rotations caused,
  // so once it is, the log holds every repair there will be for them.
  unlinkSync(file);
  await until('the marker tamper repaired and logged', () => restores() > restoredBefore, 30_000);
  const since = logs.filter((l) => l.includes('restored')).slice(restoredBefore);
  t.equal(since.length, 1, `own swaps never look like tampering; only the marker was repaired (${since.join(' | ')})`);
  const later = readlinkSync(join(home, 'demo/..data'));
  chmodSync(join(home, 'demo', later), 0o700);
  chmodSync(join(home, 'demo', later, 'OPENAI_API_KEY'), 0o600);
  writeFileSync(join(home, 'demo', later, 'OPENAI_API_KEY'), 'forged');
  await until('the version written by a rotation is watched too', () => read(file) === 'sk-r10', 1000);
});

t.test('a daemon away: the agent retries its session with growing waits (at most 1 s), not left to the next resync', async (t) => {
  const { d, nats, agent, home, logs } = await setup(t); // resync every 60 s
  await agent.start();
  await until('the agent follows notices', () => logs.some((l) => l.startsWith('following change notices')));
  await agent.request({});
  // v2 lands while no notice can go out; then the daemon goes away and a notice for v2 arrives.
  await d.restart({ natsUrl: '' });
  await update(d, 'openai', { OPENAI_API_KEY: 'sk-while-away' });
  await until('v2 pushed on the new session', () => read(join(home, 'demo/OPENAI_API_KEY')) === 'sk-while-away', 10_000);
  const head = await d.call('GetSecret', { scope, name: 'openai' });
  const before = logs.length; // only the retries after the daemon went count below
  await d.daemon.stop();
  const nc = await connect({ servers: nats!.url });
  t.teardown(() => nc.close());
  nc.publish(changeSubject('default', 'team-a', 'openai'), JSON.stringify({ tenant: 'default', resource_group: 'team-a', name: 'openai', uid: head.uid, version: head.version + 1, operation: 'update', seq: 0, time: '' }));
  await nc.flush();
  const retries = () => logs.slice(before).filter((l) => l.startsWith('session to lockboxd broken')).map((l) => Number(/"retry_ms":(\d+)/.exec(l)![1]));
  await until('a few retries while the daemon is away', () => retries().length >= 4, 10_000);
  const delays = retries();
  t.ok(delays[0] < delays[1] && Math.max(...delays.slice(2)) > delays[1], `the waits grow: ${delays.join(', ')} ms`);
  t.ok(delays.every((ms) => ms <= 1000), 'never more than 1 s');
  await d.restart({ natsUrl: '' }); // no notices: only the session's retry can bring v3
  await update(d, 'openai', { OPENAI_API_KEY: 'sk-after-retries' });
  await until('the push after the daemon came back', () => read(join(home, 'demo/OPENAI_API_KEY')) === 'sk-after-retries', 10_000);
});

t.test('an agent token reads only its deployment; the agent reports what it could not write', async (t) => {
  const { d, token, agent } = await setup(t);
  await agent.start();
  await t.rejects(d.call('GetSecret', { scope, name: 'openai', include_values: true }, { token }).then(() => d.call('ListSecrets', { scope }, { token })), { code: 7 });
  await t.rejects(d.rpc('AgentService', 'FetchSecrets', { names: ['not-mounted'] }, { token }), { code: 7 });
  await t.rejects(d.rpc('AgentService', 'GetAgentConfig', {}), { code: 7, details: /agent tokens/ });
  await t.rejects(d.rpc('AgentService', 'ReportStatus', { agent_id: 'bad id with spaces' }, { token }), { code: 3 });
});
