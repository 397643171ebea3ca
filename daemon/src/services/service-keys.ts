/**
 * Keyring key rotation, online, on every replica:
 * 1. a new keyring key is added to the database's keyring and becomes active (keyring.ts, rotate);
 *    a notice on NATS (KEYRING_SUBJECT) tells the other replicas, which reload the keyring at
 *    once (takeUp) and wrap new data keys with it;
 * 2. wait until every commit queued before the switch is flushed: a version sealed under the old
 *    key is always queued before the switch (sealing and queueing happen in one synchronous step);
 * 3. re-wrap, in batches, every data key not wrapped by the active key: unwrap with its own
 *    keyring key, wrap with the active one, and replace it only if it is still the row's old
 *    wrapping (a concurrent rotation or write wins); repeat until none is left.
 * Payloads are never re-encrypted. Reads keep working throughout: each row names its key, and a
 * replica that meets a key id it does not hold reloads the keyring first (record-integrity.ts).
 * A replica that takes up a new active key runs (2) and (3) itself, so a version it sealed under
 * the old key just before is re-wrapped too; a daemon that stops mid-way resumes (3) at its next
 * start.
 *
 * Root key rotation (rotateRoot): every keyring row is re-sealed under the new root key in one
 * transaction (keyring.ts, rotateRoot). Data keys are not touched.
 *
 * Both are audited (`key.rotate` with the new key id, `key.rotate-root` with the new root key id;
 * ids only, never key material), refusals included.
 */
import { rewrapDataKey } from '../../../shared/src/crypto.js';
import { ConflictError, InvalidArgumentError, LockboxError } from '../../../shared/src/errors.js';
import { authorizeOperator, type Principal } from '../security/auth.js';
import { auditDraft, auditFailures } from '../security/audit.js';
import type { CallContext } from './context.js';
import { parseKeyText } from '../security/key-file.js';
import type { Keyring } from '../security/keyring.js';
import { rootKeyFrom } from '../security/root-key.js';
import type { Store } from '../store/store.js';

export interface KeysServiceOptions {
  batchSize?: number;
  /** Tells the other replicas a key was added (NATS); false when no notice could be sent. */
  announce?: (keyId: string) => void;
  /** A key another replica added was taken up; `rewrapped` data keys this replica then re-wrapped. */
  onTakenUp?: (keyId: string, rewrapped: number, error?: Error) => void;
  /** The `ok` audit entry of a rotation that committed could not be written (logged; the call still succeeds). */
  onAuditFailed?: (action: string, target: string, error: Error) => void;
}

export class KeysService {
  private rotating: Promise<unknown> | undefined;
  private takingUp: Promise<void> | undefined;
  private stopping = false;
  private readonly batchSize: number;

  constructor(
    private readonly store: Store,
    private readonly keyring: Keyring,
    private readonly options: KeysServiceOptions = {},
  ) {
    this.batchSize = options.batchSize ?? 256;
    keyring.onNewActive = () => void this.finishTakeUp();
  }

  async rotate(ctx: CallContext): Promise<{ active_key_id: string; previous_key_id: string; rewrapped: number }> {
    return this.audited(ctx, 'key.rotate', (r) => r.active_key_id, () => this.rotateAudited(ctx));
  }

  private async rotateAudited(ctx: CallContext): Promise<{ active_key_id: string; previous_key_id: string; rewrapped: number }> {
    authorizeOperator(ctx.principal);
    return this.exclusive(async () => {
      await this.keyring.reload(); // the previous key is the database's active one, whichever replica added it
      const previous = this.keyring.active.id;
      const entry = await this.keyring.rotate(); // (1)
      this.options.announce?.(entry.id);
      await this.store.commit([]); // (2)
      const rewrapped = await this.rewrapAll(); // (3)
      return { active_key_id: entry.id, previous_key_id: previous, rewrapped };
    });
  }

  /**
   * Re-seals the keyring under the root key in `newRootKey` (32 bytes, base64 or hex). The caller
   * must then restart every replica with it (README: Rotating the root key).
   */
  async rotateRoot(ctx: CallContext, newRootKey: string): Promise<{ root_key_id: string; previous_root_key_id: string; resealed: number }> {
    return this.audited(ctx, 'key.rotate-root', (r) => r.root_key_id, () => this.rotateRootAudited(ctx, newRootKey));
  }

  private async rotateRootAudited(ctx: CallContext, newRootKey: string): Promise<{ root_key_id: string; previous_root_key_id: string; resealed: number }> {
    authorizeOperator(ctx.principal, 'rotate the root key');
    if (!newRootKey) throw new InvalidArgumentError('new_root_key', 'give the new root key (32 bytes, base64 or hex)');
    let file;
    try {
      file = parseKeyText(newRootKey, 'the new root key');
    } catch {
      throw new InvalidArgumentError('new_root_key', 'must be 32 bytes in base64 or hex');
    }
    if (!file.raw) throw new InvalidArgumentError('new_root_key', 'must be 32 bytes in base64 or hex');
    const next = rootKeyFrom(file, 'the new root key');
    return this.exclusive(async () => {
      const { previous, resealed } = await this.keyring.rotateRoot(next);
      return { root_key_id: next.id, previous_root_key_id: previous, resealed };
    });
  }

  /**
   * An entry for a rotation that ran (its new key id as the target) or one that was refused. The
   * `ok` entry is written after the rotation committed, so its failure is reported through
   * onAuditFailed and the call still succeeds: an error here would tell the operator the rotation
   * failed while the keyring is already under the new key, and one who then drops the new root
   * key is locked out.
   */
  private async audited<T>(ctx: CallContext, action: string, target: (result: T) => string, run: () => Promise<T>): Promise<T> {
    const scope = { tenant: ctx.principal.tenant, resourceGroup: '' };
    const result = await auditFailures(this.store, ctx, action, scope, '', run);
    try {
      await this.store.appendAudit([auditDraft(ctx, action, scope, target(result), 0, 'ok')]);
    } catch (error) {
      this.options.onAuditFailed?.(action, target(result), error as Error);
    }
    return result;
  }

  /** One rotation (of either kind) at a time on this replica. */
  private async exclusive<T>(run: () => Promise<T>): Promise<T> {
    if (this.rotating) throw new ConflictError('a key rotation is already running; try again when it ends', 'ROTATION_IN_PROGRESS');
    const running = run();
    this.rotating = running;
    try {
      return await running;
    } finally {
      this.rotating = undefined;
    }
  }

  /**
   * Reloads the keyring (a notice, the periodic check). When another replica's key became active
   * (here or on any other reload: a key id met on a read), finishTakeUp runs.
   */
  async takeUp(): Promise<boolean> {
    return this.keyring.reload();
  }

  /**
   * At stop: ends a take-up re-wrap after its current batch and resolves once none runs, so the
   * store is not closed under it (what is left is finished at the next start).
   */
  async settle(): Promise<void> {
    this.stopping = true;
    while (this.takingUp) await this.takingUp;
  }

  /** Steps (2) and (3) after taking up another replica's key; reported through `onTakenUp`. */
  private finishTakeUp(): Promise<void> {
    if (this.rotating) return Promise.resolve(); // a rotation here re-wraps anyway
    const run = (this.takingUp ?? Promise.resolve()).then(() => this.takeUpRewrap());
    this.takingUp = run;
    void run.finally(() => {
      if (this.takingUp === run) this.takingUp = undefined;
    });
    return run;
  }

  private async takeUpRewrap(): Promise<void> {
    try {
      await this.store.commit([]); // (2)
      this.options.onTakenUp?.(this.keyring.active.id, await this.rewrapAll()); // (3)
    } catch (error) {
      this.options.onTakenUp?.(this.keyring.active.id, 0, error as Error);
    }
  }

  /** Step (3); also run at start-up to finish an interrupted rotation. */
  async rewrapAll(): Promise<number> {
    let total = 0;
    while (!this.stopping) {
      const active = this.keyring.active;
      const rows = await this.store.listWrappedKeys(active.id, this.batchSize);
      if (rows.length === 0) return total;
      await this.keyring.learn(rows.map((row) => row.masterKeyId));
      const wrapped = rows.map((row) => {
        const from = this.keyring.get(row.masterKeyId);
        if (!from) throw new LockboxError('INTERNAL', 'DECRYPTION_FAILED', this.keyring.missingReason(row.masterKeyId));
        return rewrapDataKey(row.wrappedKey, from, active, { ...row });
      });
      total += await this.store.replaceWrappedKeys(rows, active.id, wrapped);
    }
    return total; // stopping: the next start finishes it
  }

  async list(principal: Principal) {
    authorizeOperator(principal);
    await this.keyring.reload();
    const counts = await this.store.countByMasterKey();
    const active = this.keyring.active.id;
    return {
      keys: this.keyring.list().map((k) => ({ id: k.id, create_time: k.created, active: k.id === active, data_keys: counts.get(k.id) ?? 0 })),
      root_key_id: this.keyring.rootKeyId,
    };
  }
}
