/**
 * The gRPC boundary: authentication from metadata, one mapping of errors to status codes, one log
 * line per call (method, code, duration, request id, token id; never a request body), health and
 * reflection.
 */
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { ReflectionService } from '@grpc/reflection';
import { LockboxError } from '../../shared/src/errors.js';
import { loadPackageDefinition, loadServices } from '../../shared/src/proto.js';
import type { Principal, TokenAuthority } from './auth.js';
import type { Logger } from './log.js';
import type { AgentService } from './service-agent.js';
import type { AuditService } from './service-audit.js';
import type { DeploymentsService } from './service-deployments.js';
import type { KeysService } from './service-keys.js';
import type { TokensService } from './service-tokens.js';
import type { CallContext } from './context.js';
import type { SecretsService } from './service-secrets.js';

/** Turns any error into what a caller may see. Unknown errors become INTERNAL, detail logged. */
export function toServiceError(error: unknown, requestId: string, log: Logger): Partial<grpc.StatusObject> {
  if (error instanceof LockboxError && error.kind !== 'INTERNAL') return { code: error.grpcCode, details: error.message };
  log.error({ request_id: requestId, err: error instanceof Error ? { name: error.name, message: error.message, stack: error.stack } : String(error) }, 'internal error');
  return { code: grpc.status.INTERNAL, details: `internal error (request id ${requestId})` };
}

function firstValue(metadata: grpc.Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0];
  return value === undefined ? undefined : value.toString();
}

export function tokenFromMetadata(metadata: grpc.Metadata): string | undefined {
  const authorization = firstValue(metadata, 'authorization');
  if (authorization !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    return match ? match[1] : authorization; // a malformed header then fails as a malformed token
  }
  return firstValue(metadata, 'x-api-key');
}

export interface GrpcServerParts {
  auth: TokenAuthority;
  secrets: SecretsService;
  keys: KeysService;
  tokens: TokensService;
  deployments: DeploymentsService;
  audit: AuditService;
  agents: AgentService;
  log: Logger;
}

type Handler<Req, Res> = (request: Req, ctx: CallContext) => Promise<Res>;

export function buildGrpcServer(parts: GrpcServerParts): { server: grpc.Server; health: HealthImplementation } {
  const { auth, secrets, keys, tokens, deployments, audit, agents, log } = parts;
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 8 * 1024 * 1024 });

  function unary<Req, Res>(method: string, handler: Handler<Req, Res>): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      const started = process.hrtime.bigint();
      const requestId = firstValue(call.metadata, 'x-request-id')?.slice(0, 64).replace(/[^\w.-]/g, '') || randomUUID();
      let principal: Principal | undefined;
      void (async () => {
        principal = await auth.authenticate(tokenFromMetadata(call.metadata));
        const ctx: CallContext = { principal, requestId, idempotencyKey: firstValue(call.metadata, 'idempotency-key') };
        return handler(call.request, ctx);
      })().then(
        (response) => {
          callback(null, response);
          logCall(grpc.status.OK);
        },
        (error: unknown) => {
          const status = toServiceError(error, requestId, log);
          callback(status as grpc.ServiceError);
          logCall(status.code!, status.details);
        },
      );
      function logCall(code: grpc.status, message?: string) {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        const entry = { method, code: grpc.status[code], ms: Math.round(ms * 100) / 100, request_id: requestId, token_id: principal?.tokenId, ...(message ? { message } : {}) };
        if (code === grpc.status.OK) log.debug(entry, 'call');
        else log.info(entry, 'call failed');
      }
    };
  }

  const services = loadServices();
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
    RotateMasterKey: unary('RotateMasterKey', (_r, c) => keys.rotate(c.principal)),
    ListMasterKeys: unary('ListMasterKeys', (_r, c) => keys.list(c.principal)),
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
    VerifyAudit: unary('VerifyAudit', (_r, c) => audit.verify(c)),
  });
  server.addService(services.AgentService.service, {
    GetAgentConfig: unary('GetAgentConfig', (_r, c) => agents.config(c)),
    FetchSecrets: unary('FetchSecrets', (r, c) => agents.fetch(r as never, c)),
    ReportStatus: unary('ReportStatus', (r, c) => agents.report(r as never, c)),
    SecretStatus: unary('SecretStatus', (r, c) => agents.status(r as never, c)),
  });
  const serving = ['SecretsService', 'KeysService', 'TokensService', 'DeploymentsService', 'AuditService', 'AgentService'].map((s) => [`lockbox.v1.${s}`, 'SERVING'] as const);
  const health = new HealthImplementation({ '': 'SERVING', ...Object.fromEntries(serving) });
  health.addToServer(server);
  new ReflectionService(loadPackageDefinition()).addToServer(server);
  return { server, health };
}
