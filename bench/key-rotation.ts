/**
 * Keyring rotation on two replicas sharing one PostgreSQL (issue 13, item 1), both in this process
 * with NATS between them: ROTATE_SECRETS secrets (default 5,000) made through replica A
 * (BatchSecrets of 500), then `key rotate` on A, timed, with:
 * - the CPU time of this process (both replicas) per re-wrapped data key;
 * - how long after A switched to the new key B did (its keyring notice; both polled every 1 ms);
 * - then `key rotate-root`, timed (a handful of rows in one transaction).
 * CPU time rather than wall-clock where the machine is shared.   npm run bench:rotation
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import * as grpc from '@grpc/grpc-js';
import { configFromOptions } from '../daemon/src/config.js';
import { startDaemon, type Daemon } from '../daemon/src/daemon.js';
import { loadServices } from '../shared/src/proto.js';
import { benchSchema, startNats } from './harness.js';
import { readFileSync, writeFileSync } from 'node:fs';

const SECRETS = Number(process.env.ROTATE_SECRETS ?? 5000);
const nats = await startNats();
const db = await benchSchema('rotation');
const rootKeyFile = join(mkdtempSync(join(tmpdir(), 'lockbox-bench-root-')), 'root.key');
writeFileSync(rootKeyFile, randomBytes(32).toString('base64') + '\n', { mode: 0o400 });
const start = (): Promise<Daemon> =>
  startDaemon(
    {
      ...configFromOptions({ dataDir: mkdtempSync(join(tmpdir(), 'lockbox-bench-rot-')), grpcAddr: '127.0.0.1:0', httpAddr: 'none', natsUrl: nats.url, maxVersions: '10', logLevel: 'error', drainTimeout: '2s', idempotencyTtl: '1h' }),
      databaseUrl: db.url.toString(),
      masterKeyFile: rootKeyFile,
    },
    pino({ level: 'error' }),
  );
const a = await start();
const b = await start();
const token = readFileSync(a.adminTokenPath, 'utf8').trim();
const services = loadServices();
const client = (service: 'SecretsService' | 'KeysService') => new services[service](a.address, grpc.credentials.createInsecure()) as any;
const secrets = client('SecretsService');
const keys = client('KeysService');
const rpc = (c: any, method: string, request: object) =>
  new Promise<any>((resolve, reject) => {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token}`);
    c[method](request, md, { deadline: Date.now() + 600_000 }, (e: Error | null, r: unknown) => (e ? reject(e) : resolve(r)));
  });

for (let from = 0; from < SECRETS; from += 500) {
  const items = Array.from({ length: Math.min(500, SECRETS - from) }, (_, i) => ({ create: { name: `s-${from + i}`, data: { V: randomBytes(32).toString('base64') } } }));
  await rpc(secrets, 'BatchSecrets', { items });
}
await new Promise((r) => setTimeout(r, 500)); // B's session with NATS settles

const before = a.keyring.active.id;
let aSwitched = 0;
let bSwitched = 0;
const poll = setInterval(() => {
  const now = performance.now();
  if (!aSwitched && a.keyring.active.id !== before) aSwitched = now;
  if (!bSwitched && b.keyring.active.id !== before) bSwitched = now;
}, 1);
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const rotated = await rpc(keys, 'RotateMasterKey', {});
const wall = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
while (!bSwitched) await new Promise((r) => setTimeout(r, 5));
clearInterval(poll);
const r0 = performance.now();
const root = await rpc(keys, 'RotateRootKey', { new_root_key: randomBytes(32).toString('base64') });
const rootMs = performance.now() - r0;

const cpuMs = (cpu.user + cpu.system) / 1000;
console.log(`key rotate, ${SECRETS} secrets on PostgreSQL, 2 replicas: ${wall.toFixed(0)} ms wall, ${rotated.rewrapped} re-wrapped by A (the rest by B), ${((cpuMs * 1000) / SECRETS).toFixed(0)} µs CPU per data key (both replicas)`);
console.log(`B took the new key up ${(bSwitched - aSwitched).toFixed(1)} ms after A switched (keyring notice over NATS)`);
console.log(`key rotate-root: ${root.resealed} rows re-sealed in ${rootMs.toFixed(1)} ms`);
await a.stop();
await b.stop();
await db.drop();
nats.stop();
