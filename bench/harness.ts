/** Shared benchmark plumbing: child servers, a closed-loop load generator, percentiles, medians. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';

const here = dirname(fileURLToPath(import.meta.url));

/** A raw unary echo of bytes: the floor under any gRPC call. */
export const echoService: grpc.ServiceDefinition = {
  Echo: {
    path: '/bench.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
    originalName: 'echo',
  },
};


/** Where bench:footprint puts the agent's home: BENCH_HOME (e.g. /dev/shm, tmpfs), else the OS temp dir (bench:propagation takes --tmpfs or --dir). */
export const benchHome = process.env.BENCH_HOME ?? tmpdir();

/** Where a benchmark puts its homes: --dir, else /dev/shm with --tmpfs, else the OS temp dir; resolved, as the agent resolves $BENTOML_HOME. */
export function homesDir(args: { tmpfs?: boolean; dir?: string }): string {
  if (args.dir && args.tmpfs) throw new Error('give --tmpfs or --dir, not both');
  return realpathSync(args.dir ?? (args.tmpfs ? '/dev/shm' : tmpdir()));
}

/**
 * What file system holds `dir`, from /proc/self/mountinfo (the mount with the longest matching
 * mount point): its type and device, and for ext4 whether it has a journal (/proc/fs/jbd2 lists
 * the devices with one). It matters: on ext4 without a journal the kernel scans the inodes freed
 * in the last minutes at every inode it allocates (fs/ext4/ialloc.c, recently_deleted), so a
 * swap's system CPU there grows with how much the disk has churned lately.
 */
export function describeFileSystem(dir: string): string {
  let best: { point: string; device: string; type: string; source: string; options: string } | undefined;
  const unescape = (field: string) => field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
  try {
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const [left, right] = line.split(' - ');
      if (!right) continue;
      const fields = left.split(' ');
      const point = unescape(fields[4]);
      const [type, source, options] = right.split(' ');
      const inside = point === '/' || dir === point || dir.startsWith(`${point}/`);
      if (inside && (!best || point.length >= best.point.length)) best = { point, device: fields[2], type, source: unescape(source), options };
    }
  } catch {
    return 'unknown file system (no /proc/self/mountinfo)';
  }
  if (!best) return 'unknown file system';
  const where = `${best.source} at ${best.point}`;
  if (best.type !== 'ext4') return `${best.type} (${where})`;
  // /proc/fs/jbd2 names a journal by the kernel's name of its device (vda-8, dm-0-8, loop0-8),
  // which the mount's source (/dev/mapper/…, /dev/root) need not be: found by major:minor.
  let name: string;
  try {
    name = basename(realpathSync(`/sys/dev/block/${best.device}`));
  } catch {
    return `ext4, journal unknown (${where}, ${best.options})`;
  }
  const journal = existsSync('/proc/fs/jbd2') && readdirSync('/proc/fs/jbd2').some((entry) => entry.startsWith(`${name}-`) && /^\d+$/.test(entry.slice(name.length + 1)));
  return `ext4 ${journal ? 'with' : 'without'} a journal (${where}, ${best.options})`;
}

/** A nats-server of its own on a free port (-p -1, read back from the ports file). */
export async function startNats(): Promise<{ url: string; stop: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'lockbox-bench-nats-'));
  const bin = existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : 'nats-server';
  const child = spawn(bin, ['-a', '127.0.0.1', '-p', '-1', '--ports_file_dir', dir], { stdio: 'ignore' });
  process.once('exit', () => child.kill('SIGKILL')); // a failed benchmark leaves no server behind
  for (;;) {
    const file = readdirSync(dir).find((f) => f.endsWith('.ports'));
    if (file) {
      const ports = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { nats: string[] };
      return {
        url: ports.nats[0],
        stop: () => {
          child.kill('SIGKILL');
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function startServer(kind: string, ...args: string[]): Promise<{ info: Record<string, string>; pid: number; stop: () => Promise<void> }> {
  // SERVER_CPU_PROFILE=DIR: a V8 CPU profile of the server process, written to DIR when it stops.
  const profile = process.env.SERVER_CPU_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.SERVER_CPU_PROFILE}`] : [];
  const child: ChildProcess = spawn(process.execPath, [...profile, join(here, 'bench-server.js'), kind, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill); // a failed benchmark leaves no server behind
  child.once('exit', () => process.off('exit', kill)); // and a long one adds no listener per server
  const info = await new Promise<Record<string, string>>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n')) resolve(JSON.parse(line) as Record<string, string>);
    });
    child.once('exit', (code) => reject(new Error(`bench server ${kind} exited ${code}`)));
  });
  return {
    info,
    pid: child.pid!,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

export interface LoadResult {
  calls: number;
  seconds: number;
  perSecond: number;
  p50ms: number;
  p99ms: number;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Keeps `inFlight` calls running for `ms` (after a short warm-up) and measures each. */
export async function closedLoop(call: (i: number) => Promise<unknown>, inFlight: number, ms: number, warmupMs = 500): Promise<LoadResult> {
  let i = 0;
  const warmEnd = Date.now() + warmupMs;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (Date.now() < warmEnd) await call(i++);
  }));
  const latencies: number[] = [];
  const start = process.hrtime.bigint();
  const end = Date.now() + ms;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (Date.now() < end) {
      const t0 = process.hrtime.bigint();
      await call(i++);
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  latencies.sort((a, b) => a - b);
  return { calls: latencies.length, seconds, perSecond: latencies.length / seconds, p50ms: percentile(latencies, 50), p99ms: percentile(latencies, 99) };
}

export function fmt(r: LoadResult): string {
  return `${Math.round(r.perSecond)} calls/s  p50 ${r.p50ms.toFixed(2)} ms  p99 ${r.p99ms.toFixed(2)} ms`;
}

/** CPU time (user + system) a process has used so far, in ms, from /proc (Linux). */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

/**
 * A PostgreSQL schema of this run's own on PG_URL (default postgres://<user>@127.0.0.1:5432/test):
 * `url` selects it (search_path) and names its connections `lbx-bench-<app>-<pid>` when `app` is
 * given, so the server's CPU spent for them can be found (pg_stat_activity); `drop` removes it.
 */
export async function benchSchema(app?: string): Promise<{ url: URL; schema: string; admin: pg.Client; drop: () => Promise<void> }> {
  const base = process.env.PG_URL ?? `postgres://${userInfo().username}@127.0.0.1:5432/test`;
  const schema = `lbx_bench_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  const url = new URL(base);
  url.searchParams.set('options', `-c search_path=${schema}`);
  if (app) url.searchParams.set('application_name', `lbx-bench-${app}-${process.pid}`);
  const drop = async () => {
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.end();
  };
  return { url, schema, admin, drop };
}
