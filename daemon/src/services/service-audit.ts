/** Reading and verifying the audit log. */
import { InvalidArgumentError, PermissionDeniedError } from '../../../shared/src/errors.js';
import { limits } from '../../../shared/src/limits.js';
import { checkTenant } from '../../../shared/src/validate.js';
import { ChainVerifier } from '../security/audit.js';
import { authorizeOperator, isOperator } from '../security/auth.js';
import type { CallContext } from './context.js';
import { auditMessage } from './messages.js';
import type { AuditHasher, Store } from '../store/store.js';

export class AuditService {
  constructor(
    private readonly store: Store,
    private readonly hasher: AuditHasher,
  ) {}

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
  async verify(ctx: CallContext) {
    authorizeOperator(ctx.principal, 'verify the audit log');
    const verifier = new ChainVerifier(this.hasher);
    let afterSeq = 0;
    for (;;) {
      const page = await this.store.listAudit({ afterSeq, limit: 1000 });
      for (const entry of page) {
        const problem = verifier.check(entry);
        if (problem) return { ok: false, checked: verifier.checked, first_broken_seq: entry.seq, problem };
      }
      if (page.length < 1000) return { ok: true, checked: verifier.checked, first_broken_seq: 0, problem: '' };
      afterSeq = page[page.length - 1].seq;
    }
  }
}
