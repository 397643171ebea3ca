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
 * One writer per dir: the agent groups every file of a dir into one payload.
 */
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
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

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Relative paths of every file under `dir`, following no symlinks. */
function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...listFiles(join(dir, entry.name), rel));
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
  private ensureDir(): void {
    let current = this.root;
    for (const segment of this.relDir.split('/')) {
      current = join(current, segment);
      let stat;
      try {
        stat = lstatSync(current);
      } catch {
        mkdirSync(current, { mode: 0o755 });
        continue;
      }
      if (stat.isSymbolicLink()) throw new PathSafetyError(`${current} is a symlink; refusing to write through it (it could lead outside ${this.root})`);
      if (!stat.isDirectory()) throw new PathSafetyError(`${current} is not a directory`);
    }
  }

  private currentVersionDir(): string | undefined {
    try {
      const target = readlinkSync(join(this.dir, DATA_LINK));
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
  matches(payload: Map<string, Buffer>, version: string): boolean {
    const current = this.currentVersionDir();
    if (!current || !existsSync(current)) return false;
    try {
      const files = listFiles(current).filter((f) => f !== VERSION_FILE);
      if (files.length !== payload.size) return false;
      for (const [rel, content] of payload) if (!readFileSync(join(current, rel)).equals(content)) return false;
      if (readFileSync(join(current, VERSION_FILE), 'utf8') !== version) return false;
      for (const name of [...this.topLevel(payload.keys()), VERSION_FILE]) {
        const link = join(this.dir, name);
        if (!lstatSync(link).isSymbolicLink() || readlinkSync(link) !== `${DATA_LINK}/${name}`) return false;
      }
      return true;
    } catch {
      return false;
    }
  }

  /** Steps (1)-(6). Returns false when nothing had to change. */
  write(payload: Map<string, Buffer>, version: string): boolean {
    for (const rel of payload.keys()) {
      const problem = relativePathProblem(rel); // (1)
      if (problem) throw new PathSafetyError(`file ${JSON.stringify(rel)} ${problem}`);
    }
    this.ensureDir();
    if (this.matches(payload, version)) return false; // (2)
    const old = this.currentVersionDir();
    const oldTop = old && existsSync(old) ? this.topLevel(listFiles(old).filter((f) => f !== VERSION_FILE)) : new Set<string>();

    const fresh = mkdtempSync(join(this.dir, timestampName())); // (3)
    const dirs = new Set<string>([fresh]);
    const put = (rel: string, content: Buffer) => {
      const path = join(fresh, rel);
      for (let d = dirname(path); d !== fresh && !dirs.has(d); d = dirname(d)) dirs.add(d);
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      const fd = openSync(path, 'wx', 0o600);
      try {
        writeSync(fd, content);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      if (this.modes.gid !== undefined) chownSync(path, process.getuid?.() ?? 0, this.modes.gid);
      chmodSync(path, this.modes.fileMode);
    };
    for (const [rel, content] of payload) put(rel, content);
    put(VERSION_FILE, Buffer.from(version));
    for (const d of [...dirs].sort((a, b) => b.length - a.length)) {
      fsyncPath(d);
      if (this.modes.gid !== undefined) chownSync(d, process.getuid?.() ?? 0, this.modes.gid);
      chmodSync(d, this.modes.dirMode);
    }

    const tmpLink = join(this.dir, `${DATA_LINK}_tmp`); // (4)
    rmSync(tmpLink, { force: true });
    symlinkSync(fresh.slice(this.dir.length + 1), tmpLink);
    renameSync(tmpLink, join(this.dir, DATA_LINK));
    fsyncPath(this.dir);

    const newTop = this.topLevel(payload.keys()); // (5)
    for (const name of [...newTop, VERSION_FILE]) {
      const link = join(this.dir, name);
      const wanted = `${DATA_LINK}/${name}`;
      let stat;
      try {
        stat = lstatSync(link);
      } catch {
        symlinkSync(wanted, link);
        continue;
      }
      if (stat.isSymbolicLink() && readlinkSync(link) === wanted) continue;
      // Something else stands where a link belongs (tampering, or a stale file): replace it.
      rmSync(link, { recursive: true, force: true });
      symlinkSync(wanted, link);
    }

    for (const name of oldTop) if (!newTop.has(name)) rmSync(join(this.dir, name), { force: true }); // (6)
    if (old && old !== fresh && existsSync(old)) this.removeVersionDir(old);
    this.removeStrayVersionDirs(fresh);
    return true;
  }

  private removeVersionDir(path: string): void {
    // Read-only dirs must be made writable before their contents can go.
    const open = (p: string) => {
      chmodSync(p, 0o700);
      for (const e of readdirSync(p, { withFileTypes: true })) if (e.isDirectory()) open(join(p, e.name));
    };
    open(path);
    rmSync(path, { recursive: true, force: true });
  }

  /** Version dirs left by a crash between (3) and (6). */
  private removeStrayVersionDirs(keep: string): void {
    for (const entry of readdirSync(this.dir)) {
      const path = join(this.dir, entry);
      if (/^\.\.\d{4}_/.test(entry) && path !== keep && lstatSync(path).isDirectory()) this.removeVersionDir(path);
    }
  }

  /** Removes every file this writer made (the secret was deleted or unmounted). */
  clear(): void {
    const current = this.currentVersionDir();
    if (!existsSync(this.dir)) return;
    if (current && existsSync(current)) {
      for (const name of [...this.topLevel(listFiles(current)), VERSION_FILE]) {
        const link = join(this.dir, name);
        try {
          if (lstatSync(link).isSymbolicLink()) unlinkSync(link);
        } catch {
          /* already gone */
        }
      }
      rmSync(join(this.dir, DATA_LINK), { force: true });
      this.removeVersionDir(current);
    }
    this.removeStrayVersionDirs('');
  }
}
