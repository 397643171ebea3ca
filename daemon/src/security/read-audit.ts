/**
 * Value reads enter the audit log through here. Reads are collected and written together, and
 * identical reads in one write (same token, role, scope, secret, version and outcome) share one
 * entry whose `count` says how many there were (its request id is the first one's):
 * - durable (`--audit-reads durable`): a read waits until the write that holds it is on disk.
 *   The write starts on the next turn of the event loop, so reads that arrive together share it.
 * - async: a read returns at once; what was collected is written every `intervalMs` (a crash can
 *   lose that window).
 * Coalescing keeps a busy read path from paying one hashed, indexed row per call. Reads are
 * merged as they arrive (a map lookup), and all the reads of one write wait on one promise, so a
 * push of one version to 10,000 agents costs a counter increment per agent, not an entry and a
 * promise each.
 */
import type { AuditDraft, Store } from '../store/store.js';

/** What makes two reads the same entry. */
export function readKey(entry: AuditDraft): string {
  return JSON.stringify([entry.tokenId, entry.role, entry.tenant, entry.resourceGroup, entry.action, entry.target, entry.version, entry.outcome]);
}

interface Batch {
  entries: Map<string, AuditDraft>;
  written: Promise<void> | undefined;
  settle?: { resolve: () => void; reject: (error: unknown) => void };
}

export class ReadAuditLog {
  private batch: Batch = { entries: new Map(), written: undefined };
  private timer: NodeJS.Timeout | undefined;
  private scheduled = false;

  constructor(
    private readonly store: Pick<Store, 'appendAudit'>,
    private readonly durable: boolean,
    private readonly onBackgroundError: (error: Error) => void,
    private readonly intervalMs = 100,
  ) {}

  /**
   * Durable: resolves once the read is on disk. Async: resolves at once. `key` (readKey of the
   * entry) may be given by a caller that records the same read many times.
   */
  record(entry: AuditDraft, key = readKey(entry)): Promise<void> {
    const batch = this.batch;
    const same = batch.entries.get(key);
    if (same) same.count = (same.count ?? 1) + (entry.count ?? 1);
    else batch.entries.set(key, { ...entry });
    if (!this.durable) {
      this.timer ??= setTimeout(() => void this.flush().catch(this.onBackgroundError), this.intervalMs);
      return Promise.resolve();
    }
    batch.written ??= new Promise<void>((resolve, reject) => (batch.settle = { resolve, reject }));
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        void this.flush().catch(() => {}); // the waiters got the error
      });
    }
    return batch.written;
  }

  /** Writes what was collected; the daemon calls it before it stops. */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.batch;
    this.batch = { entries: new Map(), written: undefined };
    if (batch.entries.size === 0) return batch.settle?.resolve();
    try {
      await this.store.appendAudit([...batch.entries.values()]);
    } catch (error) {
      batch.settle?.reject(error);
      throw error;
    }
    batch.settle?.resolve();
  }
}
