/**
 * The servers the benchmarks measure, each in its own process so the load generator does not
 * share their event loop:
 * - `echo`: raw grpc-js, no storage, crypto or auth. It serves `/bench.Echo/Echo` (bytes back as
 *   they came) and lockbox's own SecretsService.GetSecret answering a fixed Secret built once
 *   (the same protobuf messages both ways as a real get): the floor under any gRPC call.
 * - `fanout-baseline`: a bare Session server for bench/fanout.ts (see there).
 * - `daemon [durable|async] [nats-url]`: lockboxd on a temp data dir with that --audit-reads mode
 *   (and NATS when a URL is given; PostgreSQL when BENCH_DATABASE_URL is set). Prints one JSON line with the address and, for
 * the daemon, the admin token; exits on SIGTERM.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { configFromOptions } from '../daemon/src/config.js';
import { startDaemon } from '../daemon/src/daemon.js';
import { loadServices } from '../shared/src/proto.js';
import { echoService } from './harness.js';
import { createLogger } from '../daemon/src/log.js';

const kind = process.argv[2];
if (kind === 'echo') {
  const server = new grpc.Server();
  server.addService(echoService, { Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request) });
  const fixed = {
    scope: { tenant: 'default', resource_group: '' },
    name: 'bench',
    uid: '00000000-0000-4000-8000-000000000000',
    type: 'opaque',
    template: 'openai',
    description: '',
    labels: {},
    mount: { kind: 'file', path: 'bench', sub_paths: {}, format: '' },
    keys: ['OPENAI_API_KEY'],
    data: { OPENAI_API_KEY: Buffer.alloc(1024, 'k') },
    version: 1,
    create_time: new Date().toISOString(),
    update_time: new Date().toISOString(),
    change_seq: 1,
  };
  server.addService(loadServices().SecretsService.service, { GetSecret: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, fixed) });
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => {
    if (error) throw error;
    process.stdout.write(JSON.stringify({ addr: `127.0.0.1:${port}` }) + '\n');
  });
  process.on('SIGTERM', () => server.forceShutdown());
} else if (kind === 'fanout-baseline') {
  // The floor under a push: a bare grpc-js server that answers each Session's resync with one
  // message, and on SIGUSR2 writes one message (the push of version N) to every open stream.
  const server = new grpc.Server({ 'grpc.max_send_message_length': 8 << 20 });
  const open = new Set<grpc.ServerDuplexStream<any, any>>();
  const push = (version: number) => ({ nonce: String(version), secrets: [{ name: 'bench', digest: '', secret: { name: 'bench', uid: 'u', version, data: { OPENAI_API_KEY: Buffer.alloc(64, 'k') } } }] });
  let version = 1;
  server.addService(loadServices().AgentService.service, {
    Session: (call: grpc.ServerDuplexStream<any, any>) => {
      open.add(call);
      call.on('data', (r: any) => {
        if (r.resync) call.write({ id: r.id, push: push(1) });
      });
      call.on('error', () => open.delete(call));
      call.on('cancelled', () => open.delete(call));
    },
  } as never);
  process.on('SIGUSR2', () => {
    version++;
    for (const call of open) call.write({ id: 0, push: push(version) });
  });
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => {
    if (error) throw error;
    process.stdout.write(JSON.stringify({ addr: `127.0.0.1:${port}` }) + '\n');
  });
  process.on('SIGTERM', () => server.forceShutdown());
} else if (kind === 'daemon') {
  const dataDir = mkdtempSync(join(tmpdir(), 'lockbox-bench-'));
  const auditReads = process.argv[3] ?? 'durable';
  const natsUrl = process.argv[4] ?? 'none';
  // BENCH_DATABASE_URL: the daemon keeps its data in that PostgreSQL database (schema) instead of SQLite.
  const databaseUrl = process.env.BENCH_DATABASE_URL;
  const config = configFromOptions({ dataDir, databaseUrl, grpcAddr: '127.0.0.1:0', httpAddr: 'none', natsUrl, maxVersions: '10', logLevel: 'warn', drainTimeout: '1s', idempotencyTtl: '24h', auditReads, maxAgentsPerDeployment: '1000000' });
  const daemon = await startDaemon(config, createLogger({ level: 'warn', destination: 2 }));
  process.stdout.write(JSON.stringify({ addr: daemon.address, token: readFileSync(daemon.adminTokenPath, 'utf8').trim(), dataDir }) + '\n');
  process.on('SIGTERM', () => {
    void daemon.stop().then(() => {
      rmSync(dataDir, { recursive: true, force: true });
      process.exit(0);
    });
  });
} else {
  process.stderr.write('usage: bench-server echo|daemon\n');
  process.exit(2);
}
