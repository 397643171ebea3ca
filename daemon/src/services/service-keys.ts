/**
 * Master key rotation, online:
 * 1. the keyring file gains a new key, which becomes active (keyring.ts, rotate);
 * 2. wait until every commit queued before the switch is flushed: a version sealed under the old
 *    key is always queued before the switch (sealing and queueing happen in one synchronous step);
 * 3. re-wrap, in batches, every data key not wrapped by the active key: unwrap with its own
 *    master key, wrap with the active one, and replace it only if it is still the row's old
 *    wrapping (a concurrent rotation or write wins); repeat until none is left.
 * Payloads are never re-encrypted. Reads keep working throughout: each row names its master key.
 * A daemon that stops mid-way resumes (3) on its next start.
 */
import { rewrapDataKey } from '../../../shared/src/crypto.js';
import { ConflictError, LockboxError } from '../../../shared/src/errors.js';
import { authorizeOperator, type Principal } from '../security/auth.js';
import type { Keyring } from '../security/keyring.js';
import type { Store } from '../store/store.js';

export class KeysService {
  private rotating: Promise<unknown> | undefined;

  constructor(
    private readonly store: Store,
    private readonly keyring: Keyring,
    private readonly batchSize = 256,
  ) {}

  async rotate(principal: Principal): Promise<{ active_key_id: string; previous_key_id: string; rewrapped: number }> {
    authorizeOperator(principal);
    if (this.rotating) throw new ConflictError('a master key rotation is already running; try again when it ends', 'ROTATION_IN_PROGRESS');
    const previous = this.keyring.active.id;
    const run = (async () => {
      const entry = this.keyring.rotate(); // (1)
      await this.store.commit([]); // (2)
      const rewrapped = await this.rewrapAll(); // (3)
      return { active_key_id: entry.id, previous_key_id: previous, rewrapped };
    })();
    this.rotating = run;
    try {
      return await run;
    } finally {
      this.rotating = undefined;
    }
  }

  /** Step (3); also run at start-up to finish an interrupted rotation. */
  async rewrapAll(): Promise<number> {
    this.keyring.refresh(); // replicas sharing the keyring file agree on the active key first
    let total = 0;
    for (;;) {
      const active = this.keyring.active;
      const rows = await this.store.listWrappedKeys(active.id, this.batchSize);
      if (rows.length === 0) return total;
      const wrapped = rows.map((row) => {
        const from = this.keyring.get(row.masterKeyId) ?? (this.keyring.refresh() ? this.keyring.get(row.masterKeyId) : undefined);
        if (!from) throw new LockboxError('INTERNAL', 'DECRYPTION_FAILED', `master key ${row.masterKeyId} is missing from the keyring`);
        return rewrapDataKey(row.wrappedKey, from, active, { ...row });
      });
      total += await this.store.replaceWrappedKeys(rows, active.id, wrapped);
    }
  }

  async list(principal: Principal) {
    authorizeOperator(principal);
    const counts = await this.store.countByMasterKey();
    const active = this.keyring.active.id;
    return {
      keys: this.keyring.list().map((k) => ({ id: k.id, create_time: k.created, active: k.id === active, data_keys: counts.get(k.id) ?? 0 })),
    };
  }
}
