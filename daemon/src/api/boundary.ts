/**
 * What the gRPC server and the REST gateway share at their edge, so each rule exists once: where
 * the caller's token comes from, what a request id may be, which errors a caller may see, and the
 * one log line per call.
 */
import { randomUUID } from 'node:crypto';
import { Metadata, type StatusObject } from '@grpc/grpc-js';
import { errorDomain, encodeStatusDetails, statusDetailsKey } from '../../../shared/src/error-details.js';
import { InvalidArgumentError, LockboxError } from '../../../shared/src/errors.js';
import type { Principal } from '../security/auth.js';
import type { Logger } from '../log.js';
import type { DaemonMetrics, Transport } from '../metrics.js';

/**
 * The token from `authorization: Bearer <token>` or, failing that, `x-api-key: <token>`. A
 * malformed authorization header is handed on as is, so it fails as a malformed token.
 */
export function tokenFromHeaders(header: (name: string) => string | undefined): string | undefined {
  const authorization = header('authorization');
  if (authorization !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    return match ? match[1] : authorization;
  }
  return header('x-api-key');
}

/** The caller's `x-request-id` when it is a sane one (letters, digits, `.`, `_`, `-`; 64 at most), else a new one. */
export function requestIdFrom(header: string | undefined): string {
  return header?.slice(0, 64).replace(/[^\w.-]/g, '') || randomUUID();
}

/**
 * The error a caller may see. A LockboxError passes (its message was written for callers and
 * never holds a value), DECRYPTION_FAILED included: a stored version that does not open is the
 * data's fault, not ours, and the caller must learn which; anything else is logged with its
 * detail under the request id and becomes a generic INTERNAL error naming that id.
 */
export function publicError(error: unknown, requestId: string, log: Logger): LockboxError {
  if (error instanceof LockboxError && (error.kind !== 'INTERNAL' || error.code === 'DECRYPTION_FAILED')) return error;
  log.error({ request_id: requestId, err: error instanceof Error ? { name: error.name, message: error.message, stack: error.stack } : String(error) }, 'internal error');
  return new LockboxError('INTERNAL', 'INTERNAL', `internal error (request id ${requestId})`);
}

/**
 * A public error as gRPC sends it: the status code and message, and in the trailers the request
 * id (`x-request-id`) and a `google.rpc.Status` whose `google.rpc.ErrorInfo` has the stable code as
 * `reason`, domain `lockbox`, and metadata `request_id` (and `field` for a bad field).
 */
export function grpcStatusOf(error: Pick<LockboxError, 'grpcCode' | 'code' | 'message'>, requestId: string): StatusObject {
  const metadata = new Metadata();
  metadata.set('x-request-id', requestId);
  const info = { reason: error.code, domain: errorDomain, metadata: { request_id: requestId, ...(error instanceof InvalidArgumentError ? { field: error.field } : {}) } };
  metadata.set(statusDetailsKey, encodeStatusDetails(error.grpcCode, error.message, info));
  return { code: error.grpcCode, details: error.message, metadata };
}

export interface CallRecord {
  /** `CreateSecret` for gRPC, `POST /v1/admin/secrets` for REST. */
  method: string;
  started: bigint;
  requestId: string;
  principal?: Principal;
  /** Undefined when the call succeeded. */
  error?: LockboxError;
  /** The transport's status: a gRPC status name or an HTTP status code. */
  status: string | number;
}

/** Where a call is counted (metrics.ts): its transport, and the method label when it differs from `call.method`. */
export interface CallMetrics {
  metrics: DaemonMetrics;
  transport: Transport;
  method?: string;
}

/** One line per call: method, status, duration, request id, token id; never a body. Counted in `counted` when given. */
export function logCall(log: Logger, call: CallRecord, counted?: CallMetrics): void {
  const ms = Number(process.hrtime.bigint() - call.started) / 1e6;
  counted?.metrics.call(counted.transport, counted.method ?? call.method, call.status, ms / 1000);
  const entry = {
    method: call.method,
    code: call.status,
    ms: Math.round(ms * 100) / 100,
    request_id: call.requestId,
    token_id: call.principal?.tokenId,
    ...(call.error ? { error_code: call.error.code, message: call.error.message } : {}),
  };
  if (call.error) log.info(entry, 'call failed');
  else log.debug(entry, 'call');
}
