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
 * 3. Write the payload into a new ..<timestamp> dir: every file written with its mode, then the
 *    files and dirs fsynced together (where there is a disk), then the dirs made read-only.
 * 4. Make ..data_tmp point at it and rename it over ..data: readers switch at once. A write that
 *    fails before this rename (a full disk, say) removes its half-written version and throws;
 *    readers stay on the old one.
 * 5. Create the visible links of new top-level entries. write() returns here: the new files are
 *    readable under their names.
 * 6. In the background (the next write, clear() and settle() wait for it): fsync <dir> so the
 *    swap itself is durable, remove visible links the payload no longer has, the old
 *    ..<timestamp> dir, and any version dir a crash left behind.
 * One writer per dir: the agent groups every file of a dir into one payload. The waits on the disk
 * (fsync) are async, all of one step at once, so many writers (many agents in one process, or
 * many dirs) overlap them, and skipped on a memory-backed file system (tmpfs, ramfs: nothing to
 * flush, only a thread-pool round trip to pay); every other call (mkdir, open, write, chmod,
 * symlink, rename, unlink) is synchronous: each is one quick system call, and measured, the
 * thread-pool round trip and promises of the async API cost more CPU and garbage than the call
 * itself. Keeping (6) off the path to (5) keeps a rotation's visible latency to the writes readers
 * need.
 */
import { chmodSync, chownSync, closeSync, fchmodSync, fchownSync, fsync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, rmdirSync, statfsSync, symlinkSync, unlinkSync, writeSync } from 'node:fs';
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

/** tmpfs and ramfs (statfs f_type): memory-backed, nothing to flush. */
const MEMORY_FILE_SYSTEMS = new Set([0x01021994, 0x858458f6]);

/** The one wait on the disk: fsync(2) in libuv's pool, so many writers overlap theirs. */
function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (error) => (error ? reject(error) : resolve())));
}

async function fsyncPath(path: string): Promise<void> {
  const fd = openSync(path, 'r');
  try {
    await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
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

/** The dirs under a version dir that hold the payload's nested files. */
function subdirs(root: string, paths: Iterable<string>): string[] {
  const out = new Set<string>();
  for (const rel of paths) for (let d = dirname(rel); d !== '.'; d = dirname(d)) out.add(join(root, d));
  return [...out];
}

const stamp = { second: -1, text: '' };

/** `..2026_12_01_19_52_10.` (mkdtemp adds a unique suffix); formatted once a second. */
function timestampName(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== stamp.second) {
    const d = new Date(second * 1000);
    const p = (n: number) => String(n).padStart(2, '0');
    stamp.second = second;
    stamp.text = `..${d.getUTCFullYear()}_${p(d.getUTCMonth() + 1)}_${p(d.getUTCDate())}_${p(d.getUTCHours())}_${p(d.getUTCMinutes())}_${p(d.getUTCSeconds())}.`;
  }
  return stamp.text;
}

/** Deepest first. */
const byDepth = (a: string, b: string) => b.length - a.length;

/** What a write put in place: its version text, its version dir, and what is in it. */
interface Written {
  version: string;
  /** The ..<timestamp> dir. */
  dir: string;
  /** Its subdirs, deepest first. */
  subdirs: string[];
  /** Every file in it, ..version included (known only for versions this writer made). */
  files?: string[];
  /** Visible top-level names. */
  top: Set<string>;
}

/** The process umask: files are created with their final mode unless it would strip bits. */
const umask = process.umask();

export class AtomicWriter {
  readonly dir: string;
  /** Step (6) of the last write, still running. */
  private tail: Promise<void> = Promise.resolve();
  /** Whether leftovers of a crash were looked for. */
  private swept = false;
  /** What this writer last put in place. */
  private written: Written | undefined;
  /** Payload paths that passed (1) already: every version brings the same keys. */
  private readonly checked = new Set<string>();
  /** Each path from the root down to `dir`, for (1). */
  private readonly segments: string[] = [];
  /** Whether `dir` is on a file system with a disk to flush to (found at the first write). */
  private durable: boolean | undefined;

  /** `root` is $BENTOML_HOME (already resolved); `relDir` the mount path under it. */
  constructor(
    readonly root: string,
    readonly relDir: string,
    private readonly modes: WriterModes,
  ) {
    const problem = relativePathProblem(relDir);
    if (problem) throw new PathSafetyError(`mount path ${JSON.stringify(relDir)} ${problem}`);
    this.dir = join(root, relDir);
    let current = root;
    for (const segment of relDir.split('/')) this.segments.push((current = join(current, segment)));
  }

  /** Step (1), second half: every existing segment from the root to `dir` is a real directory. */
  private ensureDir(): void {
    for (const current of this.segments) {
      const stat = lstatSync(current, { throwIfNoEntry: false });
      if (!stat) {
        try {
          mkdirSync(current, { mode: 0o755 });
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        }
        continue;
      }
      if (stat.isSymbolicLink()) throw new PathSafetyError(`${current} is a symlink; refusing to write through it (it could lead outside ${this.root})`);
      if (!stat.isDirectory()) throw new PathSafetyError(`${current} is not a directory`);
    }
  }

  private currentVersionDir(): string | undefined {
    try {
      const target = readlinkSync(`${this.dir}/${DATA_LINK}`);
      if (!/^\.\.\d{4}_/.test(target) || target.includes('/')) throw new PathSafetyError(`${this.dir}/${DATA_LINK} points at ${target}, which this writer did not make`);
      return `${this.dir}/${target}`;
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
    try {
      const current = this.currentVersionDir();
      if (!current) return false;
      // The version text first: when a new version arrives it differs, and nothing else is read.
      if (readFileSync(join(current, VERSION_FILE), 'utf8') !== version) return false;
      const files = listFiles(current).filter((f) => f !== VERSION_FILE);
      if (files.length !== payload.size) return false;
      for (const [rel, content] of payload) if (!readFileSync(join(current, rel)).equals(content)) return false;
      for (const name of [...this.topLevel(payload.keys()), VERSION_FILE]) {
        const link = join(this.dir, name);
        if (!lstatSync(link).isSymbolicLink() || readlinkSync(link) !== `${DATA_LINK}/${name}`) return false;
      }
      return true;
    } catch {
      return false;
    }
  }

  /** Steps (1)-(5), with (6) left running. Returns false when nothing had to change. */
  async write(payload: Map<string, Buffer>, version: string, options: { trustWritten?: boolean } = {}): Promise<boolean> {
    for (const rel of payload.keys()) {
      if (this.checked.has(rel)) continue;
      const problem = relativePathProblem(rel); // (1)
      if (problem) throw new PathSafetyError(`file ${JSON.stringify(rel)} ${problem}`);
      if (this.checked.size >= 10_000) this.checked.clear();
      this.checked.add(rel);
    }
    await this.settle();
    // (2) The caller may trust that what this writer wrote last is still in place (the agent does
    // between full checks: tampering is found by its repair pass, which never trusts).
    if (options.trustWritten && this.written?.version === version) return false;
    this.ensureDir();
    this.durable ??= !MEMORY_FILE_SYSTEMS.has(statfsSync(this.dir).type);
    // A version other than the one this writer put there last is new: nothing to read back.
    // The same version is checked on disk in full (that is how tampering is found and repaired).
    const last = this.written;
    const fresher = last !== undefined && last.version !== version;
    if (!fresher && this.matches(payload, version)) {
      // What is on disk is what this writer would write: adopt it (after a restart, say).
      const current = this.currentVersionDir()!;
      this.written = { version, dir: current, subdirs: subdirs(current, payload.keys()).sort(byDepth), top: this.topLevel(payload.keys()) };
      return false;
    }
    const old = fresher ? last.dir : this.currentVersionDir();

    const fresh = mkdtempSync(`${this.dir}/${timestampName()}`); // (3)
    const sub = subdirs(fresh, payload.keys()).sort(byDepth);
    const files: string[] = [];
    const { fileMode, dirMode, gid } = this.modes;
    const uid = process.getuid?.() ?? 0;
    try {
      for (const d of sub) mkdirSync(d, { recursive: true, mode: 0o700 });
      const fds: number[] = [];
      try {
        for (const [rel, content] of [...payload, [VERSION_FILE, Buffer.from(version)] as const]) {
          const path = `${fresh}/${rel}`; // payload paths are plain relative segments (1): joining is concatenating
          // Created with its final mode (an fd opened for writing stays writable); set again only
          // when the umask would have stripped bits.
          const fd = openSync(path, 'wx', fileMode);
          fds.push(fd);
          files.push(path);
          for (let at = 0; at < content.length; ) at += writeSync(fd, content, at);
          if (gid !== undefined) fchownSync(fd, uid, gid);
          if ((fileMode & ~umask) !== fileMode || gid !== undefined) fchmodSync(fd, fileMode);
        }
        // Every file and dir of the version at once: their data and their entries.
        if (this.durable) await Promise.all([...fds.map(fsyncFd), fsyncPath(fresh), ...sub.map(fsyncPath)]);
      } finally {
        for (const fd of fds) closeSync(fd);
      }
      for (const d of [...sub, fresh]) {
        if (gid !== undefined) chownSync(d, uid, gid);
        chmodSync(d, dirMode);
      }

      const tmpLink = `${this.dir}/${DATA_LINK}_tmp`; // (4)
      const target = fresh.slice(this.dir.length + 1);
      try {
        symlinkSync(target, tmpLink);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        rmSync(tmpLink, { force: true }); // left by a crash between symlink and rename
        symlinkSync(target, tmpLink);
      }
      renameSync(tmpLink, `${this.dir}/${DATA_LINK}`);
    } catch (error) {
      // (3)-(4) failed (a full disk, say): readers still see the old version; the half-written
      // one goes now, or at the next write's sweep.
      try {
        this.removeVersionDir(fresh);
      } catch {
        this.swept = false;
      }
      throw error;
    }

    const newTop = this.topLevel(payload.keys()); // (5)
    // After a clean write of other names, or none before, every link is checked; when only the
    // version changed, the links this writer made still stand (a removed one is tampering, which
    // the agent's repair pass finds through matches()).
    const sameNames = fresher && newTop.size === last.top.size && [...newTop].every((n) => last.top.has(n));
    for (const name of sameNames ? [] : [...newTop, VERSION_FILE]) {
      const link = `${this.dir}/${name}`;
      const wanted = `${DATA_LINK}/${name}`;
      const stat = lstatSync(link, { throwIfNoEntry: false });
      if (stat?.isSymbolicLink() && readlinkSync(link) === wanted) continue;
      // Something else stands where a link belongs (tampering, or a stale file): replace it.
      if (stat) rmSync(link, { recursive: true, force: true });
      symlinkSync(wanted, link);
    }
    this.written = { version, dir: fresh, subdirs: sub, files, top: newTop };
    this.tail = this.finish(old, fresh, newTop, fresher ? last : undefined).catch(() => {
      this.swept = false; // what (6) could not remove now, the next write's sweep removes
    });
    return true;
  }

  /** The dirs of the version in place (its ..<timestamp> dir first, then its subdirs), once written or checked. */
  versionDirs(): string[] {
    return this.written ? [this.written.dir, ...this.written.subdirs] : [];
  }

  /** Whether ..data points where this writer last put it (a swap seen by a watcher was its own). */
  ownSwap(): boolean {
    try {
      return this.written !== undefined && `${this.dir}/${readlinkSync(`${this.dir}/${DATA_LINK}`)}` === this.written.dir;
    } catch {
      return false;
    }
  }

  /** Waits for the background part (6) of the last write. */
  settle(): Promise<void> {
    return this.tail;
  }

  /** Step (6). `last`: what this writer put in place before, when it knows (then `old` is its dir). */
  private async finish(old: string | undefined, fresh: string, newTop: Set<string>, last: Written | undefined): Promise<void> {
    if (this.durable) await fsyncPath(this.dir);
    if (old && old !== fresh) {
      const previous = last?.top ?? (exists(old) ? this.topLevel(listFiles(old).filter((f) => f !== VERSION_FILE)) : new Set<string>());
      for (const name of previous) if (!newTop.has(name)) rmSync(`${this.dir}/${name}`, { force: true });
      if (last?.files) this.removeWritten(last);
      else this.removeVersionDir(old);
    }
    if (!this.swept) this.removeStrayVersionDirs(fresh);
    this.swept = true;
  }

  /** Removes a version this writer made, by what it knows is in it; anything else there (tampering) falls back to a walk. */
  private removeWritten(w: Written): void {
    try {
      for (const d of [w.dir, ...w.subdirs]) chmodSync(d, 0o700);
      for (const f of w.files!) unlinkSync(f);
      for (const d of [...w.subdirs, w.dir]) rmdirSync(d);
    } catch {
      this.removeVersionDir(w.dir);
    }
  }

  /** Removes a version dir this writer made: read-only dirs are opened up, files unlinked. */
  private removeVersionDir(path: string): void {
    try {
      chmodSync(path, 0o700);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    for (const e of readdirSync(path, { withFileTypes: true })) {
      if (e.isDirectory()) this.removeVersionDir(join(path, e.name));
      else unlinkSync(join(path, e.name));
    }
    rmdirSync(path);
  }

  /** Version dirs left by a crash between (3) and (6): swept by a writer's first write, and after a failed (6). */
  private removeStrayVersionDirs(keep: string): void {
    for (const entry of readdirSync(this.dir, { withFileTypes: true })) {
      const path = join(this.dir, entry.name);
      if (/^\.\.\d{4}_/.test(entry.name) && path !== keep && entry.isDirectory()) this.removeVersionDir(path);
    }
  }

  /** Removes every file this writer made (the secret was deleted or unmounted). */
  async clear(): Promise<void> {
    await this.settle();
    this.written = undefined;
    if (!exists(this.dir)) return;
    const current = this.currentVersionDir();
    if (current && exists(current)) {
      for (const name of [...this.topLevel(listFiles(current)), VERSION_FILE]) {
        const link = join(this.dir, name);
        if (lstatSync(link, { throwIfNoEntry: false })?.isSymbolicLink()) unlinkSync(link);
      }
      rmSync(join(this.dir, DATA_LINK), { force: true });
      this.removeVersionDir(current);
    }
    this.removeStrayVersionDirs('');
  }
}
