/**
 * Faults (issue 12 item 7), with real parts: replicas on one PostgreSQL, a real nats-server, a
 * daemon process killed with SIGKILL or stopped with SIGSTOP, an in-process agent listing both
 * daemons. The tests wait for states (generous deadlines), never for a speed.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent } from '../../agent/src/agent.js';
import { createRequest, startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js';
import { startNats } from '../helpers/nats.js';
import { freshSchema } from '../helpers/postgres.js';
import { spawnDaemon } from '../helpers/spawn.js';
import { until as waitUntil } from '../helpers/wait.js';

const scope = { tenant: 'default', resource_group: '' };

/** This file's waits end hung tests after 15 s; the loop is test/helpers/wait.ts's. */
const until = (what: string, condition: () => boolean, ms = 15_000) => waitUntil(what, condition, ms);

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function keyFile(t: { teardown(fn: () => unknown): void }): string {
  const path = join(tempDir(t), 'master.key');
  writeFileSync(path, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
  return path;
}

async function deployment(d: TestDaemon) {
  await d.call('CreateSecret', { scope, ...createRequest('openai', { OPENAI_API_KEY: 'sk-0' }, { mount: { path: 'demo' } }) });
  await d.rpc('DeploymentsService', 'CreateDeployment', { scope, deployment: { name: 'app', secrets: ['openai'] } });
  return (await d.rpc('TokensService', 'CreateToken', { role: 'agent', deployment: 'app' })).token as string;
}

function agentOf(t: { teardown(fn: () => unknown): void }, addr: string, token: string, logs: string[] = []) {
  const home = realpathSync(tempDir(t));
  const log = { info: (f: object, m: string) => logs.push(`${m} ${JSON.stringify(f)}`), warn: (f: object, m: string) => logs.push(`${m} ${JSON.stringify(f)}`), error() {} };
  const agent = new Agent({ client: { addr, token, keepalive: { timeMs: 1000, timeoutMs: 1000 } }, bentomlHome: home, natsUrl: 'none', resyncIntervalMs: 3_600_000, modes: { fileMode: 0o400, dirMode: 0o500 }, agentId: `agent-${randomBytes(3).toString('hex')}`, log, repair: false });
  t.teardown(() => agent.stop());
  return { agent, file: join(home, 'demo/OPENAI_API_KEY'), logs };
}

const rotate = (d: TestDaemon, value: string, token?: string) => d.call('UpdateSecret', { scope, name: 'openai', set: { OPENAI_API_KEY: Buffer.from(value) } }, { token });

for (const fault of ['SIGKILL', 'SIGSTOP'] as const) {
  t.test(`${fault} of the daemon an agent talks to: it moves to the other replica and gets the next rotation from it`, async (t) => {
    const url = await freshSchema(t);
    const masterKeyFile = keyFile(t);
    const nats = await startNats(t);
    const b = await startTestDaemon(t, { databaseUrl: url, masterKeyFile, natsUrl: nats.url });
    const token = await deployment(b);
    const a = await spawnDaemon(['--data-dir', tempDir(t), '--database-url', url, '--master-key-file', masterKeyFile, '--grpc-addr', '127.0.0.1:0', '--nats-url', nats.url, '--keepalive-time', '1s', '--keepalive-timeout', '1s']);
    t.teardown(() => {
      a.child.kill('SIGCONT');
      a.child.kill('SIGKILL');
    });
    const { agent, file, logs } = agentOf(t, `${a.addr},${b.daemon.address}`, token);
    await agent.start();
    t.equal(agent.daemonAddress, a.addr, 'on the first address');
    await rotate(b, 'sk-1'); // B's commit reaches A over NATS, and A pushes it
    await until('v2 through A', () => read(file) === 'sk-1');
    a.child.kill(fault);
    if (fault === 'SIGKILL') await a.exited;
    await until('the agent left the dead daemon', () => agent.daemonAddress === b.daemon.address);
    t.ok(logs.some((l) => l.startsWith('session to lockboxd broken')), 'the break is logged');
    await rotate(b, 'sk-2');
    await until('the next rotation from the other replica', () => read(file) === 'sk-2');
    t.equal(agent.daemonAddress, b.daemon.address);
  });
}

t.test('NATS down between replicas: each pushes its own commits at once, the other\'s when NATS is back', async (t) => {
  const url = await freshSchema(t);
  const masterKeyFile = keyFile(t);
  const nats = await startNats(t);
  const a = await startTestDaemon(t, { databaseUrl: url, masterKeyFile, natsUrl: nats.url });
  const token = await deployment(a);
  const b = await startTestDaemon(t, { databaseUrl: url, masterKeyFile, natsUrl: nats.url });
  const onA = agentOf(t, a.daemon.address, token);
  const onB = agentOf(t, b.daemon.address, token);
  await onA.agent.start();
  await onB.agent.start();
  await nats.stop();
  await rotate(a, 'sk-a');
  await until('A\'s own agent has A\'s commit with NATS down', () => read(onA.file) === 'sk-a');
  await rotate(b, 'sk-b', a.adminToken); // B started second: A wrote the bootstrap token
  await until('B\'s own agent has B\'s commit with NATS down', () => read(onB.file) === 'sk-b');
  t.equal(read(onA.file), 'sk-a', 'A\'s agent has not seen B\'s commit: nothing carries it');
  await nats.start();
  await until('A\'s agent gets B\'s commit once NATS is back', () => read(onA.file) === 'sk-b', 30_000);
  t.equal(read(onB.file), 'sk-b');
});
