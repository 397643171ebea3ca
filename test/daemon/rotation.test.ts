import t from 'tap';
import { chmodSync, chownSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { createRequest, startTestDaemon, tempDir } from '../helpers/daemon.js';
import { Keyring } from '../../daemon/src/security/keyring.js';
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
  const keyring = JSON.parse(readFileSync(join(d.dataDir, 'master.key'), 'utf8'));
  t.equal(keyring.keys.length, 2, 'the keyring file keeps both keys');
  t.equal(keyring.active, rotated.active_key_id);
});

t.test('an operator key file: raw key accepted, read-only refused for rotation, bad files stop the daemon', async (t) => {
  const dir = tempDir(t);
  const keyFile = join(dir, 'operator.key');
  writeFileSync(keyFile, Buffer.alloc(32, 7).toString('base64') + '\n', { mode: 0o600 });
  chmodSync(keyFile, 0o400);
  const d = await startTestDaemon(t, { masterKeyFile: keyFile });
  await d.call('CreateSecret', createRequest('x', { A: '1' }));
  // A file without the owner-write bit is read-only by intent (even for root).
  await t.rejects(d.keysCall('RotateMasterKey', {}), { code: status.FAILED_PRECONDITION, details: /not writable/ });
  t.equal(readFileSync(keyFile, 'utf8').trim(), Buffer.alloc(32, 7).toString('base64'), 'the operator file is untouched');
  chmodSync(keyFile, 0o600);
  const rotated = await d.keysCall('RotateMasterKey', {});
  t.equal(rotated.rewrapped, 1);
  await d.restart();
  t.equal(Buffer.from((await d.call('GetSecret', { name: 'x', include_values: true })).data.A).toString(), '1', 'a raw-key file became a keyring that still opens everything');
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
  const first = d.daemon.keys.rotate(admin);
  await t.rejects(d.daemon.keys.rotate(admin), { code: 'ROTATION_IN_PROGRESS' }, 'a second rotation while one runs is refused');
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
});

t.test('a keyring shared by replicas: refresh takes keys added by another process, refuses another keyring', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'master.key');
  Keyring.generate(path);
  const first = Keyring.open(path);
  const second = Keyring.open(path);
  t.equal(second.refresh(), false, 'nothing new yet');
  const added = first.rotate();
  t.equal(second.get(added.id), undefined);
  t.equal(second.refresh(), true);
  t.equal(second.active.id, added.id, 'the new key, active');
  t.equal(second.list().length, 2, 'old keys kept');
  rmSync(path);
  Keyring.generate(path);
  t.throws(() => second.refresh(), /now holds a different keyring/);
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
    if (accepted) t.doesNotThrow(() => Keyring.open(path), what);
    else t.throws(() => Keyring.open(path), /readable by others .*0440 is accepted only when the file's group is this process's own/, what);
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
  const keyring = Keyring.open(join(d.dataDir, 'master.key'));
  const fresh = keyring.rotate();
  await d.restart();
  await until('the interrupted rotation finished', () => d.logs.some((l) => l.includes('finished an interrupted master key rotation')));
  t.match(d.logs.find((l) => l.includes('finished an interrupted master key rotation')), /"rewrapped":20/);
  const keys = await d.keysCall('ListMasterKeys', {});
  t.match(keys.keys.find((k: { active: boolean }) => k.active), { id: fresh.id, data_keys: 20 }, 'every data key is under the new key');
  t.equal(keys.keys.filter((k: { id: string; data_keys?: number }) => k.id !== fresh.id).reduce((n: number, k: { data_keys?: number }) => n + Number(k.data_keys ?? 0), 0), 0, 'none left under the old one');
  t.equal(Buffer.from((await d.call('GetSecret', { name: 'cut7', include_values: true })).data.V).toString(), 'v7', 'values read back');
});
