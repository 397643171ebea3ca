/**
 * A list page at scale: 100,000 secrets (LIST_SECRETS) in one group, paged through 100 at a time
 * (keyset, by name) on each store, measured three ways in the same run:
 * - `api`: ListSecrets over gRPC against lockboxd (its own process), which also checks each listed
 *   version's seal (record-integrity.ts: an unwrap and a decryption per version not seen lately);
 * - `store`: the store's listHeads in this process, opened on the daemon's own database;
 * - `raw`: the floor, a bare SELECT of the next 100 names and uids by the same index
 *   (better-sqlite3 on the daemon's file; one pg connection).
 * Each run walks every page; p50 and p99 are per page, medians of RUNS runs. Target: p99 ≤ 20 ms
 * per page through the store on both. The secrets are made through the API (BatchSecrets of 500),
 * so each is sealed as a real one is. The machine's load average is printed at start and end.
 *   npm run bench:list          LIST_SECRETS=20000 RUNS=3 STORES=postgres npm run bench:list
 */
import { join } from 'node:path';
import { loadavg } from 'node:os';
import Database from 'better-sqlite3';
import pg from 'pg';
import * as grpc from '@grpc/grpc-js';
import { loadServices } from '../shared/src/proto.js';
import { PostgresStore } from '../daemon/src/store/store-postgres.js';
import { SqliteStore } from '../daemon/src/store/store-sqlite.js';
import type { Store } from '../daemon/src/store/store.js';
import { benchSchema, cpuMs, median, percentile, startServer } from './harness.js';

const SECRETS = Number(process.env.LIST_SECRETS ?? 100_000);
const RUNS = Number(process.env.RUNS ?? 3);
const PAGE = 100;
const STORES = (process.env.STORES ?? 'sqlite,postgres').split(',');
const scope = { tenant: 'default', resourceGroup: '' };

interface Walk {
  p50: number;
  p99: number;
  pages: number;
  /** CPU per page (ms) of the process that serves it: lockboxd for `api`, this one otherwise. */
  cpu: number;
}

const ownCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/**
 * Walks every page with `page(after)` (which returns the page's last name, or '' at the end),
 * timing each; `cpu` reads the serving process's CPU time (ms), which the load of other
 * processes on the machine does not inflate as it does wall-clock time.
 */
async function walk(page: (after: string) => Promise<string>, cpu: () => number): Promise<Walk> {
  const cpu0 = cpu();
  const ms: number[] = [];
  let after = '';
  for (;;) {
    const t0 = process.hrtime.bigint();
    const last = await page(after);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (!last) break;
    after = last;
  }
  const cpuPerPage = (cpu() - cpu0) / ms.length;
  ms.sort((a, b) => a - b);
  return { p50: percentile(ms, 50), p99: percentile(ms, 99), pages: ms.length, cpu: cpuPerPage };
}

const load = () => loadavg().map((l) => l.toFixed(1)).join(' ');
console.log(`load average at start: ${load()} (2 cores)`);
const services = loadServices();
const summary: string[] = [];

for (const kind of STORES) {
  const schema = kind === 'postgres' ? await benchSchema() : undefined;
  if (schema) process.env.BENCH_DATABASE_URL = schema.url.toString();
  else delete process.env.BENCH_DATABASE_URL;
  const daemon = await startServer('daemon', 'async');
  const client = new services.SecretsService(daemon.info.addr, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 << 20 });
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${daemon.info.token}`);
  const rpc = (method: string, request: unknown) =>
    new Promise<any>((resolve, reject) => (client as any)[method](request, md, (e: Error | null, r: unknown) => (e ? reject(e) : resolve(r))));

  // Fill: batches of 500 creates, 4 in flight.
  const started = Date.now();
  const value = Buffer.alloc(64, 'v');
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < SECRETS) {
        const from = next;
        next = Math.min(SECRETS, next + 500);
        const items = Array.from({ length: next - from }, (_, i) => ({ create: { name: `secret-${String(from + i).padStart(6, '0')}`, data: { API_KEY: value } } }));
        const { results } = await rpc('BatchSecrets', { items });
        const failed = results.filter((r: { status: string }) => r.status !== 'OK');
        if (failed.length) throw new Error(`fill: ${failed.length} creates failed (${failed[0].status})`);
      }
    }),
  );
  console.log(`\n${kind}: ${SECRETS} secrets in one group made in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  const store: Store = schema
    ? await PostgresStore.open({ url: schema.url.toString(), maxVersions: 10, auditHasher: () => '', poolSize: 2 })
    : new SqliteStore({ dataDir: daemon.info.dataDir, maxVersions: 10, auditHasher: () => '' });
  const rawSqlite = schema ? undefined : new Database(join(daemon.info.dataDir, 'lockbox.db'), { readonly: true });
  const rawPg = schema ? new pg.Client({ connectionString: schema.url.toString() }) : undefined;
  await rawPg?.connect();
  const rawSql = 'SELECT name, uid FROM secrets WHERE tenant = $1 AND resource_group = $2 AND name > $3 ORDER BY name LIMIT $4';
  const rawStatement = rawSqlite?.prepare(rawSql.replace(/\$\d/g, '?'));

  const ways: Record<string, (after: string) => Promise<string>> = {
    api: async (after) => {
      const r = await rpc('ListSecrets', { limit: PAGE, cursor: after });
      if (r.secrets.length !== PAGE && r.next_cursor) throw new Error('a short page before the end');
      return r.next_cursor as string;
    },
    store: async (after) => {
      const heads = await store.listHeads(scope, after, PAGE);
      return heads.length === PAGE ? heads[PAGE - 1].name : '';
    },
    raw: async (after) => {
      const rows = (rawStatement ? rawStatement.all(scope.tenant, scope.resourceGroup, after, PAGE) : (await rawPg!.query(rawSql, [scope.tenant, scope.resourceGroup, after, PAGE])).rows) as Array<{ name: string }>;
      return rows.length === PAGE ? rows[PAGE - 1].name : '';
    },
  };
  const results: Record<string, Walk[]> = { api: [], store: [], raw: [] };
  for (let run = 1; run <= RUNS; run++) {
    const line: string[] = [];
    for (const [way, page] of Object.entries(ways)) {
      const w = await walk(page, way === 'api' ? () => cpuMs(daemon.pid) : ownCpuMs);
      if (w.pages !== Math.floor(SECRETS / PAGE) + 1 && w.pages !== SECRETS / PAGE) throw new Error(`${way}: ${w.pages} pages for ${SECRETS} secrets`);
      results[way].push(w);
      line.push(`${way} p50 ${w.p50.toFixed(2)} p99 ${w.p99.toFixed(2)} ms cpu ${w.cpu.toFixed(2)} ms`);
    }
    console.log(`run ${run} (${results.api[0].pages} pages): ${line.join(' | ')}`);
  }
  const m = (way: string, key: 'p50' | 'p99' | 'cpu') => median(results[way].map((w) => w[key])).toFixed(2);
  for (const [way, label] of [['api', 'ListSecrets (gRPC)'], ['store', 'store listHeads'], ['raw', 'raw SELECT']])
    summary.push(`${kind.padEnd(8)} ${label.padEnd(18)} p50 ${m(way, 'p50').padStart(6)} ms  p99 ${m(way, 'p99').padStart(6)} ms  CPU ${m(way, 'cpu').padStart(5)} ms/page`);

  await store.close();
  rawSqlite?.close();
  await rawPg?.end();
  client.close();
  await daemon.stop();
  await schema?.drop();
}

console.log(`\nA page of ${PAGE} at ${SECRETS} secrets in one group, median of ${RUNS} walks over every page (target: p99 ≤ 20 ms):`);
for (const line of summary) console.log(`  ${line}`);
console.log(`load average at end: ${load()}`);
