/**
 * Opening stored versions, and refusing those that were altered in the database.
 *
 * A version's payload is sealed with its identity and metadata as associated data (AD format 2,
 * shared/src/crypto.ts (2)), so the ciphertext's tag vouches for the metadata in clear beside it:
 * 1. A row whose metadata columns cannot even be read (bad JSON, wrong shape) is damaged.
 * 2. Otherwise the payload is opened with the row's own identity and metadata; a row whose
 *    metadata, identity or ciphertext was edited fails with DECRYPTION_FAILED.
 * 3. Either way the version is reported (by name, uid and version; never a value) and not served:
 *    a read of it fails with DECRYPTION_FAILED, a listing leaves it out and goes on.
 * Versions sealed before format 2 (format 1) vouch for their identity only; (1) still applies.
 *
 * A listing verifies every version it shows, which costs an unwrap and a decryption each. So a
 * version that verified is remembered by a SHA-256 of the exact bytes it verified with (key id,
 * associated data, wrapped key, ciphertext); the next check of a record with the same bytes is
 * the same check, and is skipped. Any byte that differs is checked anew. A digest (not a copy of
 * the ciphertext) keeps an entry near 100 bytes, so the memory holds every version of a large
 * group (131,072 entries, about 13 MiB at most): a list walked again at 100,000 secrets costs a
 * hash per version, not a decryption. Nothing secret is kept.
 */
import { DataKeyCache, openSecret, payloadAssociatedData, verifySecret, type MasterKey } from '../../../shared/src/crypto.js';
import { createHash } from 'node:crypto';
import { DecryptionError, LockboxError } from '../../../shared/src/errors.js';
import type { VersionRecord } from '../store/store.js';
import type { Keyring } from './keyring.js';

export type DamagedRecordReport = (record: Pick<VersionRecord, 'tenant' | 'resourceGroup' | 'name' | 'uid' | 'version'>, problem: string) => void;

export class SealedRecords {
  /** Unwrapped data keys of hot versions (crypto.ts, DataKeyCache). */
  private readonly dataKeys = new DataKeyCache();
  /** uid\0version → what verified: see the header. */
  private readonly verified = new Map<string, Buffer>();
  private static readonly verifiedLimit = 131_072;

  constructor(
    private readonly keyring: Keyring,
    private readonly onDamaged: DamagedRecordReport = () => {},
  ) {}

  /**
   * Call before `open`, `verify` or `intact` with records just read: a data key wrapped by a
   * keyring key this replica does not hold (another replica rotated) reloads the keyring first.
   */
  async learn(records: Array<Pick<VersionRecord, 'envelope'>>): Promise<void> {
    await this.keyring.learn(records.map((r) => r.envelope.masterKeyId));
  }

  /** The version's values; throws DECRYPTION_FAILED (and reports it) when the row was altered. */
  open(record: VersionRecord): Record<string, Uint8Array> {
    return this.checked(record, (master) => openSecret(record.envelope, master, record, this.dataKeys));
  }

  /** Throws DECRYPTION_FAILED (and reports it) unless the version's metadata is what was sealed. */
  verify(record: VersionRecord): void {
    const { envelope } = record;
    const id = `${record.uid}\0${record.version}`;
    const digest = record.damaged ? undefined : sealedBytesDigest(String(envelope.adFormat), envelope.masterKeyId, safeAd(record), envelope.wrappedKey, envelope.ciphertext);
    const known = this.verified.get(id);
    if (digest && known?.equals(digest)) return;
    this.checked(record, (master) => verifySecret(envelope, master, record, this.dataKeys));
    if (this.verified.size >= SealedRecords.verifiedLimit) this.verified.clear();
    this.verified.set(id, digest!);
  }

  /** The records that pass `verify`; the others are reported and left out. */
  intact<T extends VersionRecord>(records: T[]): T[] {
    return records.filter((record) => {
      try {
        this.verify(record);
        return true;
      } catch (error) {
        if (error instanceof DecryptionError) return false;
        throw error;
      }
    });
  }

  private checked<T>(record: VersionRecord, run: (master: MasterKey) => T): T {
    if (record.damaged) return this.refuse(record, record.damaged); // (1)
    // A key id this replica does not hold even after `learn`: not in the database's keyring.
    const id = record.envelope.masterKeyId;
    const master = this.keyring.get(id);
    if (!master) throw new LockboxError('INTERNAL', 'DECRYPTION_FAILED', this.keyring.missingReason(id));
    try {
      return run(master); // (2)
    } catch (error) {
      if (error instanceof DecryptionError) return this.refuse(record, error.message);
      throw error;
    }
  }

  /** (3) */
  private refuse(record: VersionRecord, problem: string): never {
    this.onDamaged(record, problem);
    throw new DecryptionError(
      `version ${record.version} of secret "${record.name}" failed its integrity check (${problem}); it was altered in the database and is not served`,
    );
  }
}

/** The record's associated data; empty for an unknown format (which then fails its check). */
function safeAd(record: VersionRecord): Uint8Array {
  try {
    return payloadAssociatedData(record, record.envelope.adFormat);
  } catch {
    return new Uint8Array();
  }
}

/** What a verified version is remembered by: each part length-prefixed, so no two splits hash alike. */
export function sealedBytesDigest(...parts: Array<string | Uint8Array>): Buffer {
  const hash = createHash('sha256');
  for (const part of parts) {
    const bytes = typeof part === 'string' ? Buffer.from(part, 'utf8') : part;
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    hash.update(length).update(bytes);
  }
  return hash.digest();
}
