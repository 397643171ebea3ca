/**
 * A database whose root key is missing or another deployment's stops lockboxd with one line naming
 * the key file and the ids the database needs (issue 11, item 2; issue 13, item 1); a key is
 * generated only for an empty database. Runs the built daemon, on SQLite and on PostgreSQL.
 */
import t from 'tap';
import { copyFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadServices } from '../../shared/src/proto.js';
import { tempDir } from '../helpers/daemon.js';
import { freshSchema } from '../helpers/postgres.js';
import { spawnDaemon, type SpawnedDaemon } from '../helpers/spawn.js';
import { loadRootKey } from '../../daemon/src/security/root-key.js';
import { initCrypto } from '../../shared/src/crypto.js';

const services = loadServices();

async function createSecret(addr: string, token: string, name: string): Promise<void> {
  const c = new services.SecretsService(addr, grpc.credentials.createInsecure());
  try {
    await new Promise((resolve, reject) => {
      const md = new grpc.Metadata();
      md.set('authorization', `Bearer ${token}`);
      (c as any).CreateSecret({ secret: { name, data: { V: Buffer.from('canary-keyring-value') } } }, md, (e: Error | null, r: unknown) => (e ? reject(e) : resolve(r)));
    });
  } finally {
    c.close();
  }
}

async function stop(d: SpawnedDaemon): Promise<void> {
  d.child.kill('SIGTERM');
  await d.exited;
}

/** Starts lockboxd expecting it to refuse; returns its output. */
type Checks = Pick<typeof t, 'match' | 'notMatch'>;

async function refused(t: Checks, args: string[]): Promise<string> {
  return refusedWithEnv(t, args, {});
}

async function refusedWithEnv(t: Checks, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const error = (await spawnDaemon(args, env).then(
    (d) => {
      d.child.kill('SIGKILL');
      return new Error('lockboxd started');
    },
    (e: Error) => e,
  )) as Error;
  t.match(error.message, /^lockboxd exited \(1\) before it was ready/, 'exits 1 before it is ready');
  t.notMatch(error.message, /canary-keyring-value/);
  return error.message;
}

/** The root key id a key file holds. */
async function rootKeyId(path: string): Promise<string> {
  await initCrypto();
  return loadRootKey({ path }).id;
}

t.test('SQLite: a missing or foreign key file stops lockboxd, naming the file and the key ids', async (t) => {
  const dataDir = tempDir(t);
  const base = ['--data-dir', dataDir, '--grpc-addr', '127.0.0.1:0', '--nats-url', 'none'];
  const first = await spawnDaemon(base);
  t.teardown(() => first.child.kill('SIGKILL'));
  t.match(first.output(), /generated a root key/, 'an empty database gets a key');
  await createSecret(first.addr, readFileSync(join(dataDir, 'admin.token'), 'utf8').trim(), 'demo');
  await stop(first);

  const keyFile = join(dataDir, 'master.key');
  const keyId = await rootKeyId(keyFile);
  const saved = join(tempDir(t), 'master.key');
  copyFileSync(keyFile, saved);
  rmSync(keyFile);
  const missing = await refused(t, base);
  t.match(missing, `root key file ${keyFile} does not exist`);
  t.match(missing, new RegExp(`the database needs root key ${keyId} with keyring kr-[0-9a-f]{16} with master key mk-[0-9a-f]{12}`), 'names the root key, the keyring and the master key the database needs');
  t.notOk(existsSync(keyFile), 'no new key was generated');

  // Another deployment's keyring: a fresh data dir makes one.
  const otherDir = tempDir(t);
  const other = await spawnDaemon(['--data-dir', otherDir, '--grpc-addr', '127.0.0.1:0', '--nats-url', 'none']);
  await stop(other);
  const otherKey = join(otherDir, 'master.key');
  const foreign = await refused(t, [...base, '--root-key-file', otherKey]);
  t.match(foreign, `root key file ${otherKey} holds root key ${await rootKeyId(otherKey)}, but the database's keyring is sealed under root key ${keyId}`, 'names the root key id the database needs');
  // The same key given in the environment, as a Kubernetes Secret may: refused the same way.
  const viaEnv = await refusedWithEnv(t, base, { LOCKBOX_ROOT_KEY: readFileSync(otherKey, 'utf8').trim() });
  t.match(viaEnv, `LOCKBOX_ROOT_KEY holds root key ${await rootKeyId(otherKey)}, but the database's keyring is sealed under root key ${keyId}`);

  // The right key file: the value opens again.
  copyFileSync(saved, keyFile);
  const again = await spawnDaemon(base);
  t.teardown(() => again.child.kill('SIGKILL'));
  t.notMatch(again.output(), /generated a root key/);
  await stop(again);
  // And the right key from LOCKBOX_ROOT_KEY, with no file at all.
  rmSync(keyFile);
  const fromEnv = await spawnDaemon(base, { LOCKBOX_ROOT_KEY: readFileSync(saved, 'utf8').trim() });
  t.teardown(() => fromEnv.child.kill('SIGKILL'));
  t.notOk(existsSync(keyFile), 'LOCKBOX_ROOT_KEY needs no file');
  await stop(fromEnv);
});

t.test('PostgreSQL: a replica without the keyring, or with another one, is refused', async (t) => {
  const url = await freshSchema(t);
  const dirA = tempDir(t);
  const args = (dir: string) => ['--data-dir', dir, '--database-url', url, '--grpc-addr', '127.0.0.1:0', '--nats-url', 'none'];
  const first = await spawnDaemon(args(dirA));
  t.teardown(() => first.child.kill('SIGKILL'));
  await stop(first);

  // Only the bootstrap token and its audit entry so far: still not an empty database.
  const dirB = tempDir(t);
  const tokensOnly = await refused(t, args(dirB));
  t.match(tokensOnly, `root key file ${join(dirB, 'master.key')} does not exist; the database needs root key ${await rootKeyId(join(dirA, 'master.key'))} with keyring kr-`);
  t.notOk(existsSync(join(dirB, 'master.key')));

  const again = await spawnDaemon(args(dirA));
  t.teardown(() => again.child.kill('SIGKILL'));
  await createSecret(again.addr, readFileSync(join(dirA, 'admin.token'), 'utf8').trim(), 'demo');
  await stop(again);
  t.match(await refused(t, args(dirB)), new RegExp(`keyring kr-[0-9a-f]{16} with master key mk-[0-9a-f]{12}`));

  const otherDir = tempDir(t);
  await stop(await spawnDaemon(['--data-dir', otherDir, '--grpc-addr', '127.0.0.1:0', '--nats-url', 'none']));
  t.match(await refused(t, [...args(dirB), '--master-key-file', join(otherDir, 'master.key')]), /but the database's keyring is sealed under root key rk-/);

  // A replica given the shared keyring file starts.
  const replica = await spawnDaemon([...args(dirB), '--master-key-file', join(dirA, 'master.key')]);
  t.teardown(() => replica.child.kill('SIGKILL'));
  await stop(replica);
});
