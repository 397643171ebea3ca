import t from 'tap';
import {
  constantTimeEqual,
  signDetached,
  signingKeyPair,
  verifyDetached,
  DataKeyCache,
  decodePayload,
  encodePayload,
  initCrypto,
  openSecret,
  randomKey,
  rewrapDataKey,
  sealSecret,
  unwrapDataKey,
  recordAssociatedData,
  verifySecret,
  wrapDataKey,
  AD_FORMAT_IDENTITY,
  AD_FORMAT_METADATA,
  type RecordIdentity,
  type SealedMetadata,
} from '../../shared/src/crypto.js';
import sodium from 'libsodium-wrappers';
import { DecryptionError } from '../../shared/src/errors.js';

await initCrypto();
const master = { id: 'mk-a', key: randomKey() };
const other = { id: 'mk-b', key: randomKey() };
type SealedRecord = RecordIdentity & SealedMetadata;
const record: SealedRecord = {
  tenant: 'default',
  resourceGroup: '',
  name: 'demo',
  uid: 'u-1',
  version: 1,
  type: 'opaque',
  template: 'custom',
  description: 'd',
  labels: { team: 'a', env: 'prod' },
  mount: { kind: 'file', path: 'demo', subPaths: { OPENAI_API_KEY: 'secrets' }, format: '' },
  keys: ['BIN', 'OPENAI_API_KEY'],
};
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
  const moved: Array<[string, SealedRecord]> = [
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
  t.same(openSecret({ ...envelope, masterKeyId: other.id, wrappedKey: rewrapped }, other, record), data);
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
  const rewrapped = { ...envelope, masterKeyId: other.id, wrappedKey: rewrapDataKey(envelope.wrappedKey, master, other, record) };
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

t.test('AD format 2: the metadata is bound; every edit of it fails to open, key and label order does not matter', async (t) => {
  const envelope = sealSecret(data, master, record);
  t.equal(envelope.adFormat, AD_FORMAT_METADATA, 'new versions use format 2');
  const edited: Array<[string, SealedRecord]> = [
    ['type', { ...record, type: 'container_registry' }],
    ['template', { ...record, template: 'openai' }],
    ['description', { ...record, description: 'e' }],
    ['a label value', { ...record, labels: { ...record.labels, env: 'dev' } }],
    ['a label added', { ...record, labels: { ...record.labels, x: '' } }],
    ['the mount path', { ...record, mount: { ...record.mount, path: '../../etc' } }],
    ['the mount kind', { ...record, mount: { ...record.mount, kind: 'env', format: 'dotenv' } }],
    ['a sub-path', { ...record, mount: { ...record.mount, subPaths: {} } }],
    ['the keys', { ...record, keys: ['OPENAI_API_KEY'] }],
  ];
  for (const [what, target] of edited) {
    t.throws(() => openSecret(envelope, master, target), DecryptionError, what);
    t.throws(() => verifySecret(envelope, master, target), DecryptionError, `${what} (verify)`);
  }
  const reordered = { ...record, labels: { env: 'prod', team: 'a' }, keys: ['OPENAI_API_KEY', 'BIN'] };
  t.same(openSecret(envelope, master, reordered), data, 'the same metadata read back in another order');
  t.doesNotThrow(() => verifySecret(envelope, master, record));
  t.throws(() => openSecret({ ...envelope, adFormat: AD_FORMAT_IDENTITY }, master, record), DecryptionError, 'relabelled as format 1: does not open');
  t.throws(() => openSecret({ ...envelope, adFormat: 7 }, master, record), /unknown associated-data format 7/);
});

t.test('AD format 1 (sealed before metadata was bound) still opens with its identity', async (t) => {
  const dataKey = randomKey();
  const nonce = randomKey().subarray(0, 24);
  const sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(encodePayload(data), recordAssociatedData(record), null, nonce, dataKey);
  const legacy = { adFormat: AD_FORMAT_IDENTITY, masterKeyId: master.id, wrappedKey: wrapDataKey(dataKey, master, record), ciphertext: Buffer.concat([nonce, sealed]) };
  t.same(openSecret(legacy, master, record), data);
  t.same(openSecret(legacy, master, { ...record, labels: {} }), data, 'its metadata was never bound');
  t.throws(() => openSecret(legacy, master, { ...record, name: 'other' }), DecryptionError, 'its identity still is');
  t.throws(() => openSecret({ ...legacy, adFormat: AD_FORMAT_METADATA }, master, record), DecryptionError, 'relabelled as format 2: does not open');
});

t.test('verifyDetached: a signature or key of the wrong length is false, never a throw', async (t) => {
  const { publicKey, privateKey } = signingKeyPair(new Uint8Array(32).fill(7));
  const signature = signDetached('seq=5 hash=ab', privateKey);
  t.equal(verifyDetached(signature, 'seq=5 hash=ab', publicKey), true);
  t.equal(verifyDetached(signature, 'seq=5 hash=ac', publicKey), false, 'another message');
  t.equal(verifyDetached(signature.subarray(0, 63), 'seq=5 hash=ab', publicKey), false, 'a signature cut short');
  t.equal(verifyDetached(new Uint8Array(65), 'seq=5 hash=ab', publicKey), false, 'a signature too long');
  t.equal(verifyDetached(signature, 'seq=5 hash=ab', publicKey.subarray(0, 31)), false, 'a key cut short');
});
