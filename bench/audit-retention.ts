/**
 * Audit retention at size (issue 13.6): ENTRIES audit entries (default 50,000) in a SQLite
 * lockboxd (in this process), then, through the real CLI (in-process, over gRPC):
 *   `audit verify` (the baseline: the daemon walks the keyed chain),
 *   `audit export -f FILE` (walk + one Ed25519 signature per entry + write),
 *   `audit verify --file FILE` (offline: one signature check per line),
 *   `audit prune --before T` at the middle (verify the whole chain, then delete half),
 *   `audit verify` again (from the signed cut).
 * CPU time of this process (daemon and CLI together) and wall time for each, and the file's size.
 *   npm run build && ENTRIES=50000 node dist/bench/audit-retention.js
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { runCli } from '../cli/src/cli.js';
import { configFromOptions } from '../daemon/src/config.js';
import { startDaemon } from '../daemon/src/daemon.js';

const ENTRIES = Number(process.env.ENTRIES ?? 50_000);
const dir = mkdtempSync(join(tmpdir(), 'lockbox-bench-audit-'));
const config = configFromOptions({ dataDir: dir, grpcAddr: '127.0.0.1:0', httpAddr: 'none', natsUrl: 'none', maxVersions: '10', logLevel: 'error', drainTimeout: '2s', idempotencyTtl: '1h' });
const daemon = await startDaemon(config, pino({ level: 'error' }));

const start = Date.parse('2026-01-01T00:00:00Z');
for (let i = 0; i < ENTRIES; i += 1000) {
  const drafts = Array.from({ length: Math.min(1000, ENTRIES - i) }, (_, j) => ({
    time: new Date(start + (i + j) * 1000).toISOString(),
    tokenId: 'bench0000000000',
    role: 'tenant-admin',
    tenant: 'default',
    resourceGroup: '',
    action: 'secret.read',
    target: `secret-${(i + j) % 500}`,
    version: 1,
    outcome: 'ok',
    requestId: `req-${i + j}`,
  }));
  await daemon.store.appendAudit(drafts);
}
const middle = new Date(start + Math.floor(ENTRIES / 2) * 1000).toISOString();
const file = join(dir, 'audit.jsonl');
const global = ['--addr', daemon.address, '--token-file', daemon.adminTokenPath];

async function measure(what: string, args: string[]): Promise<void> {
  let out = '';
  const io = { stdout: (s: string) => (out += s), stderr: (s: string) => (out += s), readStdin: () => Buffer.alloc(0), cwd: dir };
  const cpu = process.cpuUsage();
  const wall = performance.now();
  const code = await runCli([...global, ...args], io);
  const used = process.cpuUsage(cpu);
  const ms = performance.now() - wall;
  if (code !== 0) throw new Error(`${what}: exit ${code}: ${out}`);
  const cpuMs = (used.user + used.system) / 1000;
  console.log(`${what.padEnd(34)} cpu ${cpuMs.toFixed(0).padStart(6)} ms (${((cpuMs * 1000) / ENTRIES).toFixed(1)} µs/entry)  wall ${ms.toFixed(0).padStart(6)} ms  | ${out.trim().split('\n').pop()!.slice(0, 90)}`);
}

console.log(`audit retention, ${ENTRIES} entries, SQLite, daemon and CLI in one process`);
await measure('audit verify (baseline)', ['audit', 'verify']);
await measure('audit export -f', ['audit', 'export', '-f', file]);
console.log(`${''.padEnd(34)} file ${(statSync(file).size / 1024 / 1024).toFixed(1)} MiB (${(statSync(file).size / ENTRIES).toFixed(0)} bytes/entry)`);
await measure('audit verify --file (offline)', ['audit', 'verify', '--file', file]);
await measure('audit prune --before (middle)', ['audit', 'prune', '--before', middle]);
await measure('audit verify (from the cut)', ['audit', 'verify']);
await daemon.stop();
rmSync(dir, { recursive: true, force: true });
