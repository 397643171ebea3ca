/**
 * The root key: the one secret an operator keeps outside the database. It seals the keyring
 * (keyring.ts), whose keys wrap the data keys; nothing else.
 *
 * It comes from LOCKBOX_ROOT_KEY (32 bytes, base64 or hex) or from the root key file
 * (--root-key-file, alias --master-key-file; read-only is fine). A file may also be a keyring file
 * of lockboxd before the keyring moved into the database: its active key is then the root key,
 * so the file the operator kept stays the one thing to keep (keyring-migration.ts).
 *
 * Keyring keys are sealed with XChaCha20-Poly1305 under a key derived from the root key (never
 * the root key itself, which may also be a migrated keyring key), with associated data that binds
 * the keyring key's id: a sealed key moved to another row does not open.
 */
import sodium from 'libsodium-wrappers';
import { deriveKey, keyedHash, randomBytes, randomKey } from '../../../shared/src/crypto.js';
import { DecryptionError } from '../../../shared/src/errors.js';
import { createFileExclusively } from '../files.js';
import { KeyringError, parseKeyText, readKeyFile, type FileKeyring } from './key-file.js';

const NONCE_BYTES = 24;

export interface RootKey {
  /** `rk-` and 16 hex digits; the database records it beside each sealed keyring key. */
  id: string;
  /** Where it came from, for messages: `root key file /path` or `LOCKBOX_ROOT_KEY`. */
  source: string;
  /** What the source holds, read as a key file (the keys of an old keyring file migrate). */
  file: FileKeyring;
  /** The sealing key derived from the root key. */
  sealingKey: Uint8Array;
}

export function rootKeyFrom(file: FileKeyring, source: string): RootKey {
  const material = file.keys.find((k) => k.id === file.activeId)!.key;
  return {
    id: `rk-${keyedHash('lockbox/v1/root-key-id', material).slice(0, 16)}`,
    source,
    file,
    sealingKey: deriveKey(material, 1, 'lbxroot_'),
  };
}

/** Reads the root key from the environment's value (when given) or the file at `path`. */
export function loadRootKey(options: { path: string; envValue?: string }): RootKey {
  if (options.envValue) {
    const file = parseKeyText(options.envValue, 'LOCKBOX_ROOT_KEY');
    if (!file.raw) throw new KeyringError('LOCKBOX_ROOT_KEY must be 32 bytes in base64 or hex');
    return rootKeyFrom(file, 'LOCKBOX_ROOT_KEY');
  }
  return rootKeyFrom(readKeyFile(options.path), `root key file ${options.path}`);
}

/** Writes a fresh root key to `path` (base64, mode 0600, O_EXCL); false when a file is there. */
export function generateRootKeyFile(path: string): boolean {
  return createFileExclusively(path, Buffer.from(randomKey()).toString('base64') + '\n', 0o600);
}

function keyAd(keyId: string): Uint8Array {
  return Buffer.from(`lockbox/v1/keyring-key\0${keyId}`);
}

/** nonce ‖ sealed key material. */
export function sealUnderRoot(root: RootKey, keyId: string, material: Uint8Array): Uint8Array {
  const nonce = randomBytes(NONCE_BYTES);
  return Buffer.concat([nonce, sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(material, keyAd(keyId), null, nonce, root.sealingKey)]);
}

/** Opens what sealUnderRoot made; a DecryptionError when the root key or the id is not its own. */
export function openUnderRoot(root: RootKey, keyId: string, sealed: Uint8Array): Uint8Array {
  try {
    return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, sealed.subarray(NONCE_BYTES), keyAd(keyId), sealed.subarray(0, NONCE_BYTES), root.sealingKey);
  } catch {
    throw new DecryptionError(`keyring key ${keyId} does not open under root key ${root.id}`);
  }
}
