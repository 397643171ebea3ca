/**
 * Issue 16 item 1: a deployment larger than gRPC's 4 MiB default message. Five secrets of 1 MiB
 * each (the largest a secret may be) reach the real lockbox-agent command: the push is paged
 * (each page under 3 MiB of values), and client and daemon share one 8 MiB limit, so the unary
 * FetchSecrets of the whole deployment works too.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { LockboxClient } from '../../shared/src/client.js';
import { limits } from '../../shared/src/limits.js';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';
import { agentBin, agentEnv, agentFlags } from '../helpers/spawn.js';

const scope = { tenant: 'default', resource_group: '' };
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

t.test('five 1 MiB secrets reach the agent binary and the unary fetch', async (t) => {
  const d = await startTestDaemon(t);
  const values = new Map<string, Buffer>();
  for (let i = 0; i < 5; i++) {
    const value = randomBytes(limits.maxSecretBytes);
    values.set(`big-${i}`, value);
    await d.call('CreateSecret', { scope, secret: { name: `big-${i}`, data: { BLOB: value }, mount: { path: `big-${i}` } } });
  }
  await d.rpc('DeploymentsService', 'CreateDeployment', { scope, deployment: { name: 'app', secrets: [...values.keys()] } });
  const { token } = await d.rpc('TokensService', 'CreateToken', { role: 'agent', deployment: 'app' });

  const home = realpathSync(tempDir(t));
  const child = spawn(process.execPath, [...agentFlags, agentBin, 'once', '--timeout', '60s'], { env: agentEnv({ LOCKBOX_ADDR: d.daemon.address, LOCKBOX_TOKEN: token, BENTOML_HOME: home }) });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  t.equal(code, 0, `once exits 0 ${stderr.includes('larger than max') ? stderr : ''}`);
  t.notMatch(stderr, /larger than max/);
  for (const [name, value] of values) t.equal(sha(readFileSync(join(home, name, 'BLOB'))), sha(value), `${name} written exactly`);

  const client = new LockboxClient({ addr: d.daemon.address, token });
  t.teardown(() => client.close());
  const fetched = await client.call('AgentService', 'FetchSecrets', {});
  t.equal(fetched.secrets.length, 5, 'the unary fetch of the whole deployment (over 5 MiB) is received too');
});
