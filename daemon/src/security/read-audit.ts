/**
 * Value reads enter the audit log through here. Reads are collected and written together, and
 * identical reads in one write (same token, role, scope, secret, version and outcome) share one
 * entry whose `count` says how many there were (its request id is the first one's):
 * - durable (`--audit-reads durable`): a read waits until the write that holds it is on disk.
 *   The write starts on the next turn of the event loop, so reads that arrive together share it.
 * - async: a read returns at once; what was collected is written every `intervalMs` (a crash can
 *   lose that window).
 * Coalescing keeps a busy read path from paying one hashed, indexed row per call.
 */
import type { AuditDraft, Store } from '../store/store.js';

function coalesce(entries: AuditDraft[]): AuditDraft[] {
  const byKey = new Map<string, AuditDraft>();
  for (const entry of entries) {
    const key = JSON.stringify([entry.tokenId, entry.role, entry.tenant, entry.resourceGroup, entry.action, entry.target, entry.version, entry.outcome]);
    const first = byKey.get(key);
    if (first) first.count = (first.count ?? 1) + (entry.count ?? 1);
    else byKey.set(key, { ...entry });
  }
  return [...byKey.values()];
}

export class ReadAuditLog {
  private pending: AuditDraft[] = [];
  private waiters: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  private timer: NodeJS.Timeout | undefined;
  private scheduled = false;

  constructor(
    private readonly store: Pick<Store, 'appendAudit'>,
    private readonly durable: boolean,
    private readonly onBackgroundError: (error: Error) => void,
    private readonly intervalMs = 100,
  ) {}

  /** Durable: resolves once the read is on disk. Async: resolves at once. */
  record(entry: AuditDraft): Promise<void> {
    this.pending.push(entry);
    if (!this.durable) {
      this.timer ??= setTimeout(() => void this.flush().catch(this.onBackgroundError), this.intervalMs);
      return Promise.resolve();
    }
    const written = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        void this.flush().catch(() => {}); // each waiter got the error
      });
    }
    return written;
  }

  /** Writes what was collected; the daemon calls it before it stops. */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const entries = coalesce(this.pending);
    const waiters = this.waiters;
    this.pending = [];
    this.waiters = [];
    if (entries.length === 0) return;
    try {
      await this.store.appendAudit(entries);
    } catch (error) {
      for (const waiter of waiters) waiter.reject(error);
      throw error;
    }
    for (const waiter of waiters) waiter.resolve();
  }
}
