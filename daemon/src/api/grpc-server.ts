/**
 * The gRPC boundary: authentication from metadata, one mapping of errors to status codes, one log
 * line per call (method, code, duration, request id, token id; never a request body), health and
 * reflection.
 */
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { addReflection } from './grpc-reflection.js';
import { acceptedRequest, malformedRequestInterceptor, responseEncoder, serverServices } from './grpc-requests.js';
import type { Principal, TokenAuthority } from '../security/auth.js';
import { grpcStatusOf, logCall, publicError, requestIdFrom, tokenFromHeaders } from './boundary.js';
import type { Logger } from '../log.js';
import type { DaemonMetrics } from '../metrics.js';
import type { AgentService } from '../services/service-agent.js';
import type { SessionRegistry } from '../delivery/session-registry.js';
import { limits } from '../../../shared/src/limits.js';
import { AgentSessions } from './grpc-agent-session.js';
import { firstValue } from './grpc-metadata.js';
import type { AuditService } from '../services/service-audit.js';
import type { BackupService } from '../services/service-backup.js';
import type { DeploymentsService } from '../services/service-deployments.js';
import type { KeysService } from '../services/service-keys.js';
import type { TokensService } from '../services/service-tokens.js';
import type { CallContext } from '../services/context.js';
import type { SecretsService } from '../services/service-secrets.js';

export interface GrpcServerParts {
  auth: TokenAuthority;
  secrets: SecretsService;
  keys: KeysService;
  tokens: TokensService;
  deployments: DeploymentsService;
  audit: AuditService;
  agents: AgentService;
  registry: SessionRegistry;
  backups: BackupService;
  log: Logger;
  metrics?: DaemonMetrics;
  /** gRPC keepalive: a ping after this long without traffic, the connection dropped when unanswered within the timeout. */
  keepalive?: { timeMs: number; timeoutMs: number };
}

type Handler<Req, Res> = (request: Req, ctx: CallContext) => Promise<Res>;

/** The caller's deadline in ms since the epoch, or undefined when it set none (grpc-js says Infinity). */
export function deadlineOf(call: { getDeadline(): grpc.Deadline }): number | undefined {
  const deadline = call.getDeadline();
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(ms) ? ms : undefined;
}

export function buildGrpcServer(parts: GrpcServerParts): { server: grpc.Server; health: HealthImplementation; sessions: AgentSessions } {
  const { auth, secrets, keys, tokens, deployments, audit, agents, registry, backups, log, metrics, keepalive } = parts;
  const counted = metrics && { metrics, transport: 'grpc' as const };
  const refuseMalformed = malformedRequestInterceptor((method, error) => {
    const requestId = requestIdFrom(undefined);
    logCall(log, { method: method.split('/').pop()!, started: process.hrtime.bigint(), requestId, status: grpc.status[error.grpcCode], error });
    return grpcStatusOf(error, requestId);
  });
  const server = new grpc.Server({
    // The same limits as the clients' (shared/src/client.ts).
    'grpc.max_receive_message_length': limits.maxMessageBytes,
    'grpc.max_send_message_length': limits.maxMessageBytes,
    // Finds a dead or hung agent, so its session (and place under the agent cap) is let go.
    ...(keepalive ? { 'grpc.keepalive_time_ms': keepalive.timeMs, 'grpc.keepalive_timeout_ms': keepalive.timeoutMs } : {}),
    interceptors: [refuseMalformed],
  });

  function unary<Req, Res>(method: string, handler: Handler<Req, Res>): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      const started = process.hrtime.bigint();
      const requestId = requestIdFrom(firstValue(call.metadata, 'x-request-id'));
      let principal: Principal | undefined;
      void (async () => {
        principal = await auth.authenticate(tokenFromHeaders((name) => firstValue(call.metadata, name)));
        const ctx: CallContext = { principal, requestId, idempotencyKey: firstValue(call.metadata, 'idempotency-key'), deadline: deadlineOf(call) };
        return handler(acceptedRequest(call.request), ctx);
      })().then(
        (response) => {
          const trailers = new grpc.Metadata();
          trailers.set('x-request-id', requestId);
          callback(null, response, trailers);
          logCall(log, { method, started, requestId, principal, status: 'OK' }, counted);
        },
        (caught: unknown) => {
          const error = publicError(caught, requestId, log);
          callback(grpcStatusOf(error, requestId) as grpc.ServiceError);
          logCall(log, { method, started, requestId, principal, status: grpc.status[error.grpcCode], error }, counted);
        },
      );
    };
  }

  /**
   * Resolves true when a backed-up stream takes writes again, false when it never will (the
   * client cancelled or the call closed): waiting for 'drain' alone left a backup or export
   * generator suspended forever once a slow client went away.
   */
  function writable(call: grpc.ServerWritableStream<unknown, unknown>): Promise<boolean> {
    if (call.cancelled || call.destroyed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const settle = (drained: boolean) => () => {
        call.off('drain', onDrain);
        call.off('cancelled', onGone);
        call.off('close', onGone);
        resolve(drained && !call.cancelled);
      };
      const onDrain = settle(true);
      const onGone = settle(false);
      call.once('drain', onDrain);
      call.once('cancelled', onGone);
      call.once('close', onGone);
    });
  }

  /** A server-streaming call: authenticated and logged as a unary one; each item written in order. */
  function serverStream<Req, Item>(method: string, handler: (request: Req, ctx: CallContext) => AsyncIterable<Item>): grpc.handleServerStreamingCall<Req, Item> {
    return (call) => {
      const started = process.hrtime.bigint();
      const requestId = requestIdFrom(firstValue(call.metadata, 'x-request-id'));
      let principal: Principal | undefined;
      void (async () => {
        principal = await auth.authenticate(tokenFromHeaders((name) => firstValue(call.metadata, name)));
        for await (const item of handler(call.request, { principal, requestId })) {
          if (call.cancelled) return;
          // Returning ends the generator (for-await calls its return(), so its finally runs).
          if (!call.write(item) && !(await writable(call))) return;
        }
      })().then(
        () => {
          call.end();
          logCall(log, { method, started, requestId, principal, status: 'OK' }, counted);
        },
        (caught: unknown) => {
          const error = publicError(caught, requestId, log);
          call.emit('error', grpcStatusOf(error, requestId));
          logCall(log, { method, started, requestId, principal, status: grpc.status[error.grpcCode], error }, counted);
        },
      );
    };
  }

  const services = serverServices();
  const sessions = new AgentSessions(auth, agents, registry, log, responseEncoder(services.AgentService.service.Session as never), metrics);
  server.addService(services.SecretsService.service, {
    CreateSecret: unary('CreateSecret', (r, c) => secrets.create(r as never, c)),
    GetSecret: unary('GetSecret', (r, c) => secrets.get(r as never, c)),
    UpdateSecret: unary('UpdateSecret', (r, c) => secrets.update(r as never, c)),
    DeleteSecret: unary('DeleteSecret', (r, c) => secrets.delete(r as never, c)),
    ListSecrets: unary('ListSecrets', (r, c) => secrets.list(r as never, c)),
    BatchSecrets: unary('BatchSecrets', (r, c) => secrets.batch(r as never, c)),
    ListVersions: unary('ListVersions', (r, c) => secrets.listVersions(r as never, c)),
    RestoreVersion: unary('RestoreVersion', (r, c) => secrets.restore(r as never, c)),
  });
  server.addService(services.KeysService.service, {
    RotateMasterKey: unary('RotateMasterKey', (_r, c) => keys.rotate(c)),
    ListMasterKeys: unary('ListMasterKeys', (_r, c) => keys.list(c.principal)),
    RotateRootKey: unary('RotateRootKey', (r, c) => keys.rotateRoot(c, (r as { new_root_key?: string }).new_root_key ?? '')),
  });
  server.addService(services.TokensService.service, {
    CreateToken: unary('CreateToken', (r, c) => tokens.create(r as never, c)),
    ListTokens: unary('ListTokens', (r, c) => tokens.list(r as never, c)),
    RevokeToken: unary('RevokeToken', (r, c) => tokens.revoke(r as never, c)),
  });
  server.addService(services.DeploymentsService.service, {
    CreateDeployment: unary('CreateDeployment', (r, c) => deployments.create(r as never, c)),
    UpdateDeployment: unary('UpdateDeployment', (r, c) => deployments.update(r as never, c)),
    GetDeployment: unary('GetDeployment', (r, c) => deployments.get(r as never, c)),
    ListDeployments: unary('ListDeployments', (r, c) => deployments.list(r as never, c)),
    DeleteDeployment: unary('DeleteDeployment', (r, c) => deployments.delete(r as never, c)),
  });
  server.addService(services.AuditService.service, {
    ListAudit: unary('ListAudit', (r, c) => audit.list(r as never, c)),
    VerifyAudit: unary('VerifyAudit', (r, c) => audit.verify(r as never, c)),
    AuditHead: unary('AuditHead', (_r, c) => audit.head(c)),
    ExportAudit: serverStream('ExportAudit', (r, c) => audit.export(r as never, c)),
    PruneAudit: unary('PruneAudit', (r, c) => audit.prune(r as never, c)),
  });
  server.addService(services.AgentService.service, {
    GetAgentConfig: unary('GetAgentConfig', (_r, c) => agents.config(c)),
    FetchSecrets: unary('FetchSecrets', (r, c) => agents.fetch(r as never, c)),
    ReportStatus: unary('ReportStatus', (r, c) => agents.report(r as never, c)),
    SecretStatus: unary('SecretStatus', (r, c) => agents.status(r as never, c)),
    Session: sessions.handler,
  });
  server.addService(services.BackupService.service, {
    Backup: serverStream('Backup', (_r, c) => backups.backup(c)),
  });
  const serving = ['SecretsService', 'KeysService', 'TokensService', 'DeploymentsService', 'AuditService', 'AgentService', 'BackupService'].map((s) => [`lockbox.v1.${s}`, 'SERVING'] as const);
  const health = new HealthImplementation({ '': 'SERVING', ...Object.fromEntries(serving) });
  health.addToServer(server);
  addReflection(server);
  return { server, health, sessions };
}
