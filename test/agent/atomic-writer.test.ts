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

t.test('a reader holding a handle on a version dir never sees a later version appear in it', async (t) => {
  const home = realpathSync(tempDir(t));
  const w = new AtomicWriter(home, 'held', modes);
  const dir = join(home, 'held');
  await w.write(payload({ A: 'a1', B: 'b1' }), 'v=1\n');
  const { closeSync, constants, openSync } = await import('node:fs');
  const fd = openSync(join(dir, '..data'), constants.O_RDONLY | constants.O_DIRECTORY);
  t.teardown(() => closeSync(fd));
  t.equal(readFileSync(`/proc/self/fd/${fd}/A`, 'utf8'), 'a1', 'the reader has read A of version 1');
  for (const v of [2, 3, 4]) {
    await w.write(payload({ A: `a${v}`, B: `b${v}` }), `v=${v}\n`);
    await w.settle();
    t.throws(() => readFileSync(`/proc/self/fd/${fd}/B`, 'utf8'), { code: 'ENOENT' }, `after version ${v}: B of another version is never read beside A of version 1`);
  }
});
