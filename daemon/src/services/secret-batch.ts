/**
 * BatchSecrets, once the secrets service has authorized the scope for writing:
 * (1) up to maxBatchItems items, each a create, update or delete in that scope, a name at most
 *     once; each is checked and prepared on its own (secret-changes.ts), and one that fails is
 *     answered with its error while the others go on;
 * (2) every prepared change is committed in one transaction with one audit entry per item
 *     (refused ones included) and the idempotency record: replaying the request answers the
 *     same results;
 * (3) the results keep the items' order, with a gRPC status per item and the new version's
 *     message where one was made.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { InvalidArgumentError, LockboxError, errorKinds } from '../../../shared/src/errors.js';
import { limits } from '../../../shared/src/limits.js';
import { auditDraft, outcomeOf } from '../security/audit.js';
import type { AuditDraft, CommitOutcome, Operation, ScopeKey, Store } from '../store/store.js';
import { beforeDeadline, type CallContext } from './context.js';
import type { Idempotency } from './idempotency.js';
import type { BatchRequest, BatchResultMessage } from './messages.js';
import type { Prepared, SecretChanges } from './secret-changes.js';

const statusNames = Object.fromEntries(Object.entries(GrpcStatus).map(([name, code]) => [code, name])) as Record<number, string>;

export class SecretBatches {
  constructor(
    private readonly store: Store,
    private readonly changes: SecretChanges,
    private readonly idempotency: Idempotency,
    /** Called after a commit that produced notices. */
    private readonly onCommitted: () => void,
  ) {}

  async run(scope: ScopeKey, request: BatchRequest, ctx: CallContext) {
    const items = request.items ?? [];
    if (items.length === 0) throw new InvalidArgumentError('items', 'a batch needs at least one item');
    if (items.length > limits.maxBatchItems) throw new InvalidArgumentError('items', `at most ${limits.maxBatchItems} items per batch (got ${items.length})`);
    const now = new Date().toISOString();
    const seen = new Set<string>();
    const prepared: Prepared[] = [];
    for (const [index, item] of items.entries()) {
      const operation: Operation = item.op ?? (item.create ? 'create' : item.update ? 'update' : 'delete');
      const name = item.create?.name ?? item.update?.name ?? item.delete?.name ?? '';
      try {
        if (!item.create && !item.update && !item.delete) throw new InvalidArgumentError(`items[${index}]`, 'needs one of create, update, delete');
        const own = item.update?.scope ?? item.delete?.scope;
        if (own && ((own.tenant || 'default') !== scope.tenant || (own.resource_group ?? '') !== scope.resourceGroup))
          throw new InvalidArgumentError(`items[${index}].scope`, 'must be empty or equal to the batch scope');
        if (seen.has(name)) throw new InvalidArgumentError(`items[${index}].name`, `"${name}" appears more than once in this batch`);
        if (name) seen.add(name);
        const one = item.create
          ? await this.changes.prepareCreate(ctx, scope, item.create, `items[${index}].create.`, now)
          : item.update
            ? await this.changes.prepareUpdate(ctx, scope, item.update, now)
            : await this.changes.prepareDelete(scope, item.delete!, now);
        prepared.push({ ...one, index });
      } catch (error) {
        if (!(error instanceof LockboxError)) throw error;
        prepared.push({ index, name, operation, error });
      }
    }
    const toCommit = prepared.filter((p) => p.change);
    const build = (outcomes: CommitOutcome[]) => {
      let next = 0;
      const results: BatchResultMessage[] = prepared.map((p) => {
        const outcome: CommitOutcome = p.change ? outcomes[next++] : { ok: false, error: p.error! };
        if (!outcome.ok) {
          const code = errorKinds[outcome.error.kind].grpc;
          return { index: p.index, name: p.name, operation: p.operation, code, status: statusNames[code], message: outcome.error.message, error_code: outcome.error.code };
        }
        const secret = p.describe?.(outcome.seq);
        return { index: p.index, name: p.name, operation: p.operation, code: 0, status: 'OK', message: '', error_code: '', ...(secret ? { secret } : {}) };
      });
      const failed = results.filter((r) => r.code !== 0).length;
      return { results, succeeded: results.length - failed, failed };
    };
    return this.idempotency.run(ctx, scope.tenant, 'BatchSecrets', request, async (idempotency) => {
      const audit = (outcomes: CommitOutcome[]): AuditDraft[] => {
        let next = 0;
        return prepared.map((p) => {
          const outcome = p.change ? outcomes[next++] : undefined;
          const error = p.change ? (outcome!.ok ? undefined : outcome!.error) : p.error;
          return auditDraft(ctx, `secret.${p.operation}`, scope, p.name, p.change?.record?.version ?? p.change?.expectVersion ?? 0, outcomeOf(error));
        });
      };
      beforeDeadline(ctx, 'the batch');
      const outcomes = await this.store.commit(toCommit.map((p) => p.change!), idempotency, audit, ctx.deadline); // checked again as the job begins
      if (toCommit.length) this.onCommitted();
      return build(outcomes);
    }, (outcomes) => JSON.stringify(build(outcomes)), (text) => JSON.parse(text) as ReturnType<typeof build>);
  }
}
