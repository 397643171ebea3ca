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
 *    "..x" segment), and check that <dir> and every dir between the root and it are real
 *    directories, not symlinks (a symlink could lead the write outside $BENTOML_HOME); a visible
 *    name held by a real dir the writer did not make is refused, left alone.
 * 2. Read the version ..data points at (only when ..data is a symlink to a `..<timestamp>` real
 *    dir of <dir>: see mount-entries.ts); when its files equal the payload and every visible link
 *    is in place, stop: nothing is rewritten.
 * 3. Write the payload into a new ..<timestamp> dir: every file written with its mode, the dirs
 *    made read-only (through no-follow fds), then the files fsynced together (where there is a
 *    disk). A new file's fsync makes its entry durable with it on Linux's file systems (ext4
 *    with or without a journal, xfs, btrfs), so the version dir needs no fsync of its own; the
 *    one dir fsync that the swap needs is (6)'s, of <dir> after the rename.
 * 4. Make ..data_tmp point at it and rename it over ..data: readers switch at once (a ..data link
 *    that led elsewhere is replaced, never followed). A write that fails before this rename (a
 *    full disk, say) removes its half-written version, if it is still a real dir, and throws;
 *    readers stay on the old one.
 * 5. Create the visible links of new top-level entries (a file or a foreign link at such a name is
 *    unlinked itself, never followed). write() returns here: the new files are readable under
 *    their names.
 * 6. In the background (the next write, clear() and settle() wait for it): fsync <dir> so the
 *    swap itself is durable, check (1) again, remove visible links the payload no longer has (only
 *    links to ..data/<name>), the old ..<timestamp> dir (only a real dir), and any version dir a
 *    crash left behind, or that ..data was moved off by someone else.
 * clear() removes the same things the same way, after checking (1) without creating anything.
 * Whatever else is found (a planted symlink, a foreign dir) is logged by path and left alone: the
 * writer never removes, chmods, chowns or writes through a symlink it did not make.
 * One writer per dir: the agent groups every file of a dir into one payload. The waits on the disk
 * (fsync) are async, all of one step at once, so many writers (many agents in one process, or
 * many dirs) overlap them, and skipped on a memory-backed file system (tmpfs, ramfs: nothing to
 * flush, only a thread-pool round trip to pay); every other call (mkdir, open, write, chmod,
 * symlink, rename, unlink) is synchronous: each is one quick system call, and measured, the
 * thread-pool round trip and promises of the async API cost more CPU and garbage than the call
 * itself. Keeping (6) off the path to (5) keeps a rotation's visible latency to the writes readers
 * need.
 */
import { closeSync, fchmodSync, fchownSync, fsync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, renameSync, rmdirSync, statfsSync, symlinkSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { relativePathProblem } from '../../shared/src/mount-path.js';
import { DATA_LINK, PathSafetyError, dataLinkStands, dataTarget, listFiles, openRealDir, removeKnownVersion, removeOwnLink, removeStrayVersionDirs, removeVersionDir, unlinkForLink } from './mount-entries.js';

export { DATA_LINK, PathSafetyError } from './mount-entries.js';
export const VERSION_FILE = '..version';

export interface WriterModes {
  fileMode: number;
  dirMode: number;
  /** Group owner for files and dirs (with modes like 0440 / 0550). */
  gid?: number;
}

/** Where the writer reports what it found and left alone (a planted symlink, say): by path, never contents. */
export interface WriterLog {
  warn(fields: object, message: string): void;
}

/** The agent's uid, for chown (with a group); asked once, not per write. */
const uid = process.getuid?.() ?? 0;

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
  /** The process umask when the writer was made: files are created with their final mode unless it would strip bits. */
  private readonly umask = process.umask();
  /** Each path from the root down to `dir`, for (1). */
  private readonly segments: string[] = [];
  /** Whether `dir` is on a file system with a disk to flush to (found at the first write). */
  private durable: boolean | undefined;

  /** `root` is $BENTOML_HOME (already resolved); `relDir` the mount path under it. */
  constructor(
    readonly root: string,
    readonly relDir: string,
    private readonly modes: WriterModes,
    private readonly log: WriterLog = { warn() {} },
  ) {
    const problem = relativePathProblem(relDir);
    if (problem) throw new PathSafetyError(`mount path ${JSON.stringify(relDir)} ${problem}`);
    this.dir = join(root, relDir);
    let current = root;
    for (const segment of relDir.split('/')) this.segments.push((current = join(current, segment)));
  }

  /** Reports an entry found and left alone. */
  private readonly leftAlone = (path: string, reason: string): void => this.log.warn({ path }, `left alone: ${reason}`);

  /**
   * Step (1), second half: every segment from the root to `dir` is a real directory (checked
   * again after a mkdir, so one raced in as a symlink is caught). `create`: make missing ones;
   * otherwise returns false when one is missing.
   */
  private checkDirs(create: boolean): boolean {
    for (const current of this.segments) {
      let stat = lstatSync(current, { throwIfNoEntry: false });
      if (!stat) {
        if (!create) return false;
        try {
          mkdirSync(current, { mode: 0o755 });
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        }
        stat = lstatSync(current);
      }
      if (stat.isSymbolicLink()) throw new PathSafetyError(`${current} is a symlink; refusing to write or remove through it (it could lead outside ${this.root})`);
      if (!stat.isDirectory()) throw new PathSafetyError(`${current} is not a directory`);
    }
    return true;
  }

  /** (2) The version ..data points at, when it is one the writer could have made; `report`: log what else stands there. */
  private currentVersionDir(report = false): string | undefined {
    const { path, problem } = dataTarget(this.dir);
    if (problem && report) this.leftAlone(`${this.dir}/${DATA_LINK}`, `${problem}; replaced by the next version's link`);
    return path;
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
    this.checkDirs(true);
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
    // (1) A ..data that is not a symlink is refused here, before anything is written. A new
    // version after one this writer wrote needs no more (the old dir is the one it wrote; where
    // ..data points now does not matter, the rename replaces the link, and the agent's tamper
    // watch has seen it moved and logs the repair); otherwise the version in place is looked up,
    // and a ..data leading elsewhere is reported.
    let old: string | undefined;
    if (fresher) {
      dataLinkStands(this.dir);
      old = last.dir;
    } else {
      old = this.currentVersionDir(true);
      // ..data was moved off the version this writer put in place (tampering): that version
      // still holds its values and is no longer `old`, so (6) sweeps every version dir but the new.
      if (last && old !== last.dir) this.swept = false;
    }
    const newTop = this.topLevel(payload.keys());
    // When only the version changed, the links this writer made still stand (a removed one is
    // tampering, which the agent's repair pass finds through matches()); else every link is
    // checked in (5), and a real dir in a link's place is refused now, before anything is written.
    const sameNames = fresher && newTop.size === last.top.size && [...newTop].every((n) => last.top.has(n));
    const links = sameNames ? [] : [...newTop, VERSION_FILE];
    for (const name of links) if (lstatSync(`${this.dir}/${name}`, { throwIfNoEntry: false })?.isDirectory()) throw new PathSafetyError(`${this.dir}/${name} is a directory the agent did not make; left alone`); // (1)

    const fresh = mkdtempSync(`${this.dir}/${timestampName()}`); // (3)
    const sub = subdirs(fresh, payload.keys()).sort(byDepth);
    const files: string[] = [];
    const { fileMode, dirMode, gid } = this.modes;
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
          if ((fileMode & ~this.umask) !== fileMode || gid !== undefined) fchmodSync(fd, fileMode);
        }
        const fileFds = fds.length;
        // The dirs made read-only, each through a no-follow fd (a symlink raced into a dir's
        // place fails with ELOOP), before the fsyncs: on Linux their modes are durable with the files.
        for (const d of [...sub, fresh]) {
          const fd = openRealDir(d);
          fds.push(fd);
          if (gid !== undefined) fchownSync(fd, uid, gid);
          fchmodSync(fd, dirMode);
        }
        // Every file of the version at once: its data, and (Linux) its entry.
        if (this.durable) await Promise.all(fds.slice(0, fileFds).map(fsyncFd));
      } finally {
        for (const fd of fds) closeSync(fd);
      }

      const tmpLink = `${this.dir}/${DATA_LINK}_tmp`; // (4)
      const target = fresh.slice(this.dir.length + 1);
      try {
        symlinkSync(target, tmpLink);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        unlinkForLink(tmpLink); // left by a crash between symlink and rename
        symlinkSync(target, tmpLink);
      }
      renameSync(tmpLink, `${this.dir}/${DATA_LINK}`);
    } catch (error) {
      // (3)-(4) failed (a full disk, say): readers still see the old version; the half-written
      // one goes now, or at the next write's sweep.
      try {
        removeVersionDir(fresh, this.leftAlone);
      } catch {
        this.swept = false;
      }
      throw error;
    }

    for (const name of links) { // (5)
      const link = `${this.dir}/${name}`;
      const wanted = `${DATA_LINK}/${name}`;
      const stat = lstatSync(link, { throwIfNoEntry: false });
      if (stat?.isSymbolicLink() && readlinkSync(link) === wanted) continue;
      // A file or a foreign link stands where a link belongs (tampering): the entry is replaced.
      if (stat) unlinkForLink(link);
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
    if (!this.checkDirsBeforeRemoving()) return; // (1) again: <dir> may have been swapped for a link since
    if (old && old !== fresh) {
      const previous = last?.top ?? this.topLevel(listFiles(old).filter((f) => f !== VERSION_FILE));
      for (const name of previous) if (!newTop.has(name)) removeOwnLink(this.dir, name, this.leftAlone);
      if (last?.files) removeKnownVersion(last.dir, last.subdirs, last.files, this.leftAlone);
      else removeVersionDir(old, this.leftAlone);
    }
    if (!this.swept) removeStrayVersionDirs(this.dir, fresh, this.leftAlone);
    this.swept = true;
  }

  /** (1) without creating anything, before anything is removed: false (logged) when <dir> or a dir above it is a symlink or gone. */
  private checkDirsBeforeRemoving(): boolean {
    try {
      return this.checkDirs(false);
    } catch (error) {
      if (!(error instanceof PathSafetyError)) throw error;
      this.log.warn({ path: this.dir }, `nothing removed: ${error.message}`);
      return false;
    }
  }

  /** Removes every file this writer made (the secret was deleted or unmounted); nothing when <dir> is not a real dir any more. */
  async clear(): Promise<void> {
    await this.settle();
    const known = this.written?.top;
    this.written = undefined;
    if (!this.checkDirsBeforeRemoving()) return; // (1)
    let current: string | undefined;
    try {
      current = this.currentVersionDir(true);
    } catch (error) {
      if (!(error instanceof PathSafetyError)) throw error;
      this.log.warn({ path: this.dir }, `nothing removed: ${error.message}`);
      return;
    }
    const names = current ? this.topLevel(listFiles(current).filter((f) => f !== VERSION_FILE)) : (known ?? new Set<string>());
    for (const name of [...names, VERSION_FILE]) removeOwnLink(this.dir, name, this.leftAlone);
    if (current) {
      unlinkSync(join(this.dir, DATA_LINK)); // checked by currentVersionDir: the writer's own link
      removeVersionDir(current, this.leftAlone);
    }
    removeStrayVersionDirs(this.dir, '', this.leftAlone);
  }
}
