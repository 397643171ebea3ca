/**
 * List cursors: opaque to callers, signed by the daemon, so a cursor it did not issue is refused
 * as INVALID_CURSOR before anything in it is used.
 *
 * A cursor is `<payload>.<mac>`, both base64url:
 * (1) payload = JSON `{"v": 1, "a": <last name of the page>, "f": <filter key>}`; the filter key
 *     binds the cursor to the scope and filters it was issued for;
 * (2) mac = the first 16 bytes of a keyed BLAKE2b of the payload text, under a key derived from
 *     the keyring's token key (the same on every replica, so any replica takes any cursor);
 * (3) on decode the MAC is checked first (in constant time), then the shape, then the filters.
 */
import { timingSafeEqual } from 'node:crypto';
import { keyedHash } from '../../../shared/src/crypto.js';
import { InvalidArgumentError } from '../../../shared/src/errors.js';

const MAX_CURSOR_LENGTH = 2048;

function invalid(rule: string): InvalidArgumentError {
  return new InvalidArgumentError('cursor', rule, 'INVALID_CURSOR');
}

export class ListCursors {
  private readonly key: Uint8Array;

  /** `secretKey`: a 32-byte key only the daemons hold (the keyring's token key). */
  constructor(secretKey: Uint8Array) {
    this.key = Buffer.from(keyedHash('lockbox list cursor v1', secretKey), 'hex');
  }

  private mac(payload: string): Buffer {
    return Buffer.from(keyedHash(payload, this.key), 'hex').subarray(0, 16);
  }

  /** (1)(2) A cursor that resumes after `afterName` under the filters `filterKey` stands for. */
  encode(afterName: string, filterKey: string): string {
    const payload = Buffer.from(JSON.stringify({ v: 1, a: afterName, f: filterKey })).toString('base64url');
    return `${payload}.${this.mac(payload).toString('base64url')}`;
  }

  /** (3) The name to resume after; INVALID_CURSOR for anything this daemon did not issue. */
  decode(cursor: string, filterKey: string): string {
    const parts = cursor.length <= MAX_CURSOR_LENGTH ? /^([\w-]+)\.([\w-]{22})$/.exec(cursor) : null;
    if (!parts) throw invalid('is not a cursor this server issued');
    const given = Buffer.from(parts[2], 'base64url');
    const expected = this.mac(parts[1]);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid('is not a cursor this server issued');
    const parsed = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as { v?: unknown; a?: unknown; f?: unknown } | null;
    if (parsed?.v !== 1 || typeof parsed.a !== 'string') throw invalid('is not a cursor this server issued');
    if (parsed.f !== filterKey) throw invalid('was issued for other filters or another scope; repeat the same filters');
    return parsed.a;
  }
}
