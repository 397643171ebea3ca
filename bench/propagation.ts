/**
 * Propagation: one lockboxd (own process), one nats-server (own process, free port), N agents
 * spread over PROCESSES (default 4) processes (bench/propagation-agents.ts), each agent with its
 * own home dir, gRPC client and NATS connection. A loop of
 * updates; for each, the time from the update's acknowledgement to the moment each agent has the
 * new content readable (its atomic rename done). p50 / p99 / max per N, beside the floor measured
 * in the same run: a raw NATS publish→receive, one GetSecret over gRPC, one rename(2) — and, per
 * N, the same disk work done raw: N parallel fsync'd write+rename sequences (what N agents on one
 * disk must do at the least: file fsync, dir fsync, rename, parent fsync).
 * Targets: p99 ≤ 20 ms at N=1, ≤ 100 ms at N=100, ≤ 1 s at N=1000.
 *   npm run bench:propagation            (N from AGENTS, default "1,100,1000"; UPDATES per N, default 20;
 *                                         PROCESSES=1 puts every agent in one process; AGENT_NODE_FLAGS overrides
 *                                         the node flags of the agents' processes, default: lockbox-agent's own;
 *                                         BENCH_HOME=/dev/shm puts the agents' homes and the raw floor on tmpfs,
 *                                         as Kubernetes puts secret volumes and emptyDir with medium Memory;
 *                                         VERBOSE=1 prints each update's first, median and last delivery)
 */
import { fork } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { mkdir, open, rename, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from 'nats';
import { LockboxClient } from '../shared/src/client.js';
import { benchHome as homesBase, cpuMs, median, percentile, startNats, startServer } from './harness.js';
import { agentNodeFlags } from '../agent/src/node-flags.js';

const COUNTS = (process.env.AGENTS ?? '1,100,1000').split(',').map(Number);
const UPDATES = Number(process.env.UPDATES ?? 20);

const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;

const nats = await startNats();
process.env.LOCKBOX_BENCH_NATS = nats.url;
const daemon = await startServer('daemon', process.env.AUDIT_READS ?? 'durable', nats.url);
const admin = new LockboxClient({ addr: daemon.info.addr, token: daemon.info.token });
await admin.call('SecretsService', 'CreateSecret', { secret: { name: 'openai', template: 'openai', data: { OPENAI_API_KEY: Buffer.from('sk-0') }, mount: { path: 'demo' } } });
await admin.call('DeploymentsService', 'CreateDeployment', { deployment: { name: 'app', secrets: ['openai'] } });
const { token } = await admin.call('TokensService', 'CreateToken', { role: 'agent', deployment: 'app' });

// The floor, measured in this run.
const nc = await connect({ servers: nats.url });
const natsRtt: number[] = [];
let received: (() => void) | undefined;
nc.subscribe('bench.floor', { callback: () => received?.() });
await nc.flush();
for (let i = 0; i < 200; i++) {
  const t0 = process.hrtime.bigint();
  const arrived = new Promise<void>((resolve) => (received = resolve));
  nc.publish('bench.floor');
  await arrived;
  natsRtt.push(ms(t0));
}
const agentClient = new LockboxClient({ addr: daemon.info.addr, token });
const getRtt: number[] = [];
for (let i = 0; i < 100; i++) {
  const t0 = process.hrtime.bigint();
  await agentClient.call('SecretsService', 'GetSecret', { name: 'openai', include_values: true });
  getRtt.push(ms(t0));
}
const renameDir = mkdtempSync(join(homesBase, 'lockbox-bench-rename-'));
const renames: number[] = [];
for (let i = 0; i < 200; i++) {
  symlinkSync(`target-${i}`, join(renameDir, 'tmp'));
  const t0 = process.hrtime.bigint();
  renameSync(join(renameDir, 'tmp'), join(renameDir, 'link'));
  renames.push(ms(t0));
}
const floor = { nats: median(natsRtt), get: median(getRtt), rename: median(renames) };
console.log(`floor (medians): NATS publish→receive ${floor.nats.toFixed(3)} ms, GetSecret ${floor.get.toFixed(3)} ms, rename ${floor.rename.toFixed(3)} ms; sum ${(floor.nats + floor.get + floor.rename).toFixed(2)} ms`);

/** N parallel raw atomic writes, as each agent does: returns the time until all are done. */
async function rawDiskFloor(n: number): Promise<number> {
  const dirs = Array.from({ length: n }, () => mkdtempSync(join(homesBase, 'lockbox-bench-raw-')));
  const fsync = async (path: string) => {
    const h = await open(path, 'r');
    await h.sync();
    await h.close();
  };
  const t0 = process.hrtime.bigint();
  await Promise.all(
    dirs.map(async (dir) => {
      await mkdir(join(dir, 'v1'));
      const h = await open(join(dir, 'v1', 'KEY'), 'w');
      await h.writeFile('sk-xxxxxxxx');
      await h.sync();
      await h.close();
      await fsync(join(dir, 'v1'));
      await symlink('v1', join(dir, 'tmp'));
      await rename(join(dir, 'tmp'), join(dir, 'data'));
      await fsync(dir);
    }),
  );
  const elapsed = ms(t0);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  return elapsed;
}

// The agents' processes start with lockbox-agent's own node flags (its shebang), unless
// AGENT_NODE_FLAGS says otherwise (e.g. "" for V8's defaults, to see what lite mode costs here).
const hostFlags = process.env.AGENT_NODE_FLAGS !== undefined ? process.env.AGENT_NODE_FLAGS.split(/\s+/).filter(Boolean) : agentNodeFlags();
console.log(`agent processes start with node flags: ${hostFlags.join(' ') || '(none)'}; homes under ${homesBase}`);
let version = 1;
const summary: string[] = [];
for (const n of COUNTS) {
  // Agents live in up to PROCESSES processes (default 4), as they would in separate pods.
  const processes = Math.min(n, Number(process.env.PROCESSES ?? 4));
  const hosts = Array.from({ length: processes }, (_, i) => ({
    child: fork(join(dirname(fileURLToPath(import.meta.url)), 'propagation-agents.js'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv: hostFlags }),
    count: Math.floor(n / processes) + (i < n % processes ? 1 : 0),
  }));
  const reports = new Map<number, bigint[][]>();
  let onReport: (() => void) | undefined;
  const startTimes: number[] = [];
  await Promise.all(
    hosts.map(
      (host, i) =>
        new Promise<void>((resolve) => {
          host.child.on('message', (m: { ready?: number; version?: number; seen?: string[] }) => {
            if (m.ready !== undefined) {
              startTimes.push(m.ready);
              resolve();
            } else if (m.version !== undefined) {
              if (!reports.has(m.version)) reports.set(m.version, []);
              reports.get(m.version)!.push(m.seen!.map(BigInt));
              onReport?.();
            }
          });
          host.child.send({ start: { addr: daemon.info.addr, token, count: host.count, id: `${n}-${i}` } });
        }),
    ),
  );
  const startMs = Math.max(...startTimes);
  await new Promise((r) => setTimeout(r, 500 + n)); // every subscription in place
  const latencies: number[] = [];
  const cpuBefore = { daemon: cpuMs(daemon.pid), agents: hosts.reduce((sum, h) => sum + cpuMs(h.child.pid!), 0) };
  for (let u = 0; u < UPDATES; u++) {
    version++;
    await admin.call('SecretsService', 'UpdateSecret', { name: 'openai', set: { OPENAI_API_KEY: Buffer.from(`sk-${version}`) } });
    const acknowledged = process.hrtime.bigint();
    const all = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 10_000);
      onReport = () => {
        if ((reports.get(version)?.length ?? 0) === processes) {
          clearTimeout(timer);
          resolve(true);
        }
      };
    });
    for (const host of hosts) host.child.send({ expect: version });
    if (!(await all)) console.log(`  update ${u}: only ${reports.get(version)?.length ?? 0}/${processes} processes reported all their agents within 10 s`);
    const update = (reports.get(version) ?? []).flat().map((t) => Number(t - acknowledged) / 1e6);
    latencies.push(...update);
    if (process.env.VERBOSE) { // each update's spread: where the tail comes from
      update.sort((a, b) => a - b);
      console.log(`  update ${u}: first ${update[0]?.toFixed(1)} ms, p50 ${percentile(update, 50).toFixed(1)} ms, last ${update.at(-1)?.toFixed(1)} ms`);
    }
  }
  const perRotation = (ms: number) => (ms / (n * UPDATES)).toFixed(2);
  const cpu = `CPU per agent and rotation: agents ${perRotation(hosts.reduce((sum, h) => sum + cpuMs(h.child.pid!), 0) - cpuBefore.agents)} ms, daemon ${perRotation(cpuMs(daemon.pid) - cpuBefore.daemon)} ms`;
  latencies.sort((a, b) => a - b);
  const raw = median([await rawDiskFloor(n), await rawDiskFloor(n), await rawDiskFloor(n)]);
  const line = `N=${n}: p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${latencies[latencies.length - 1].toFixed(1)} ms over ${latencies.length} deliveries (${UPDATES} updates, agents in ${processes} process${processes > 1 ? 'es' : ''}; all started in ${startMs} ms); raw disk floor for ${n} parallel fsync'd swaps ${raw.toFixed(1)} ms; ${cpu}`;
  console.log(line);
  summary.push(line);
  await Promise.all(hosts.map((h) => new Promise((resolve) => { h.child.once('exit', resolve); h.child.send('stop'); })));
}
console.log('\npropagation, update acknowledged → new content readable at each agent:');
for (const line of summary) console.log('  ' + line);
console.log(`  floor: ${(floor.nats + floor.get + floor.rename).toFixed(2)} ms (NATS ${floor.nats.toFixed(3)} + get ${floor.get.toFixed(3)} + rename ${floor.rename.toFixed(3)}); targets p99 ≤ 20 ms (N=1), ≤ 100 ms (N=100), ≤ 1 s (N=1000)`);
agentClient.close();
admin.close();
await nc.close();
await daemon.stop();
nats.stop();
rmSync(renameDir, { recursive: true, force: true });
