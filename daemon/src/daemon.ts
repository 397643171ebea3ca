/**
 * Assembles lockboxd from its parts and owns its life cycle. Start-up: (1) crypto and data dir,
 * (2) the store (migrations run) and the keyring it was sealed with (keyring-check.ts), (3) the
 * bootstrap admin token, (4) the publisher, (5) the gRPC server and the REST gateway, (6) resume
 * an interrupted key rotation in the background.
 * Stop (SIGTERM): (a) stop taking calls and drain those in flight (bounded), (b) flush the outbox
 * to NATS (bounded), (c) write buffered read records and agent status reports, wait for queued
 * commits, close the store.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { FastifyInstance } from 'fastify';
import { withTimeout } from '../../shared/src/timeout.js';
import { initCrypto } from '../../shared/src/crypto.js';
import { TokenAuthority } from './security/auth.js';
import { parseHostPort } from '../../shared/src/settings.js';
import { isLoopback, type DaemonConfig } from './config.js';
import { buildGrpcServer } from './api/grpc-server.js';
import type { Keyring } from './security/keyring.js';
import { openKeyringFor } from './security/keyring-check.js';
import { KEYRING_SUBJECT } from '../../shared/src/subject.js';
import type { Logger } from './log.js';
import { OutboxPublisher } from './delivery/outbox-publisher.js';
import { ChangeFeed, feedFromStore } from './delivery/change-feed.js';
import { ReplicaNotices } from './delivery/replica-notices.js';
import { SessionRegistry } from './delivery/session-registry.js';
import { buildRestServer } from './api/rest-server.js';
import { defaultConsoleDir } from './api/console-static.js';
import { RolloutService } from './services/service-rollout.js';
import { auditHasher } from './security/audit.js';
import { AuditCheckpoints } from './security/audit-checkpoint.js';
import { AgentService } from './services/service-agent.js';
import { AuditService } from './services/service-audit.js';
import { BackupService } from './services/service-backup.js';
import { DeploymentsService } from './services/service-deployments.js';
import { KeysService } from './services/service-keys.js';
import { TokensService } from './services/service-tokens.js';
import { SecretsService } from './services/service-secrets.js';
import { SqliteStore } from './store/store-sqlite.js';
import { DaemonMetrics } from './metrics.js';
import { serveMetrics, type MetricsServer } from './api/metrics-server.js';
import { PostgresStore } from './store/store-postgres.js';
import type { AuditHasher, Store } from './store/store.js';

export interface Daemon {
  /** The bound gRPC address, e.g. 127.0.0.1:40123. */
  address: string;
  port: number;
  /** The bound REST gateway address (http(s)://host:port), when it runs. */
  httpUrl?: string;
  httpPort?: number;
  /** Where /metrics is served on its own address (--metrics-addr host:port). */
  metricsUrl?: string;
  adminTokenPath: string;
  store: Store;
  publisher: OutboxPublisher;
  secrets: SecretsService;
  keys: KeysService;
  /** The keyring this replica holds (tests read its token key and keys). */
  keyring: Keyring;
  auth: TokenAuthority;
  /** Agents' sessions and what each holds (delivery). */
  registry: SessionRegistry;
  feed: ChangeFeed;
  stop(): Promise<void>;
}

/** The TLS files, read once for the gRPC server and the REST gateway. */
function readTls(config: DaemonConfig): { cert: Buffer; key: Buffer; ca?: Buffer } | undefined {
  if (!config.tls) return undefined;
  const read = (path: string, setting: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new Error(`${setting}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  };
  return {
    cert: read(config.tls.cert, '--tls-cert'),
    key: read(config.tls.key, '--tls-key'),
    ca: config.tls.clientCa ? read(config.tls.clientCa, '--tls-client-ca') : undefined,
  };
}

function serverCredentials(tls: ReturnType<typeof readTls>): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(tls.ca ?? null, [{ cert_chain: tls.cert, private_key: tls.key }], Boolean(tls.ca));
}

export async function startDaemon(config: DaemonConfig, log: Logger): Promise<Daemon> {
  await initCrypto(); // (1)
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  // The store is opened before the keyring, which must match what the database holds
  // (keyring-check.ts); the audit chain's key comes from the keyring, bound once it is known.
  let chainHasher: AuditHasher | undefined;
  const hasher: AuditHasher = (entry) => chainHasher!(entry);
  const metrics = new DaemonMetrics();
  const store: Store = config.databaseUrl // (2)
    ? await PostgresStore.open({ url: config.databaseUrl, maxVersions: config.maxVersions, auditHasher: hasher, observer: metrics.store, timeoutMs: config.databaseTimeoutMs })
    : new SqliteStore({ dataDir: config.dataDir, maxVersions: config.maxVersions, auditHasher: hasher, observer: metrics.store });
  let keyring: Keyring;
  try {
    keyring = await openKeyringFor(store, {
      path: config.masterKeyFile ?? join(config.dataDir, 'master.key'),
      envValue: config.rootKey,
      mayGenerate: !config.masterKeyFile,
      onGenerated: (path) =>
        log.warn({ path }, 'generated a root key beside the data; fine for one machine, but set LOCKBOX_ROOT_KEY_FILE (or LOCKBOX_ROOT_KEY) to a key kept elsewhere in production'),
      onMigrated: (keys, root) =>
        log.info({ keys, root_key_id: root.id, source: root.source }, 'moved the keyring file\'s keys into the database, sealed under a root key taken from that file; keep the file: it is now the root key'),
    });
  } catch (error) {
    await store.close();
    throw error;
  }
  chainHasher = auditHasher(keyring.tokenKey);
  // Every commit through this store is announced to the agents' sessions at once (delivery).
  const feed = new ChangeFeed();
  feedFromStore(store, feed);
  const auth = new TokenAuthority(store, keyring.tokenKey);
  const bootstrap = await auth.bootstrap(config.dataDir); // (3)
  if (bootstrap.created) log.info({ path: bootstrap.path }, 'wrote the bootstrap admin token (mode 0600); it is shown nowhere else');

  const publisher = new OutboxPublisher({ store, natsUrl: config.natsUrl, nats: config.nats, log, onPublished: (time) => metrics.published(time) }); // (4)
  publisher.start();
  const secrets = new SecretsService({
    store,
    keyring,
    quotas: config.quotas,
    onCommitted: () => publisher.wake(),
    durableReadAudit: config.auditReads === 'durable',
    onBackgroundError: (error) => log.error({ err: error.message }, 'writing a read to the audit log failed'),
    onDamagedRecord: (record, problem) =>
      log.error(
        { tenant: record.tenant, resource_group: record.resourceGroup, name: record.name, uid: record.uid, version: record.version, problem },
        'a stored secret version failed its integrity check (altered in the database?); it is not served',
      ),
  });
  const keys = new KeysService(store, keyring, {
    announce: (keyId) => publisher.publishDirect(KEYRING_SUBJECT, Buffer.from(JSON.stringify({ key_id: keyId }))),
    onTakenUp: (keyId, rewrapped, error) =>
      error
        ? log.error({ active_key_id: keyId, err: error.message }, 're-wrapping after taking up another replica\'s keyring key failed; the next start finishes it')
        : log.info({ active_key_id: keyId, rewrapped }, 'took up a keyring key another replica added'),
    onAuditFailed: (action, target, error) =>
      log.error({ action, target, err: error.message }, 'the rotation committed, but writing its audit entry failed; it is in effect'),
  });
  // Another replica's new keyring key, taken up at once on its notice, or at the periodic check.
  const takeUpKeyring = () => void keys.takeUp().catch((error: Error) => log.error({ err: error.message }, 'reloading the keyring failed'));
  const tokens = new TokensService(store, auth);
  const deployments = new DeploymentsService(store, secrets, config.quotas, () => publisher.wake());
  const checkpoints = new AuditCheckpoints({
    store,
    tokenKey: keyring.tokenKey,
    log,
    publish: (subject, payload) => publisher.publishDirect(subject, payload),
    intervalMs: config.auditCheckpointIntervalMs,
  });
  checkpoints.start();
  const audit = new AuditService(store, hasher, checkpoints);
  const agents = new AgentService(store, secrets, config.natsAdvertiseUrl ?? config.natsUrl, (error) => log.error({ err: error.message }, 'writing agent status reports failed'), config.maxAgentsPerDeployment, config.agentRetentionMs);
  const registry = new SessionRegistry({
    store,
    secrets,
    auth,
    agents,
    feed,
    durableAudit: config.auditReads === 'durable',
    onBackgroundError: (error) => log.error({ err: error.message }, 'delivering to an agent failed'),
    onRolloutConverged: (seconds) => metrics.rolloutConverged(seconds),
  });
  const replicas = new ReplicaNotices(config.natsUrl, feed, log, config.nats, takeUpKeyring);
  replicas.start();

  const backups = new BackupService(store, config.dataDir);
  const { server, health, sessions } = buildGrpcServer({ auth, secrets, keys, tokens, deployments, audit, agents, registry, backups, log, metrics, keepalive: config.keepalive }); // (5)
  metrics.watch({ store, sessions: () => sessions.size, rollouts: () => registry.rollouts.pending() });
  const { host } = parseHostPort(config.grpcAddr, '--grpc-addr');
  if (!config.tls && !isLoopback(host))
    log.warn({ addr: config.grpcAddr }, 'listening beyond loopback without TLS: tokens and secret values cross the network in clear; set --tls-cert and --tls-key');
  let stopping: Promise<void> | undefined;
  let port: number;
  let rest: FastifyInstance | undefined;
  let httpUrl: string | undefined;
  let httpPort: number | undefined;
  let metricsServer: MetricsServer | undefined;
  try {
    const tls = readTls(config);
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(config.grpcAddr, serverCredentials(tls), (error, bound) => (error ? reject(error) : resolve(bound))),
    );
    if (config.httpAddr) { // (5)
      const http = parseHostPort(config.httpAddr, '--http-addr');
      if (!tls && !isLoopback(http.host))
        log.warn({ addr: config.httpAddr }, 'REST gateway listening beyond loopback without TLS: tokens and secret values cross the network in clear; set --tls-cert and --tls-key');
      rest = await buildRestServer({
        auth,
        secrets,
        agents,
        deployments,
        tokens,
        audit,
        rollout: new RolloutService(deployments, agents),
        consoleDir: config.ui ? defaultConsoleDir() : undefined,
        log,
        bodyLimit: config.httpBodyLimit,
        tls,
        metrics,
        serveMetrics: (config.metricsAddr ?? 'rest') === 'rest',
        readiness: async () => {
          // A replica that cannot reach its database cannot serve: not ready (NATS is optional).
          const database = store.ping ? await withTimeout(store.ping(), 2000, 'ping timed out').then(() => 'reachable', () => 'unreachable') : 'local';
          return { ready: !stopping && database !== 'unreachable', nats: !config.natsUrl ? 'disabled' : publisher.isConnected ? 'connected' : 'disconnected', database };
        },
      });
      await rest.listen({ host: http.host, port: http.port });
      httpPort = (rest.server.address() as AddressInfo).port;
      httpUrl = `${tls ? 'https' : 'http'}://${http.host.includes(':') ? `[${http.host}]` : http.host}:${httpPort}`;
    }
    if (config.metricsAddr && config.metricsAddr !== 'rest' && config.metricsAddr !== 'none') metricsServer = await serveMetrics(config.metricsAddr, metrics.registry);
  } catch (error) {
    server.forceShutdown();
    await rest?.close();
    await replicas.stop();
    await metricsServer?.close();
    await publisher.stop(0);
    await store.close();
    throw error;
  }
  const address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  log.info({ addr: address, http: httpUrl ?? 'off', store: config.databaseUrl ? 'postgres' : 'sqlite', tls: Boolean(config.tls), mtls: Boolean(config.tls?.clientCa), data_dir: config.dataDir }, 'lockboxd serving');

  const pruneTimer = setInterval(() => {
    void store.pruneIdempotency(new Date(Date.now() - config.idempotencyTtlMs).toISOString()).catch((error: Error) => log.warn({ err: error.message }, 'pruning idempotency keys failed'));
  }, 60_000);
  pruneTimer.unref();
  const keyringTimer = config.keyringRefreshMs > 0 ? setInterval(takeUpKeyring, config.keyringRefreshMs) : undefined;
  keyringTimer?.unref();
  void store.pruneIdempotency(new Date(Date.now() - config.idempotencyTtlMs).toISOString());
  // Retention of silent agents (service-agent.ts step (6)); every replica sweeps the shared store.
  const agentSweep = setInterval(() => {
    void agents.pruneSilent().catch((error: Error) => log.warn({ err: error.message }, 'removing silent agents failed'));
  }, Math.min(60_000, Math.max(1000, config.agentRetentionMs)));
  agentSweep.unref();

  void keys.rewrapAll().then( // (6)
    (n) => n > 0 && log.info({ rewrapped: n }, 'finished an interrupted master key rotation'),
    (error: Error) => log.error({ err: error.message }, 'resuming master key rotation failed'),
  );

  const stop = () =>
    (stopping ??= (async () => {
      clearInterval(pruneTimer);
      clearInterval(agentSweep);
      clearInterval(keyringTimer);
      checkpoints.stop();
      health.setStatus('', 'NOT_SERVING');
      sessions.closeAll(); // agent sessions would hold the drain open: they end once their requests are answered
      const drainRest = rest ? withTimeout(rest.close(), config.drainTimeoutMs, 'REST drain').catch(() => rest!.server.closeAllConnections()) : undefined;
      await new Promise<void>((resolve) => { // (a)
        const timer = setTimeout(() => {
          log.warn({ drain_timeout_ms: config.drainTimeoutMs }, 'calls still running after the drain timeout; cancelling them');
          server.forceShutdown();
          resolve();
        }, config.drainTimeoutMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await drainRest;
      await replicas.stop();
      await metricsServer?.close();
      await publisher.stop(Math.min(5000, config.drainTimeoutMs)); // (b)
      await secrets.flushReads(); // (c)
      await registry.stop();
      await agents.flushReports().catch((error: Error) => log.error({ err: error.message }, 'writing agent status reports failed'));
      await keys.settle(); // a re-wrap after taking up another replica's key
      await store.close();
      log.info('lockboxd stopped');
    })());

  return { address, port, httpUrl, httpPort, metricsUrl: metricsServer?.url, adminTokenPath: bootstrap.path, store, publisher, secrets, keys, keyring, auth, registry, feed, stop };
}
