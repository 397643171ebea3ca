import t from 'tap';
import {
  constantTimeEqual,
  DataKeyCache,
  decodePayload,
  encodePayload,
  initCrypto,
  openSecret,
  randomKey,
  rewrapDataKey,
  sealSecret,
  unwrapDataKey,
  type RecordIdentity,
} from '../../shared/src/crypto.js';
import { DecryptionError } from '../../shared/src/errors.js';

await initCrypto();
const master = { id: 'mk-a', key: randomKey() };
const other = { id: 'mk-b', key: randomKey() };
const record: RecordIdentity = { tenant: 'default', resourceGroup: '', name: 'demo', uid: 'u-1', version: 1 };
const data = { OPENAI_API_KEY: Buffer.from('sk-CANARY'), BIN: Buffer.from([0, 255, 10]) };

t.test('seal and open round-trip, binary values included', async (t) => {
  const envelope = sealSecret(data, master, record);
  t.equal(envelope.masterKeyId, 'mk-a');
  t.notOk(Buffer.from(envelope.ciphertext).includes('sk-CANARY'), 'the ciphertext does not hold the value');
  t.same(openSecret(envelope, master, record), data);
  t.same(decodePayload(encodePayload(data)), data);
});

t.test('a ciphertext moved to another record fails to open', async (t) => {
  const envelope = sealSecret(data, master, record);
  const moved: Array<[string, RecordIdentity]> = [
    ['another name', { ...record, name: 'other' }],
    ['another version', { ...record, version: 2 }],
    ['another tenant', { ...record, tenant: 'acme' }],
    ['another resource group', { ...record, resourceGroup: 'team-a' }],
    ['another uid (same name, recreated)', { ...record, uid: 'u-2' }],
  ];
  for (const [what, target] of moved) t.throws(() => openSecret(envelope, master, target), DecryptionError, what);
  t.throws(() => openSecret(envelope, other, record), DecryptionError, 'the wrong master key');
  const flipped = { ...envelope, ciphertext: Uint8Array.from(envelope.ciphertext) };
  flipped.ciphertext[30] ^= 1;
  t.throws(() => openSecret(flipped, master, record), /altered or belongs to another record/, 'a flipped bit');
  t.throws(() => openSecret({ ...envelope, ciphertext: new Uint8Array(10) }, master, record), /truncated/);
  // A data key moved from another record does not unwrap either.
  const second = sealSecret(data, master, { ...record, name: 'other' });
  t.throws(() => openSecret({ ...envelope, wrappedKey: second.wrappedKey }, master, record), DecryptionError, 'a swapped data key');
});

t.test('re-wrapping keeps the payload and moves the data key to the new master key', async (t) => {
  const envelope = sealSecret(data, master, record);
  const rewrapped = rewrapDataKey(envelope.wrappedKey, master, other, record);
  t.same(openSecret({ masterKeyId: other.id, wrappedKey: rewrapped, ciphertext: envelope.ciphertext }, other, record), data);
  t.throws(() => unwrapDataKey(rewrapped, master, record), DecryptionError, 'the old master key no longer opens it');
  t.throws(() => unwrapDataKey(rewrapped, { ...other, id: 'mk-renamed' }, record), DecryptionError, 'the key id is bound');
});

t.test('the data key cache opens what the envelope opens, and nothing else', async (t) => {
  const cache = new DataKeyCache(2);
  const envelope = sealSecret(data, master, record);
  t.same(openSecret(envelope, master, record, cache), data);
  t.same(openSecret(envelope, master, record, cache), data, 'a cached key opens it again');
  // Every check of the uncached path still holds with a warm cache.
  t.throws(() => openSecret(envelope, master, { ...record, name: 'other' }, cache), DecryptionError, 'moved to another name');
  t.throws(() => openSecret(envelope, master, { ...record, uid: 'u-2' }, cache), DecryptionError, 'moved to another uid');
  const flipped = { ...envelope, ciphertext: Uint8Array.from(envelope.ciphertext) };
  flipped.ciphertext[30] ^= 1;
  t.throws(() => openSecret(flipped, master, record, cache), DecryptionError, 'a flipped bit in the payload');
  const wrappedFlip = { ...envelope, wrappedKey: Uint8Array.from(envelope.wrappedKey) };
  wrappedFlip.wrappedKey[30] ^= 1;
  t.throws(() => openSecret(wrappedFlip, master, record, cache), DecryptionError, 'a wrapped key that differs is unwrapped anew (and fails)');
  const second = sealSecret(data, master, { ...record, name: 'other' });
  t.throws(() => openSecret({ ...envelope, wrappedKey: second.wrappedKey }, master, record, cache), DecryptionError, 'a swapped data key');
  const rewrapped = { masterKeyId: other.id, wrappedKey: rewrapDataKey(envelope.wrappedKey, master, other, record), ciphertext: envelope.ciphertext };
  t.same(openSecret(rewrapped, other, record, cache), data, 'after a master key rotation');
  for (let v = 2; v <= 4; v++) {
    const r = { ...record, version: v };
    t.same(openSecret(sealSecret(data, master, r), master, r, cache), data, `version ${v} (the cache holds 2)`);
  }
  t.same(openSecret(envelope, master, record, cache), data, 'an evicted key is unwrapped again');
});

t.test('constantTimeEqual: equal only for the same bytes, never for another length', async (t) => {
  t.equal(constantTimeEqual('3f2c9a1b', '3f2c9a1b'), true);
  t.equal(constantTimeEqual('3f2c9a1b', '3f2c9a1c'), false, 'one byte differs');
  t.equal(constantTimeEqual('3f2c9a1b', '3f2c9a1b00'), false, 'a longer string with the same start');
  t.equal(constantTimeEqual('3f2c9a1b', ''), false, 'an empty string');
  t.equal(constantTimeEqual('', ''), true);
});
