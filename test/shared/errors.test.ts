import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as errors from '../../shared/src/errors.js';

const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'errors.md'), 'utf8');
const rows = new Map(
  [...doc.matchAll(/^\| `([A-Z0-9_]+)` \| ([A-Z_]+) \| (\d{3}) \|/gm)].map(([, code, grpc, http]) => [code, { grpc, http: Number(http) }]),
);

t.test('every error code is documented with its gRPC and HTTP status', async (t) => {
  for (const [code, kind] of Object.entries(errors.errorCodes)) {
    const row = rows.get(code);
    t.ok(row, `${code} is in docs/errors.md`);
    t.equal(row?.grpc, kind, `${code} is documented as ${kind}`);
    t.equal(row?.http, errors.errorKinds[kind].http, `${code} maps to HTTP ${errors.errorKinds[kind].http}`);
  }
  for (const code of rows.keys()) t.ok(code in errors.errorCodes, `${code} in the docs exists in code`);
});

t.test('each error class carries its kind, code and statuses', async (t) => {
  const cases: Array<[errors.LockboxError, string, number]> = [
    [new errors.InvalidArgumentError('f', 'rule'), 'INVALID_ARGUMENT', 400],
    [new errors.UnauthenticatedError('m'), 'UNAUTHENTICATED', 401],
    [new errors.PermissionDeniedError('m'), 'PERMISSION_DENIED', 403],
    [new errors.NotFoundError('m', 'SECRET_NOT_FOUND'), 'NOT_FOUND', 404],
    [new errors.AlreadyExistsError('m'), 'ALREADY_EXISTS', 409],
    [new errors.ConflictError('m'), 'ABORTED', 409],
    [new errors.FailedPreconditionError('m'), 'FAILED_PRECONDITION', 409],
    [new errors.ResourceExhaustedError('m'), 'RESOURCE_EXHAUSTED', 429],
    [new errors.UnavailableError('m', { cause: new Error('x') }), 'UNAVAILABLE', 503],
    [new errors.DecryptionError('m'), 'INTERNAL', 500],
  ];
  for (const [error, kind, http] of cases) {
    t.equal(error.kind, kind);
    t.equal(error.httpStatus, http);
    t.equal(error.grpcCode, errors.errorKinds[kind as errors.ErrorKind].grpc);
    t.ok(error.code in errors.errorCodes, `${error.code} is a known code`);
    t.ok(error.name.endsWith('Error'));
  }
  t.equal(new errors.InvalidArgumentError('secret.name', 'is required').message, 'secret.name: is required');
});
