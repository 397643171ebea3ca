/**
 * Fan-out (issue 12 item 4): one lockboxd holding N agent sessions pushes one rotation to all of
 * them. N light session clients (bench/fanout-clients.ts: they resync, ACK every push, write no
 * files) are spread over PROCS processes. Per rotation: commit→ACK latency (from just before the
 * UpdateSecret call to each client's ACK, on the machine's monotonic clock) p50/p99/max, the
 * daemon's RSS, and the daemon's CPU per delivery. Beside it, measured in the same run, the floor:
 * a bare grpc-js server writing one message to N open streams (bench-server.ts fanout-baseline).
 * Each size is measured `--runs` times (fresh daemon, baseline and clients each run) and the
 * medians over runs are printed, with the load average: on a shared machine, judge by CPU per
 * delivery (the daemon's and the baseline server's, from /proc) more than by wall-clock.
 * Usage: npm run bench:fanout -- [--agents 1000,10000] [--runs 3] [--rotations R] [--procs 4]
 * (or AGENTS, RUNS, ROTATIONS, PROCS in the environment).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadServices } from '../shared/src/proto.js';
import { cpuMs, median, percentile, startServer } from './harness.js';

const here = dirname(fileURLToPath(import.meta.url));
/** `--name value` on the command line, else the env var, else the default. */
function option(name: string, env: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : (process.env[env] ?? fallback);
}
const sizes = option('agents', 'AGENTS', '1000,10000').split(',').map(Number);
const procs = Number(option('procs', 'PROCS', '4'));
/** Rotations per run: 15 below 5,000 sessions (a rotation there is short, and warm-up weighs on few), 5 above. */
const rotationsFor = (n: number) => Number(option('rotations', 'ROTATIONS', n < 5000 ? '15' : '5'));
const runs = Number(option('runs', 'RUNS', '3'));

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
    child.on('message', (m: { ready?: boolean; failed?: string }) => {
      if (m.failed) {
        console.error(`fan-out: a client failed (${m.failed}); stopping`);
        process.exit(1);
      }
      if (m.ready) resolve();
    });
    child.send({ start: { addr, token, count: Math.floor(n / procs) + (i < n % procs ? 1 : 0) } });
  })));
  return children;
}

/** Sessions that broke and were opened again since the clients started (see fanout-clients.ts). */
let reconnects = 0;

/** Waits for every client's ACK of `version`; returns the ACK times (ns, monotonic). */
function acks(children: ChildProcess[], version: number): Promise<bigint[]> {
  return Promise.all(children.map((child) => new Promise<{ seen: bigint[]; reconnects: number }>((resolve) => {
    const on = (m: { version?: number; seen?: string[]; reconnects?: number }) => {
      if (m.version !== version) return;
      child.off('message', on);
      resolve({ seen: m.seen!.map(BigInt), reconnects: m.reconnects ?? 0 });
    };
    child.on('message', on);
    child.send({ expect: version });
  }))).then((all) => {
    reconnects = all.reduce((n, a) => n + a.reconnects, 0);
    return all.flatMap((a) => a.seen);
  });
}

/** `promise`, or the benchmark stops with a reason after `seconds` (a stuck run never ends otherwise). */
function within<T>(promise: Promise<T>, seconds: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>(() => {
    timer = setTimeout(() => {
      console.error(`fan-out: ${what} took over ${seconds} s; stopping`);
      process.exit(1);
    }, seconds * 1000);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

function summary(latencies: number[]): Pick<RunFigures, 'p50' | 'p99' | 'max'> {
  const s = [...latencies].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p99: percentile(s, 99), max: s[s.length - 1] };
}

interface RunFigures {
  p50: number;
  p99: number;
  max: number;
  /** Daemon (or baseline server) CPU per delivery, ms. */
  cpu: number;
  rss: number;
  /** Sessions that broke and were opened again during the run. */
  reconnects: number;
}

/** One run at size n: the daemon's rotations, then the baseline's, each with a fresh server and fresh clients. */
async function run(n: number): Promise<{ daemon: RunFigures; base: RunFigures }> {
  // The daemon (async read audit: deliveries audited in batches, as a busy daemon would run).
  const daemon = await startServer('daemon', 'async');
  const { addr, token } = daemon.info;
  const scope = { tenant: 'default', resource_group: '' };
  await rpc(addr, token, 'SecretsService', 'CreateSecret', { scope, secret: { name: 'bench', data: { OPENAI_API_KEY: Buffer.alloc(64, 'k') }, mount: { path: 'bench' } } });
  await rpc(addr, token, 'DeploymentsService', 'CreateDeployment', { scope, deployment: { name: 'app', secrets: ['bench'] } });
  const agentToken = (await rpc(addr, token, 'TokensService', 'CreateToken', { role: 'agent', deployment: 'app' })).token;
  let children = await within(startClients(addr, agentToken, n), 300, `opening ${n} sessions`);
  const runs: RunFigures[] = [];
  const rotations = rotationsFor(n);
  for (let v = 2; v < 2 + rotations; v++) {
    const cpu0 = cpuMs(daemon.pid);
    const waiting = acks(children, v);
    const t0 = process.hrtime.bigint();
    await rpc(addr, token, 'SecretsService', 'UpdateSecret', { scope, name: 'bench', set: { OPENAI_API_KEY: Buffer.alloc(64, String(v % 10)) } });
    const times = await within(waiting, 120, `the ACKs of rotation ${v} at N=${n}`);
    await new Promise((r) => setTimeout(r, 300)); // the last ACKs' status writes (every 200 ms) belong to this rotation
    runs.push({ ...summary(times.map((t) => Number(t - t0) / 1e6)), cpu: (cpuMs(daemon.pid) - cpu0) / n, rss: rssMiB(daemon.pid), reconnects });
  }
  for (const c of children) c.send('stop');
  await daemon.stop();

  const base = await startServer('fanout-baseline');
  children = await within(startClients(base.info.addr, 'none', n), 300, `opening ${n} sessions to the baseline`);
  const baseRuns: RunFigures[] = [];
  for (let v = 2; v < 2 + rotations; v++) {
    const cpu0 = cpuMs(base.pid);
    const waiting = acks(children, v);
    const t0 = process.hrtime.bigint();
    process.kill(base.pid, 'SIGUSR2');
    const times = await within(waiting, 120, `the baseline's push ${v} at N=${n}`);
    baseRuns.push({ ...summary(times.map((t) => Number(t - t0) / 1e6)), cpu: (cpuMs(base.pid) - cpu0) / n, rss: rssMiB(base.pid), reconnects });
  }
  for (const c of children) c.send('stop');
  await base.stop();
  // CPU over all the rotations (/proc counts 10 ms ticks: one rotation of 1,000 deliveries alone would be ±10 µs each).
  const medians = (rs: RunFigures[]): RunFigures => ({
    p50: median(rs.map((r) => r.p50)),
    p99: median(rs.map((r) => r.p99)),
    max: median(rs.map((r) => r.max)),
    cpu: rs.reduce((sum, r) => sum + r.cpu, 0) / rs.length,
    rss: Math.max(...rs.map((r) => r.rss)),
    reconnects: Math.max(...rs.map((r) => r.reconnects)),
  });
  return { daemon: medians(runs), base: medians(baseRuns) };
}

const ms = (x: number) => (x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(0)} ms`);
const line = (d: RunFigures, b: RunFigures) =>
  `commit→ACK p50 ${ms(d.p50)}  p99 ${ms(d.p99)}  max ${ms(d.max)}; daemon RSS ${d.rss.toFixed(0)} MiB, CPU ${(d.cpu * 1000).toFixed(0)} µs per delivery${d.reconnects ? `, ${d.reconnects} sessions reopened` : ''} | ` +
  `baseline (bare grpc-js, one message to N streams): p50 ${ms(b.p50)}  p99 ${ms(b.p99)}, CPU ${(b.cpu * 1000).toFixed(0)} µs per delivery | p99 ratio ${(d.p99 / b.p99).toFixed(1)}×`;

console.log(`fan-out: ${procs} client processes, ${sizes.map((n) => `${rotationsFor(n)} rotations per run at N=${n}`).join(', ')}, ${runs} run(s) per size; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
for (const n of sizes) {
  const results: Array<{ daemon: RunFigures; base: RunFigures }> = [];
  for (let i = 0; i < runs; i++) {
    results.push(await run(n));
    const r = results[results.length - 1];
    console.log(`  N=${n} run ${i + 1}/${runs} (medians of its rotations): ${line(r.daemon, r.base)}`);
  }
  const over = (pick: (r: { daemon: RunFigures; base: RunFigures }) => RunFigures): RunFigures => ({
    p50: median(results.map((r) => pick(r).p50)),
    p99: median(results.map((r) => pick(r).p99)),
    max: median(results.map((r) => pick(r).max)),
    cpu: median(results.map((r) => pick(r).cpu)),
    rss: median(results.map((r) => pick(r).rss)),
    reconnects: Math.max(...results.map((r) => pick(r).reconnects)),
  });
  console.log(`N=${n} (median of ${runs} run(s)): ${line(over((r) => r.daemon), over((r) => r.base))}`);
}
console.log(`load average at the end: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
process.exit(0);
