/**
 * Which keyring may open this database, decided at start-up before anything is served.
 *
 * A keyring that does not belong to the database must stop lockboxd: with a fresh key it would
 * answer "ready", refuse every token and open nothing, and the operator would be locked out
 * (issue 11, item 2). So:
 * 1. The key file is missing: a new keyring is generated only when lockboxd may generate one (no
 *    --master-key-file given) and the database is empty. Otherwise start-up fails, naming the file
 *    and the keyring and master key ids the database needs.
 * 2. The database names the keyring that sealed it (`meta.keyring_id`, set on first start): a
 *    keyring with another id is another deployment's, and start-up fails naming both.
 * 3. Every master key id that wraps a data key must be in the keyring (a database from before
 *    `meta` existed is checked this way only).
 * 4. Only then is the keyring's id claimed for the database (a no-op when already recorded).
 *    Two replicas that race to start an empty database each generated their own keyring file:
 *    the one that claims second is refused by (2) and removes the file it just made.
 */
import { existsSync, rmSync } from 'node:fs';
import { Keyring, KeyringError } from './keyring.js';
import type { Store } from '../store/store.js';

const KEYRING_META = 'keyring_id';

export interface KeyringCheckOptions {
  /** Whether lockboxd may generate a keyring at `path` (the default file in the data dir). */
  mayGenerate: boolean;
  onGenerated?: (path: string) => void;
}

function describeNeeds(keyringId: string | undefined, masterKeyIds: string[]): string {
  const parts: string[] = [];
  if (keyringId) parts.push(`keyring ${keyringId}`);
  if (masterKeyIds.length > 0) parts.push(`master key${masterKeyIds.length > 1 ? 's' : ''} ${masterKeyIds.join(', ')}`);
  return parts.length > 0 ? parts.join(' with ') : 'its original keyring';
}

/** Opens the keyring at `path` for `store`, or throws a KeyringError that says what is needed. */
export async function openKeyringFor(store: Store, path: string, options: KeyringCheckOptions): Promise<Keyring> {
  const recorded = await store.getMeta(KEYRING_META);
  const masterKeyIds = [...(await store.countByMasterKey()).keys()].sort();
  let generated = false;
  if (!existsSync(path)) { // (1)
    const empty = !recorded && !(await store.hasData());
    if (!empty || !options.mayGenerate) {
      const why = empty ? '' : `; the database needs ${describeNeeds(recorded, masterKeyIds)}`;
      throw new KeyringError(
        `master key file ${path} does not exist${why}. Restore that file (or point --master-key-file / LOCKBOX_MASTER_KEY_FILE at it); a new key is generated only for an empty database`,
      );
    }
    generated = Keyring.generate(path);
  }
  const keyring = Keyring.open(path);
  const refuse = (message: string): never => {
    if (generated) rmSync(path, { force: true });
    throw new KeyringError(message);
  };
  if (recorded && recorded !== keyring.id) // (2)
    refuse(`master key file ${path} holds keyring ${keyring.id}, but the database was sealed by ${describeNeeds(recorded, masterKeyIds)}: give lockboxd that keyring's file`);
  const missing = masterKeyIds.filter((id) => !keyring.get(id)); // (3)
  if (missing.length > 0)
    refuse(`master key file ${path} (keyring ${keyring.id}) lacks master key${missing.length > 1 ? 's' : ''} ${missing.join(', ')} that wrap data keys in the database: give lockboxd the keyring file that holds them`);
  const claimed = await store.claimMeta(KEYRING_META, keyring.id); // (4)
  if (claimed !== keyring.id) refuse(`master key file ${path} holds keyring ${keyring.id}, but another lockboxd just sealed the database with keyring ${claimed}: give every replica the same keyring file`);
  if (generated) options.onGenerated?.(path);
  return keyring;
}
