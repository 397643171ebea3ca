/**
 * Envelope encryption with libsodium.
 *
 * 1. Each secret version gets a fresh random 256-bit data key.
 * 2. The payload (the version's key → value map) is sealed with XChaCha20-Poly1305 under the data
 *    key. Its associated data names the record: tenant, resource group, name, uid and version, so
 *    a ciphertext copied onto another record (or another version) fails to open; and, from AD
 *    format 2 on, the version's metadata (type, template, description, labels, mount, keys), so a
 *    row whose metadata was edited in the database fails to open too. The format is stored with
 *    the envelope: versions sealed before format 2 (format 1, identity only) still open, every new
 *    version is sealed with format 2, and a format-2 row relabelled as format 1 does not open.
 * 3. The data key is wrapped (XChaCha20-Poly1305 again) by the active master key; the wrap's
 *    associated data is the master key id plus the same record name, so a wrapped key is bound to
 *    its record too.
 * 4. Rotating the master key re-wraps (3) only: the payload is never re-encrypted.
 */
import { randomBytes as osRandomBytes, timingSafeEqual } from 'node:crypto';
import sodium from 'libsodium-wrappers';
import { DecryptionError } from './errors.js';
import { userRecord } from './user-keys.js';

export const KEY_BYTES = 32;
const NONCE_BYTES = 24;

export interface MasterKey {
  id: string;
  key: Uint8Array;
}

export interface RecordIdentity {
  tenant: string;
  resourceGroup: string;
  name: string;
  uid: string;
  version: number;
}

/** The metadata a version's payload is bound to (AD format 2). */
export interface SealedMetadata {
  type: string;
  template: string;
  description: string;
  labels: Record<string, string>;
  mount: { kind: string; path: string; subPaths: Record<string, string>; format: string };
  keys: string[];
}

/** (2) Format 1: identity only (versions sealed before metadata was bound). Format 2: identity and metadata. */
export const AD_FORMAT_IDENTITY = 1;
export const AD_FORMAT_METADATA = 2;

/** What is stored for one sealed version. */
export interface Envelope {
  /** AD_FORMAT_IDENTITY or AD_FORMAT_METADATA: which associated data the payload was sealed with. */
  adFormat: number;
  masterKeyId: string;
  /** nonce ‖ wrapped data key */
  wrappedKey: Uint8Array;
  /** nonce ‖ ciphertext */
  ciphertext: Uint8Array;
}

export async function initCrypto(): Promise<void> {
  await sodium.ready;
}

/**
 * Random bytes from the operating system's CSPRNG (node:crypto). libsodium-wrappers'
 * randombytes_buf costs ~170 µs a call here, which capped sealing at ~2,000 a second.
 */
export function randomBytes(length: number): Uint8Array {
  return osRandomBytes(length);
}

export function randomKey(): Uint8Array {
  return randomBytes(KEY_BYTES);
}

/** Unambiguous: fields are NUL-separated and none of them may contain NUL. */
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

export function recordAssociatedData(record: RecordIdentity): Uint8Array {
  return utf8Encoder.encode(
    ['lockbox/v1/secret', record.tenant, record.resourceGroup, record.name, record.uid, String(record.version)].join('\0'),
  );
}

/** JSON with object keys sorted at every level, so the same metadata always gives the same bytes. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object')
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(value);
}

/** (2) The payload's associated data in `format`. */
export function payloadAssociatedData(record: RecordIdentity & SealedMetadata, format: number): Uint8Array {
  if (format === AD_FORMAT_IDENTITY) return recordAssociatedData(record);
  if (format !== AD_FORMAT_METADATA) throw new DecryptionError(`secret payload has an unknown associated-data format ${format}`);
  const { type, template, description, labels, mount, keys } = record;
  const metadata = canonicalJson({ type, template, description, labels, mount, keys: [...keys].sort() });
  return utf8Encoder.encode(
    ['lockbox/v2/secret', record.tenant, record.resourceGroup, record.name, record.uid, String(record.version), metadata].join('\0'),
  );
}

function wrapAssociatedData(masterKeyId: string, record: RecordIdentity): Uint8Array {
  const recordAd = recordAssociatedData(record);
  const prefix = utf8Encoder.encode(`lockbox/v1/data-key\0${masterKeyId}\0`);
  const ad = new Uint8Array(prefix.length + recordAd.length);
  ad.set(prefix, 0);
  ad.set(recordAd, prefix.length);
  return ad;
}

function seal(plaintext: Uint8Array, ad: Uint8Array, key: Uint8Array): Uint8Array {
  const nonce = randomBytes(NONCE_BYTES);
  const sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, null, nonce, key);
  const out = new Uint8Array(NONCE_BYTES + sealed.length);
  out.set(nonce, 0);
  out.set(sealed, NONCE_BYTES);
  return out;
}

function open(box: Uint8Array, ad: Uint8Array, key: Uint8Array, what: string): Uint8Array {
  if (box.length < NONCE_BYTES + 16) throw new DecryptionError(`${what} is truncated`);
  try {
    return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, box.subarray(NONCE_BYTES), ad, box.subarray(0, NONCE_BYTES), key);
  } catch {
    throw new DecryptionError(`${what} does not open: it was altered or belongs to another record`);
  }
}

export function wrapDataKey(dataKey: Uint8Array, master: MasterKey, record: RecordIdentity): Uint8Array {
  return seal(dataKey, wrapAssociatedData(master.id, record), master.key);
}

export function unwrapDataKey(wrapped: Uint8Array, master: MasterKey, record: RecordIdentity): Uint8Array {
  return open(wrapped, wrapAssociatedData(master.id, record), master.key, 'data key');
}

/** Serialises a key → value map (the plaintext of a version). */
export function encodePayload(data: Record<string, Uint8Array>): Uint8Array {
  const json = userRecord(Object.keys(data).sort().map((key) => [key, Buffer.from(data[key]).toString('base64')] as const));
  return utf8Encoder.encode(JSON.stringify(json));
}

export function decodePayload(bytes: Uint8Array): Record<string, Buffer> {
  const json = JSON.parse(utf8Decoder.decode(bytes)) as Record<string, string>;
  return userRecord(Object.entries(json).map(([key, value]) => [key, Buffer.from(value, 'base64')] as const));
}

/** (1)-(3): seals a version's data, bound to its identity and metadata, under a fresh data key wrapped by `master`. */
export function sealSecret(data: Record<string, Uint8Array>, master: MasterKey, record: RecordIdentity & SealedMetadata): Envelope {
  const dataKey = randomKey();
  try {
    const ciphertext = seal(encodePayload(data), payloadAssociatedData(record, AD_FORMAT_METADATA), dataKey);
    return { adFormat: AD_FORMAT_METADATA, masterKeyId: master.id, wrappedKey: wrapDataKey(dataKey, master, record), ciphertext };
  } finally {
    sodium.memzero(dataKey);
  }
}

/**
 * Unwrapped data keys, so the reads of a hot secret skip the unwrap of (3). An entry is found by
 * record (uid, version) and master key id, and used only when the stored wrapped key is byte for
 * byte the one presented; the payload's own associated data still binds it to its record.
 * Bounded; a key pushed out is wiped.
 */
export class DataKeyCache {
  private readonly entries = new Map<string, { wrapped: Buffer; dataKey: Uint8Array }>();

  constructor(private readonly limit = 10_000) {}

  unwrap(wrapped: Uint8Array, master: MasterKey, record: RecordIdentity): Uint8Array {
    const id = `${record.uid}\0${record.version}\0${master.id}`;
    const found = this.entries.get(id);
    if (found && found.wrapped.equals(wrapped)) return found.dataKey;
    const dataKey = unwrapDataKey(wrapped, master, record);
    if (found) sodium.memzero(found.dataKey);
    else if (this.entries.size >= this.limit) {
      const [oldest, entry] = this.entries.entries().next().value!;
      sodium.memzero(entry.dataKey);
      this.entries.delete(oldest);
    }
    this.entries.set(id, { wrapped: Buffer.from(wrapped), dataKey });
    return dataKey;
  }
}

function openPayload(envelope: Envelope, master: MasterKey, record: RecordIdentity & SealedMetadata, cache?: DataKeyCache): Uint8Array {
  const dataKey = cache ? cache.unwrap(envelope.wrappedKey, master, record) : unwrapDataKey(envelope.wrappedKey, master, record);
  try {
    return open(envelope.ciphertext, payloadAssociatedData(record, envelope.adFormat), dataKey, 'secret payload');
  } finally {
    if (!cache) sodium.memzero(dataKey);
  }
}

export function openSecret(envelope: Envelope, master: MasterKey, record: RecordIdentity & SealedMetadata, cache?: DataKeyCache): Record<string, Buffer> {
  const payload = openPayload(envelope, master, record, cache);
  try {
    return decodePayload(payload);
  } finally {
    sodium.memzero(payload);
  }
}

/**
 * Checks that a version opens with its stored identity and metadata (a format-1 version: its
 * identity only), without decoding the values; the plaintext is wiped at once. Throws
 * DecryptionError when the row was altered.
 */
export function verifySecret(envelope: Envelope, master: MasterKey, record: RecordIdentity & SealedMetadata, cache?: DataKeyCache): void {
  sodium.memzero(openPayload(envelope, master, record, cache));
}

/** (4): the same data key, wrapped by another master key. */
export function rewrapDataKey(wrapped: Uint8Array, from: MasterKey, to: MasterKey, record: RecordIdentity): Uint8Array {
  const dataKey = unwrapDataKey(wrapped, from, record);
  try {
    return wrapDataKey(dataKey, to, record);
  } finally {
    sodium.memzero(dataKey);
  }
}

/** A keyed BLAKE2b hash, hex. Used for tokens and idempotency request fingerprints. */
export function keyedHash(message: Uint8Array | string, key: Uint8Array): string {
  return sodium.crypto_generichash(32, message, key, 'hex');
}

/** Derives a purpose-bound subkey (8-character context) from a root key. */
export function deriveKey(root: Uint8Array, id: number, context: string): Uint8Array {
  return sodium.crypto_kdf_derive_from_key(KEY_BYTES, id, context, root);
}

/** Constant-time comparison of two equal-length hex or byte strings. */
export function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  if (left.length !== right.length) return false;
  return timingSafeEqual(left, right); // native: a token is compared on every agent message
}

/** An Ed25519 key pair derived from a 32-byte seed (e.g. a purpose-bound subkey of the keyring). */
export function signingKeyPair(seed: Uint8Array): { publicKey: Uint8Array; privateKey: Uint8Array } {
  const pair = sodium.crypto_sign_seed_keypair(seed);
  return { publicKey: pair.publicKey, privateKey: pair.privateKey };
}

export function signDetached(message: Uint8Array | string, privateKey: Uint8Array): Uint8Array {
  return sodium.crypto_sign_detached(message, privateKey);
}

export function verifyDetached(signature: Uint8Array, message: Uint8Array | string, publicKey: Uint8Array): boolean {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  return sodium.crypto_sign_verify_detached(signature, message, publicKey);
}
