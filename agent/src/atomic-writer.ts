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
 * 5. Create the visible links of new top-level entries.
 * 6. Remove visible links the payload no longer has, and the old ..<timestamp> dir.
 * One writer per dir: the agent groups every file of a dir into one payload. All I/O is async, so
 * many writers (many agents in one process, or many dirs) overlap their fsyncs.
 */
import { chmod, chown, lstat, mkdir, mkdtemp, open, readFile, readdir, readlink, rename, rm, symlink, unlink } from 'node:fs/promises';
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

function timestampName(): string {
  const d = new Date();
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `..${d.getUTCFullYear()}_${p(d.getUTCMonth() + 1)}_${p(d.getUTCDate())}_${p(d.getUTCHours())}_${p(d.getUTCMinutes())}_${p(d.getUTCSeconds())}.`;
}

export class AtomicWriter {
  readonly dir: string;
  private swept = false;

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

  /** Steps (1)-(6). Returns false when nothing had to change. */
  async write(payload: Map<string, Buffer>, version: string): Promise<boolean> {
    for (const rel of payload.keys()) {
      const problem = relativePathProblem(rel); // (1)
      if (problem) throw new PathSafetyError(`file ${JSON.stringify(rel)} ${problem}`);
    }
    await this.ensureDir();
    if (await this.matches(payload, version)) return false; // (2)
    const old = await this.currentVersionDir();
    const oldTop = old && (await exists(old)) ? this.topLevel((await listFiles(old)).filter((f) => f !== VERSION_FILE)) : new Set<string>();

    const fresh = await mkdtemp(join(this.dir, timestampName())); // (3)
    const dirs = new Set<string>([fresh]);
    const put = async (rel: string, content: Buffer) => {
      const path = join(fresh, rel);
      for (let d = dirname(path); d !== fresh && !dirs.has(d); d = dirname(d)) dirs.add(d);
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      const handle = await open(path, 'wx', 0o600);
      try {
        await handle.writeFile(content);
        await handle.sync();
      } finally {
        await handle.close();
      }
      if (this.modes.gid !== undefined) await chown(path, process.getuid?.() ?? 0, this.modes.gid);
      await chmod(path, this.modes.fileMode);
    };
    await Promise.all([...payload].map(([rel, content]) => put(rel, content)).concat(put(VERSION_FILE, Buffer.from(version))));
    for (const d of [...dirs].sort((a, b) => b.length - a.length)) {
      await fsyncPath(d);
      if (this.modes.gid !== undefined) await chown(d, process.getuid?.() ?? 0, this.modes.gid);
      await chmod(d, this.modes.dirMode);
    }

    const tmpLink = join(this.dir, `${DATA_LINK}_tmp`); // (4)
    await rm(tmpLink, { force: true });
    await symlink(fresh.slice(this.dir.length + 1), tmpLink);
    await rename(tmpLink, join(this.dir, DATA_LINK));
    await fsyncPath(this.dir);

    const newTop = this.topLevel(payload.keys()); // (5)
    for (const name of [...newTop, VERSION_FILE]) {
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

    for (const name of oldTop) if (!newTop.has(name)) await rm(join(this.dir, name), { force: true }); // (6)
    if (old && old !== fresh && (await exists(old))) await this.removeVersionDir(old);
    if (!this.swept) await this.removeStrayVersionDirs(fresh); // leftovers of a crash: once per writer
    this.swept = true;
    return true;
  }

  private async removeVersionDir(path: string): Promise<void> {
    // Read-only dirs must be made writable before their contents can go.
    const openUp = async (p: string) => {
      await chmod(p, 0o700);
      for (const e of await readdir(p, { withFileTypes: true })) if (e.isDirectory()) await openUp(join(p, e.name));
    };
    await openUp(path);
    await rm(path, { recursive: true, force: true });
  }

  /** Version dirs left by a crash between (3) and (6). */
  private async removeStrayVersionDirs(keep: string): Promise<void> {
    for (const entry of await readdir(this.dir)) {
      const path = join(this.dir, entry);
      if (/^\.\.\d{4}_/.test(entry) && path !== keep && (await lstat(path)).isDirectory()) await this.removeVersionDir(path);
    }
  }

  /** Removes every file this writer made (the secret was deleted or unmounted). */
  async clear(): Promise<void> {
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
