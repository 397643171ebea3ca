import t from 'tap';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, statSync, statfsSync, symlinkSync, writeFileSync, existsSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { AtomicWriter, PathSafetyError } from '../../agent/src/atomic-writer.js';
import { tempDir } from '../helpers/daemon.js';

const modes = { fileMode: 0o400, dirMode: 0o500 };
const payload = (entries: Record<string, string>) => new Map(Object.entries(entries).map(([k, v]) => [k, Buffer.from(v)]));

// On a disk every version is fsynced before the swap; on tmpfs (where Kubernetes puts secret
// volumes) there is nothing to flush and the writer skips it: the layout is the same on both.
const fileSystems: Array<[string, (t: { teardown(fn: () => unknown): void }) => string]> = [['a disk-backed dir', (t) => tempDir(t)]];
if (existsSync('/dev/shm') && statfsSync('/dev/shm').type === 0x01021994)
  fileSystems.push(['tmpfs', (t) => {
    const dir = mkdtempSync(join('/dev/shm', 'lockbox-test-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }]);

for (const [where, makeHome] of fileSystems) t.test(`writes the Kubernetes layout and swaps it atomically (${where})`, async (t) => {
  const home = realpathSync(makeHome(t));
  const w = new AtomicWriter(home, 'demo', modes);
  t.equal(await w.write(payload({ A: 'one', 'sub/dir/B': 'two' }), 'a=1\n'), true);
  const dir = join(home, 'demo');
  const data = readlinkSync(join(dir, '..data'));
  t.match(data, /^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\./);
  t.equal(readlinkSync(join(dir, 'A')), '..data/A');
  t.equal(readlinkSync(join(dir, 'sub')), '..data/sub');
  t.equal(readFileSync(join(dir, 'sub/dir/B'), 'utf8'), 'two');
  t.equal(readFileSync(join(dir, '..version'), 'utf8'), 'a=1\n');
  t.equal(statSync(join(dir, data, 'A')).mode & 0o777, 0o400);
  t.equal(statSync(join(dir, data)).mode & 0o777, 0o500);
  t.equal(statSync(join(dir, data, 'sub/dir')).mode & 0o777, 0o500);

  t.equal(await w.write(payload({ A: 'one', 'sub/dir/B': 'two' }), 'a=1\n'), false, 'nothing changed: no rewrite');
  t.equal(readlinkSync(join(dir, '..data')), data);

  t.equal(await w.write(payload({ A: 'uno', C: 'three' }), 'a=2\n'), true);
  t.not(readlinkSync(join(dir, '..data')), data, 'a new version dir');
  t.equal(readFileSync(join(dir, 'A'), 'utf8'), 'uno', 'readable when write() returns');
  t.equal(readFileSync(join(dir, 'C'), 'utf8'), 'three', 'new names too');
  t.notOk(existsSync(join(dir, 'sub/dir/B')), 'a dropped entry no longer resolves');
  await w.settle(); // step (6) runs in the background
  t.notOk(existsSync(join(dir, 'sub')) || readdirSync(dir).includes('sub'), 'entries the payload dropped are removed');
  t.notOk(existsSync(join(dir, data)), 'the old version dir is gone');
  t.same(readdirSync(dir).filter((e) => e.startsWith('..2')).length, 1);
  t.same(readdirSync(dir).sort(), ['..data', '..version', readlinkSync(join(dir, '..data')), 'A', 'C'].sort());

  await w.clear();
  t.same(readdirSync(dir), [], 'clear removes everything the writer made');
});

t.test('hostile paths are refused before anything is written', async (t) => {
  const home = realpathSync(tempDir(t));
  for (const bad of ['..', '../x', 'a/../../etc', '/etc', '..sneaky', 'a//b', 'a\0b', 'a/..data'])
    t.throws(() => new AtomicWriter(home, bad, modes), PathSafetyError, `mount path ${JSON.stringify(bad)}`);
  const w = new AtomicWriter(home, 'ok', modes);
  for (const bad of ['../escape', '/abs', '..data', 'x/../../y', '..version'])
    await t.rejects(w.write(payload({ [bad]: 'x' }), ''), PathSafetyError, `file ${JSON.stringify(bad)}`);
  t.same(readdirSync(home), [], 'nothing was created');

  const outside = tempDir(t);
  symlinkSync(outside, join(home, 'evil'));
  await t.rejects(new AtomicWriter(home, 'evil/x', modes).write(payload({ A: 'x' }), ''), /is a symlink; refusing/);
  t.same(readdirSync(outside), [], 'nothing written through the symlink');
  writeFileSync(join(home, 'file'), 'x');
  await t.rejects(new AtomicWriter(home, 'file/x', modes).write(payload({ A: 'x' }), ''), /not a directory/);
});

t.test('tampered files are detected and a write restores them', async (t) => {
  const home = realpathSync(tempDir(t));
  const w = new AtomicWriter(home, 'demo', modes);
  const p = payload({ A: 'one', B: 'two' });
  await w.write(p, 'v1');
  t.equal(await w.matches(p, 'v1'), true);
  const dir = join(home, 'demo');
  const { rmSync } = await import('node:fs');
  rmSync(join(dir, 'A'));
  t.equal(await w.matches(p, 'v1'), false, 'a deleted link');
  t.equal(await w.write(p, 'v1'), true);
  t.equal(readFileSync(join(dir, 'A'), 'utf8'), 'one');
  writeFileSync(join(dir, 'B.tmp'), 'ignored: not ours');
  t.equal(await w.matches(p, 'v1'), true, 'foreign files beside the mount are left alone');
  rmSync(join(dir, 'B'));
  writeFileSync(join(dir, 'B'), 'forged');
  t.equal(await w.matches(p, 'v1'), false, 'a link replaced by a file');
  await w.write(p, 'v1');
  t.ok(lstatSync(join(dir, 'B')).isSymbolicLink());
  t.equal(readFileSync(join(dir, 'B'), 'utf8'), 'two');
});

t.test('group-readable modes with a group owner', async (t) => {
  const home = realpathSync(tempDir(t));
  // A group the process is not in by default, so the owner can only come from the writer's chown:
  // as root any gid will do (65534, nogroup); otherwise one of the user's other groups.
  const gid = process.getuid!() === 0 ? 65534 : process.getgroups!().find((g) => g !== process.getgid!());
  if (gid === undefined) return t.pass('skipped: proving the chown needs root or a second group', { skip: true });
  t.not(gid, process.getgid!(), 'a group other than the process own');
  const w = new AtomicWriter(home, 'g', { fileMode: 0o440, dirMode: 0o550, gid });
  await w.write(payload({ A: 'x' }), '');
  const file = statSync(join(home, 'g', 'A'));
  t.equal(file.mode & 0o777, 0o440);
  t.equal(file.gid, gid);
  mkdirSync(join(home, 'other'));
});

t.test('trustWritten skips reading back only the version this writer wrote last', async (t) => {
  const home = realpathSync(tempDir(t));
  const w = new AtomicWriter(home, 'trust', { fileMode: 0o400, dirMode: 0o500 });
  t.equal(await w.write(payload({ K: 'one' }), 'k=1\n'), true);
  await w.settle();
  const dataDir = join(home, 'trust', readlinkSync(join(home, 'trust', '..data')));
  const { chmodSync, unlinkSync } = await import('node:fs');
  chmodSync(dataDir, 0o700);
  unlinkSync(join(dataDir, 'K'));
  t.equal(await w.write(payload({ K: 'one' }), 'k=1\n', { trustWritten: true }), false, 'trusted: not read back');
  t.equal(await w.write(payload({ K: 'two' }), 'k=2\n', { trustWritten: true }), true, 'a new version is written whatever the trust');
  t.equal(readFileSync(join(home, 'trust', 'K'), 'utf8'), 'two');
  t.equal(await w.write(payload({ K: 'two' }), 'k=2\n'), false, 'untrusted and intact: nothing to do');
});

t.test('the version in place, for watchers: its dirs, and whether ..data is where the writer put it', async (t) => {
  const home = realpathSync(tempDir(t));
  const w = new AtomicWriter(home, 'demo', modes);
  t.same(w.versionDirs(), [], 'nothing written yet');
  t.equal(await w.ownSwap(), false);
  await w.write(payload({ A: 'one', 'sub/dir/B': 'two' }), 'a=1\n');
  const dir = join(home, 'demo');
  const version = join(dir, readlinkSync(join(dir, '..data')));
  t.same(w.versionDirs().sort(), [version, join(version, 'sub'), join(version, 'sub/dir')].sort());
  t.equal(w.versionDirs()[0], version, 'the version dir first');
  t.equal(await w.ownSwap(), true);

  // A writer started later (an agent restart) adopts what is on disk when it matches.
  const again = new AtomicWriter(home, 'demo', modes);
  t.equal(await again.write(payload({ A: 'one', 'sub/dir/B': 'two' }), 'a=1\n'), false);
  t.equal(again.versionDirs()[0], version);
  t.equal(await again.ownSwap(), true);

  mkdirSync(join(dir, '..2000_01_01_00_00_00.x'));
  symlinkSync('..2000_01_01_00_00_00.x', join(dir, 'tmp-link'));
  renameSync(join(dir, 'tmp-link'), join(dir, '..data'));
  t.equal(await w.ownSwap(), false, '..data pointed elsewhere by someone else');
});

t.test('a file where a directory of the mount path should be is refused as unsafe, not retried as a disk error', async (t) => {
  const home = realpathSync(tempDir(t));
  writeFileSync(join(home, 'models'), 'not a dir');
  const w = new AtomicWriter(home, 'models/demo', { fileMode: 0o400, dirMode: 0o500 });
  await t.rejects(w.write(payload({ K: 'v' }), ''), { name: 'PathSafetyError', message: /models is not a directory/ });
  t.equal(readFileSync(join(home, 'models'), 'utf8'), 'not a dir', 'the file is left as it was');
});

t.test('file modes are exact whatever the umask', async (t) => {
  const home = realpathSync(tempDir(t));
  const previous = process.umask(0o077); // would clear every group and other bit
  t.teardown(() => void process.umask(previous));
  const w = new AtomicWriter(home, 'shared', { fileMode: 0o440, dirMode: 0o550 });
  await w.write(payload({ A: 'x' }), '');
  t.equal(statSync(join(home, 'shared', 'A')).mode & 0o777, 0o440, 'group-readable as asked, not 0400');
});

/** The version dirs of `dir` other than the one ..data points at. */
const others = (dir: string) => readdirSync(dir).filter((n) => /^\.\.\d{4}_/.test(n) && n !== readlinkSync(join(dir, '..data')));

t.test('the version before is emptied and becomes the next version: one dir fewer made and removed per rotation', async (t) => {
  const home = realpathSync(tempDir(t));
  const w = new AtomicWriter(home, 'spare', modes);
  const dir = join(home, 'spare');
  await w.write(payload({ K: 'sk-1', 'sub/S': 's-1' }), 'k=1\n');
  await w.settle();
  const first = join(dir, readlinkSync(join(dir, '..data')));
  const inode = statSync(first).ino;
  await w.write(payload({ K: 'sk-2', 'sub/S': 's-2' }), 'k=2\n');
  await w.settle();
  t.same(others(dir), [first.slice(dir.length + 1)], 'the first version dir stands beside the second');
  t.same(readdirSync(first), [], 'emptied: no value of the old version is left in it');
  t.equal(statSync(first).mode & 0o777, 0o700, 'left open, for the next write to fill');

  await w.write(payload({ K: 'sk-3', 'sub/S': 's-3' }), 'k=3\n');
  const third = join(dir, readlinkSync(join(dir, '..data')));
  t.not(third, first, 'under a new version name');
  t.equal(statSync(third).ino, inode, 'the same dir, renamed');
  t.equal(statSync(third).mode & 0o777, 0o500, 'made read-only again');
  t.equal(readFileSync(join(dir, 'K'), 'utf8'), 'sk-3');
  t.equal(readFileSync(join(dir, 'sub/S'), 'utf8'), 's-3');
  t.equal(readFileSync(join(dir, '..version'), 'utf8'), 'k=3\n');
  await w.settle();
  t.equal(others(dir).length, 1, 'never more than one version dir beside the current one');

  await w.clear();
  t.same(readdirSync(dir), [], 'clear removes the spare too');
});

t.test('a spare that is no longer the empty dir the writer left is not written into', async (t) => {
  const setUp = async (name: string) => {
    const logs: string[] = [];
    const w = new AtomicWriter(home, name, modes, { warn: (o: object, m: string) => void logs.push(`${JSON.stringify(o)} ${m}`) });
    const dir = join(home, name);
    await w.write(payload({ K: 'one' }), 'k=1\n');
    await w.write(payload({ K: 'two' }), 'k=2\n');
    await w.settle();
    return { w, dir, logs, spare: join(dir, others(dir)[0]) };
  };
  const home = realpathSync(tempDir(t));
  const outside = realpathSync(tempDir(t, 'lockbox-victim-'));

  // Swapped for a link that leads outside: the rename moves the link, which is never followed.
  const linked = await setUp('linked');
  rmSync(linked.spare, { recursive: true });
  symlinkSync(outside, linked.spare);
  t.equal(await linked.w.write(payload({ K: 'three' }), 'k=3\n'), true);
  await linked.w.settle();
  t.same(readdirSync(outside), [], 'nothing written through the link');
  t.equal(readFileSync(join(linked.dir, 'K'), 'utf8'), 'three', 'the version went into a new dir');
  t.ok(lstatSync(join(linked.dir, readlinkSync(join(linked.dir, '..data')))).isDirectory());
  t.match(linked.logs.join('\n'), /left alone: named like a version dir but not a directory/, 'the moved link is reported, left alone');

  // Something planted in it: not used, and swept.
  const planted = await setUp('planted');
  const { chmodSync } = await import('node:fs');
  chmodSync(planted.spare, 0o700);
  writeFileSync(join(planted.spare, 'K'), 'planted');
  t.equal(await planted.w.write(payload({ K: 'three' }), 'k=3\n'), true);
  await planted.w.settle();
  t.equal(readFileSync(join(planted.dir, 'K'), 'utf8'), 'three', 'the planted file is not in the new version');
  t.same(others(planted.dir).map((n) => readdirSync(join(planted.dir, n))), [[]], 'the planted dir is swept: the one dir beside the current version is the version before, emptied');

  // Removed by someone: a new dir, and the next write has a spare again.
  const gone = await setUp('gone');
  rmSync(gone.spare, { recursive: true });
  t.equal(await gone.w.write(payload({ K: 'three' }), 'k=3\n'), true);
  await gone.w.settle();
  t.equal(readFileSync(join(gone.dir, 'K'), 'utf8'), 'three');
  t.equal(others(gone.dir).length, 1, 'the version before is the spare again');
});

t.test('a spare left by a crash is swept by the next writer', async (t) => {
  const home = realpathSync(tempDir(t));
  const w = new AtomicWriter(home, 'crash', modes);
  await w.write(payload({ K: 'one' }), 'k=1\n');
  await w.write(payload({ K: 'two' }), 'k=2\n');
  await w.settle();
  const dir = join(home, 'crash');
  t.equal(others(dir).length, 1, 'a spare stands when the agent dies');
  const restarted = new AtomicWriter(home, 'crash', modes);
  t.equal(await restarted.write(payload({ K: 'three' }), 'k=3\n'), true);
  await restarted.settle();
  t.same(others(dir), [], 'the restarted writer swept it (and the version it replaced it removed: it did not write that one)');
  t.equal(readFileSync(join(dir, 'K'), 'utf8'), 'three');
});
