/**
 * Which keyring may open this database, decided at start-up before anything is served.
 *
 * A root key or keyring that does not belong to the database must stop lockboxd: with a fresh
 * key it would answer "ready", refuse every token and open nothing, and the operator would be
 * locked out (issue 11, item 2). So:
 * 1. The root key file is missing (and LOCKBOX_ROOT_KEY unset): a new root key is generated only
 *    when lockboxd may generate one (no --root-key-file given) and the database is empty.
 *    Otherwise start-up fails, naming the file and the root key (or keyring) the database needs.
 * 2. The database holds no keyring yet. An empty database gets a fresh one (a random keyring key
 *    and token key). A database sealed by lockboxd before the keyring moved into it gets the keys
 *    of the old keyring file, which is now the root key file (keyring-migration.ts): first
 *    checked against what the database needs (its recorded keyring id, every master key id that
 *    wraps a data key), so a wrong file seeds nothing. Two replicas seeding at once: one wins,
 *    the other takes its rows.
 * 3. The keyring opens under the root key; rows sealed under another root key stop start-up
 *    naming the root key id the database needs (keyring.ts, load).
 * 4. The database's recorded keyring id (`meta.keyring_id`) must be this keyring's, and every
 *    master key id that wraps a data key must be in it.
 * 5. Only then is the keyring's id claimed for the database (a no-op when already recorded).
 */
import { existsSync, rmSync } from 'node:fs';
import { KeyringError } from './key-file.js';
import { Keyring } from './keyring.js';
import { generateRootKeyFile, loadRootKey, type RootKey } from './root-key.js';
import { freshKeyringRows, legacyKeyringRows, legacyKeyringId } from './keyring-migration.js';
import type { Store } from '../store/store.js';

const KEYRING_META = 'keyring_id';

export interface KeyringCheckOptions {
  /** The root key file (--root-key-file / --master-key-file, or <data dir>/master.key). */
  path: string;
  /** LOCKBOX_ROOT_KEY, which wins over the file when set. */
  envValue?: string;
  /** Whether lockboxd may generate a root key at `path` (the default file in the data dir). */
  mayGenerate: boolean;
  onGenerated?: (path: string) => void;
  /** The keys of an old keyring file were sealed into the database (step (2)). */
  onMigrated?: (keys: number, root: RootKey) => void;
}

function describeNeeds(rootKeyIds: string[], keyringId: string | undefined, masterKeyIds: string[]): string {
  const parts: string[] = [];
  if (rootKeyIds.length > 0) parts.push(`root key ${rootKeyIds.join(', ')}`);
  if (keyringId) parts.push(`keyring ${keyringId}`);
  if (masterKeyIds.length > 0) parts.push(`master key${masterKeyIds.length > 1 ? 's' : ''} ${masterKeyIds.join(', ')}`);
  return parts.length > 0 ? parts.join(' with ') : 'its original keyring';
}

/** Opens the database's keyring under the configured root key, or throws a KeyringError that says what is needed. */
export async function openKeyringFor(store: Store, options: KeyringCheckOptions): Promise<Keyring> {
  const { path } = options;
  const recorded = await store.getMeta(KEYRING_META);
  const masterKeyIds = [...(await store.countByMasterKey()).keys()].sort();
  const rows = await store.keyring.list();
  const rootKeyIds = [...new Set(rows.map((r) => r.rootKeyId))];
  const empty = !recorded && rows.length === 0 && !(await store.hasData());
  let generated = false;
  if (!options.envValue && !existsSync(path)) { // (1)
    if (!empty || !options.mayGenerate) {
      const why = empty ? '' : `; the database needs ${describeNeeds(rootKeyIds, recorded, masterKeyIds)}`;
      throw new KeyringError(
        `root key file ${path} does not exist${why}. Restore that file (or point --root-key-file / LOCKBOX_ROOT_KEY_FILE at it, or set LOCKBOX_ROOT_KEY); a new key is generated only for an empty database`,
      );
    }
    generated = generateRootKeyFile(path);
  }
  const refuse = (message: string): never => {
    if (generated) rmSync(path, { force: true });
    throw new KeyringError(message);
  };
  const root = loadRootKey({ path, envValue: options.envValue });
  if (rows.length === 0) { // (2)
    if (empty) await store.keyring.seed(freshKeyringRows(root));
    else {
      const id = legacyKeyringId(root.file);
      if (recorded && recorded !== id)
        refuse(`${root.source} holds keyring ${id}, but the database was sealed by ${describeNeeds([], recorded, masterKeyIds)}: give lockboxd that keyring's file`);
      const missing = masterKeyIds.filter((k) => !root.file.keys.some((entry) => entry.id === k));
      if (missing.length > 0)
        refuse(`${root.source} (keyring ${id}) lacks master key${missing.length > 1 ? 's' : ''} ${missing.join(', ')} that wrap data keys in the database: give lockboxd the keyring file that holds them`);
      if (await store.keyring.seed(legacyKeyringRows(root))) options.onMigrated?.(root.file.keys.length, root);
    }
  }
  let keyring!: Keyring;
  try {
    keyring = await Keyring.load(store.keyring, root); // (3)
  } catch (error) {
    refuse((error as Error).message);
  }
  if (recorded && recorded !== keyring.id) // (4)
    refuse(`${root.source} opens keyring ${keyring.id}, but the database was sealed by ${describeNeeds([], recorded, masterKeyIds)}`);
  const missing = masterKeyIds.filter((id) => !keyring.get(id));
  if (missing.length > 0)
    refuse(`the database's keyring (${keyring.id}) lacks master key${missing.length > 1 ? 's' : ''} ${missing.join(', ')} that wrap data keys: the database was altered or restored without its keyring`);
  const claimed = await store.claimMeta(KEYRING_META, keyring.id); // (5)
  if (claimed !== keyring.id) refuse(`${root.source} opens keyring ${keyring.id}, but another lockboxd just sealed the database with keyring ${claimed}: give every replica the same root key`);
  if (generated) options.onGenerated?.(path);
  if (!options.envValue) keyring.rereadRoot = () => loadRootKey({ path }); // a new root key installed in place is taken at a reload
  return keyring;
}
