/**
 * The keyring rows a database starts with (keyring-check.ts, step (2)).
 *
 * Before the keyring moved into the database, lockboxd kept it in a file (--master-key-file,
 * default <data dir>/master.key): a raw 32-byte key, or a `lockbox-keyring/v1` JSON keyring of
 * several keys with a token key. At the first start of this version on such a database, that
 * file's keys and token key are sealed into the keyring table under a root key taken from the
 * same file (root-key.ts: its active key), and the file is left as it was, read-only if it was.
 * So the operator keeps exactly what they kept before — the file — and the database's tokens,
 * cursors, audit chain and data keys all keep working. The file is not written again; keys
 * added later (`lockbox key rotate`) live only in the database.
 */
import { keyedHash, randomKey } from '../../../shared/src/crypto.js';
import type { KeyringRow } from '../store/store.js';
import { rawKeyId, type FileKeyring } from './key-file.js';
import { TOKEN_KEY_ID, sealedRow } from './keyring.js';
import type { RootKey } from './root-key.js';

/** The keyring id an old keyring file had (the same derivation Keyring.id uses). */
export function legacyKeyringId(file: FileKeyring): string {
  return `kr-${keyedHash('lockbox/v1/keyring-id', file.tokenKey).slice(0, 16)}`;
}

/** An old keyring file's keys (its active key active, the others retired) and token key. */
export function legacyKeyringRows(root: RootKey): KeyringRow[] {
  const { file } = root;
  const now = new Date().toISOString();
  return [
    ...file.keys.map((entry) => sealedRow(root, { ...entry, created: entry.created || now }, entry.id === file.activeId ? 'active' : 'retired')),
    sealedRow(root, { id: TOKEN_KEY_ID, key: file.tokenKey, created: now }, 'token'),
  ];
}

/** A new keyring for an empty database: a random keyring key and a random token key. */
export function freshKeyringRows(root: RootKey): KeyringRow[] {
  const key = randomKey();
  const now = new Date().toISOString();
  return [sealedRow(root, { id: rawKeyId(key), key, created: now }, 'active'), sealedRow(root, { id: TOKEN_KEY_ID, key: randomKey(), created: now }, 'token')];
}
