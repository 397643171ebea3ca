/**
 * Reading key files: the root key file (--root-key-file, alias --master-key-file) and the
 * keyring files of lockboxd before the keyring moved into the database (keyring-migration.ts).
 *
 * A key file is either
 * - a single raw key: 32 bytes as base64 or hex on one line (what an operator usually provides,
 *   and what lockboxd writes when it generates a root key); or
 * - an old keyring: JSON `{"format": "lockbox-keyring/v1", "active": id, "tokenKey": b64,
 *   "keys": [{id, key, created}]}`, which lockboxd no longer writes but still reads, so the file
 *   an operator kept stays the one thing to keep (root-key.ts: its active key is the root key).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { KEY_BYTES, deriveKey, keyedHash, type MasterKey } from '../../../shared/src/crypto.js';

const FORMAT = 'lockbox-keyring/v1';

export interface MasterKeyEntry extends MasterKey {
  created: string;
}

/** What a key file holds: its keys, which one is active, and the token-hash key. */
export interface FileKeyring {
  keys: MasterKeyEntry[];
  activeId: string;
  tokenKey: Uint8Array;
  /** Whether the file was a single raw key (its token key is derived from it). */
  raw: boolean;
}

export class KeyringError extends Error {
  override name = 'KeyringError';
}

/** 32 bytes from base64 (standard or URL-safe) or hex text, or undefined. */
export function decodeRawKey(text: string): Uint8Array | undefined {
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
      `root key file ${path} is readable by others (mode ${mode.toString(8)}, group ${stat.gid}); chmod 600 it (0440 is accepted only when the file's group is this process's own)`,
    );
}

/** The id lockboxd gives a raw key (the old keyring file named its keys so too). */
export function rawKeyId(key: Uint8Array): string {
  return `mk-${keyedHash(key, new Uint8Array(32)).slice(0, 12)}`;
}

/** A raw key as a one-key keyring; its token key is derived, as lockboxd always did. */
export function rawKeyring(key: Uint8Array): FileKeyring {
  const id = rawKeyId(key);
  return { keys: [{ id, key, created: '' }], activeId: id, tokenKey: deriveKey(key, 1, 'lbxtoken'), raw: true };
}

/** Parses key-file text; `where` names its source in errors. */
export function parseKeyText(text: string, where: string): FileKeyring {
  const raw = decodeRawKey(text);
  if (raw) return rawKeyring(raw);
  let file: { format?: string; active?: string; tokenKey?: string; keys?: Array<{ id: string; key: string; created: string }> };
  try {
    file = JSON.parse(text);
  } catch {
    throw new KeyringError(`${where} is neither a 32-byte key (base64 or hex) nor a lockbox keyring`);
  }
  if (file.format !== FORMAT || !Array.isArray(file.keys) || typeof file.active !== 'string') throw new KeyringError(`${where} is not a ${FORMAT} keyring`);
  const keys = file.keys.map((entry) => {
    const key = Buffer.from(entry.key, 'base64');
    if (key.length !== KEY_BYTES) throw new KeyringError(`master key ${entry.id} in ${where} is not ${KEY_BYTES} bytes`);
    return { id: entry.id, key, created: entry.created };
  });
  if (!keys.some((k) => k.id === file.active)) throw new KeyringError(`${where}: active key ${file.active} is not in the keyring`);
  const tokenKey = Buffer.from(file.tokenKey ?? '', 'base64');
  if (tokenKey.length !== KEY_BYTES) throw new KeyringError(`${where}: tokenKey is not ${KEY_BYTES} bytes`);
  return { keys, activeId: file.active, tokenKey, raw: false };
}

/** Reads the key file at `path` (a missing file or a loose mode is a KeyringError naming it). */
export function readKeyFile(path: string): FileKeyring {
  if (!existsSync(path)) throw new KeyringError(`root key file ${path} does not exist`);
  checkKeyFileMode(path);
  return parseKeyText(readFileSync(path, 'utf8'), `root key file ${path}`);
}
