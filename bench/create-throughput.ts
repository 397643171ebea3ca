/**
 * Durable CreateSecret throughput at 64 calls in flight, against a raw fully synced SQLite commit
 * loop (better-sqlite3, WAL, synchronous=FULL, one small insert per transaction) measured in the
 * same run on the same disk. Target: ≥ 1,000 creates/s (group commit is what makes that
 * possible: the raw loop shows the one-commit-per-write ceiling).
 * STORE=postgres runs lockboxd on PostgreSQL (PG_URL, default postgres://<user>@127.0.0.1:5432/test,
 * in a schema made for the run) against raw commits of one 256-byte row each from 64 connections
 * (a create writes its head, version, notice and audit rows); target ≥ 1,500 creates/s (group
 * commit, store-postgres-group-commit.ts).
 * Every run also prints the CPU time each create cost lockboxd and, on PostgreSQL, the server's
 * backends (against the raw insert's): on a machine other work loads, wall-clock rates follow
 * the share of the cores each process gets, while CPU per operation does not.
 *   npm run bench:create            STORE=postgres npm run bench:create
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import * as grpc from '@grpc/grpc-js';
import { loadServices } from '../shared/src/proto.js';
import { benchSchema, closedLoop, cpuMs, fmt, median, startServer, type LoadResult } from './harness.js';

const IN_FLIGHT = 64;
const SECONDS = Number(process.env.SECONDS_PER_RUN ?? 3);
const RUNS = Number(process.env.RUNS ?? 5);

function rawCommitLoop(ms: number): number {
  const dir = mkdtempSync(join(tmpdir(), 'lockbox-bench-sqlite-'));
  const db = new Database(join(dir, 'raw.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, value BLOB NOT NULL)');
  const insert = db.prepare('INSERT INTO t (name, value) VALUES (?, ?)');
  const value = Buffer.alloc(256, 1);
  let n = 0;
  const start = process.hrtime.bigint();
  const end = Date.now() + ms;
  while (Date.now() < end) {
    db.exec('BEGIN IMMEDIATE');
    insert.run(`row-${n++}`, value);
    db.exec('COMMIT');
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return n / seconds;
}

/**
 * PostgreSQL: a schema for this run; the raw baseline is 64 connections each committing one insert
 * at a time. Both sides name their connections (application_name), so the server's CPU spent for
 * each (its backends' user + system time, from /proc) can be told apart from other load.
 */
async function postgresSetup(): Promise<{
  url: string;
  raw: (ms: number) => Promise<{ perSecond: number; serverCpuMs: number; calls: number }>;
  serverCpuMs: (app: string) => Promise<number>;
  drop: () => Promise<void>;
}> {
  const { url, schema, admin, drop: dropSchema } = await benchSchema('daemon');
  await admin.query(`CREATE TABLE ${schema}.raw (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, value BYTEA NOT NULL)`);
  const rawUrl = new URL(url);
  rawUrl.searchParams.set('application_name', `lbx-bench-raw-${process.pid}`);
  const pool = new pg.Pool({ connectionString: rawUrl.toString(), max: IN_FLIGHT });
  const value = Buffer.alloc(256, 1);
  let n = 0;
  /** CPU time of the server backends serving `app` (named by application_name). */
  const serverCpuMs = async (app: string) => {
    const { rows } = await admin.query('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [`lbx-bench-${app}-${process.pid}`]);
    return rows.reduce((sum, r) => sum + cpuMs(r.pid), 0);
  };
  const raw = async (ms: number) => {
    await closedLoop(() => pool.query('INSERT INTO raw (name, value) VALUES ($1, $2)', [`row-${n++}`, value]), IN_FLIGHT, 300, 0); // every connection open
    const cpu0 = await serverCpuMs('raw');
    const result = await closedLoop(() => pool.query('INSERT INTO raw (name, value) VALUES ($1, $2)', [`row-${n++}`, value]), IN_FLIGHT, ms, 0);
    return { perSecond: result.perSecond, serverCpuMs: (await serverCpuMs('raw')) - cpu0, calls: result.calls };
  };
  const drop = async () => {
    await pool.end();
    await dropSchema();
  };
  return { url: url.toString(), raw, serverCpuMs, drop };
}

const postgres = process.env.STORE === 'postgres' ? await postgresSetup() : undefined;
if (postgres) process.env.BENCH_DATABASE_URL = postgres.url;
const services = loadServices();
const daemon = await startServer('daemon');
const client = new services.SecretsService(daemon.info.addr, grpc.credentials.createInsecure());
const md = new grpc.Metadata();
md.set('authorization', `Bearer ${daemon.info.token}`);
const value = Buffer.alloc(64, 'v');
let seq = 0;
const create = () =>
  new Promise((resolve, reject) =>
    (client as any).CreateSecret({ secret: { name: `bench-${seq++}`, data: { API_KEY: value } } }, md, (e: Error | null, r: unknown) => (e ? reject(e) : resolve(r))),
  );

const creates: LoadResult[] = [];
const raws: number[] = [];
const cpuPerCreate: number[] = [];
const serverCpu: Array<{ create: number; raw: number }> = [];
await closedLoop(create, IN_FLIGHT, 300, 0); // warm: the daemon's pool connections open
for (let run = 1; run <= RUNS; run++) {
  const r = postgres ? await postgres.raw(SECONDS * 1000) : undefined;
  const raw = r ? r.perSecond : rawCommitLoop(SECONDS * 1000);
  const cpu0 = cpuMs(daemon.pid);
  const server0 = await postgres?.serverCpuMs('daemon');
  const c = await closedLoop(create, IN_FLIGHT, SECONDS * 1000, 0);
  const cpu = (cpuMs(daemon.pid) - cpu0) / c.calls;
  raws.push(raw);
  creates.push(c);
  cpuPerCreate.push(cpu);
  let server = '';
  if (postgres && r) {
    const s = { create: ((await postgres.serverCpuMs('daemon')) - server0!) / c.calls, raw: r.serverCpuMs / r.calls };
    serverCpu.push(s);
    server = ` | PostgreSQL CPU ${s.create.toFixed(3)} ms/create, ${s.raw.toFixed(3)} ms/raw insert`;
  }
  console.log(`run ${run}: create ${fmt(c)} lockboxd CPU ${cpu.toFixed(3)} ms/create | raw synced commit ${Math.round(raw)}/s | ratio ${(c.perSecond / raw).toFixed(2)}${server}`);
}
const c = median(creates.map((r) => r.perSecond));
const raw = median(raws);
console.log(`\nDurable CreateSecret on ${postgres ? 'PostgreSQL' : 'SQLite'}, ${IN_FLIGHT} in flight, median of ${RUNS} × ${SECONDS}s:`);
console.log(`  lockboxd create        : ${Math.round(c)} creates/s  p50 ${median(creates.map((r) => r.p50ms)).toFixed(2)} ms  p99 ${median(creates.map((r) => r.p99ms)).toFixed(2)} ms`);
console.log(`  lockboxd CPU           : ${median(cpuPerCreate).toFixed(3)} ms per create (user + system of the daemon process)`);
if (postgres)
  console.log(
    `  PostgreSQL CPU         : ${median(serverCpu.map((s) => s.create)).toFixed(3)} ms per create, ${median(serverCpu.map((s) => s.raw)).toFixed(3)} ms per raw insert (its backends' user + system)`,
  );
console.log(
  postgres
    ? `  raw PostgreSQL commits : ${Math.round(raw)} commits/s (baseline: one-insert transactions from ${IN_FLIGHT} connections)`
    : `  raw synced SQLite commit: ${Math.round(raw)} commits/s (baseline: one fsync'd transaction per write)`,
);
console.log(`  ratio                  : ${(c / raw).toFixed(2)}× the raw commit loop (target ≥ ${postgres ? '1,500' : '1,000'} creates/s)`);
client.close();
await daemon.stop();
await postgres?.drop();
