/** `lockbox status NAME`: the rollout as the agents' ACKs report it, as a table, JSON and names. */
import t from 'tap';
import { startAgentWith } from '../helpers/agent.js';
import { runLockbox } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';

t.test('status lists each agent with the version it holds, and follows a rotation', async (t) => {
  const { d } = await startAgentWith(t, [{ name: 'openai', data: { OPENAI_API_KEY: 'sk-status-0' }, path: 'demo' }], 'pod-a');
  const g = ['--addr', d.daemon.address, '--token', d.adminToken];
  await until('the agent reported v1', async () => (await runLockbox([...g, 'status', 'openai'])).stdout.includes('v1'));
  let r = await runLockbox([...g, 'status', 'openai']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /AGENT\s+DEPLOYMENT\s+VERSION\s+APPLIED\s+LAST SEEN\s+STATE/);
  t.match(r.stdout, /pod-a\s+\(main\)\/app\s+v1\s+\S+\s+\S+\s+current/, 'the agent, its deployment, v1, current');
  t.notMatch(r.stdout, 'sk-status', 'never a value');

  await d.call('UpdateSecret', { name: 'openai', set: { OPENAI_API_KEY: Buffer.from('sk-status-1') } });
  await until('the agent reported v2', async () => /pod-a.*v2.*current/.test((await runLockbox([...g, 'status', 'openai'])).stdout));

  r = await runLockbox([...g, '-o', 'json', 'status', 'openai']);
  t.equal(r.code, 0, r.stderr);
  const status = JSON.parse(r.stdout);
  t.equal(status.current_version, 2);
  t.match(status.agents, [{ agent_id: 'pod-a', deployment: 'app', version: 2 }]);

  r = await runLockbox([...g, '-o', 'name', 'status', 'openai']);
  t.equal(r.stdout, 'agent/pod-a\n');

  r = await runLockbox([...g, 'status', 'missing']);
  t.equal(r.code, 1, 'a secret that does not exist');
  t.match(r.stderr, /NOT_FOUND/);
});
