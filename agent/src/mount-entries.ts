/**
 * What the atomic writer may touch in a mount dir, decided by lstat and readlink, never by
 * following a link. Someone who can write a mount dir (a process sharing the pod's file system)
 * can plant a symlink at any name there; the writer may run as root. Rules:
 * - Never remove, chmod, chown or write through a symlink the writer did not make. Dirs are
 *   opened up or closed down through an fd opened with O_NOFOLLOW | O_DIRECTORY, so a symlink put
 *   in a dir's place fails the call (ELOOP) instead of changing what it points at.
 * - The links the writer makes are `..data` (→ one `..<timestamp>` child of the same dir that is
 *   a real dir) and the visible names (→ `..data/<name>`); a link is removed only when readlink
 *   shows exactly that.
 * - A version dir is removed only when lstat shows a real dir; inside it, entries are unlinked by
 *   their own type (a link is unlinked, never followed) and real subdirs walked the same way.
 * - Anything else (a link to elsewhere, a foreign dir) is reported through `leftAlone` by path and
 *   left as it is.
 * What stays possible: a same-uid process that swaps a checked dir for a link between the check
 *   and the call (node has no openat/unlinkat); each call is made right after its check.
 */
import { closeSync, constants, fchmodSync, fchownSync, lstatSync, openSync, readdirSync, readlinkSync, rmdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

export const DATA_LINK = '..data';
/** Names of version dirs: `..2026_12_01_19_52_10.XXXXXX`. */
export const VERSION_DIR_NAME = /^\.\.\d{4}_/;

/** A path the agent refuses to write, or to remove through: not retried, reported. */
export class PathSafetyError extends Error {
  override name = 'PathSafetyError';
}

/** Reports an entry the writer found but did not touch, by path and reason (never contents). */
export type LeftAlone = (path: string, reason: string) => void;

const NOFOLLOW_DIR = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** Whether `path` itself (not what a link leads to) is a directory. */
export function isRealDir(path: string): boolean {
  const stat = lstatSync(path, { throwIfNoEntry: false });
  return stat !== undefined && stat.isDirectory();
}

/** An fd of the dir at `path` itself, read-only: a symlink in its place fails with ELOOP, anything else with ENOTDIR. */
export function openRealDir(path: string): number {
  return openSync(path, NOFOLLOW_DIR);
}

/** Sets a dir's mode (and owner) through a no-follow fd: a symlink in its place fails with ELOOP. */
export function setDirMode(path: string, mode: number, owner?: { uid: number; gid: number }): void {
  const fd = openRealDir(path);
  try {
    if (owner) fchownSync(fd, owner.uid, owner.gid);
    fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
}

/** Whether `<dir>/..data` exists; throws when it is anything but a symlink (never followed, never replaced). */
export function dataLinkStands(dir: string): boolean {
  const link = `${dir}/${DATA_LINK}`;
  const stat = lstatSync(link, { throwIfNoEntry: false });
  if (stat && !stat.isSymbolicLink()) throw new PathSafetyError(`${link} is not a symlink the agent made; left alone`);
  return stat !== undefined;
}

/**
 * The version dir `<dir>/..data` names, when it is one the writer could have made: `..data` a
 * symlink whose target is one `..<timestamp>` segment that is a real dir of `dir`. `problem`
 * says what else stands there; a `..data` that is not a symlink at all is refused.
 */
export function dataTarget(dir: string): { path?: string; problem?: string } {
  const link = `${dir}/${DATA_LINK}`;
  if (!dataLinkStands(dir)) return {};
  const target = readlinkSync(link);
  if (!VERSION_DIR_NAME.test(target) || target.includes('/')) return { problem: `points at ${JSON.stringify(target)}, which the agent did not make` };
  const path = `${dir}/${target}`;
  if (!isRealDir(path)) return { problem: `points at ${path}, which is not a real directory (a symlink?)` };
  return { path };
}

/** Relative paths of every file under `dir` (a real dir), following no symlinks. */
export function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...listFiles(join(dir, entry.name), rel));
    else out.push(rel);
  }
  return out;
}

/**
 * Removes a version dir: only when `path` is a real dir (else reported and left alone); it is
 * opened up through a no-follow fd, its links and files unlinked (never followed), its real
 * subdirs removed the same way.
 */
export function removeVersionDir(path: string, leftAlone: LeftAlone): void {
  const stat = lstatSync(path, { throwIfNoEntry: false });
  if (!stat) return;
  if (!stat.isDirectory()) return leftAlone(path, 'not a directory the agent made');
  try {
    setDirMode(path, 0o700);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'ELOOP' || code === 'ENOTDIR') return leftAlone(path, 'replaced by a symlink while being removed');
    throw error;
  }
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) removeVersionDir(child, leftAlone);
    else unlinkSync(child);
  }
  rmdirSync(path);
}

/**
 * Removes a version the writer made, by what it knows is in it: its dirs opened up top-down
 * through no-follow fds (so a dir swapped for a link stops it before anything is unlinked), then
 * its files unlinked; anything unexpected falls back to the lstat walk. `subdirs` deepest first.
 */
export function removeKnownVersion(dir: string, subdirs: string[], files: string[], leftAlone: LeftAlone): void {
  try {
    for (const d of [dir, ...[...subdirs].reverse()]) setDirMode(d, 0o700);
    for (const f of files) unlinkSync(f);
    for (const d of [...subdirs, dir]) rmdirSync(d);
  } catch {
    removeVersionDir(dir, leftAlone);
  }
}

/** Version dirs of `dir` other than `keep` that a crash left behind: real dirs are removed, anything else so named is left alone. */
export function removeStrayVersionDirs(dir: string, keep: string, leftAlone: LeftAlone): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (!VERSION_DIR_NAME.test(entry.name) || path === keep) continue;
    if (entry.isDirectory()) removeVersionDir(path, leftAlone);
    else leftAlone(path, 'named like a version dir but not a directory');
  }
}

/** Removes `<dir>/<name>` only when it is the writer's link (→ `..data/<name>`); anything else there is reported and left alone. */
export function removeOwnLink(dir: string, name: string, leftAlone: LeftAlone): void {
  const path = `${dir}/${name}`;
  const stat = lstatSync(path, { throwIfNoEntry: false });
  if (!stat) return;
  if (stat.isSymbolicLink() && readlinkSync(path) === `${DATA_LINK}/${name}`) return unlinkSync(path);
  leftAlone(path, 'not a link the agent made');
}

/**
 * Clears the way for a link the writer makes at `path`: a file or a link there is unlinked
 * (the entry itself, never what it points at); a real dir is refused, left alone.
 */
export function unlinkForLink(path: string): void {
  const stat = lstatSync(path, { throwIfNoEntry: false });
  if (!stat) return;
  if (stat.isDirectory()) throw new PathSafetyError(`${path} is a directory the agent did not make; left alone`);
  unlinkSync(path);
}
