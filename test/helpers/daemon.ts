/**
 * A real lockboxd for tests: in-process (for coverage and direct access to its parts) with a
 * temp data dir, port 0, and a logger that keeps every line so tests can search them.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { loadServices, type LockboxServices } from '../../shared/src/proto.js';
import { configFromOptions, defaults, type DaemonConfig } from '../../daemon/src/config.js';
import { startDaemon, type Daemon } from '../../daemon/src/daemon.js';
import { redactPaths } from '../../daemon/src/log.js';
import { jsonLogOptions } from '../../shared/src/log-format.js';

const serviceNames: Array<keyof LockboxServices> = ['SecretsService', 'KeysService', 'TokensService', 'DeploymentsService', 'AuditService', 'AgentService'];

export interface TestDaemon {
  daemon: Daemon;
  dataDir: string;
  config: DaemonConfig;
  adminToken: string;
  logs: string[];
  /** Calls a SecretsService method; rejects with the grpc ServiceError. */
  call(method: string, request: object, options?: { token?: string; idempotencyKey?: string; metadata?: Record<string, string>; deadlineMs?: number }): Promise<any>;
  keysCall(method: string, request: object, options?: { token?: string }): Promise<any>;
  /** Any service of the API by name, e.g. rpc('TokensService', 'CreateToken', {...}). */
  rpc(service: keyof LockboxServices, method: string, request: object, options?: { token?: string; idempotencyKey?: string }): Promise<any>;
  restart(overrides?: Partial<DaemonConfig>): Promise<void>;
  stop(): Promise<void>;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

export function tempDir(t: Teardown, prefix = 'lockbox-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function startTestDaemon(t: Teardown, overrides: Partial<DaemonConfig> = {}): Promise<TestDaemon> {
  const dataDir = overrides.dataDir ?? tempDir(t);
  let config: DaemonConfig = {
    ...configFromOptions({
      dataDir,
      grpcAddr: '127.0.0.1:0',
      httpAddr: '127.0.0.1:0',
      natsUrl: 'none',
      maxVersions: String(defaults.maxVersions),
      logLevel: 'debug',
      drainTimeout: '2s',
      idempotencyTtl: defaults.idempotencyTtl,
    }),
    ...overrides,
  };
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const log = pino({ ...jsonLogOptions('lockboxd', 'debug'), redact: { paths: redactPaths, censor: '[redacted]' } }, sink);
  const services = loadServices();
  let daemon = await startDaemon(config, log);
  let clients = makeClients(daemon.address);
  function makeClients(address: string) {
    const all = Object.fromEntries(
      serviceNames.map((name) => [name, new services[name](address, grpc.credentials.createInsecure())]),
    ) as unknown as Record<keyof LockboxServices, grpc.Client>;
    return { secrets: all.SecretsService, keys: all.KeysService, all };
  }
  const closeClients = () => Object.values(clients.all).forEach((c) => c.close());
  // A replica that found tokens in a shared database wrote no bootstrap token of its own.
  const adminToken = existsSync(daemon.adminTokenPath) ? readFileSync(daemon.adminTokenPath, 'utf8').trim() : '';
  let stopped = false;

  const invoke = (client: grpc.Client, method: string, request: object, options: { token?: string; idempotencyKey?: string; metadata?: Record<string, string>; deadlineMs?: number } = {}) => {
    const metadata = new grpc.Metadata();
    const token = options.token ?? adminToken;
    if (token) metadata.set('authorization', `Bearer ${token}`);
    if (options.idempotencyKey !== undefined) metadata.set('idempotency-key', options.idempotencyKey);
    for (const [k, v] of Object.entries(options.metadata ?? {})) metadata.set(k, v);
    return new Promise<any>((resolve, reject) => {
      (client as any)[method](request, metadata, { deadline: Date.now() + (options.deadlineMs ?? 30_000) }, (error: grpc.ServiceError | null, response: unknown) =>
        error ? reject(error) : resolve(response),
      );
    });
  };

  const handle: TestDaemon = {
    get daemon() {
      return daemon;
    },
    dataDir,
    get config() {
      return config;
    },
    adminToken,
    logs,
    call: (method, request, options) => invoke(clients.secrets, method, request, options),
    keysCall: (method, request, options) => invoke(clients.keys, method, request, options),
    rpc: (service, method, request, options) => invoke(clients.all[service], method, request, options),
    async restart(more = {}) {
      closeClients();
      await daemon.stop();
      // Same port, so clients that hold the address (agents) find it again.
      config = { ...config, grpcAddr: `127.0.0.1:${daemon.port}`, httpAddr: daemon.httpPort ? `127.0.0.1:${daemon.httpPort}` : config.httpAddr, ...more };
      daemon = await startDaemon(config, log);
      stopped = false;
      clients = makeClients(daemon.address);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      closeClients();
      await daemon.stop();
    },
  };
  t.teardown(() => handle.stop());
  return handle;
}

/** The canonical create request used across tests. */
export function createRequest(name: string, data: Record<string, string>, extra: object = {}) {
  const bytes: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(data)) bytes[k] = Buffer.from(v);
  return { secret: { name, data: bytes, ...extra } };
}
