/** Reading and verifying the audit log; signed checkpoints of its head (audit-checkpoint.ts). */
import { InvalidArgumentError, PermissionDeniedError } from '../../../shared/src/errors.js';
import { limits } from '../../../shared/src/limits.js';
import { checkTenant } from '../../../shared/src/validate.js';
import { ChainVerifier } from '../security/audit.js';
import { parseHead, type AuditCheckpoints } from '../security/audit-checkpoint.js';
import { authorizeOperator, isOperator } from '../security/auth.js';
import type { CallContext } from './context.js';
import { auditMessage } from './messages.js';
import type { AuditHasher, Store } from '../store/store.js';

export class AuditService {
  constructor(
    private readonly store: Store,
    private readonly hasher: AuditHasher,
    private readonly checkpoints: Pick<AuditCheckpoints, 'write'>,
  ) {}

  /** Signs, publishes and logs the head now. */
  async head(ctx: CallContext) {
    authorizeOperator(ctx.principal, 'sign the audit log\'s head');
    return this.checkpoints.write();
  }

  /** Tenant admins read their tenant's entries; operator admins read any tenant's. */
  async list(request: { tenant?: string; after_seq?: number; limit?: number; action?: string; target?: string }, ctx: CallContext) {
    const { principal } = ctx;
    const tenant = request.tenant || principal.tenant;
    checkTenant(tenant, 'tenant');
    if (principal.role !== 'tenant-admin' || (tenant !== principal.tenant && !isOperator(principal)))
      throw new PermissionDeniedError(`only a tenant-admin of tenant "${tenant}" may read its audit log`);
    const limit = request.limit || limits.defaultListLimit;
    if (limit < 1 || limit > limits.maxListLimit) throw new InvalidArgumentError('limit', `must be between 1 and ${limits.maxListLimit}`);
    if ((request.after_seq ?? 0) < 0) throw new InvalidArgumentError('after_seq', 'must not be negative');
    const entries = await this.store.listAudit({ tenant, afterSeq: request.after_seq ?? 0, limit, action: request.action, target: request.target });
    return { entries: entries.map(auditMessage), next_after_seq: entries.length === limit ? entries[entries.length - 1].seq : 0 };
  }

  /** Walks the whole chain from the first entry. */
  /**
   * Walks the whole chain. With `head` ("SEQ:HASH", kept elsewhere), entry SEQ must also still be
   * there with that hash: removing the newest entries leaves a valid chain, but not that entry.
   */
  async verify(request: { head?: string }, ctx: CallContext) {
    authorizeOperator(ctx.principal, 'verify the audit log');
    const known = request.head ? parseHead(request.head) : undefined;
    if (request.head && !known) throw new InvalidArgumentError('head', 'must be SEQ:HASH, e.g. 1234:<64 hex digits> (from lockbox audit head)');
    const verifier = new ChainVerifier(this.hasher);
    let afterSeq = 0;
    let atKnown: string | undefined;
    for (;;) {
      const page = await this.store.listAudit({ afterSeq, limit: 1000 });
      for (const entry of page) {
        const problem = verifier.check(entry);
        if (problem) return { ok: false, checked: verifier.checked, first_broken_seq: entry.seq, problem };
        if (known && entry.seq === known.seq) atKnown = entry.hash;
      }
      if (page.length === 1000) {
        afterSeq = page[page.length - 1].seq;
        continue;
      }
      const last = page.length > 0 ? page[page.length - 1].seq : afterSeq;
      if (known && atKnown === undefined)
        return { ok: false, checked: verifier.checked, first_broken_seq: known.seq, problem: `entry ${known.seq} of the known head is gone: the log ends at entry ${last}; entries were removed from its end` };
      if (known && atKnown !== known.hash)
        return { ok: false, checked: verifier.checked, first_broken_seq: known.seq, problem: `entry ${known.seq} hashes to ${atKnown!.slice(0, 12)}…, not the known head's ${known.hash.slice(0, 12)}…: the log was rewritten from there` };
      return { ok: true, checked: verifier.checked, first_broken_seq: 0, problem: '' };
    }
  }
}
