/**
 * Durable CreateSecret throughput at 64 calls in flight, against a raw fully synced SQLite commit
 * loop (better-sqlite3, WAL, synchronous=FULL, one small insert per transaction) measured in the
 * same run on the same disk. Target: ≥ 1,000 creates/s (group commit is what makes that
 * possible: the raw loop shows the one-commit-per-write ceiling).
 *   npm run bench:create
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import * as grpc from '@grpc/grpc-js';
import { loadServices } from '../shared/src/proto.js';
import { closedLoop, fmt, median, startServer, type LoadResult } from './harness.js';

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
for (let run = 1; run <= RUNS; run++) {
  const raw = rawCommitLoop(SECONDS * 1000);
  const c = await closedLoop(create, IN_FLIGHT, SECONDS * 1000, 300);
  raws.push(raw);
  creates.push(c);
  console.log(`run ${run}: create ${fmt(c)} | raw synced commit ${Math.round(raw)}/s | ratio ${(c.perSecond / raw).toFixed(2)}`);
}
const c = median(creates.map((r) => r.perSecond));
const raw = median(raws);
console.log(`\nDurable CreateSecret, ${IN_FLIGHT} in flight, median of ${RUNS} × ${SECONDS}s:`);
console.log(`  lockboxd create        : ${Math.round(c)} creates/s  p50 ${median(creates.map((r) => r.p50ms)).toFixed(2)} ms  p99 ${median(creates.map((r) => r.p99ms)).toFixed(2)} ms`);
console.log(`  raw synced SQLite commit: ${Math.round(raw)} commits/s (baseline: one fsync'd transaction per write)`);
console.log(`  ratio                  : ${(c / raw).toFixed(2)}× the raw commit loop (target ≥ 1,000 creates/s)`);
client.close();
await daemon.stop();
