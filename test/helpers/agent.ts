/** An in-process lockbox-agent for a test: a daemon (no NATS), a deployment of file secrets, an agent token. */
import { realpathSync } from 'node:fs';
import { Agent } from '../../agent/src/agent.js';
import { createRequest, startTestDaemon, tempDir, type TestDaemon } from './daemon.js';

export const defaultScope = { tenant: 'default', resource_group: '' };

/** Each secret is mounted as files under its path (or as its `mount` says); the agent resyncs every minute and logs into `logs` (message, then fields). */
export async function startAgentWith(
  t: { teardown(fn: () => unknown): void },
  secrets: Array<{ name: string; data: Record<string, string>; path: string; mount?: object }>,
  agentId: string,
): Promise<{ d: TestDaemon; agent: Agent; home: string; logs: string[] }> {
  const d = await startTestDaemon(t);
  for (const s of secrets) await d.call('CreateSecret', { scope: defaultScope, ...createRequest(s.name, s.data, { mount: s.mount ?? { path: s.path } }) });
  await d.rpc('DeploymentsService', 'CreateDeployment', { scope: defaultScope, deployment: { name: 'app', secrets: secrets.map((s) => s.name) } });
  const { token } = await d.rpc('TokensService', 'CreateToken', { role: 'agent', deployment: 'app' });
  const home = realpathSync(tempDir(t));
  const logs: string[] = [];
  const log = { info: (f: object, m: string) => logs.push(`${m} ${JSON.stringify(f)}`), warn: (f: object, m: string) => logs.push(`${m} ${JSON.stringify(f)}`), error() {} };
  const agent = new Agent({ client: { addr: d.daemon.address, token }, bentomlHome: home, natsUrl: 'none', resyncIntervalMs: 60_000, modes: { fileMode: 0o400, dirMode: 0o500 }, agentId, log });
  t.teardown(() => agent.stop());
  await agent.start();
  return { d, agent, home, logs };
}
