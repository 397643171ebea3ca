/**
 * Planted symlinks never make the agent remove, chmod or write anything outside its mount dirs.
 * Someone who can write a mount dir (a process sharing the pod's file system) plants links to a
 * victim dir outside $BENTOML_HOME, at every place where the writer removes or changes modes:
 * tamper repair, cleanup after a swap, the crash-leftover sweep, clear(), stale visible links and
 * the cleanup of a write that failed half-way (disk full). After each, the victim's files, their
 * contents and the dir's mode are as they were, and the planted entry is logged by path and left
 * alone. A write fails on demand through test/helpers/disk-full.ts.
 */
import t from 'tap';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, realpathSync, renameSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AtomicWriter, PathSafetyError } from '../../agent/src/atomic-writer.js';
import { defaultScope, startAgentWith } from '../helpers/agent.js';
import { tempDir } from '../helpers/daemon.js';
import { diskFull, injectDiskFull } from '../helpers/disk-full.js';

injectDiskFull(t);

const modes = { fileMode: 0o400, dirMode: 0o500 };
const payload = (entries: Record<string, string>) => new Map(Object.entries(entries).map(([k, v]) => [k, Buffer.from(v)]));
type T = { equal(found: unknown, wanted: unknown, message: string): unknown; match(found: unknown, pattern: unknown, message: string): unknown; teardown(fn: () => unknown): void };

/** A dir outside $BENTOML_HOME holding files named like the payload's, mode 0751. */
function plantVictim(t: T): { dir: string; intact(what: string): void } {
  const dir = realpathSync(tempDir(t, 'lockbox-victim-'));
  const files: Record<string, string> = { A: 'victim A', B: 'victim B', '..version': 'victim version', 'sub/C': 'victim C', keep: 'victim keep' };
  mkdirSync(join(dir, 'sub'));
  for (const [rel, text] of Object.entries(files)) writeFileSync(join(dir, rel), text);
  chmodSync(dir, 0o751);
  return {
    dir,
    intact(what) {
      for (const [rel, text] of Object.entries(files)) t.equal(existsSync(join(dir, rel)) ? readFileSync(join(dir, rel), 'utf8') : 'gone', text, `${what}: victim file ${rel} intact`);
      t.equal(statSync(dir).mode & 0o777, 0o751, `${what}: victim dir mode unchanged`);
    },
  };
}

/** A writer on <home>/demo that logs into `lines`. */
function writerWithLog(home: string, rel = 'demo'): { w: AtomicWriter; lines: string[] } {
  const lines: string[] = [];
  const log = { warn: (fields: object, message: string) => lines.push(`${message} ${JSON.stringify(fields)}`) };
  return { w: new AtomicWriter(home, rel, modes, log), lines };
}

/** Points <dir>/..data at `target` the way a swap does (symlink, then rename over). */
function repoint(dir: string, target: string): void {
  symlinkSync(target, join(dir, 'planted-tmp'));
  renameSync(join(dir, 'planted-tmp'), join(dir, '..data'));
}

/** A home with a victim outside it and a writer that has written `first` into <home>/demo. */
async function setUp(t: T, first: Record<string, string>) {
  const home = realpathSync(tempDir(t));
  const victim = plantVictim(t);
  const { w, lines } = writerWithLog(home);
  await w.write(payload(first), 'a=1\n');
  await w.settle();
  const leftAlone = (path: string, target: string) => {
    t.equal(readlinkSync(path), target, `the planted link ${path} is left alone`);
    t.match(lines.join('\n'), path, 'and logged by path');
  };
  return { home, victim, w, lines, dir: join(home, 'demo'), leftAlone };
}

const dataDir = (dir: string) => join(dir, readlinkSync(join(dir, '..data')));

t.test('tamper repair: ..data pointed at a planted ..<timestamp> symlink', async (t) => {
  const { victim, w, dir, leftAlone } = await setUp(t, { A: 'one', B: 'two' });
  const planted = '..2026_01_01_00_00_00.evil';
  symlinkSync(victim.dir, join(dir, planted));
  repoint(dir, planted);

  t.equal(await w.write(payload({ A: 'one', B: 'two' }), 'a=1\n'), true, 'the tampering is found and repaired');
  await w.settle();
  victim.intact('repair');
  t.ok(lstatSync(dataDir(dir)).isDirectory(), '..data points at a real version dir again');
  t.equal(readFileSync(join(dir, 'A'), 'utf8'), 'one');
  leftAlone(join(dir, planted), victim.dir);
});

t.test('cleanup after a swap: the previous version dir replaced by a symlink', async (t) => {
  const { victim, w, dir, leftAlone } = await setUp(t, { A: 'one', B: 'two', 'sub/C': 'three' });
  const v1 = readlinkSync(join(dir, '..data'));
  renameSync(join(dir, v1), join(dir, 'moved-away'));
  symlinkSync(victim.dir, join(dir, v1));

  await w.write(payload({ A: 'uno', B: 'dos', 'sub/C': 'tres' }), 'a=2\n');
  await w.settle();
  victim.intact('cleanup after a swap');
  t.equal(readFileSync(join(dir, 'sub/C'), 'utf8'), 'tres');
  leftAlone(join(dir, v1), victim.dir);
});

t.test('crash-leftover sweep: planted ..<timestamp> links and a leftover holding a link', async (t) => {
  const home = realpathSync(tempDir(t));
  const victim = plantVictim(t);
  const dir = join(home, 'demo');
  mkdirSync(dir);
  symlinkSync(victim.dir, join(dir, '..2020_01_01_00_00_00.link'));
  const leftover = join(dir, '..2020_01_01_00_00_01.crash');
  mkdirSync(join(leftover, 'sub'), { recursive: true });
  writeFileSync(join(leftover, 'A'), 'half-written');
  symlinkSync(victim.dir, join(leftover, 'sub', 'escape'));
  symlinkSync(join(victim.dir, 'A'), join(leftover, 'B'));
  chmodSync(join(leftover, 'sub'), 0o500);
  chmodSync(leftover, 0o500);

  const { w, lines } = writerWithLog(home);
  await w.write(payload({ A: 'one' }), 'a=1\n');
  await w.settle();
  victim.intact('sweep');
  t.notOk(existsSync(leftover), 'a real leftover version dir is removed (its links unlinked, never followed)');
  t.equal(readlinkSync(join(dir, '..2020_01_01_00_00_00.link')), victim.dir, 'the planted link is left alone');
  t.match(lines.join('\n'), join(dir, '..2020_01_01_00_00_00.link'), 'and logged by path');
});

t.test('clear(): the mount dir, or a dir above it, replaced by a symlink', async (t) => {
  for (const [rel, swapped] of [['demo', 'demo'], ['team/demo', 'team']] as const) {
    const home = realpathSync(tempDir(t));
    const { w, lines } = writerWithLog(home, rel);
    await w.write(payload({ A: 'one', 'sub/C': 'three' }), 'a=1\n');
    await w.settle();
    // The layout moves outside; the mount dir (or its parent) becomes a link to it.
    const outside = join(realpathSync(tempDir(t, 'lockbox-victim-')), 'm');
    renameSync(join(home, swapped), outside);
    symlinkSync(outside, join(home, swapped));
    const inside = join(outside, rel === swapped ? '' : 'demo');
    const before = readdirSync(inside).sort();
    const version = readlinkSync(join(inside, '..data'));

    await t.rejects(w.write(payload({ A: 'one', 'sub/C': 'three' }), 'a=1\n'), PathSafetyError, `${rel}: a write refuses the symlink`);
    await w.clear();
    t.same(readdirSync(inside).sort(), before, `${rel}: clear() removed nothing through ${swapped}`);
    t.equal(readFileSync(join(inside, version, 'A'), 'utf8'), 'one', `${rel}: the files outside are intact`);
    t.equal(statSync(join(inside, version)).mode & 0o777, 0o500, `${rel}: and their dir's mode`);
    t.match(lines.join('\n'), join(home, swapped), `${rel}: the refusal is logged by path`);
  }
});

t.test('stale visible links and visible names the writer did not make', async (t) => {
  const { victim, w, dir, leftAlone } = await setUp(t, { A: 'one', B: 'two', 'sub/C': 'three' });
  // B and sub go with the next version: B now leads outside, sub is a real dir of someone else's.
  unlinkSync(join(dir, 'B'));
  symlinkSync(join(victim.dir, 'B'), join(dir, 'B'));
  unlinkSync(join(dir, 'sub'));
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'sub', 'theirs'), 'not the agent\'s');

  await w.write(payload({ A: 'uno' }), 'a=2\n');
  await w.settle();
  victim.intact('stale links');
  leftAlone(join(dir, 'B'), join(victim.dir, 'B'));
  t.equal(readFileSync(join(dir, 'sub', 'theirs'), 'utf8'), 'not the agent\'s', 'so is a real dir at a stale name');

  // A visible name of the payload replaced by a link outside: the link itself is replaced, its
  // target untouched. Replaced by a real dir: refused, left alone.
  unlinkSync(join(dir, 'A'));
  symlinkSync(join(victim.dir, 'A'), join(dir, 'A'));
  t.equal(await w.write(payload({ A: 'uno' }), 'a=2\n'), true);
  await w.settle();
  t.equal(readlinkSync(join(dir, 'A')), '..data/A', 'the visible link is the writer\'s again');
  victim.intact('a visible link replaced');
  unlinkSync(join(dir, 'A'));
  mkdirSync(join(dir, 'A'));
  writeFileSync(join(dir, 'A', 'theirs'), 'x');
  await t.rejects(w.write(payload({ A: 'uno' }), 'a=2\n'), PathSafetyError, 'a real dir where a visible link belongs is refused');
  t.equal(readFileSync(join(dir, 'A', 'theirs'), 'utf8'), 'x', 'and left alone');
});

t.test('disk-full cleanup: the half-written version dir swapped for a symlink', async (t) => {
  const { victim, w, dir, leftAlone } = await setUp(t, { A: 'one' });
  let fresh = '';
  diskFull.under = dir;
  diskFull.onFail = (path) => {
    // The version being written moves away and a link to the victim takes its name.
    fresh = path.slice(0, path.indexOf('/', dir.length + 1));
    renameSync(fresh, `${fresh}-moved`);
    symlinkSync(victim.dir, fresh);
  };
  await t.rejects(w.write(payload({ A: 'uno' }), 'a=2\n'), { code: 'ENOSPC' });
  diskFull.under = '';
  diskFull.onFail = undefined;
  victim.intact('disk-full cleanup');
  leftAlone(fresh, victim.dir);
  t.equal(await w.write(payload({ A: 'uno' }), 'a=2\n'), true, 'the next write goes through');
  await w.settle();
  victim.intact('the next write and its sweep');
  t.equal(readFileSync(join(dir, 'A'), 'utf8'), 'uno');
});

t.test('the real agent: tamper repair and a detached secret, with planted symlinks', async (t) => {
  const victim = plantVictim(t);
  const { d, agent, home, logs } = await startAgentWith(t, [{ name: 'openai', data: { OPENAI_API_KEY: 'sk-canary-1' }, path: 'demo' }, { name: 'other', data: { TOKEN: 't-1' }, path: 'other' }], 'symlinks');
  const dir = join(home, 'demo');
  const planted = '..2026_01_01_00_00_00.evil';
  symlinkSync(victim.dir, join(dir, planted));
  repoint(dir, planted); // inotify sees ..data move: a repair pass
  const start = Date.now();
  while (!logs.some((l) => l.includes(join(dir, planted)))) {
    if (Date.now() - start > 10_000) throw new Error(`the repair never ran: ${logs.join('\n')}`);
    await sleep(20);
  }
  await agent.request({ all: true });
  victim.intact('agent repair');
  t.equal(readFileSync(join(dir, 'OPENAI_API_KEY'), 'utf8'), 'sk-canary-1', 'the agent restored its own version');

  // `other` moves outside, a link takes its place, then the secret is deleted: clear() must refuse.
  const outside = join(realpathSync(tempDir(t, 'lockbox-victim-')), 'm');
  renameSync(join(home, 'other'), outside);
  symlinkSync(outside, join(home, 'other'));
  const before = readdirSync(outside).sort();
  await d.call('DeleteSecret', { scope: defaultScope, name: 'other', force: true });
  await agent.request({ all: true });
  t.same(readdirSync(outside).sort(), before, 'nothing removed through the swapped mount dir');
  t.equal(readFileSync(join(outside, 'TOKEN'), 'utf8'), 't-1');
  t.match(logs.join('\n'), join(home, 'other'), 'the refusal is logged by path');
  t.notOk(logs.join('\n').includes('sk-canary-1'), 'never a value in the log');
});

t.test('..data led outside before a new version: the new version link replaces it; nothing outside is touched', async (t) => {
  const { victim, w, dir } = await setUp(t, { A: 'one', B: 'one' });
  const written = dataDir(dir);
  repoint(dir, victim.dir);
  t.equal(await w.write(payload({ A: 'two', B: 'two' }), 'a=2\n'), true, 'the next version is written');
  await w.settle();
  victim.intact('a new version over a ..data that led outside');
  t.ok(lstatSync(dataDir(dir)).isDirectory(), '..data is the writer\'s link again');
  t.equal(readFileSync(join(dir, 'A'), 'utf8'), 'two', 'readers see the new version');
  t.notOk(existsSync(written), 'the version this writer wrote before is removed (never what ..data led to)');
});

t.test('..data led outside, then repaired: the version the writer had in place goes too (its values stay nowhere)', async (t) => {
  const { victim, w, dir } = await setUp(t, { A: 'one' });
  const written = dataDir(dir);
  repoint(dir, victim.dir);
  t.equal(await w.write(payload({ A: 'one' }), 'a=1\n'), true, 'repaired');
  await w.settle();
  victim.intact('a repair over a ..data that led outside');
  t.notOk(existsSync(written), 'the version ..data no longer pointed at is removed');
  t.same(readdirSync(dir).filter((e) => /^\.\.\d{4}_/.test(e)), [readlinkSync(join(dir, '..data'))], 'one version dir: the one in place');
});

t.test('..data itself: a link to outside is replaced (never followed), a real dir is refused and left alone', async (t) => {
  const { victim, w, dir, lines } = await setUp(t, { A: 'one' });
  repoint(dir, victim.dir);
  t.equal(await w.write(payload({ A: 'one' }), 'a=1\n'), true, 'repaired');
  await w.settle();
  victim.intact('..data led outside');
  t.ok(lstatSync(dataDir(dir)).isDirectory(), '..data is the writer\'s link again');
  t.match(lines.join('\n'), /\.\.data.*did not make|did not make.*\.\.data/, 'what it pointed at is logged');

  unlinkSync(join(dir, '..data'));
  mkdirSync(join(dir, '..data'));
  writeFileSync(join(dir, '..data', 'theirs'), 'x');
  await t.rejects(w.write(payload({ A: 'two' }), 'a=2\n'), PathSafetyError, 'a real dir at ..data is refused');
  await w.clear();
  t.equal(readFileSync(join(dir, '..data', 'theirs'), 'utf8'), 'x', 'clear() leaves it alone too');
  t.match(lines.join('\n'), /nothing removed: .*\.\.data is not a symlink/);
});
