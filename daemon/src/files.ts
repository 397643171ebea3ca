import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Replaces `path` with `content` so that a crash leaves either the old or the new file:
 * (1) write a temp file beside it with `mode`, (2) fsync it, (3) rename over the target,
 * (4) fsync the directory so the rename itself is durable.
 */
export function writeFileDurably(path: string, content: string | Uint8Array, mode: number): void {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  let fd = openSync(temp, 'w', mode); // (1)
  try {
    writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content);
    fsyncSync(fd); // (2)
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(temp, path); // (3)
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
  fd = openSync(dirname(path), 'r');
  try {
    fsyncSync(fd); // (4)
  } finally {
    closeSync(fd);
  }
}

/** Creates `path` with `content` only if it does not exist yet (O_EXCL), durably. */
export function createFileExclusively(path: string, content: string, mode: number): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx', mode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    writeSync(fd, Buffer.from(content));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return true;
}
