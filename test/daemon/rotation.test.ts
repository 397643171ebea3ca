import t from 'tap';
import { chmodSync, chownSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { createRequest, startTestDaemon, tempDir } from '../helpers/daemon.js';
import { Keyring } from '../../daemon/src/security/keyring.js';
import { readKeyFile } from '../../daemon/src/security/key-file.js';
import { generateRootKeyFile, loadRootKey } from '../../daemon/src/security/root-key.js';
import { freshKeyringRows } from '../../daemon/src/security/keyring-migration.js';
import { SqliteStore } from '../../daemon/src/store/store-sqlite.js';
import { KeysService } from '../../daemon/src/services/service-keys.js';
import type { Store } from '../../daemon/src/store/store.js';
import { initCrypto } from '../../shared/src/crypto.js';
import { until } from '../helpers/wait.js';

t.test('key rotation under load: every data key re-wrapped, nothing unreadable, writes keep landing', async (t) => {
  const d = await startTestDaemon(t);
  for (let i = 0; i < 300; i++) await d.call('CreateSecret', createRequest(`s${i}`, { V: `value-${i}` }));
  const before = await d.keysCall('ListMasterKeys', {});
  t.equal(before.keys.length, 1);

  let stop = false;
  let writes = 0;
  let reads = 0;
  const errors: string[] = [];
  const load = Array.from({ length: 16 }, async (_, w) => {
    let i = 0;
    while (!stop) {
      const n = (w * 37 + i++) % 300;
      try {
        if (i % 2) {
          await d.call('UpdateSecret', { name: `s${n}`, set: { V: Buffer.from(`value-${n}`) } });
          writes++;
        } else {
          const s = await d.call('GetSecret', { name: `s${n}`, include_values: true });
          if (Buffer.from(s.data.V).toString() !== `value-${n}`) errors.push(`s${n} read a wrong value`);
          reads++;
        }
      } catch (error) {
        errors.push((error as Error).message);
      }
    }
  });
  await new Promise((r) => setTimeout(r, 100));
  const rotated = await d.keysCall('RotateMasterKey', {});
  await new Promise((r) => setTimeout(r, 100));
  stop = true;
  await Promise.all(load);

  t.same(errors, [], 'no call failed during the rotation');
  t.ok(writes > 0 && reads > 0, `${writes} writes and ${reads} reads ran alongside`);
  t.not(rotated.active_key_id, rotated.previous_key_id);
  t.ok(rotated.rewrapped >= 300, `${rotated.rewrapped} data keys re-wrapped`);
  const after = await d.keysCall('ListMasterKeys', {});
  const active = after.keys.find((k: any) => k.active);
  const old = after.keys.find((k: any) => !k.active);
  t.equal(active.id, rotated.active_key_id);
  t.equal(old.data_keys ?? 0, 0, 'the old master key wraps nothing any more');
  for (let i = 0; i < 300; i += 7) {
    const s = await d.call('GetSecret', { name: `s${i}`, include_values: true });
    t.equal(Buffer.from(s.data.V).toString(), `value-${i}`);
  }
  // Kept old versions were re-wrapped too, and everything opens after a restart.
  await d.restart();
  const v1 = await d.call('GetSecret', { name: 's0', version: 1, include_values: true });
  t.equal(Buffer.from(v1.data.V).toString(), 'value-0');
  const keys = await d.keysCall('ListMasterKeys', {});
  t.equal(keys.keys.length, 2, 'the keyring in the database keeps both keys');
  t.equal(keys.keys.find((k: any) => k.active).id, rotated.active_key_id);
  t.match(keys.root_key_id, /^rk-[0-9a-f]{16}$/, 'and names the root key that seals it');
});

t.test('an operator root key file: raw key accepted, read-only is fine for rotation, bad files stop the daemon', async (t) => {
  const dir = tempDir(t);
  const keyFile = join(dir, 'operator.key');
  writeFileSync(keyFile, Buffer.alloc(32, 7).toString('base64') + '\n', { mode: 0o600 });
  chmodSync(keyFile, 0o400);
  const d = await startTestDaemon(t, { masterKeyFile: keyFile });
  await d.call('CreateSecret', createRequest('x', { A: '1' }));
  // The keyring lives in the database: a read-only root key file does not stop a rotation.
  const rotated = await d.keysCall('RotateMasterKey', {});
  t.equal(rotated.rewrapped, 1);
  t.equal(readFileSync(keyFile, 'utf8').trim(), Buffer.alloc(32, 7).toString('base64'), 'the operator file is untouched');
  await d.restart();
  t.equal(Buffer.from((await d.call('GetSecret', { name: 'x', include_values: true })).data.A).toString(), '1', 'everything opens after a restart with the same read-only file');
  t.equal((await d.keysCall('ListMasterKeys', {})).keys.find((k: any) => k.active).id, rotated.active_key_id);
  await d.stop();

  const loose = join(dir, 'loose.key');
  writeFileSync(loose, Buffer.alloc(32, 1).toString('hex'), { mode: 0o644 });
  chmodSync(loose, 0o644);
  await t.rejects(startTestDaemon(t, { masterKeyFile: loose }), /readable by others/);
  const garbage = join(dir, 'garbage.key');
  writeFileSync(garbage, 'not a key', { mode: 0o600 });
  await t.rejects(startTestDaemon(t, { masterKeyFile: garbage }), /neither a 32-byte key/);
  await t.rejects(startTestDaemon(t, { masterKeyFile: join(dir, 'missing.key') }), /does not exist/);
});

t.test('a second rotation while one runs is refused; only operator admins rotate', async (t) => {
  const d = await startTestDaemon(t);
  for (let i = 0; i < 50; i++) await d.call('CreateSecret', createRequest(`s${i}`, { V: 'v' }));
  // The service marks a rotation as running before its first await, so a second call made while
  // the first is in flight is refused, whatever the machine's speed.
  const admin = await d.daemon.auth.authenticate(d.adminToken);
  const first = d.daemon.keys.rotate({ principal: admin, requestId: 'first' });
  await t.rejects(d.daemon.keys.rotate({ principal: admin, requestId: 'second' }), { code: 'ROTATION_IN_PROGRESS' }, 'a second rotation while one runs is refused');
  const ran = await first;
  t.equal(ran.rewrapped, 50, 'the first one ran to the end');
  t.not(ran.active_key_id, ran.previous_key_id);
  // Over gRPC, two at once: one runs; the other is refused with ABORTED or runs after it.
  const [a, b] = await Promise.allSettled([d.keysCall('RotateMasterKey', {}), d.keysCall('RotateMasterKey', {})]);
  const outcomes = [a, b].map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as { code: number }).code));
  t.ok(outcomes.includes('ok'), 'one rotation ran');
  t.ok(outcomes.every((o) => o === 'ok' || o === status.ABORTED), `the other ran after it or was refused (${outcomes})`);
  t.equal((await d.keysCall('RotateMasterKey', {})).rewrapped, 50, 'once they ended, a rotation runs again');
  await t.rejects(d.keysCall('RotateMasterKey', {}, { token: 'lbx_0000000000000000_' + 'A'.repeat(43) }), { code: status.UNAUTHENTICATED });

  // Audited: each rotation that ran names its new key id; a refused one says why. Ids only.
  const reader = (await d.rpc('TokensService', 'CreateToken', { role: 'reader' })).token;
  await t.rejects(d.keysCall('RotateMasterKey', {}, { token: reader }), { code: status.PERMISSION_DENIED });
  const { entries } = await d.rpc('AuditService', 'ListAudit', { action: 'key.rotate', limit: 100 });
  const ok = entries.filter((e: { outcome: string }) => e.outcome === 'ok').map((e: { target: string }) => e.target);
  t.ok(ok.includes(ran.active_key_id), 'the rotation is in the audit log under its new key id');
  t.equal(new Set(ok).size, ok.length, 'one entry per rotation');
  t.ok(entries.some((e: { outcome: string }) => e.outcome === 'ROTATION_IN_PROGRESS' || e.outcome === 'ABORTED'), 'the refused concurrent one too');
  t.ok(entries.some((e: { outcome: string }) => e.outcome === 'PERMISSION_DENIED'), "and the reader's");
});

t.test('a keyring shared through the database: reload takes keys another process added; a root key rotation locks out the old root key', async (t) => {
  await initCrypto();
  const dir = tempDir(t);
  const store = new SqliteStore({ dataDir: dir, maxVersions: 10, auditHasher: () => 'h' });
  t.teardown(() => store.close());
  const path = join(dir, 'root.key');
  t.equal(generateRootKeyFile(path), true);
  t.equal(generateRootKeyFile(path), false, 'an existing root key file is never overwritten');
  const root = loadRootKey({ path });
  t.equal(await store.keyring.seed(freshKeyringRows(root)), true);
  t.equal(await store.keyring.seed(freshKeyringRows(root)), false, 'a keyring is seeded once');
  const first = await Keyring.load(store.keyring, root);
  const second = await Keyring.load(store.keyring, root);
  t.equal(await second.reload(), false, 'nothing new yet');
  const added = await first.rotate();
  t.equal(second.get(added.id), undefined);
  await second.learn([added.id]);
  t.equal(second.active.id, added.id, 'a key id it did not hold made it reload: the new key, active');
  t.equal(second.list().length, 2, 'old keys kept');
  t.same(second.tokenKey, first.tokenKey, 'the token key never changes');

  const nextPath = join(dir, 'next.key');
  generateRootKeyFile(nextPath);
  const next = loadRootKey({ path: nextPath });
  await t.rejects(first.rotateRoot(root), { code: 'ROOT_KEY_MISMATCH' }, 'the current root key is not a new one');
  const { previous, resealed } = await first.rotateRoot(next);
  t.equal(previous, root.id);
  t.equal(resealed, 3, 'two keyring keys and the token key');
  t.ok((await store.keyring.list()).every((r) => r.rootKeyId === next.id));
  // The replica still on the old root key: keeps what it holds, refuses to add a key, says why a new key is missing.
  await t.rejects(second.rotate(), { code: 'ROOT_KEY_MISMATCH', message: new RegExp(`sealed under root key ${next.id}, and this replica holds ${root.id}: restart it`) });
  const third = await first.rotate();
  await second.learn([third.id]);
  t.equal(second.get(third.id), undefined);
  t.match(second.missingReason(third.id), new RegExp(`keyring key ${third.id} is sealed under root key ${next.id}`));
  t.match(second.missingReason('mk-nothing'), /keyring key mk-nothing is not in the keyring/);
  await t.rejects(Keyring.load(store.keyring, root), new RegExp(`holds root key ${root.id}, but the database's keyring is sealed under root key ${next.id}`));
  t.equal((await Keyring.load(store.keyring, next)).active.id, third.id, 'the new root key opens everything');
  await t.rejects(store.keyring.reseal(root.id, next.id, new Map()), { code: 'KEYRING_CHANGED' }, 'a re-seal from a root key no longer in use changes nothing');
});

t.test('key file modes: 0440 is accepted only when the file\'s group is the process\'s own (Kubernetes fsGroup)', async (t) => {
  const dir = tempDir(t);
  const ownGid = process.getgid!();
  const otherGid = [...Array(100).keys()].map((i) => 40000 + i).find((g) => g !== ownGid && !process.getgroups!().includes(g))!;
  const cases: Array<[string, number, number, boolean]> = [
    ['0400', 0o400, ownGid, true],
    ['0600', 0o600, otherGid, true],
    ['0440, own group', 0o440, ownGid, true],
    ['0640, own group', 0o640, ownGid, true],
    ['0440, another group', 0o440, otherGid, false],
    ['0460, own group (group write)', 0o460, ownGid, false],
    ['0444 (others)', 0o444, ownGid, false],
    ['0604 (others)', 0o604, ownGid, false],
  ];
  for (const [what, mode, gid, accepted] of cases) {
    const path = join(dir, `${what.replace(/\W+/g, '-')}.key`);
    writeFileSync(path, Buffer.alloc(32, 3).toString('base64') + '\n');
    chownSync(path, process.getuid!(), gid);
    chmodSync(path, mode);
    if (accepted) t.doesNotThrow(() => readKeyFile(path), what);
    else t.throws(() => readKeyFile(path), /readable by others .*0440 is accepted only when the file's group is this process's own/, what);
  }
  // And through the daemon: a 0440 Secret mounted with the pod's fsGroup starts it.
  const mounted = join(dir, 'mounted.key');
  writeFileSync(mounted, Buffer.alloc(32, 4).toString('base64') + '\n');
  chownSync(mounted, process.getuid!(), ownGid);
  chmodSync(mounted, 0o440);
  const d = await startTestDaemon(t, { masterKeyFile: mounted });
  await d.call('CreateSecret', createRequest('x', { A: '1' }));
  await d.stop();
});

t.test('a rotation cut short (the keyring has the new key, the data keys do not) is finished at the next start', async (t) => {
  const d = await startTestDaemon(t);
  for (let i = 0; i < 20; i++) await d.call('CreateSecret', createRequest(`cut${i}`, { V: `v${i}` }));
  await d.stop();
  // Step (1) alone, as a daemon killed right after it leaves things: a new active key, nothing re-wrapped.
  const store = new SqliteStore({ dataDir: d.dataDir, maxVersions: 10, auditHasher: () => 'h' });
  const keyring = await Keyring.load(store.keyring, loadRootKey({ path: join(d.dataDir, 'master.key') }));
  const fresh = await keyring.rotate();
  await store.close();
  await d.restart();
  await until('the interrupted rotation finished', () => d.logs.some((l) => l.includes('finished an interrupted master key rotation')));
  t.match(d.logs.find((l) => l.includes('finished an interrupted master key rotation')), /"rewrapped":20/);
  const keys = await d.keysCall('ListMasterKeys', {});
  t.match(keys.keys.find((k: { active: boolean }) => k.active), { id: fresh.id, data_keys: 20 }, 'every data key is under the new key');
  t.equal(keys.keys.filter((k: { id: string; data_keys?: number }) => k.id !== fresh.id).reduce((n: number, k: { data_keys?: number }) => n + Number(k.data_keys ?? 0), 0), 0, 'none left under the old one');
  t.equal(Buffer.from((await d.call('GetSecret', { name: 'cut7', include_values: true })).data.V).toString(), 'v7', 'values read back');
});

t.test('a rotation whose audit entry cannot be written after it committed still succeeds, and the lost entry is reported', async (t) => {
  const d = await startTestDaemon(t);
  await d.call('CreateSecret', createRequest('x', { V: 'v' }));
  const admin = await d.daemon.auth.authenticate(d.adminToken);
  // The one failure a real store will not give on demand: appendAudit fails after the commit.
  const store = d.daemon.store;
  const failing = new Proxy(store, {
    get: (target, prop) => (prop === 'appendAudit' ? () => Promise.reject(new Error('audit table unavailable')) : Reflect.get(target, prop, target)),
  }) as Store;
  const failed: string[] = [];
  const keys = new KeysService(failing, d.daemon.keyring, { onAuditFailed: (action, target) => failed.push(`${action} ${target}`) });
  const nextRoot = randomBytes(32).toString('hex');
  const r = await keys.rotateRoot({ principal: admin, requestId: 'root' }, nextRoot);
  t.ok((await store.keyring.list()).every((row) => row.rootKeyId === r.root_key_id), 'the re-seal committed, and the caller is told it did');
  const rotated = await keys.rotate({ principal: admin, requestId: 'key' });
  t.equal(d.daemon.keyring.active.id, rotated.active_key_id);
  t.same(failed, [`key.rotate-root ${r.root_key_id}`, `key.rotate ${rotated.active_key_id}`], 'each lost entry is reported');
});
