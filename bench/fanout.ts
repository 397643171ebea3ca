/**
 * Fan-out (issue 12 item 4): one lockboxd holding N agent sessions pushes one rotation to all of
 * them. N light session clients (bench/fanout-clients.ts: they resync, ACK every push, write no
 * files) are spread over PROCS processes. Per rotation: commit→ACK latency (from just before the
 * UpdateSecret call to each client's ACK, on the machine's monotonic clock) p50/p99/max, the
 * daemon's RSS, and the daemon's CPU per delivery. Beside it, measured in the same run, the floor:
 * a bare grpc-js server writing one message to N open streams (bench-server.ts fanout-baseline).
 * Usage: AGENTS=1000,10000 PROCS=4 ROTATIONS=5 node dist/bench/fanout.js
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadServices } from '../shared/src/proto.js';
import { cpuMs, median, percentile, startServer } from './harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const sizes = (process.env.AGENTS ?? '1000,10000').split(',').map(Number);
const procs = Number(process.env.PROCS ?? 4);
const rotations = Number(process.env.ROTATIONS ?? 5);

function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'))!;
  return Number(/(\d+)/.exec(line)![1]) / 1024;
}

function rpc(addr: string, token: string, service: 'SecretsService' | 'DeploymentsService' | 'TokensService', method: string, request: object): Promise<any> {
  const client = new (loadServices()[service])(addr, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  return new Promise((resolve, reject) => (client as any)[method](request, metadata, (e: Error | null, r: unknown) => (client.close(), e ? reject(e) : resolve(r))));
}

async function startClients(addr: string, token: string, n: number): Promise<ChildProcess[]> {
  const children = Array.from({ length: procs }, () => fork(join(here, 'fanout-clients.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  await Promise.all(children.map((child, i) => new Promise<void>((resolve) => {
    child.on('message', (m: { ready?: boolean }) => m.ready && resolve());
    child.send({ start: { addr, token, count: Math.floor(n / procs) + (i < n % procs ? 1 : 0) } });
  })));
  return children;
}

/** Waits for every client's ACK of `version`; returns the ACK times (ns, monotonic). */
function acks(children: ChildProcess[], version: number): Promise<bigint[]> {
  return Promise.all(children.map((child) => new Promise<bigint[]>((resolve) => {
    const on = (m: { version?: number; seen?: string[] }) => {
      if (m.version !== version) return;
      child.off('message', on);
      resolve(m.seen!.map(BigInt));
    };
    child.on('message', on);
    child.send({ expect: version });
  }))).then((all) => all.flat());
}

function summary(latencies: number[]): { p50: number; p99: number; max: number } {
  const s = [...latencies].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p99: percentile(s, 99), max: s[s.length - 1] };
}

for (const n of sizes) {
  // The daemon (async read audit: deliveries audited in batches, as a busy daemon would run).
  const daemon = await startServer('daemon', 'async');
  const { addr, token } = daemon.info;
  const scope = { tenant: 'default', resource_group: '' };
  await rpc(addr, token, 'SecretsService', 'CreateSecret', { scope, secret: { name: 'bench', data: { OPENAI_API_KEY: Buffer.alloc(64, 'k') }, mount: { path: 'bench' } } });
  await rpc(addr, token, 'DeploymentsService', 'CreateDeployment', { scope, deployment: { name: 'app', secrets: ['bench'] } });
  const agentToken = (await rpc(addr, token, 'TokensService', 'CreateToken', { role: 'agent', deployment: 'app' })).token;
  let children = await startClients(addr, agentToken, n);
  const runs: Array<{ p50: number; p99: number; max: number; cpu: number }> = [];
  for (let v = 2; v < 2 + rotations; v++) {
    const cpu0 = cpuMs(daemon.pid);
    const waiting = acks(children, v);
    const t0 = process.hrtime.bigint();
    await rpc(addr, token, 'SecretsService', 'UpdateSecret', { scope, name: 'bench', set: { OPENAI_API_KEY: Buffer.alloc(64, String(v % 10)) } });
    const times = await waiting;
    runs.push({ ...summary(times.map((t) => Number(t - t0) / 1e6)), cpu: (cpuMs(daemon.pid) - cpu0) / n });
  }
  const rss = rssMiB(daemon.pid);
  for (const c of children) c.send('stop');
  await daemon.stop();

  const base = await startServer('fanout-baseline');
  children = await startClients(base.info.addr, 'none', n);
  const baseRuns: Array<{ p50: number; p99: number; max: number }> = [];
  for (let v = 2; v < 2 + rotations; v++) {
    const waiting = acks(children, v);
    const t0 = process.hrtime.bigint();
    process.kill(base.pid, 'SIGUSR2');
    baseRuns.push(summary((await waiting).map((t) => Number(t - t0) / 1e6)));
  }
  for (const c of children) c.send('stop');
  await base.stop();

  const m = (xs: number[]) => median(xs);
  const p99 = m(runs.map((r) => r.p99));
  const baseP99 = m(baseRuns.map((r) => r.p99));
  console.log(
    `N=${n} (${procs} client processes, ${rotations} rotations, medians): commit→ACK p50 ${m(runs.map((r) => r.p50)).toFixed(1)} ms  p99 ${p99.toFixed(1)} ms  max ${m(runs.map((r) => r.max)).toFixed(1)} ms; ` +
      `daemon RSS ${rss.toFixed(0)} MiB, CPU ${(m(runs.map((r) => r.cpu)) * 1000).toFixed(0)} µs per delivery | ` +
      `baseline (bare grpc-js, one message to N streams): p50 ${m(baseRuns.map((r) => r.p50)).toFixed(1)} ms  p99 ${baseP99.toFixed(1)} ms  max ${m(baseRuns.map((r) => r.max)).toFixed(1)} ms | p99 ratio ${(p99 / baseP99).toFixed(1)}×`,
  );
}
process.exit(0);
