/**
 * Writes a set of files into a directory so that readers see the old set or the new set, never a
 * mix: the Kubernetes AtomicWriter layout (pkg/volume/util/atomic_writer.go).
 *
 *   <dir>/..<timestamp>/…     one version of the files (dirs 0500, files 0400 by default)
 *   <dir>/..data  → ..<timestamp>      swapped by rename: the atomic step
 *   <dir>/<name>  → ..data/<name>      every visible top-level entry
 *   <dir>/..version → ..data/..version what is inside, for watchers ("name=version" lines)
 *
 * write(payload):
 * 1. Validate every payload path before anything is written (relative, no "..", no reserved
 *    "..x" segment), and check that <dir> and its parents below the root are real directories,
 *    not symlinks (a symlink could lead the write outside $BENTOML_HOME).
 * 2. Read the version ..data points at; when its files equal the payload and every visible link
 *    is in place, stop: nothing is rewritten.
 * 3. Write the payload into a new ..<timestamp> dir: each file written and fsynced, then modes
 *    set, then the dirs fsynced and made read-only.
 * 4. Make ..data_tmp point at it and rename it over ..data: readers switch at once.
 * 5. Create the visible links of new top-level entries. write() returns here: the new files are
 *    readable under their names.
 * 6. In the background (the next write, clear() and settle() wait for it): fsync <dir> so the
 *    swap itself is durable, remove visible links the payload no longer has, the old
 *    ..<timestamp> dir, and any version dir a crash left behind.
 * One writer per dir: the agent groups every file of a dir into one payload. All I/O is async, so
 * many writers (many agents in one process, or many dirs) overlap their fsyncs; keeping (6) off
 * the path to (5) keeps a rotation's visible latency to the writes readers need.
 */
import { chmod, chown, lstat, mkdir, mkdtemp, open, readFile, readdir, readlink, rename, rm, rmdir, symlink, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { relativePathProblem } from '../../shared/src/mount-path.js';

export const DATA_LINK = '..data';
export const VERSION_FILE = '..version';

export interface WriterModes {
  fileMode: number;
  dirMode: number;
  /** Group owner for files and dirs (with modes like 0440 / 0550). */
  gid?: number;
}

export class PathSafetyError extends Error {
  override name = 'PathSafetyError';
}

async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Relative paths of every file under `dir`, following no symlinks. */
async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await listFiles(join(dir, entry.name), rel)));
    else out.push(rel);
  }
  return out;
}

/** The dirs under a version dir that hold the payload's nested files. */
function subdirs(root: string, paths: Iterable<string>): string[] {
  const out = new Set<string>();
  for (const rel of paths) for (let d = dirname(rel); d !== '.'; d = dirname(d)) out.add(join(root, d));
  return [...out];
}

function timestampName(): string {
  const d = new Date();
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `..${d.getUTCFullYear()}_${p(d.getUTCMonth() + 1)}_${p(d.getUTCDate())}_${p(d.getUTCHours())}_${p(d.getUTCMinutes())}_${p(d.getUTCSeconds())}.`;
}

/** The process umask: files are created with their final mode unless it would strip bits. */
const umask = process.umask();

export class AtomicWriter {
  readonly dir: string;
  /** Step (6) of the last write, still running. */
  private tail: Promise<void> = Promise.resolve();
  /** Whether leftovers of a crash were looked for. */
  private swept = false;
  /** What this writer last put in place: its version text, version dir and visible names. */
  private written: { version: string; dir: string; top: Set<string>; dirs: string[] } | undefined;

  /** `root` is $BENTOML_HOME (already resolved); `relDir` the mount path under it. */
  constructor(
    readonly root: string,
    readonly relDir: string,
    private readonly modes: WriterModes,
  ) {
    const problem = relativePathProblem(relDir);
    if (problem) throw new PathSafetyError(`mount path ${JSON.stringify(relDir)} ${problem}`);
    this.dir = join(root, relDir);
  }

  /** Step (1), second half: every existing segment from the root to `dir` is a real directory. */
  private async ensureDir(): Promise<void> {
    let current = this.root;
    for (const segment of this.relDir.split('/')) {
      current = join(current, segment);
      let stat;
      try {
        stat = await lstat(current);
      } catch {
        await mkdir(current, { mode: 0o755 }).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'EEXIST') throw error;
        });
        continue;
      }
      if (stat.isSymbolicLink()) throw new PathSafetyError(`${current} is a symlink; refusing to write through it (it could lead outside ${this.root})`);
      if (!stat.isDirectory()) throw new PathSafetyError(`${current} is not a directory`);
    }
  }

  private async currentVersionDir(): Promise<string | undefined> {
    try {
      const target = await readlink(join(this.dir, DATA_LINK));
      if (!/^\.\.\d{4}_/.test(target) || target.includes('/')) throw new PathSafetyError(`${join(this.dir, DATA_LINK)} points at ${target}, which this writer did not make`);
      return join(this.dir, target);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  private topLevel(paths: Iterable<string>): Set<string> {
    return new Set([...paths].map((p) => p.split('/')[0]));
  }

  /** Whether the files and links on disk are exactly `payload` (+ `version`). */
  async matches(payload: Map<string, Buffer>, version: string): Promise<boolean> {
    try {
      const current = await this.currentVersionDir();
      if (!current) return false;
      // The version text first: when a new version arrives it differs, and nothing else is read.
      if ((await readFile(join(current, VERSION_FILE), 'utf8')) !== version) return false;
      const files = (await listFiles(current)).filter((f) => f !== VERSION_FILE);
      if (files.length !== payload.size) return false;
      for (const [rel, content] of payload) if (!(await readFile(join(current, rel))).equals(content)) return false;
      for (const name of [...this.topLevel(payload.keys()), VERSION_FILE]) {
        const link = join(this.dir, name);
        if (!(await lstat(link)).isSymbolicLink() || (await readlink(link)) !== `${DATA_LINK}/${name}`) return false;
      }
      return true;
    } catch {
      return false;
    }
  }

  /** Steps (1)-(5), with (6) left running. Returns false when nothing had to change. */
  async write(payload: Map<string, Buffer>, version: string, options: { trustWritten?: boolean } = {}): Promise<boolean> {
    for (const rel of payload.keys()) {
      const problem = relativePathProblem(rel); // (1)
      if (problem) throw new PathSafetyError(`file ${JSON.stringify(rel)} ${problem}`);
    }
    await this.settle();
    // (2) The caller may trust that what this writer wrote last is still in place (the agent does
    // between full checks: tampering is found by its repair pass, which never trusts).
    if (options.trustWritten && this.written?.version === version) return false;
    await this.ensureDir();
    // A version other than the one this writer put there last is new: nothing to read back.
    // The same version is checked on disk in full (that is how tampering is found and repaired).
    const last = this.written;
    const fresher = last !== undefined && last.version !== version;
    if (!fresher && (await this.matches(payload, version))) {
      // What is on disk is what this writer would write: adopt it (after a restart, say).
      const current = (await this.currentVersionDir())!;
      this.written = { version, dir: current, top: this.topLevel(payload.keys()), dirs: [current, ...subdirs(current, payload.keys())] };
      return false;
    }
    const old = fresher ? last.dir : await this.currentVersionDir();

    const fresh = await mkdtemp(join(this.dir, timestampName())); // (3)
    const dirs = new Set<string>([fresh]);
    const { fileMode, dirMode, gid } = this.modes;
    const put = async (rel: string, content: Buffer) => {
      const path = join(fresh, rel);
      if (dirname(path) !== fresh) {
        for (let d = dirname(path); d !== fresh && !dirs.has(d); d = dirname(d)) dirs.add(d);
        await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      }
      // Created with its final mode (an fd opened for writing stays writable); set again only
      // when the umask would have stripped bits.
      const handle = await open(path, 'wx', fileMode);
      try {
        await handle.writeFile(content);
        await handle.sync();
        if (gid !== undefined) await handle.chown(process.getuid?.() ?? 0, gid);
        if ((fileMode & ~umask) !== fileMode || gid !== undefined) await handle.chmod(fileMode);
      } finally {
        await handle.close();
      }
    };
    await Promise.all([...payload].map(([rel, content]) => put(rel, content)).concat(put(VERSION_FILE, Buffer.from(version))));
    for (const d of [...dirs].sort((a, b) => b.length - a.length)) {
      await fsyncPath(d);
      if (gid !== undefined) await chown(d, process.getuid?.() ?? 0, gid);
      await chmod(d, dirMode);
    }

    const tmpLink = join(this.dir, `${DATA_LINK}_tmp`); // (4)
    const target = fresh.slice(this.dir.length + 1);
    await symlink(target, tmpLink).catch(async (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
      await rm(tmpLink, { force: true }); // left by a crash between symlink and rename
      await symlink(target, tmpLink);
    });
    await rename(tmpLink, join(this.dir, DATA_LINK));

    const newTop = this.topLevel(payload.keys()); // (5)
    // After a clean write of other names, or none before, every link is checked; when only the
    // version changed, the links this writer made still stand (a removed one is tampering, which
    // the agent's repair pass finds through matches()).
    const sameNames = fresher && newTop.size === last.top.size && [...newTop].every((n) => last.top.has(n));
    for (const name of sameNames ? [] : [...newTop, VERSION_FILE]) {
      const link = join(this.dir, name);
      const wanted = `${DATA_LINK}/${name}`;
      let stat;
      try {
        stat = await lstat(link);
      } catch {
        await symlink(wanted, link);
        continue;
      }
      if (stat.isSymbolicLink() && (await readlink(link)) === wanted) continue;
      // Something else stands where a link belongs (tampering, or a stale file): replace it.
      await rm(link, { recursive: true, force: true });
      await symlink(wanted, link);
    }
    this.written = { version, dir: fresh, top: newTop, dirs: [...dirs] };
    this.tail = this.finish(old, fresh, newTop, fresher ? last.top : undefined).catch(() => {
      this.swept = false; // what (6) could not remove now, the next write's sweep removes
    });
    return true;
  }

  /** The dirs of the version in place (its ..<timestamp> dir first, then its subdirs), once written or checked. */
  versionDirs(): string[] {
    return this.written?.dirs ?? [];
  }

  /** Whether ..data points where this writer last put it (a swap seen by a watcher was its own). */
  async ownSwap(): Promise<boolean> {
    try {
      return this.written !== undefined && join(this.dir, await readlink(join(this.dir, DATA_LINK))) === this.written.dir;
    } catch {
      return false;
    }
  }

  /** Waits for the background part (6) of the last write. */
  settle(): Promise<void> {
    return this.tail;
  }

  /** Step (6). `oldTop`: the old version's visible names, when this writer knows them. */
  private async finish(old: string | undefined, fresh: string, newTop: Set<string>, oldTop: Set<string> | undefined): Promise<void> {
    await fsyncPath(this.dir);
    if (old && old !== fresh) {
      const previous = oldTop ?? ((await exists(old)) ? this.topLevel((await listFiles(old)).filter((f) => f !== VERSION_FILE)) : new Set<string>());
      await Promise.all([...previous].filter((name) => !newTop.has(name)).map((name) => rm(join(this.dir, name), { force: true })));
      await this.removeVersionDir(old);
    }
    if (!this.swept) await this.removeStrayVersionDirs(fresh);
    this.swept = true;
  }

  /** Removes a version dir this writer made: read-only dirs are opened up, files unlinked. */
  private async removeVersionDir(path: string): Promise<void> {
    try {
      await chmod(path, 0o700);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    const entries = await readdir(path, { withFileTypes: true });
    await Promise.all(entries.map((e) => (e.isDirectory() ? this.removeVersionDir(join(path, e.name)) : unlink(join(path, e.name)))));
    await rmdir(path);
  }

  /** Version dirs left by a crash between (3) and (6): swept by a writer's first write, and after a failed (6). */
  private async removeStrayVersionDirs(keep: string): Promise<void> {
    for (const entry of await readdir(this.dir, { withFileTypes: true })) {
      const path = join(this.dir, entry.name);
      if (/^\.\.\d{4}_/.test(entry.name) && path !== keep && entry.isDirectory()) await this.removeVersionDir(path);
    }
  }

  /** Removes every file this writer made (the secret was deleted or unmounted). */
  async clear(): Promise<void> {
    await this.settle();
    this.written = undefined;
    if (!(await exists(this.dir))) return;
    const current = await this.currentVersionDir();
    if (current && (await exists(current))) {
      for (const name of [...this.topLevel(await listFiles(current)), VERSION_FILE]) {
        const link = join(this.dir, name);
        try {
          if ((await lstat(link)).isSymbolicLink()) await unlink(link);
        } catch {
          /* already gone */
        }
      }
      await rm(join(this.dir, DATA_LINK), { force: true });
      await this.removeVersionDir(current);
    }
    await this.removeStrayVersionDirs('');
  }
}
