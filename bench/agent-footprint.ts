/**
 * One lockbox-agent process with 50 secrets mounted (a deployment of 50 one-key secrets, 256-byte
 * values), following a nats-server of its own as a real agent does: time from spawn to /readyz
 * answering 200, and its resident memory (VmRSS) once ready and after 20 rotations (by then it
 * has connected to NATS and applied each rotation from its notice: the steady state). Baseline
 * measured in the same run: a bare `node -e` process with an HTTP server, spawned and polled the
 * same way (what any Node sidecar costs).
 * Targets: RSS ≤ 64 MiB, start-to-ready ≤ 500 ms. RUNS rounds (default 5), medians.
 *   npm run bench:footprint     (AGENT_NODE_FLAGS overrides the agent's node flags, default: its shebang's;
 *                                BENCH_HOME where its home goes, e.g. /dev/shm for tmpfs)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LockboxClient } from '../shared/src/client.js';
import { benchHome, median, startNats, startServer } from './harness.js';
import { agentNodeFlags } from '../agent/src/node-flags.js';

const RUNS = Number(process.env.RUNS ?? 5);
const SECRETS = 50;
const agentFlags = process.env.AGENT_NODE_FLAGS !== undefined ? process.env.AGENT_NODE_FLAGS.split(/\s+/).filter(Boolean) : agentNodeFlags();
const agentBin = join(dirname(fileURLToPath(import.meta.url)), '..', 'agent', 'lockbox-agent.js'); // what the lockbox-agent command runs

const safeRead = (path: string) => {
  try {
    return readFileSync(path);
  } catch {
    return undefined;
  }
};
const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const ready = (port: number) =>
  new Promise<boolean>((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/readyz' }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.end();
  });

/** A port nothing listens on now (so a process left over from another run is never measured instead). */
const freePort = () =>
  new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });

async function timeToReady(child: ChildProcess, port: number, started: bigint): Promise<number> {
  for (;;) {
    if (child.exitCode !== null) throw new Error('process exited before it was ready');
    if (await ready(port)) return Number(process.hrtime.bigint() - started) / 1e6;
    await new Promise((r) => setTimeout(r, 2));
  }
}

const nats = await startNats();
const daemon = await startServer('daemon', 'durable', nats.url);
const admin = new LockboxClient({ addr: daemon.info.addr, token: daemon.info.token });
const names = Array.from({ length: SECRETS }, (_, i) => `s${i}`);
for (const name of names) await admin.call('SecretsService', 'CreateSecret', { secret: { name, data: { [`KEY_${name}`]: Buffer.alloc(256, 'x') }, mount: { path: `m/${name}` } } });
await admin.call('DeploymentsService', 'CreateDeployment', { deployment: { name: 'bench', secrets: names } });
const { token } = await admin.call('TokensService', 'CreateToken', { role: 'agent', deployment: 'bench' });

const agentStart: number[] = [];
const agentRss: number[] = [];
const agentRssAfter: number[] = [];
const baseStart: number[] = [];
const baseRss: number[] = [];
for (let run = 1; run <= RUNS; run++) {
  const basePort = await freePort();
  const base = spawn(process.execPath, ['-e', `require('http').createServer((q,s)=>s.end('ok')).listen(${basePort}, '127.0.0.1')`]);
  const t0 = process.hrtime.bigint();
  baseStart.push(await timeToReady(base, basePort, t0));
  baseRss.push(rssMiB(base.pid!));
  base.kill();

  const home = mkdtempSync(join(benchHome, 'lockbox-footprint-'));
  const port = await freePort();
  const t1 = process.hrtime.bigint();
  const agent = spawn(process.execPath, [...agentFlags, agentBin, 'run', '--health-addr', `127.0.0.1:${port}`], {
    env: { ...process.env, LOCKBOX_ADDR: daemon.info.addr, LOCKBOX_TOKEN: token, BENTOML_HOME: home, LOCKBOX_LOG_LEVEL: 'warn' },
    stdio: 'ignore',
  });
  process.once('exit', () => agent.kill('SIGKILL')); // never left running by a failed run
  agentStart.push(await timeToReady(agent, port, t1));
  agentRss.push(rssMiB(agent.pid!));
  await new Promise((r) => setTimeout(r, 500)); // connected to NATS
  for (let i = 0; i < 20; i++) {
    const name = names[i % SECRETS];
    const value = Buffer.alloc(256, String(i % 10));
    await admin.call('SecretsService', 'UpdateSecret', { name, set: { [`KEY_${name}`]: value } });
    const file = join(home, 'm', name, `KEY_${name}`);
    for (let waited = 0; !safeRead(file)?.equals(value); waited += 5) {
      if (waited > 10_000) throw new Error(`rotation ${i} did not reach the agent within 10 s`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  agentRssAfter.push(rssMiB(agent.pid!));
  agent.kill('SIGTERM');
  await new Promise((r) => agent.once('exit', r));
  rmSync(home, { recursive: true, force: true });
  console.log(`run ${run}: agent ready in ${agentStart.at(-1)!.toFixed(0)} ms, RSS ${agentRss.at(-1)!.toFixed(1)} MiB (${agentRssAfter.at(-1)!.toFixed(1)} after 20 updates through NATS) | bare node ${baseStart.at(-1)!.toFixed(0)} ms, ${baseRss.at(-1)!.toFixed(1)} MiB`);
}
console.log(`\nlockbox-agent with ${SECRETS} secrets (node flags: ${agentFlags.join(' ') || 'none'}), median of ${RUNS}:`);
console.log(`  start to ready : ${median(agentStart).toFixed(0)} ms (target ≤ 500 ms); bare node + http: ${median(baseStart).toFixed(0)} ms (baseline)`);
console.log(`  RSS following notices, after 20 updates : ${median(agentRssAfter).toFixed(1)} MiB (target ≤ 64 MiB); when ready ${median(agentRss).toFixed(1)} MiB; bare node: ${median(baseRss).toFixed(1)} MiB (baseline)`);
admin.close();
await daemon.stop();
nats.stop();
