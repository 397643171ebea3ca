/**
 * Idempotent writes (DESIGN.md: `Idempotency-Key`): a retried call with the same key returns the
 * first answer, the same key with a different body is refused, and keys survive restarts.
 * 1. The key is checked (printable ASCII, bounded) and the request fingerprinted: a keyed hash of
 *    its canonical JSON (object keys sorted, bytes as base64), so the store never holds a value.
 *    Keys belong to the token that sent them (stored as `<token id>:<key>`): another caller
 *    sending the same key neither learns it was used nor gets the first answer; its call runs.
 * 2. An answer already stored for the key is replayed (or the call refused when the method or
 *    fingerprint differs).
 * 3. Otherwise the call runs, and its answer is stored in the same transaction as its change; a
 *    concurrent call that stored the key first makes the store throw IdempotencyReplayError, and
 *    that stored answer is replayed as in (2).
 */
import { keyedHash } from '../../../shared/src/crypto.js';
import { InvalidArgumentError, LockboxError, type ErrorKind } from '../../../shared/src/errors.js';
import { limits } from '../../../shared/src/limits.js';
import { IdempotencyReplayError, type CommitOutcome, type IdempotencyRecord, type Store } from '../store/store.js';
import type { CallContext } from './context.js';

/** How a failed outcome is stored for an idempotent replay. */
export interface StoredError {
  kind: ErrorKind;
  code: string;
  message: string;
}

export function storedError(error: LockboxError): StoredError {
  return { kind: error.kind, code: error.code, message: error.message };
}

export function replayError(stored: StoredError): LockboxError {
  return new LockboxError(stored.kind, stored.code, stored.message);
}

/**
 * The stored answer of a one-change call (update, delete, restore): its result when the change
 * committed; nothing when it failed, since a failed change applied nothing and a retry may
 * rightly succeed (a lost compare-and-set is retried within the same call). `describe` is read at
 * commit time: the last attempt's.
 */
export function storeSuccess<R>(describe: () => (seq: number) => R): (outcomes: CommitOutcome[]) => string | undefined {
  return (outcomes) => (outcomes[0].ok ? JSON.stringify(describe()(outcomes[0].seq)) : undefined);
}

export class Idempotency {
  constructor(
    private readonly store: Store,
    /** The key of the request fingerprints (the keyring's token key, read at each call). */
    private readonly fingerprintKey: () => Uint8Array,
  ) {}

  /** (1) */
  private fingerprint(method: string, request: unknown): string {
    const canonical = JSON.stringify(request, (_key, value: unknown) =>
      value instanceof Uint8Array ? Buffer.from(value).toString('base64') : value && typeof value === 'object' && !Array.isArray(value)
        ? Object.fromEntries(Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : value,
    );
    return keyedHash(`${method}\0${canonical}`, this.fingerprintKey());
  }

  /** (1) */
  private checkedKey(ctx: CallContext): string | undefined {
    const key = ctx.idempotencyKey;
    if (key === undefined) return undefined;
    if (key.length === 0 || key.length > limits.maxIdempotencyKeyLength || !/^[\x21-\x7e]+$/.test(key))
      throw new InvalidArgumentError('idempotency-key', `must be 1-${limits.maxIdempotencyKeyLength} printable ASCII characters without spaces`);
    return key;
  }

  /**
   * Runs `attempt` with idempotency when the call carries a key: steps (2) and (3); `encode` turns
   * the outcomes into the stored answer, `decode` a stored answer into the call's result.
   */
  async run<T>(
    ctx: CallContext,
    tenant: string,
    method: string,
    request: unknown,
    attempt: (idempotency?: IdempotencyRecord) => Promise<T>,
    encode: (outcomes: CommitOutcome[]) => string | undefined,
    decode: (stored: string) => T,
  ): Promise<T> {
    const key = this.checkedKey(ctx);
    if (key === undefined) return attempt();
    const fingerprint = this.fingerprint(method, ctx.idempotencyRequest ?? request);
    const replay = (stored: { method: string; fingerprint: string; response: string }): T => {
      if (stored.method !== method || stored.fingerprint !== fingerprint)
        throw new InvalidArgumentError('idempotency-key', `"${key}" was already used for a different request; use a new key for a new request`, 'IDEMPOTENCY_KEY_REUSED');
      return decode(stored.response);
    };
    const ownKey = `${ctx.principal.tokenId}:${key}`; // (1)
    const stored = await this.store.getIdempotency(tenant, ownKey);
    if (stored) return replay(stored); // (2)
    try {
      return await attempt({ tenant, key: ownKey, method, fingerprint, createTime: new Date().toISOString(), respond: encode });
    } catch (error) {
      if (error instanceof IdempotencyReplayError) return replay(error.stored); // (3)
      throw error;
    }
  }
}
