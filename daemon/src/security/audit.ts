/**
 * The audit log: every change and every read of a value, with who (token id, role), where
 * (tenant, resource group), what (action, target, version), the outcome and the request id. Never
 * a value. Entries form a hash chain keyed with a key derived from the keyring:
 * hash(n) = BLAKE2b_key(seq, fields of n, hash(n-1)). Editing an entry breaks its hash; removing
 * one breaks the next entry's link; without the key nobody can forge a consistent chain.
 */
import { deriveKey, keyedHash } from '../../../shared/src/crypto.js';
import { LockboxError } from '../../../shared/src/errors.js';
import type { CallContext } from '../services/context.js';
import type { AuditDraft, AuditHasher, AuditRecord, ScopeKey, Store } from '../store/store.js';

export function auditHasher(rootKey: Uint8Array): AuditHasher {
  const key = deriveKey(rootKey, 2, 'lbxaudit');
  return (entry) => keyedHash(canonicalEntry(entry), key);
}

/** The hashed form of an entry. A count of 1 is left out, so entries written before counts existed still verify. */
function canonicalEntry(entry: Omit<AuditRecord, 'hash'>): string {
  const fields: unknown[] = [
    entry.seq,
    entry.time,
    entry.tokenId,
    entry.role,
    entry.tenant,
    entry.resourceGroup,
    entry.action,
    entry.target,
    entry.version,
    entry.outcome,
    entry.requestId,
    entry.prevHash,
  ];
  if (entry.count !== undefined && entry.count !== 1) fields.push(entry.count);
  return JSON.stringify(fields);
}

/** "ok", or the gRPC status name of what went wrong. */
export function outcomeOf(error?: unknown): string {
  if (error === undefined) return 'ok';
  return error instanceof LockboxError ? error.kind : 'INTERNAL';
}

export function auditDraft(ctx: CallContext, action: string, scope: ScopeKey, target: string, version: number, outcome: string): AuditDraft {
  return {
    time: new Date().toISOString(),
    tokenId: ctx.principal.tokenId,
    role: ctx.principal.role,
    tenant: scope.tenant,
    resourceGroup: scope.resourceGroup,
    action,
    target,
    version,
    outcome,
    requestId: ctx.requestId,
  };
}

/**
 * Runs a write call; when it fails (a denial included), its failure goes into the audit log
 * before the error is returned. A call that succeeds writes its own entry with its change.
 */
export async function auditFailures<T>(store: Pick<Store, 'appendAudit'>, ctx: CallContext, action: string, scope: ScopeKey, target: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    await store.appendAudit([auditDraft(ctx, action, scope, target, 0, outcomeOf(error))]);
    throw error;
  }
}

/**
 * Walks entries in order and reports the first whose hash or link does not hold. `from`: the
 * entry before the first one walked (a signed prune cut, or where an export starts).
 */
export class ChainVerifier {
  private previous: { seq: number; hash: string };
  checked = 0;

  constructor(
    private readonly hasher: AuditHasher,
    from: { seq: number; hash: string } = { seq: 0, hash: '' },
  ) {
    this.previous = from;
  }

  check(entry: AuditRecord): string | undefined {
    this.checked++;
    if (entry.prevHash !== this.previous.hash)
      return `entry ${entry.seq} links to ${entry.prevHash.slice(0, 12) || '(none)'}…, but the entry before it (${this.previous.seq || 'none'}) hashes to ${this.previous.hash.slice(0, 12) || '(none)'}…: an entry was removed or changed`;
    const { hash, ...fields } = entry;
    if (this.hasher(fields) !== hash) return `entry ${entry.seq} does not match its hash: it was edited`;
    this.previous = { seq: entry.seq, hash };
    return undefined;
  }
}
