/**
 * Reading and verifying the audit log; signed checkpoints of its head (audit-checkpoint.ts);
 * retention (issue 13.6): a signed export (shared/src/audit-export.ts) and pruning behind a
 * signed cut:
 * 1. prune verifies the whole chain first: a broken chain is never pruned (that would erase the
 *    evidence) — AUDIT_CHAIN_BROKEN;
 * 2. the store takes the cut (the entry just before the first one whose time is
 *    `before` or later, so every entry up to the cut is older even where seq order and time
 *    disagree; never the chain's last entry); a `before` later than now is refused,
 * 3. signs it (as a `cut`: a head checkpoint does not pass for one), keeps it in meta (AUDIT_CUT_META) and deletes the entries up to it, in one
 *    transaction (on PostgreSQL under the chain's lock);
 * 4. the prune is audited; verify then starts from the signed cut.
 */
import { AUDIT_EXPORT_FORMAT, checkpointVerifies, type AuditCheckpoint as SignedCheckpoint } from '../../../shared/src/audit-export.js';
import { FailedPreconditionError, InvalidArgumentError, PermissionDeniedError } from '../../../shared/src/errors.js';
import { limits } from '../../../shared/src/limits.js';
import { checkTenant, checkTime } from '../../../shared/src/validate.js';
import { auditDraft, auditFailures, ChainVerifier } from '../security/audit.js';
import { parseHead, type AuditCheckpoints } from '../security/audit-checkpoint.js';
import { authorizeOperator, isOperator } from '../security/auth.js';
import type { CallContext } from './context.js';
import { auditMessage } from './messages.js';
import { AUDIT_CUT_META, type AuditHasher, type AuditRecord, type Store } from '../store/store.js';

const PAGE = 1000;

/** An RFC 3339 time field as ms; empty: `empty`. */
function timeField(text: string | undefined, field: string, empty: number | undefined): number {
  if (!text) {
    if (empty === undefined) throw new InvalidArgumentError(field, 'is required: an RFC 3339 time, e.g. 2026-01-31T00:00:00Z');
    return empty;
  }
  return checkTime(text, field);
}

export class AuditService {
  constructor(
    private readonly store: Store,
    private readonly hasher: AuditHasher,
    private readonly checkpoints: Pick<AuditCheckpoints, 'write' | 'sign' | 'signEntry' | 'signHeader' | 'publicKey'>,
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

  /**
   * Walks the whole chain. With `head` ("SEQ:HASH", kept elsewhere), entry SEQ must also still be
   * there with that hash: removing the newest entries leaves a valid chain, but not that entry.
   */
  async verify(request: { head?: string }, ctx: CallContext) {
    authorizeOperator(ctx.principal, 'verify the audit log');
    const known = request.head ? parseHead(request.head) : undefined;
    if (request.head && !known) throw new InvalidArgumentError('head', 'must be SEQ:HASH, e.g. 1234:<64 hex digits> (from lockbox audit head)');
    const cut = await this.prunedCut();
    if (cut && !checkpointVerifies(cut, this.checkpoints.publicKey, 'cut'))
      return { ok: false, checked: 0, first_broken_seq: cut.seq + 1, problem: `the signed cut of the last prune (entry ${cut.seq}) does not verify with this keyring's key: it was edited`, verified_from: 0 };
    const from = cut ? { seq: Number(cut.seq), hash: cut.hash } : undefined;
    const verifier = new ChainVerifier(this.hasher, from);
    let afterSeq = 0;
    let atKnown: string | undefined;
    for (;;) {
      const page = await this.store.listAudit({ afterSeq, limit: 1000 });
      for (const entry of page) {
        const problem = verifier.check(entry);
        if (problem) return { ok: false, checked: verifier.checked, first_broken_seq: entry.seq, problem, verified_from: from?.seq ?? 0 };
        if (known && entry.seq === known.seq) atKnown = entry.hash;
      }
      if (page.length === 1000) {
        afterSeq = page[page.length - 1].seq;
        continue;
      }
      const last = page.length > 0 ? page[page.length - 1].seq : afterSeq;
      const pruned = known && from && known.seq <= from.seq; // before the signed cut: checked only at the cut itself
      if (pruned && known.seq === from.seq) atKnown = from.hash;
      if (known && !pruned && atKnown === undefined)
        return { ok: false, checked: verifier.checked, first_broken_seq: known.seq, problem: `entry ${known.seq} of the known head is gone: the log ends at entry ${last}; entries were removed from its end` };
      if (known && (!pruned || known.seq === from.seq) && atKnown !== known.hash)
        return { ok: false, checked: verifier.checked, first_broken_seq: known.seq, problem: `entry ${known.seq} hashes to ${atKnown!.slice(0, 12)}…, not the known head's ${known.hash.slice(0, 12)}…: the log was rewritten from there` };
      return { ok: true, checked: verifier.checked, first_broken_seq: 0, problem: '', verified_from: from?.seq ?? 0 };
    }
  }

  private async prunedCut(): Promise<SignedCheckpoint | undefined> {
    const text = await this.store.getMeta(AUDIT_CUT_META);
    return text ? (JSON.parse(text) as SignedCheckpoint) : undefined;
  }

  /**
   * The export file's lines (shared/src/audit-export.ts steps (1)-(3)): every entry from the
   * first whose time is `since` or later, each checked against the keyed chain before it is
   * signed; a broken entry ends the export with AUDIT_CHAIN_BROKEN. The chain is walked from the
   * signed cut of the last prune (or its start) — the entries before `since` too — so the header's
   * `from` is signed only once it links back there: rows deleted before the first exported entry
   * are found, not signed over.
   */
  async *export(request: { since?: string }, ctx: CallContext): AsyncGenerator<{ line: string }> {
    authorizeOperator(ctx.principal, 'export the audit log');
    const since = timeField(request.since, 'since', 0);
    const broken = (seq: number, problem: string) =>
      new FailedPreconditionError(`the audit log is broken at entry ${seq} (${problem}); the export stops there: run lockbox audit verify`, 'AUDIT_CHAIN_BROKEN');
    const cut = await this.prunedCut();
    if (cut && !checkpointVerifies(cut, this.checkpoints.publicKey, 'cut')) throw broken(cut.seq + 1, `the signed cut of the last prune (entry ${cut.seq}) does not verify: it was edited`);
    const verifier = new ChainVerifier(this.hasher, cut ? { seq: Number(cut.seq), hash: cut.hash } : undefined);
    /** The entries of `page` before the first exported one must link from the cut or the start. */
    const checkBefore = (entries: AuditRecord[]) => {
      for (const entry of entries) {
        const problem = verifier.check(entry);
        if (problem) throw broken(entry.seq, problem);
      }
    };
    let page = await this.store.listAudit({ afterSeq: 0, limit: PAGE });
    let index = page.findIndex((e) => Date.parse(e.time) >= since);
    while (index < 0 && page.length === PAGE) {
      checkBefore(page);
      page = await this.store.listAudit({ afterSeq: page[page.length - 1].seq, limit: PAGE });
      index = page.findIndex((e) => Date.parse(e.time) >= since);
    }
    checkBefore(index < 0 ? page : page.slice(0, index));
    const first = index < 0 ? undefined : page[index];
    const start = first ? { seq: first.seq - 1, hash: first.prevHash } : await this.store.auditHead(); // nothing since: from the head to the head
    if (first) {
      const problem = verifier.check(first); // it links to what was verified: `from` is in the chain
      if (problem) throw broken(first.seq, problem);
    }
    const format = AUDIT_EXPORT_FORMAT;
    const sinceText = new Date(since).toISOString();
    const from = this.checkpoints.sign(start.seq, start.hash);
    const header = { format, public_key: this.checkpoints.publicKey, since: sinceText, from, signature: this.checkpoints.signHeader(format, sinceText, from) };
    yield { line: JSON.stringify(header) };
    let last = start;
    let entries = index < 0 ? [] : page.slice(index);
    for (let more = page.length === PAGE; ; ) {
      for (const entry of entries) {
        const problem = entry === first ? undefined : verifier.check(entry); // the first was checked above
        if (problem) throw broken(entry.seq, problem);
        const message = auditMessage(entry);
        yield { line: JSON.stringify({ ...message, signature: this.checkpoints.signEntry(message) }) };
        last = { seq: entry.seq, hash: entry.hash };
      }
      if (!more) break;
      entries = await this.store.listAudit({ afterSeq: page[page.length - 1].seq, limit: PAGE });
      page = entries;
      more = page.length === PAGE;
    }
    yield { line: JSON.stringify({ end: this.checkpoints.sign(last.seq, last.hash) }) };
  }

  /** Steps (1)-(4): removes entries older than `before`, keeping a signed cut. */
  async prune(request: { before?: string }, ctx: CallContext) {
    const beforeMs = timeField(request.before, 'before', undefined);
    const before = new Date(beforeMs).toISOString();
    const scope = { tenant: ctx.principal.tenant, resourceGroup: '' };
    return auditFailures(this.store, ctx, 'audit.prune', scope, `before ${before}`, async () => {
      authorizeOperator(ctx.principal, 'prune the audit log'); // a refused prune is audited too; first, so a caller who may not prune learns nothing of its request
      const now = Date.now();
      if (beforeMs > now) // (2): a future `before` would delete entries written after the call
        throw new InvalidArgumentError('before', `${before} is in the future (now ${new Date(now).toISOString()}); name a time that has passed`);
      const check = await this.verify({}, ctx); // (1)
      if (!check.ok) throw new FailedPreconditionError(`the audit log is broken at entry ${check.first_broken_seq} (${check.problem}); it is not pruned`, 'AUDIT_CHAIN_BROKEN');
      const { removed, cut } = await this.store.pruneAudit(before, (at) => JSON.stringify(this.checkpoints.sign(at.seq, at.hash, 'cut'))); // (2), (3)
      const checkpoint = cut ? (JSON.parse(cut) as SignedCheckpoint) : await this.prunedCut();
      await this.store.appendAudit([auditDraft(ctx, 'audit.prune', scope, `before ${before}`, checkpoint?.seq ?? 0, 'ok')]); // (4)
      return { removed, checkpoint };
    });
  }
}
