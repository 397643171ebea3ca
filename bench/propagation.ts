/**
 * Propagation on the push path (issue 12 item 5): one lockboxd (own process, no NATS: a daemon
 * pushes its own commits down each agent's session at once), N agents spread over --processes
 * processes (bench/propagation-agents.ts), each agent with its own home dir and session, tamper
 * watches on, as lockbox-agent runs them. A loop of --updates updates of one secret; for each,
 * the time from just before the UpdateSecret call (the commit happens inside it) to the moment
 * each agent has the new content readable (its atomic rename done): p50 / p99 / max. Per N and
 * run, measured beside it:
 * - agent CPU per rotation: process.cpuUsage() of the agents' processes over the updates (user +
 *   system, so the kernel's file-system work counts), divided by N × updates; the daemon's too;
 * - the raw disk floor: N parallel fsync'd swaps done bare (mkdir, write + fsync a file, fsync
 *   the dir, symlink, rename, fsync the parent: what N agents on one disk must do at the least),
 *   median of three;
 * - the CPU of a bare rotation: the writer's file operations for one rotation as synchronous
 *   calls in this process, one dir after another (what the layout costs on this file system,
 *   whoever writes it), and the agents' CPU per rotation as a ratio of it;
 * - the floor of one round trip: GetSecret over gRPC, and one rename(2).
 * Each N is measured --runs times with fresh agents; the summary gives medians and the range.
 * Homes are on disk (the OS temp dir) unless --tmpfs puts them (and the raw floor) on /dev/shm,
 * as Kubernetes puts secret volumes, or --dir in a dir of your choice (another file system: see
 * the README's Benchmarks for a journaled ext4 on this machine's disk). The header names the file
 * system (type, device, and for ext4 whether it has a journal). Targets on disk: p99 ≤ 20 ms at N=1, ≤ 100 ms at N=100,
 * ≤ 1 s at N=1000; agent CPU per rotation ≤ 0.8 ms.
 *   npm run bench:propagation [-- --agents 1,100,1000 --runs 3 --updates 20 --processes 4 --tmpfs | --dir DIR]
 *   (AGENT_NODE_FLAGS overrides the node flags of the agents' processes, default: lockbox-agent's
 *   own; AGENT_CPU_PROFILE=DIR writes a CPU profile of each agents' process over the updates;
 *   AGENT_REPAIR=0 turns the agents' tamper watches off, to see what they cost; VERBOSE=1 prints
 *   each version's first, median and last delivery)
 */
import { fork } from 'node:child_process';
import { chmodSync, closeSync, fsyncSync, mkdirSync, mkdtempSync, openSync, renameSync, rmSync, rmdirSync, symlinkSync, unlinkSync, writeSync } from 'node:fs';
import { mkdir, open, rename, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { LockboxClient } from '../shared/src/client.js';
import { cpuMs, describeFileSystem, homesDir, median, percentile, startServer } from './harness.js';
import { agentNodeFlags } from '../agent/src/node-flags.js';

const { values: args } = parseArgs({
  options: {
    agents: { type: 'string', default: process.env.AGENTS ?? '1,100,1000' },
    runs: { type: 'string', default: process.env.RUNS ?? '3' },
    updates: { type: 'string', default: process.env.UPDATES ?? '20' },
    processes: { type: 'string', default: process.env.PROCESSES ?? '4' },
    tmpfs: { type: 'boolean', default: false },
    dir: { type: 'string' },
  },
});
const COUNTS = args.agents.split(',').map(Number);
const RUNS = Number(args.runs);
const UPDATES = Number(args.updates);
const homesBase = homesDir(args);
const fileSystem = describeFileSystem(homesBase);

const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;
const fixed = (n: number, digits = 1) => n.toFixed(digits);

const daemon = await startServer('daemon', process.env.AUDIT_READS ?? 'durable');
const admin = new LockboxClient({ addr: daemon.info.addr, token: daemon.info.token });
await admin.call('SecretsService', 'CreateSecret', { secret: { name: 'openai', template: 'openai', data: { OPENAI_API_KEY: Buffer.from('sk-0') }, mount: { path: 'demo' } } });
await admin.call('DeploymentsService', 'CreateDeployment', { deployment: { name: 'app', secrets: ['openai'] } });
const { token } = await admin.call('TokensService', 'CreateToken', { role: 'agent', deployment: 'app' });

// The floor of one delivery, measured in this run: a gRPC round trip and a rename.
const agentClient = new LockboxClient({ addr: daemon.info.addr, token });
const getRtt: number[] = [];
for (let i = 0; i < 100; i++) {
  const t0 = process.hrtime.bigint();
  await agentClient.call('SecretsService', 'GetSecret', { name: 'openai', include_values: true });
  getRtt.push(ms(t0));
}
agentClient.close();
const renameDir = mkdtempSync(join(homesBase, 'lockbox-bench-rename-'));
const renames: number[] = [];
for (let i = 0; i < 200; i++) {
  symlinkSync(`target-${i}`, join(renameDir, 'tmp'));
  const t0 = process.hrtime.bigint();
  renameSync(join(renameDir, 'tmp'), join(renameDir, 'link'));
  renames.push(ms(t0));
}
rmSync(renameDir, { recursive: true, force: true });
const floor = { get: median(getRtt), rename: median(renames) };

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

/**
 * The CPU of N rotations done bare, in this process, one after the other with synchronous calls
 * (no event loop, no promises, no thread pool): in a dir that holds a version, the file
 * operations the agent's writer makes for one rotation of one key (a version dir with the value
 * and `..version`, each written and fsynced; the dir made read-only; a link renamed over `data`;
 * the dir fsynced; the old version removed). What the kernel and the bindings charge for the
 * layout, whoever writes it: ms per rotation.
 */
function bareRotationCpu(n: number): number {
  const dirs = Array.from({ length: n }, () => mkdtempSync(join(homesBase, 'lockbox-bench-bare-')));
  const rotate = (dir: string, from: string | undefined, to: string) => {
    mkdirSync(join(dir, to), { mode: 0o700 });
    for (const name of ['KEY', '..version']) {
      const fd = openSync(join(dir, to, name), 'wx', 0o400);
      writeSync(fd, `sk-${to}`);
      fsyncSync(fd);
      closeSync(fd);
    }
    chmodSync(join(dir, to), 0o500);
    symlinkSync(to, join(dir, 'tmp'));
    renameSync(join(dir, 'tmp'), join(dir, 'data'));
    const fd = openSync(dir, 'r');
    fsyncSync(fd);
    closeSync(fd);
    if (from) {
      chmodSync(join(dir, from), 0o700);
      for (const name of ['KEY', '..version']) unlinkSync(join(dir, from, name));
      rmdirSync(join(dir, from));
    }
  };
  for (const dir of dirs) rotate(dir, undefined, 'v1');
  const before = process.cpuUsage();
  for (const dir of dirs) rotate(dir, 'v1', 'v2');
  const used = process.cpuUsage(before);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  return (used.user + used.system) / 1000 / n;
}

interface Run {
  p50: number;
  p99: number;
  max: number;
  /** Agents' CPU per rotation (user, system), ms. */
  user: number;
  system: number;
  daemon: number;
  raw: number;
  /** bareRotationCpu, ms. */
  bare: number;
  startMs: number;
  late: number;
}

type HostMessage = { ready?: number; done?: number; cpu?: { user: number; system: number }; times?: [number, string[]][] };

// The agents' processes start with lockbox-agent's own node flags (its shebang), unless
// AGENT_NODE_FLAGS says otherwise (e.g. "" for V8's defaults, to see what lite mode costs here).
const hostFlags = process.env.AGENT_NODE_FLAGS !== undefined ? process.env.AGENT_NODE_FLAGS.split(/\s+/).filter(Boolean) : agentNodeFlags();
let version = 1;

/** One run at N: fresh agents, UPDATES updates, then the raw floor. */
async function measure(n: number): Promise<Run> {
  // Agents live in up to --processes processes, as they would in separate pods.
  const processes = Math.min(n, Number(args.processes));
  const hosts = Array.from({ length: processes }, (_, i) => ({
    child: fork(join(dirname(fileURLToPath(import.meta.url)), 'propagation-agents.js'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv: hostFlags }),
    count: Math.floor(n / processes) + (i < n % processes ? 1 : 0),
  }));
  /** Per version, how many processes have it at every agent. */
  const done = new Map<number, number>();
  let onDone: (() => void) | undefined;
  let onCpu: ((cpu: { user: number; system: number }) => void) | undefined;
  let onTimes: ((times: [number, string[]][]) => void) | undefined;
  const startTimes: number[] = [];
  await Promise.all(
    hosts.map(
      (host, i) =>
        new Promise<void>((resolve) => {
          host.child.on('message', (m: HostMessage) => {
            if (m.ready !== undefined) {
              startTimes.push(m.ready);
              resolve();
            } else if (m.done !== undefined) {
              done.set(m.done, (done.get(m.done) ?? 0) + 1);
              onDone?.();
            } else if (m.cpu) onCpu?.(m.cpu);
            else if (m.times) onTimes?.(m.times);
          });
          host.child.send({ start: { addr: daemon.info.addr, token, count: host.count, id: `${n}-${i}`, homes: homesBase } });
        }),
    ),
  );
  /** The agents' processes' CPU so far (µs, summed). */
  const agentsCpu = async () => {
    const answers: { user: number; system: number }[] = [];
    await new Promise<void>((resolve) => {
      onCpu = (cpu) => answers.push(cpu) === processes && resolve();
      for (const host of hosts) host.child.send({ cpu: true });
    });
    return answers.reduce((sum, c) => ({ user: sum.user + c.user, system: sum.system + c.system }), { user: 0, system: 0 });
  };
  /** Every agent's time of every version, from all the processes. */
  const agentsTimes = async () => {
    const times = new Map<number, bigint[]>();
    let answers = 0;
    await new Promise<void>((resolve) => {
      onTimes = (got) => {
        for (const [v, list] of got) times.set(v, [...(times.get(v) ?? []), ...list.map(BigInt)]);
        if (++answers === processes) resolve();
      };
      for (const host of hosts) host.child.send({ times: true });
    });
    return times;
  };
  await new Promise((r) => setTimeout(r, 500 + n)); // every session settled
  let late = 0;
  const calls = new Map<number, bigint>();
  const before = { agents: await agentsCpu(), daemon: cpuMs(daemon.pid) };
  for (let u = 0; u < UPDATES; u++) {
    version++;
    const all = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 10_000);
      onDone = () => {
        if (done.get(version) === processes) {
          clearTimeout(timer);
          resolve(true);
        }
      };
      onDone();
    });
    calls.set(version, process.hrtime.bigint());
    await admin.call('SecretsService', 'UpdateSecret', { name: 'openai', set: { OPENAI_API_KEY: Buffer.from(`sk-${version}`) } });
    if (!(await all)) {
      late++;
      console.log(`  update ${u}: only ${done.get(version) ?? 0}/${processes} processes had it at all their agents within 10 s`);
    }
  }
  const after = { agents: await agentsCpu(), daemon: cpuMs(daemon.pid) };
  const times = await agentsTimes();
  const latencies: number[] = [];
  for (const [v, called] of calls) {
    const update = (times.get(v) ?? []).map((t) => Number(t - called) / 1e6);
    latencies.push(...update);
    if (process.env.VERBOSE) { // each update's spread: where the tail comes from
      update.sort((a, b) => a - b);
      console.log(`  version ${v}: first ${update[0]?.toFixed(1)} ms, p50 ${percentile(update, 50).toFixed(1)} ms, last ${update.at(-1)?.toFixed(1)} ms`);
    }
  }
  const rotations = n * UPDATES;
  latencies.sort((a, b) => a - b);
  await Promise.all(hosts.map((h) => new Promise((resolve) => { h.child.once('exit', resolve); h.child.send('stop'); })));
  const raw = median([await rawDiskFloor(n), await rawDiskFloor(n), await rawDiskFloor(n)]);
  const bare = bareRotationCpu(n);
  return {
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies[latencies.length - 1],
    user: (after.agents.user - before.agents.user) / 1000 / rotations,
    system: (after.agents.system - before.agents.system) / 1000 / rotations,
    daemon: (after.daemon - before.daemon) / rotations,
    raw,
    bare,
    startMs: Math.max(...startTimes),
    late,
  };
}

/** "median (min–max)" of one figure over the runs. */
function spread(runs: Run[], pick: (r: Run) => number, digits = 1): string {
  const values = runs.map(pick);
  const text = fixed(median(values), digits);
  return runs.length > 1 ? `${text} (${fixed(Math.min(...values), digits)}–${fixed(Math.max(...values), digits)})` : text;
}

console.log(`push path, no NATS; homes under ${homesBase}, on ${fileSystem}; agents' processes start with node flags: ${hostFlags.join(' ') || '(none)'}; ${RUNS} run(s) × ${UPDATES} updates per N; load average ${(await import('node:os')).loadavg().map((l) => l.toFixed(1)).join(' ')}`);
const summary: string[] = [];
for (const n of COUNTS) {
  const runs: Run[] = [];
  for (let r = 0; r < RUNS; r++) {
    const run = await measure(n);
    runs.push(run);
    console.log(`N=${n} run ${r + 1}: p50 ${fixed(run.p50)} ms, p99 ${fixed(run.p99)} ms, max ${fixed(run.max)} ms; agent CPU per rotation ${fixed(run.user + run.system, 2)} ms (user ${fixed(run.user, 2)} + system ${fixed(run.system, 2)}), ${fixed((run.user + run.system) / run.bare, 2)}× a bare rotation's ${fixed(run.bare, 2)} ms; daemon ${fixed(run.daemon, 2)} ms; raw disk floor ${fixed(run.raw)} ms; agents started in ${run.startMs} ms${run.late ? `; ${run.late} update(s) not everywhere within 10 s` : ''}`);
  }
  summary.push(
    `N=${n}: p50 ${spread(runs, (r) => r.p50)} ms, p99 ${spread(runs, (r) => r.p99)} ms, max ${spread(runs, (r) => r.max)} ms; ` +
      `agent CPU per rotation ${spread(runs, (r) => r.user + r.system, 2)} ms (system ${spread(runs, (r) => r.system, 2)}; ${spread(runs, (r) => (r.user + r.system) / r.bare, 2)}× a bare rotation's ${spread(runs, (r) => r.bare, 2)} ms), daemon ${spread(runs, (r) => r.daemon, 2)} ms; ` +
      `raw disk floor (${n} parallel fsync'd swaps) ${spread(runs, (r) => r.raw)} ms`,
  );
}
console.log(`\npropagation on the push path, UpdateSecret called → new content readable at each agent; medians (and range) over ${RUNS} run(s) of ${UPDATES} updates, homes on ${fileSystem}:`);
for (const line of summary) console.log('  ' + line);
if (fileSystem.includes('without a journal'))
  console.log('  note: on ext4 without a journal the kernel looks up every inode freed in the last minutes at each inode it allocates (fs/ext4/ialloc.c, recently_deleted); a swap allocates four, so system CPU per rotation here grows with how much the disk churned lately (README, Benchmarks)');
console.log(`  floor of one delivery: GetSecret round trip ${fixed(floor.get, 3)} ms + rename ${fixed(floor.rename, 3)} ms; targets on disk: p99 ≤ 20 ms (N=1), ≤ 100 ms (N=100), ≤ 1 s (N=1000); agent CPU per rotation ≤ 0.8 ms`);
admin.close();
await daemon.stop();
