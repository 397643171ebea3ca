/**
 * Every error lockbox answers with is defined here, once, with a stable code. The gRPC boundary
 * maps `grpcCode` to a status; the REST gateway maps `httpStatus`. Messages name the field and
 * the rule and never contain a secret value. Anything that is not a LockboxError becomes
 * INTERNAL with a generic message at the boundary (its detail goes to the log).
 *
 * docs/errors.md lists every code; a test keeps the two in step.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';

export const errorKinds = {
  INVALID_ARGUMENT: { grpc: GrpcStatus.INVALID_ARGUMENT, http: 400 },
  UNAUTHENTICATED: { grpc: GrpcStatus.UNAUTHENTICATED, http: 401 },
  PERMISSION_DENIED: { grpc: GrpcStatus.PERMISSION_DENIED, http: 403 },
  NOT_FOUND: { grpc: GrpcStatus.NOT_FOUND, http: 404 },
  ALREADY_EXISTS: { grpc: GrpcStatus.ALREADY_EXISTS, http: 409 },
  ABORTED: { grpc: GrpcStatus.ABORTED, http: 409 },
  FAILED_PRECONDITION: { grpc: GrpcStatus.FAILED_PRECONDITION, http: 409 },
  RESOURCE_EXHAUSTED: { grpc: GrpcStatus.RESOURCE_EXHAUSTED, http: 429 },
  /** A request larger than the server takes (gRPC says RESOURCE_EXHAUSTED for an oversized message). */
  PAYLOAD_TOO_LARGE: { grpc: GrpcStatus.RESOURCE_EXHAUSTED, http: 413 },
  /** REST only: a path that takes other methods. */
  METHOD_NOT_ALLOWED: { grpc: GrpcStatus.UNIMPLEMENTED, http: 405 },
  /** REST only: a body that is not JSON. */
  UNSUPPORTED_MEDIA_TYPE: { grpc: GrpcStatus.INVALID_ARGUMENT, http: 415 },
  UNAVAILABLE: { grpc: GrpcStatus.UNAVAILABLE, http: 503 },
  /** gRPC only: the caller's deadline passed before the call's write began (nothing was changed). */
  DEADLINE_EXCEEDED: { grpc: GrpcStatus.DEADLINE_EXCEEDED, http: 504 },
  INTERNAL: { grpc: GrpcStatus.INTERNAL, http: 500 },
} as const;

export type ErrorKind = keyof typeof errorKinds;

export class LockboxError extends Error {
  override name = 'LockboxError';
  readonly kind: ErrorKind;
  /** A stable, documented code, e.g. `SECRET_NOT_FOUND`. */
  readonly code: string;

  constructor(kind: ErrorKind, code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.code = code;
  }

  get grpcCode(): number {
    return errorKinds[this.kind].grpc;
  }

  get httpStatus(): number {
    return errorKinds[this.kind].http;
  }
}

/**
 * DEADLINE_EXCEEDED when the caller's `deadline` (ms since the epoch) has passed, naming the step
 * that was not begun; undefined while there is time left or when the caller set none. The one
 * check behind the services' beforeDeadline and the group commits' job check.
 */
export function pastDeadline(deadline: number | undefined, step: string, now = Date.now()): LockboxError | undefined {
  if (deadline !== undefined && now >= deadline)
    return new LockboxError('DEADLINE_EXCEEDED', 'DEADLINE_EXCEEDED', `the caller's deadline passed before ${step}; nothing was changed`);
  return undefined;
}

export class InvalidArgumentError extends LockboxError {
  override name = 'InvalidArgumentError';
  /** The request field at fault, e.g. `secret.data["A B"]`. */
  readonly field: string;
  constructor(field: string, rule: string, code = 'INVALID_ARGUMENT') {
    super('INVALID_ARGUMENT', code, `${field}: ${rule}`);
    this.field = field;
  }
}

export class UnauthenticatedError extends LockboxError {
  override name = 'UnauthenticatedError';
  constructor(message: string) {
    super('UNAUTHENTICATED', 'UNAUTHENTICATED', message);
  }
}

export class PermissionDeniedError extends LockboxError {
  override name = 'PermissionDeniedError';
  constructor(message: string) {
    super('PERMISSION_DENIED', 'PERMISSION_DENIED', message);
  }
}

export class NotFoundError extends LockboxError {
  override name = 'NotFoundError';
  constructor(message: string, code = 'NOT_FOUND') {
    super('NOT_FOUND', code, message);
  }
}

export class AlreadyExistsError extends LockboxError {
  override name = 'AlreadyExistsError';
  constructor(message: string, code = 'ALREADY_EXISTS') {
    super('ALREADY_EXISTS', code, message);
  }
}

/** A compare-and-set lost: the record changed since the caller read it. */
export class ConflictError extends LockboxError {
  override name = 'ConflictError';
  constructor(message: string, code = 'VERSION_CONFLICT') {
    super('ABORTED', code, message);
  }
}

export class FailedPreconditionError extends LockboxError {
  override name = 'FailedPreconditionError';
  constructor(message: string, code = 'FAILED_PRECONDITION') {
    super('FAILED_PRECONDITION', code, message);
  }
}

export class ResourceExhaustedError extends LockboxError {
  override name = 'ResourceExhaustedError';
  constructor(message: string, code = 'RESOURCE_EXHAUSTED') {
    super('RESOURCE_EXHAUSTED', code, message);
  }
}

export class UnavailableError extends LockboxError {
  override name = 'UnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNAVAILABLE', 'UNAVAILABLE', message, options);
  }
}

/** A ciphertext that does not open: wrong key, moved record, or tampering. */
export class DecryptionError extends LockboxError {
  override name = 'DecryptionError';
  constructor(message: string) {
    super('INTERNAL', 'DECRYPTION_FAILED', message);
  }
}

/** Every stable code a caller can see, with the kind it belongs to. */
export const errorCodes: Record<string, ErrorKind> = {
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  TEMPLATE_KEYS_MISSING: 'INVALID_ARGUMENT',
  IDEMPOTENCY_KEY_REUSED: 'INVALID_ARGUMENT',
  MALFORMED_JSON: 'INVALID_ARGUMENT',
  UNKNOWN_FIELD: 'INVALID_ARGUMENT',
  INVALID_BASE64: 'INVALID_ARGUMENT',
  INVALID_CURSOR: 'INVALID_ARGUMENT',
  MALFORMED_REQUEST: 'INVALID_ARGUMENT',
  UNSUPPORTED_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  ROUTE_NOT_FOUND: 'NOT_FOUND',
  METHOD_NOT_ALLOWED: 'METHOD_NOT_ALLOWED',
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  PERMISSION_DENIED: 'PERMISSION_DENIED',
  NOT_FOUND: 'NOT_FOUND',
  SECRET_NOT_FOUND: 'NOT_FOUND',
  VERSION_NOT_FOUND: 'NOT_FOUND',
  ALREADY_EXISTS: 'ALREADY_EXISTS',
  SECRET_EXISTS: 'ALREADY_EXISTS',
  DEPLOYMENT_EXISTS: 'ALREADY_EXISTS',
  DEPLOYMENT_NOT_FOUND: 'NOT_FOUND',
  TOKEN_NOT_FOUND: 'NOT_FOUND',
  SECRET_IN_USE: 'FAILED_PRECONDITION',
  BACKUP_NOT_SUPPORTED: 'FAILED_PRECONDITION',
  AUDIT_CHAIN_BROKEN: 'FAILED_PRECONDITION',
  MOUNT_COLLISION: 'FAILED_PRECONDITION',
  VERSION_CONFLICT: 'ABORTED',
  ROTATION_IN_PROGRESS: 'ABORTED',
  FAILED_PRECONDITION: 'FAILED_PRECONDITION',
  ROOT_KEY_MISMATCH: 'FAILED_PRECONDITION',
  KEYRING_CHANGED: 'ABORTED',
  RESOURCE_EXHAUSTED: 'RESOURCE_EXHAUSTED',
  AGENT_LIMIT: 'RESOURCE_EXHAUSTED',
  UNAVAILABLE: 'UNAVAILABLE',
  DEADLINE_EXCEEDED: 'DEADLINE_EXCEEDED',
  INTERNAL: 'INTERNAL',
  DECRYPTION_FAILED: 'INTERNAL',
};
