/**
 * The master keyring, kept in one file (LOCKBOX_MASTER_KEY_FILE, default <data dir>/master.key).
 *
 * The file is either
 * - a keyring: JSON `{"format": "lockbox-keyring/v1", "active": id, "tokenKey": b64, "keys": [{id, key, created}]}`, or
 * - a single raw key: 32 bytes as base64 or hex on one line (what an operator usually provides).
 *   Its id is derived from the key; the token-hash key is derived from it with a KDF.
 * Rotation rewrites the file as a keyring that keeps every earlier key (a raw-key file becomes a
 * keyring holding the raw key and the new one), so data keys wrapped by old keys still open while
 * they are being re-wrapped.
 */
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { KEY_BYTES, deriveKey, keyedHash, randomKey, type MasterKey } from '../../../shared/src/crypto.js';
import { FailedPreconditionError } from '../../../shared/src/errors.js';
import { createFileExclusively, writeFileDurably } from '../files.js';

const FORMAT = 'lockbox-keyring/v1';

interface KeyringFile {
  format: string;
  active: string;
  tokenKey: string;
  keys: Array<{ id: string; key: string; created: string }>;
}

export interface MasterKeyEntry extends MasterKey {
  created: string;
}

export class KeyringError extends Error {
  override name = 'KeyringError';
}

function decodeRawKey(text: string): Uint8Array | undefined {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, 'hex');
  if (/^[A-Za-z0-9+/_-]+=*$/.test(trimmed)) {
    const bytes = Buffer.from(trimmed, 'base64');
    if (bytes.length === KEY_BYTES) return bytes;
  }
  return undefined;
}

/**
 * A key file must be readable by its owner alone (0600, 0400), or also by its group (0640, 0440)
 * when that group is one of this process's own: Kubernetes mounts a Secret with the pod's fsGroup
 * as the file's group, which turns 0400 into 0440 (kubernetes/kubernetes#57923). Group write and
 * any bit for others are refused.
 */
function checkKeyFileMode(path: string): void {
  const stat = statSync(path);
  const mode = stat.mode & 0o777;
  const ownGroups = new Set([process.getgid?.(), ...(process.getgroups?.() ?? [])]);
  const groupReadOnly = (mode & 0o070) === 0o040 && ownGroups.has(stat.gid);
  if ((mode & 0o007) !== 0 || ((mode & 0o070) !== 0 && !groupReadOnly))
    throw new KeyringError(
      `master key file ${path} is readable by others (mode ${mode.toString(8)}, group ${stat.gid}); chmod 600 it (0440 is accepted only when the file's group is this process's own)`,
    );
}

function newKeyId(key: Uint8Array): string {
  return `mk-${keyedHash(key, new Uint8Array(32)).slice(0, 12)}`;
}

export class Keyring {
  private keys: MasterKeyEntry[];
  private activeId: string;
  readonly tokenKey: Uint8Array;

  private constructor(
    readonly path: string,
    keys: MasterKeyEntry[],
    activeId: string,
    tokenKey: Uint8Array,
  ) {
    this.keys = keys;
    this.activeId = activeId;
    this.tokenKey = tokenKey;
  }

  /**
   * Writes a fresh keyring to `path` (mode 0600, O_EXCL). Returns false when a file is already
   * there (another process won the race). Only for an empty database: see keyring-check.ts.
   */
  static generate(path: string): boolean {
    const key = randomKey();
    const file: KeyringFile = {
      format: FORMAT,
      active: newKeyId(key),
      tokenKey: Buffer.from(randomKey()).toString('base64'),
      keys: [{ id: newKeyId(key), key: Buffer.from(key).toString('base64'), created: new Date().toISOString() }],
    };
    return createFileExclusively(path, JSON.stringify(file, null, 2) + '\n', 0o600);
  }

  /** Opens the keyring at `path`; a missing file is a KeyringError naming it. */
  static open(path: string): Keyring {
    if (!existsSync(path)) throw new KeyringError(`master key file ${path} does not exist`);
    checkKeyFileMode(path);
    const text = readFileSync(path, 'utf8');
    const raw = decodeRawKey(text);
    if (raw) {
      const id = newKeyId(raw);
      return new Keyring(path, [{ id, key: raw, created: '' }], id, deriveKey(raw, 1, 'lbxtoken'));
    }
    let file: KeyringFile;
    try {
      file = JSON.parse(text) as KeyringFile;
    } catch {
      throw new KeyringError(`master key file ${path} is neither a 32-byte key (base64 or hex) nor a lockbox keyring`);
    }
    if (file.format !== FORMAT || !Array.isArray(file.keys) || typeof file.active !== 'string')
      throw new KeyringError(`master key file ${path} is not a ${FORMAT} keyring`);
    const keys = file.keys.map((entry) => {
      const key = Buffer.from(entry.key, 'base64');
      if (key.length !== KEY_BYTES) throw new KeyringError(`master key ${entry.id} in ${path} is not ${KEY_BYTES} bytes`);
      return { id: entry.id, key, created: entry.created };
    });
    if (!keys.some((k) => k.id === file.active)) throw new KeyringError(`master key file ${path}: active key ${file.active} is not in the keyring`);
    const tokenKey = Buffer.from(file.tokenKey, 'base64');
    if (tokenKey.length !== KEY_BYTES) throw new KeyringError(`master key file ${path}: tokenKey is not ${KEY_BYTES} bytes`);
    return new Keyring(path, keys, file.active, tokenKey);
  }

  /**
   * Re-reads the file and takes keys this process does not know yet, with the file's active key:
   * how a replica sharing the keyring file with one that rotated learns the new key. Returns
   * whether anything changed. A file whose token key differs is another keyring and is refused.
   */
  refresh(): boolean {
    const fresh = Keyring.open(this.path);
    if (!Buffer.from(fresh.tokenKey).equals(Buffer.from(this.tokenKey))) throw new KeyringError(`master key file ${this.path} now holds a different keyring; restart to use it`);
    const added = fresh.keys.filter((k) => !this.get(k.id));
    if (added.length === 0 && fresh.activeId === this.activeId) return false;
    this.keys = [...this.keys, ...added];
    this.activeId = fresh.activeId;
    return true;
  }

  /**
   * Names this keyring across rotations (derived from its token key, which rotation keeps), so
   * the database can record which keyring sealed it without holding anything secret.
   */
  get id(): string {
    return `kr-${keyedHash('lockbox/v1/keyring-id', this.tokenKey).slice(0, 16)}`;
  }

  get active(): MasterKeyEntry {
    return this.keys.find((k) => k.id === this.activeId)!;
  }

  get(id: string): MasterKeyEntry | undefined {
    return this.keys.find((k) => k.id === id);
  }

  list(): MasterKeyEntry[] {
    return [...this.keys];
  }

  /**
   * Adds a fresh master key and makes it active: (1) check the file can be rewritten, (2) write
   * the new keyring durably, (3) only then switch in memory. A crash between (2) and (3) leaves
   * the new key active on restart, with old keys kept, so nothing becomes unreadable.
   */
  rotate(): MasterKeyEntry {
    try {
      // A file without its owner-write bit is read-only by intent, even for root.
      if ((statSync(this.path).mode & 0o200) === 0) throw new Error('read-only');
      accessSync(this.path, constants.W_OK); // (1)
    } catch {
      throw new FailedPreconditionError(`the master key file is not writable, so a key cannot be added; make it writable or rotate offline`, 'MASTER_KEY_READ_ONLY');
    }
    const key = randomKey();
    const entry: MasterKeyEntry = { id: newKeyId(key), key, created: new Date().toISOString() };
    const keys = [...this.keys, entry];
    const file: KeyringFile = {
      format: FORMAT,
      active: entry.id,
      tokenKey: Buffer.from(this.tokenKey).toString('base64'),
      keys: keys.map((k) => ({ id: k.id, key: Buffer.from(k.key).toString('base64'), created: k.created })),
    };
    writeFileDurably(this.path, JSON.stringify(file, null, 2) + '\n', 0o600); // (2)
    this.keys = keys; // (3)
    this.activeId = entry.id;
    return entry;
  }
}
