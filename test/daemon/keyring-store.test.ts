/**
 * The keyring in the database (issue 13, item 1): an old keyring file (several keys, or one raw
 * key) migrates at start and stays the root key; `lockbox key rotate-root` re-seals the keyring
 * and lockboxd then needs the new root key; replicas on one PostgreSQL take a rotation up at once.
 */
import t from 'tap';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import pg from 'pg';
import { createRequest, startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js';
import { freshSchema } from '../helpers/postgres.js';
import { startNats } from '../helpers/nats.js';
import { runLockbox } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';
import { initCrypto, rewrapDataKey } from '../../shared/src/crypto.js';
import { loadRootKey, rootKeyFrom } from '../../daemon/src/security/root-key.js';
import { rawKeyring } from '../../daemon/src/security/key-file.js';
import { legacyKeyringRows } from '../../daemon/src/security/keyring-migration.js';
import { SqliteStore } from '../../daemon/src/store/store-sqlite.js';

const canary = 'canary-keyring-store-51c0';
const value = async (d: TestDaemon, name: string) => Buffer.from((await d.call('GetSecret', { name, include_values: true })).data.V).toString();

/** Turns a data dir into what lockboxd wrote before the keyring moved into the database: no keyring table, schema step 6. */
function dropKeyringTable(dataDir: string): void {
  const db = new Database(join(dataDir, 'lockbox.db'));
  db.exec('DROP TABLE keyring; DELETE FROM schema_migrations WHERE version = 7;');
  db.close();
}

t.test('an old keyring file (several keys, data keys under both) migrates at start and stays the one file to keep', async (t) => {
  const d = await startTestDaemon(t);
  for (let i = 0; i < 10; i++) await d.call('CreateSecret', createRequest(`s${i}`, { V: `${canary}-${i}` }));
  const first = d.daemon.keyring.active;
  const rotated = await d.keysCall('RotateMasterKey', {});
  const keyring = d.daemon.keyring;
  const second = keyring.active;
  await d.stop();

  // (1) What the old code left: half the data keys still under the first key (a rotation it had
  // not finished), and the keyring in master.key as lockbox-keyring/v1 JSON, mode 0600.
  const db = new Database(join(d.dataDir, 'lockbox.db'));
  const rows = db.prepare('SELECT uid, version, tenant, resource_group, name, wrapped_key FROM secret_versions WHERE name IN (?, ?, ?, ?, ?)').all('s0', 's1', 's2', 's3', 's4') as any[];
  for (const row of rows) {
    const wrapped = rewrapDataKey(row.wrapped_key, second, first, { tenant: row.tenant, resourceGroup: row.resource_group, name: row.name, uid: row.uid, version: Number(row.version) });
    db.prepare('UPDATE secret_versions SET master_key_id = ?, wrapped_key = ? WHERE uid = ? AND version = ?').run(first.id, Buffer.from(wrapped), row.uid, row.version);
  }
  db.close();
  dropKeyringTable(d.dataDir);
  const oldFile = JSON.stringify(
    {
      format: 'lockbox-keyring/v1',
      active: second.id,
      tokenKey: Buffer.from(keyring.tokenKey).toString('base64'),
      keys: keyring.list().map((k) => ({ id: k.id, key: Buffer.from(k.key).toString('base64'), created: k.created })),
    },
    null,
    2,
  ) + '\n';
  const keyFile = join(d.dataDir, 'master.key');
  writeFileSync(keyFile, oldFile, { mode: 0o600 });

  // (2) This version starts on it: the keys move into the database, the file is left as it was.
  await d.restart();
  t.ok(d.logs.some((l) => l.includes('moved the keyring file') && l.includes('"keys":2')), 'the migration is logged');
  t.equal(readFileSync(keyFile, 'utf8'), oldFile, 'the file is untouched');
  await until('the old rotation finished', () => d.logs.some((l) => l.includes('finished an interrupted master key rotation')));
  for (let i = 0; i < 10; i++) t.equal(await value(d, `s${i}`), `${canary}-${i}`, `s${i} opens`);
  const keys = await d.keysCall('ListMasterKeys', {});
  t.same(keys.keys.map((k: any) => [k.id, k.active, Number(k.data_keys)]), [[first.id, false, 0], [rotated.active_key_id, true, 10]], 'both keys, in the database');
  await initCrypto();
  t.equal(keys.root_key_id, loadRootKey({ path: keyFile }).id, 'sealed under the root key the file holds');
  t.equal((await d.rpc('AuditService', 'VerifyAudit', {})).ok, true, 'the audit chain (keyed by the token key) still verifies');
  t.ok(await d.rpc('TokensService', 'ListTokens', {}), 'the admin token still works (same token key)');

  // (3) Later starts read the database's keyring; a rotation no longer touches the file.
  await d.keysCall('RotateMasterKey', {});
  await d.restart();
  t.notOk(d.logs.filter((l) => l.includes('moved the keyring file')).length > 1, 'migrated once');
  t.equal(readFileSync(keyFile, 'utf8'), oldFile, 'still untouched after a rotation');
  t.equal(await value(d, 's3'), `${canary}-3`);
  t.equal((await d.keysCall('ListMasterKeys', {})).keys.length, 3);
  t.notOk(d.logs.some((l) => l.includes(canary)), 'no value in the log');
});

t.test('an old raw-key file migrates too; a foreign keyring file is refused before anything is sealed', async (t) => {
  await initCrypto();
  const dir = tempDir(t);
  const keyFile = join(dir, 'operator.key');
  const raw = randomBytes(32);
  writeFileSync(keyFile, raw.toString('base64') + '\n', { mode: 0o400 });
  // The old code's keyring for a raw-key file: the raw key (id mk-…) and a token key derived from it.
  const dataDir = tempDir(t);
  const store = new SqliteStore({ dataDir, maxVersions: 10, auditHasher: () => 'h' });
  await store.keyring.seed(legacyKeyringRows(rootKeyFrom(rawKeyring(raw), 'old')));
  await store.close();
  const d = await startTestDaemon(t, { dataDir, masterKeyFile: keyFile });
  await d.call('CreateSecret', createRequest('r', { V: canary }));
  const oldKeyId = d.daemon.keyring.active.id;
  await d.stop();
  dropKeyringTable(dataDir);

  // Another deployment's keyring file against this database: refused, and nothing is seeded.
  const foreign = join(dir, 'foreign.key');
  writeFileSync(foreign, JSON.stringify({ format: 'lockbox-keyring/v1', active: 'mk-other', tokenKey: randomBytes(32).toString('base64'), keys: [{ id: 'mk-other', key: randomBytes(32).toString('base64'), created: '' }] }), { mode: 0o600 });
  await t.rejects(startTestDaemon(t, { dataDir, masterKeyFile: foreign }), /holds keyring kr-[0-9a-f]{16}, but the database was sealed by keyring kr-[0-9a-f]{16}/);
  const lacking = join(dir, 'lacking.key');
  const tokenKey = Buffer.from(rawKeyring(raw).tokenKey).toString('base64');
  writeFileSync(lacking, JSON.stringify({ format: 'lockbox-keyring/v1', active: 'mk-other', tokenKey, keys: [{ id: 'mk-other', key: randomBytes(32).toString('base64'), created: '' }] }), { mode: 0o600 });
  await t.rejects(startTestDaemon(t, { dataDir, masterKeyFile: lacking }), new RegExp(`lacks master key ${oldKeyId} that wrap`));

  const again = await startTestDaemon(t, { dataDir, masterKeyFile: keyFile });
  t.ok(again.logs.some((l) => l.includes('moved the keyring file') && l.includes('"keys":1')));
  t.equal(await value(again, 'r'), canary, 'the raw key, now the root key, still opens its data');
  t.equal(again.daemon.keyring.active.id, oldKeyId);
  t.equal(statSync(keyFile).mode & 0o777, 0o400, 'the read-only file stays read-only');
});

t.test('key rotate-root: the keyring is re-sealed; the old root key is refused at start, the new one opens everything', async (t) => {
  const dir = tempDir(t);
  const oldRoot = join(dir, 'root-1.key');
  writeFileSync(oldRoot, randomBytes(32).toString('base64') + '\n', { mode: 0o400 });
  const d = await startTestDaemon(t, { masterKeyFile: oldRoot });
  await d.call('CreateSecret', createRequest('x', { V: canary }));
  const tokenFile = join(dir, 'admin.token');
  writeFileSync(tokenFile, d.adminToken, { mode: 0o600 });
  const cli = (args: string[]) => runLockbox(['--addr', d.daemon.address, '--token-file', tokenFile, ...args], { cwd: dir });

  const newRoot = join(dir, 'root-2.key');
  const r = await cli(['key', 'rotate-root', '--new-root-key-file', 'root-2.key', '--generate']);
  t.equal(r.code, 0, r.stderr);
  await initCrypto();
  const oldId = loadRootKey({ path: oldRoot }).id;
  const newId = loadRootKey({ path: newRoot }).id;
  t.equal(r.stdout, `keyring re-sealed under root key ${newId} (was ${oldId}); 2 keys\nrestart every lockboxd with --root-key-file ${newRoot} (or LOCKBOX_ROOT_KEY): the old root key no longer opens the keyring\n`);
  t.equal(statSync(newRoot).mode & 0o777, 0o600, 'the generated key file is 0600');
  t.match((await cli(['key', 'rotate-root', '--new-root-key-file', 'root-2.key', '--generate'])).stderr, /root-2.key: already exists/, '--generate never overwrites');
  const same = await cli(['key', 'rotate-root', '--new-root-key-file', 'root-2.key']);
  t.match(same.stderr, /FAILED_PRECONDITION \(ROOT_KEY_MISMATCH\): the new root key is the current one/);
  const bad = join(dir, 'bad.key');
  writeFileSync(bad, 'short', { mode: 0o600 });
  t.match((await cli(['key', 'rotate-root', '--new-root-key-file', 'bad.key'])).stderr, /INVALID_ARGUMENT: new_root_key: must be 32 bytes in base64 or hex/);
  t.match((await cli(['key', 'list'])).stdout, new RegExp(`sealed under root key ${newId}`));
  t.equal(await value(d, 'x'), canary, 'the running daemon serves on');
  t.equal((await d.keysCall('RotateMasterKey', {})).rewrapped, 1, 'and rotates: it seals new keys under the new root key');
  const audited = (await d.rpc('AuditService', 'ListAudit', { action: 'key.rotate-root' })).entries.map((e: { target: string; outcome: string }) => `${e.outcome} ${e.target}`);
  t.same(audited, [`ok ${newId}`, 'FAILED_PRECONDITION ', 'INVALID_ARGUMENT '], 'each rotate-root is audited: the one that ran under its new root key id, the refused ones with why');
  await d.stop();

  await t.rejects(d.restart({ masterKeyFile: oldRoot }), new RegExp(`^root key file ${oldRoot} holds root key ${oldId}, but the database's keyring is sealed under root key ${newId}: give lockboxd that root key`), 'the old root key is refused, naming the one needed');
  await d.restart({ masterKeyFile: newRoot });
  t.equal(await value(d, 'x'), canary, 'the new root key opens everything');
  t.notOk(d.logs.some((l) => l.includes(readFileSync(newRoot, 'utf8').trim()) || l.includes(canary)), 'neither the root key nor a value is logged');
});

t.test('PostgreSQL: a rotation on one replica is taken up at once by the others — by its notice, by a key id they did not hold, by the periodic check', async (t) => {
  const nats = await startNats(t);
  const url = await freshSchema(t);
  const masterKeyFile = join(tempDir(t), 'root.key');
  writeFileSync(masterKeyFile, randomBytes(32).toString('base64') + '\n', { mode: 0o400 });
  const a = await startTestDaemon(t, { databaseUrl: url, masterKeyFile, natsUrl: nats.url });
  const onB = { token: a.adminToken };
  const b = await startTestDaemon(t, { databaseUrl: url, masterKeyFile, natsUrl: nats.url, keyringRefreshMs: 0 }); // notices only
  const c = await startTestDaemon(t, { databaseUrl: url, masterKeyFile, natsUrl: '', keyringRefreshMs: 0 }); // neither notices nor checks
  const e = await startTestDaemon(t, { databaseUrl: url, masterKeyFile, natsUrl: '', keyringRefreshMs: 200 }); // the periodic check only
  for (let i = 0; i < 40; i++) await a.call('CreateSecret', createRequest(`p${i}`, { V: `${canary}-${i}` }));
  await until('B follows the notices', () => b.logs.some((l) => l.includes('following other replicas')));

  // Reads on A and C while A rotates (B and E read nothing: they must learn otherwise).
  let stop = false;
  const errors: string[] = [];
  let reads = 0;
  const load = [a, c].map(async (replica) => {
    for (let i = 0; !stop; i++) {
      try {
        const got = Buffer.from((await replica.call('GetSecret', { name: `p${i % 40}`, include_values: true }, onB)).data.V).toString();
        if (got !== `${canary}-${i % 40}`) errors.push(`p${i % 40} read a wrong value`);
        reads++;
      } catch (error) {
        errors.push((error as Error).message);
      }
    }
  });
  const rotated = await a.keysCall('RotateMasterKey', {});
  stop = true;
  await Promise.all(load);
  t.same(errors, [], `${reads} reads on A and C during the rotation, none failed`);
  // A replica that takes the new key up re-wraps too (a data key goes to whichever replica swaps it first).
  t.ok(rotated.rewrapped <= 40, `A re-wrapped ${rotated.rewrapped} of 40, the replicas that took the key up the rest`);

  const sql = new pg.Client({ connectionString: url });
  await sql.connect();
  t.teardown(() => sql.end());
  const keyOf = async (name: string) => (await sql.query('SELECT master_key_id FROM secret_versions WHERE name = $1 ORDER BY version DESC LIMIT 1', [name])).rows[0].master_key_id;

  // B: the notice made it reload; a write through it wraps with the new key.
  await until('B took the new key up from its notice', () => b.daemon.keyring.active.id === rotated.active_key_id);
  await b.call('CreateSecret', createRequest('made-on-b', { V: canary }), onB);
  t.equal(await keyOf('made-on-b'), rotated.active_key_id, 'B wraps new data keys with the new key');

  // C: no notice, no check; a data key it met under the new key made it reload.
  t.equal(Buffer.from((await c.call('GetSecret', { name: 'p7', include_values: true }, onB)).data.V).toString(), `${canary}-7`);
  t.equal(c.daemon.keyring.active.id, rotated.active_key_id, 'C took the new key up by reading');
  await c.call('UpdateSecret', { name: 'p8', set: { V: Buffer.from('on-c') } }, onB);
  t.equal(await keyOf('p8'), rotated.active_key_id, 'and writes with it');

  // E: the periodic check alone.
  await until('E took the new key up at its check', () => e.daemon.keyring.active.id === rotated.active_key_id);
  await e.call('CreateSecret', createRequest('made-on-e', { V: canary }), onB);
  t.equal(await keyOf('made-on-e'), rotated.active_key_id);
  const listed = await c.keysCall('ListMasterKeys', {}, onB);
  t.equal(listed.keys.find((k: any) => k.active).id, rotated.active_key_id);
  t.equal(listed.keys.reduce((n: number, k: any) => n + (k.active ? 0 : Number(k.data_keys ?? 0)), 0), 0, 'nothing is left under the old key');
});

t.test('PostgreSQL: rotate-root re-seals in one transaction; two keys added at once: one wins', async (t) => {
  const url = await freshSchema(t);
  const dir = tempDir(t);
  const oldRoot = join(dir, 'root-1.key');
  writeFileSync(oldRoot, randomBytes(32).toString('base64') + '\n', { mode: 0o400 });
  const d = await startTestDaemon(t, { databaseUrl: url, masterKeyFile: oldRoot });
  await d.call('CreateSecret', createRequest('x', { V: canary }));
  const store = d.daemon.store;
  const before = await store.keyring.list();
  const [first, second] = await Promise.allSettled([d.daemon.keyring.rotate(), d.daemon.keyring.rotate()]);
  const outcomes = [first, second].map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as { code: string }).code));
  t.ok(outcomes.includes('ok'), `one key was added (${outcomes})`);
  const after = await store.keyring.list();
  t.equal(after.filter((r) => r.state === 'active').length, 1, 'never two active keys');
  t.ok(after.length === before.length + 1 || after.length === before.length + 2, 'each added key is kept');
  await t.rejects(store.keyring.reseal('rk-0000000000000000', 'rk-1111111111111111', new Map()), { code: 'KEYRING_CHANGED' });

  const next = randomBytes(32).toString('hex');
  const r = await d.keysCall('RotateRootKey', { new_root_key: next });
  t.equal(Number(r.resealed), after.length);
  t.ok((await store.keyring.list()).every((row) => row.rootKeyId === r.root_key_id), 'every row under the new root key');
  await d.stop();
  await t.rejects(d.restart(), new RegExp(`sealed under root key ${r.root_key_id}`));
  const newRoot = join(dir, 'root-2.key');
  writeFileSync(newRoot, next + '\n', { mode: 0o400 });
  await d.restart({ masterKeyFile: newRoot });
  t.equal(await value(d, 'x'), canary);
});

t.test('PostgreSQL: a key added under the old root key after a rotate-root committed is refused; the keyring stays under one root key', async (t) => {
  const url = await freshSchema(t);
  const d = await startTestDaemon(t, { databaseUrl: url });
  const store = d.daemon.store;
  // (1) Replica A read the keyring (all under the old root key) and sealed its new key under it...
  const oldRootKeyId = d.daemon.keyring.rootKeyId;
  t.ok((await store.keyring.list()).every((row) => row.rootKeyId === oldRootKeyId));
  const late = { id: 'mk-late-0000000000', sealedKey: randomBytes(60), rootKeyId: oldRootKeyId, createTime: new Date().toISOString(), state: 'active' as const };
  // (2) ...then B's re-seal under a new root key committed...
  const r = await d.keysCall('RotateRootKey', { new_root_key: randomBytes(32).toString('hex') });
  // (3) ...and A's insert comes last: refused, not a keyring under two root keys.
  await t.rejects(store.keyring.add(late), { code: 'ROOT_KEY_MISMATCH', message: new RegExp(`sealed under root key ${r.root_key_id}`) });
  const rows = await store.keyring.list();
  t.notOk(rows.some((row) => row.id === late.id), 'the late key is not in the keyring');
  t.ok(rows.every((row) => row.rootKeyId === r.root_key_id), 'every row under the new root key');
  t.equal(rows.filter((row) => row.state === 'active').length, 1, 'the active key is still the one it was');
});

t.test('PostgreSQL: after rotate-root, a replica whose root key file was updated in place reads data keys under a key added since', async (t) => {
  const url = await freshSchema(t);
  const dir = tempDir(t);
  const first = randomBytes(32).toString('base64') + '\n';
  const fileA = join(dir, 'a.key');
  const fileB = join(dir, 'b.key');
  writeFileSync(fileA, first, { mode: 0o600 });
  writeFileSync(fileB, first, { mode: 0o600 });
  const a = await startTestDaemon(t, { databaseUrl: url, masterKeyFile: fileA, natsUrl: '', keyringRefreshMs: 0 });
  const b = await startTestDaemon(t, { databaseUrl: url, masterKeyFile: fileB, natsUrl: '', keyringRefreshMs: 0 });
  const onB = { token: a.adminToken };
  // (1) rotate-root on A; the new key is installed in B's file (a mounted Secret updated in place), B is not restarted.
  const next = randomBytes(32).toString('hex');
  const root = await a.keysCall('RotateRootKey', { new_root_key: next });
  writeFileSync(fileB, next + '\n');
  // (2) A rotates before B restarts; a secret written on A is wrapped by the new keyring key.
  const rotated = await a.keysCall('RotateMasterKey', {});
  await a.call('CreateSecret', createRequest('after', { V: canary }));
  // (3) B meets that key id, reloads, re-reads its root key file and opens the key.
  t.equal(Buffer.from((await b.call('GetSecret', { name: 'after', include_values: true }, onB)).data.V).toString(), canary, 'B reads it');
  t.equal(b.daemon.keyring.rootKeyId, root.root_key_id, 'B took the new root key from its file');
  t.equal(b.daemon.keyring.active.id, rotated.active_key_id);
  t.notOk(b.logs.some((l) => l.includes(next) || l.includes(canary)), 'neither the root key nor a value is logged');
});

t.test('PostgreSQL: an old keyring file shared by the replicas migrates at start', async (t) => {
  const url = await freshSchema(t);
  const dir = tempDir(t);
  const d = await startTestDaemon(t, { databaseUrl: url, masterKeyFile: join(dir, 'seed.key') }).catch(() => undefined);
  t.equal(d, undefined, 'a missing key file given by flag is never generated');
  const first = await startTestDaemon(t, { databaseUrl: url });
  await first.call('CreateSecret', createRequest('pg', { V: canary }));
  await first.keysCall('RotateMasterKey', {});
  const keyring = first.daemon.keyring;
  const oldFile = JSON.stringify({
    format: 'lockbox-keyring/v1',
    active: keyring.active.id,
    tokenKey: Buffer.from(keyring.tokenKey).toString('base64'),
    keys: keyring.list().map((k) => ({ id: k.id, key: Buffer.from(k.key).toString('base64'), created: k.created })),
  });
  await first.stop();
  const sql = new pg.Client({ connectionString: url });
  await sql.connect();
  t.teardown(() => sql.end());
  const [{ version: step }] = (await sql.query("SELECT version FROM schema_migrations WHERE version = (SELECT MAX(version) FROM schema_migrations)")).rows;
  await sql.query('DROP TABLE keyring');
  await sql.query('DELETE FROM schema_migrations WHERE version = $1', [step]);
  const keyFile = join(dir, 'shared.key');
  writeFileSync(keyFile, oldFile, { mode: 0o400 });
  // Two replicas start on it at once: one seeds the keyring, the other takes its rows.
  const [a, b] = await Promise.all([startTestDaemon(t, { databaseUrl: url, masterKeyFile: keyFile }), startTestDaemon(t, { databaseUrl: url, masterKeyFile: keyFile })]);
  t.equal([a, b].filter((r) => r.logs.some((l) => l.includes('moved the keyring file'))).length, 1, 'one replica migrated');
  t.equal(Buffer.from((await b.call('GetSecret', { name: 'pg', include_values: true }, { token: first.adminToken })).data.V).toString(), canary);
  t.equal(Buffer.from((await a.call('GetSecret', { name: 'pg', include_values: true }, { token: first.adminToken })).data.V).toString(), canary);
  t.equal((await a.keysCall('ListMasterKeys', {}, { token: first.adminToken })).keys.length, 2);
  t.equal(readFileSync(keyFile, 'utf8'), oldFile, 'the file is untouched');
});
