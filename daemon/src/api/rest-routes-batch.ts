/**
 * `POST /v1/admin/secrets:batch`: many creates, updates and deletes in one call, with /v1's item
 * shapes; a status per item, the others applied. 200 when every item applied, else 400: with the
 * results when the items were read, or the one error shape when the request itself is refused
 * (malformed JSON, an unknown field, an empty batch). The AI Blueprints `POST /secrets` is the
 * same call (rest-routes-blueprints.ts).
 */
import { InvalidArgumentError, LockboxError } from '../../../shared/src/errors.js';
import type { CallContext } from '../services/context.js';
import { errorResponses, scopeFromHeaders, statusOfKind, writeHeaders, type RestReply, type RestRequest, type RestRoute, type RestServices } from './rest-common.js';
import * as schemas from './rest-schemas.js';
import { v1Secret, v1SecretInput, v1UpdateRequest, type V1SecretFields } from './rest-shapes-v1.js';

interface BatchItemBody extends V1SecretFields {
  mode: 'create' | 'update' | 'delete';
}

const modeFields: Record<BatchItemBody['mode'], Array<keyof BatchItemBody>> = {
  create: ['value', 'data', 'labels', 'type', 'provider_slug', 'description', 'mount'],
  update: ['value', 'data', 'labels', 'type', 'provider_slug', 'description', 'mount', 'replace', 'expected_version'],
  delete: ['type', 'force', 'expected_version'],
};

/** Runs a batch request: the scope from the headers, then each item; answers 200 or 400. */
async function applyBatch(services: RestServices, request: RestRequest, ctx: CallContext): Promise<RestReply> {
  const scope = scopeFromHeaders(request, ctx, true);
  await services.secrets.authorizeBatch(scope, ctx); // refuse a caller who may not write before looking at any item
  const items = (Array.isArray(request.body) ? request.body : (request.body as { items: BatchItemBody[] }).items) as BatchItemBody[];
  type Result = { index: number; name: string; mode: string; status: number; ok: boolean; error?: { code: string; message: string }; secret?: unknown };
  const results: Array<Result | undefined> = [];
  const forService: Array<{ index: number; item: object }> = [];
  for (const [index, item] of items.entries()) {
    const field = `items[${index}].`;
    try {
      const stray = Object.keys(item).filter((key) => key !== 'mode' && key !== 'name' && !modeFields[item.mode].includes(key as keyof BatchItemBody));
      if (stray.length) throw new InvalidArgumentError(`${field}${stray[0]}`, `does not apply to mode ${item.mode}`);
      const serviceItem =
        item.mode === 'create'
          ? { create: v1SecretInput(item, field) }
          : item.mode === 'update'
            ? { update: await v1UpdateRequest(services, ctx, scope, item.name, item, field) }
            : { delete: { name: item.name, force: item.force ?? false, expected_version: item.expected_version, type: item.type } };
      forService.push({ index, item: serviceItem });
    } catch (error) {
      if (!(error instanceof LockboxError)) throw error;
      results[index] = { index, name: item.name, mode: item.mode, status: error.httpStatus, ok: false, error: { code: error.code, message: error.message } };
    }
  }
  if (forService.length > 0 || items.length === 0) {
    const response = await services.secrets.batch({ scope, items: forService.map((f) => f.item) }, ctx);
    for (const r of response.results) {
      const index = forService[r.index].index;
      results[index] =
        r.code === 0
          ? { index, name: r.name, mode: r.operation, status: 200, ok: true, ...(r.secret ? { secret: v1Secret(r.secret) } : {}) }
          : { index, name: r.name, mode: r.operation, status: statusOfKind(r.status), ok: false, error: { code: r.error_code || r.status, message: r.message } };
    }
  }
  const failed = results.filter((r) => !r!.ok).length;
  return { status: failed ? 400 : 200, body: { results, succeeded: results.length - failed, failed } };
}

/** What a batch answers: 200 with the results, 400 with them or with the error shape. */
function batchResponses(): RestRoute['responses'] {
  return {
    ...errorResponses('POST'),
    200: { description: 'every item applied', schema: schemas.batchResponse },
    400: { description: 'some item failed (the others applied; the results say which), or the request itself is refused (the error shape)', schema: schemas.batchFailure },
  };
}

export function batchRoutes(services: RestServices): RestRoute[] {
  return [
    {
      method: 'POST',
      path: '/v1/admin/secrets:batch',
      operationId: 'v1BatchSecrets',
      summary: 'Create, update and delete many secrets; a status per item, the rest applied',
      tag: 'v1',
      body: schemas.batchBody,
      headers: writeHeaders,
      responses: batchResponses(),
      handle: (request, ctx) => applyBatch(services, request, ctx),
    },
  ];
}
