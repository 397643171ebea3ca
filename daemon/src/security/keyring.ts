/**
 * The keyring, kept in the database (the `keyring` table), as Vault keeps its barrier keyring:
 * - keyring keys ("master keys", ids `mk-…`) wrap the data keys; one is active and wraps new
 *   data keys, retired ones still open the data keys they wrap until a rotation re-wraps them;
 * - the token key (state `token`) keys token hashes, list cursors, idempotency fingerprints and
 *   the audit chain; it never changes, and names the keyring (`kr-…`, keyring-check.ts);
 * - each is sealed under the root key (root-key.ts), the one secret kept outside the database.
 * Every replica reads the same table, so a key one replica adds is there for all; a replica
 * learns of it (reload) when it meets a data key wrapped by a key id it does not know, when a
 * keyring notice arrives over NATS, and at its periodic check (daemon.ts, keyring-watch.ts).
 */
import { randomKey } from '../../../shared/src/crypto.js';
import { FailedPreconditionError } from '../../../shared/src/errors.js';
import { keyedHash } from '../../../shared/src/crypto.js';
import { rootKeyMismatch, type KeyringRow, type KeyringStore } from '../store/store.js';
import { KeyringError, rawKeyId, type MasterKeyEntry } from './key-file.js';
import { openUnderRoot, sealUnderRoot, type RootKey } from './root-key.js';

export { KeyringError, type MasterKeyEntry } from './key-file.js';

/** The row id of the token key. */
export const TOKEN_KEY_ID = 'token';

/** A keyring key as a row sealed under `root`. */
export function sealedRow(root: RootKey, entry: MasterKeyEntry, state: KeyringRow['state']): KeyringRow {
  return { id: entry.id, sealedKey: sealUnderRoot(root, entry.id, entry.key), rootKeyId: root.id, createTime: entry.created || new Date().toISOString(), state };
}

export class Keyring {
  private keys: MasterKeyEntry[] = [];
  private activeId = '';
  private reloading: Promise<boolean> | undefined;
  /**
   * Called when a reload found another replica's key active (service-keys.ts runs its steps (2)
   * and (3) then, for what this replica sealed under the old key meanwhile).
   */
  onNewActive: (id: string) => void = () => {};
  /**
   * Re-reads the root key source when it can change under a running process (a root key file: a
   * mounted Secret is updated in place); unset for LOCKBOX_ROOT_KEY. See adoptRereadRoot.
   */
  rereadRoot: (() => RootKey) | undefined;
  /** Keys this replica could not open (sealed under another root key): why a data key is missing. */
  private unopened = new Map<string, string>();

  private constructor(
    private readonly store: KeyringStore,
    private root: RootKey,
    readonly tokenKey: Uint8Array,
  ) {}

  /**
   * Opens the keyring the database holds under `root`. A row sealed under another root key is a
   * KeyringError naming the root key the database needs (keyring-check.ts, step (5)).
   */
  static async load(store: KeyringStore, root: RootKey): Promise<Keyring> {
    const rows = await store.list();
    const token = rows.find((r) => r.id === TOKEN_KEY_ID);
    if (!token) throw new KeyringError('the database holds no keyring token key');
    const foreign = rows.find((r) => r.rootKeyId !== root.id);
    if (foreign)
      throw new KeyringError(
        `${root.source} holds root key ${root.id}, but the database's keyring is sealed under root key ${foreign.rootKeyId}: give lockboxd that root key (after \`lockbox key rotate-root\`, the new one)`,
      );
    let tokenKey: Uint8Array;
    try {
      tokenKey = openUnderRoot(root, TOKEN_KEY_ID, token.sealedKey);
    } catch {
      throw new KeyringError(`${root.source} (root key ${root.id}) does not open the database's keyring: its sealed keys were altered, or the root key is not the one that sealed them`);
    }
    const keyring = new Keyring(store, root, tokenKey);
    keyring.take(rows);
    if (!keyring.activeId) throw new KeyringError('the database\'s keyring has no active key');
    return keyring;
  }

  /** Takes the rows' keys this process does not hold yet, and the active one. */
  private take(rows: KeyringRow[]): boolean {
    let changed = false;
    for (const row of rows) {
      if (row.id === TOKEN_KEY_ID || this.get(row.id)) continue;
      try {
        this.keys.push({ id: row.id, key: openUnderRoot(this.root, row.id, row.sealedKey), created: row.createTime });
        this.unopened.delete(row.id);
        changed = true;
      } catch {
        this.unopened.set(row.id, row.rootKeyId);
      }
    }
    const active = rows.find((r) => r.state === 'active');
    if (active && this.get(active.id) && active.id !== this.activeId) {
      this.activeId = active.id;
      changed = true;
    }
    return changed;
  }

  /**
   * Re-reads the keyring from the database; returns whether a key was added or the active key
   * changed. Calls made while one read runs share it.
   */
  reload(): Promise<boolean> {
    this.reloading ??= this.store
      .list()
      .then((rows) => {
        this.adoptRereadRoot(rows);
        const before = this.activeId;
        const changed = this.take(rows);
        if (this.activeId !== before) this.onNewActive(this.activeId);
        return changed;
      })
      .finally(() => (this.reloading = undefined));
    return this.reloading;
  }

  /**
   * After a rotate-root on another replica, the keyring rows are sealed under a root key this one
   * does not hold, and a key added since (a `key rotate` there) cannot be opened here. Rather than
   * failing every read of a data key under it until a restart, the root key source is re-read
   * (the operator installs the new root key there, README: Rotating the root key) and taken when
   * its id is the one the rows name; anything else (not updated yet, unreadable, half written)
   * keeps the root key held, and missingReason says what is needed.
   */
  private adoptRereadRoot(rows: KeyringRow[]): void {
    const wanted = rows.find((r) => r.rootKeyId !== this.root.id)?.rootKeyId;
    if (!wanted || !this.rereadRoot) return;
    let reread: RootKey;
    try {
      reread = this.rereadRoot();
    } catch {
      return;
    }
    if (reread.id === wanted) this.root = reread;
  }

  /** Reloads when any of `ids` is not held: a data key wrapped by a key another replica added. */
  async learn(ids: Iterable<string>): Promise<void> {
    for (const id of ids) if (!this.get(id)) return void (await this.reload());
  }

  /** Why `id` is not held, for the DECRYPTION_FAILED message. */
  missingReason(id: string): string {
    const under = this.unopened.get(id);
    return under
      ? `keyring key ${id} is sealed under root key ${under}, and this replica holds ${this.root.id}: install that root key in its root key file (taken at the next reload) or restart it with it`
      : `keyring key ${id} is not in the keyring`;
  }

  /**
   * Names this keyring across rotations (derived from its token key, which never changes), so
   * the database can record which keyring sealed it without holding anything secret.
   */
  get id(): string {
    return `kr-${keyedHash('lockbox/v1/keyring-id', this.tokenKey).slice(0, 16)}`;
  }

  get rootKeyId(): string {
    return this.root.id;
  }

  get active(): MasterKeyEntry {
    return this.get(this.activeId)!;
  }

  get(id: string): MasterKeyEntry | undefined {
    return this.keys.find((k) => k.id === id);
  }

  list(): MasterKeyEntry[] {
    return [...this.keys];
  }

  /** Refuses to write keyring rows under a root key the database no longer uses. */
  private async requireCurrentRoot(rows?: KeyringRow[]): Promise<KeyringRow[]> {
    const current = rows ?? (await this.store.list());
    const other = current.find((r) => r.rootKeyId !== this.root.id);
    if (other) throw rootKeyMismatch(other.rootKeyId, this.root.id);
    return current;
  }

  /**
   * Adds a fresh keyring key and makes it active: (1) seal it under the root key, (2) retire the
   * active key and insert it in one transaction, (3) only then switch in memory. The database
   * never names an active key it does not hold, and nothing is written to a file, so a read-only
   * root key is fine.
   */
  async rotate(): Promise<MasterKeyEntry> {
    await this.requireCurrentRoot();
    const key = randomKey();
    const entry: MasterKeyEntry = { id: rawKeyId(key), key, created: new Date().toISOString() };
    await this.store.add(sealedRow(this.root, entry, 'active')); // (1), (2)
    this.keys.push(entry); // (3)
    this.activeId = entry.id;
    return entry;
  }

  /**
   * Re-seals every keyring row under `next` in one transaction, then uses `next` for what it
   * seals from now on. Other replicas keep the keys they hold; they need `next` at their next start.
   */
  async rotateRoot(next: RootKey): Promise<{ previous: string; resealed: number }> {
    if (next.id === this.root.id) throw new FailedPreconditionError(`the new root key is the current one (${next.id}); give a new key`, 'ROOT_KEY_MISMATCH');
    const rows = await this.requireCurrentRoot();
    const sealed = new Map(rows.map((r) => [r.id, sealUnderRoot(next, r.id, openUnderRoot(this.root, r.id, r.sealedKey))]));
    const resealed = await this.store.reseal(this.root.id, next.id, sealed);
    const previous = this.root.id;
    this.root = next;
    return { previous, resealed };
  }
}
