/**
 * Files the CLI writes from a stream (`backup`, `audit export`) are whole or absent:
 * (1) FILE.partial is created (0600, must not exist) and filled, (2) synced and closed,
 * (3) hard-linked to FILE, which fails if FILE exists — unlike rename, a file that appeared
 * while we wrote is never overwritten — and (4) FILE.partial is unlinked. A failure removes the
 * partial file and rethrows.
 */
import { closeSync, existsSync, fsyncSync, linkSync, openSync, rmSync, unlinkSync } from 'node:fs';
import { UsageError } from './inputs.js';

/** `write` fills the open file descriptor; `flag` names the setting in the error for a file that exists. */
export async function writeWholeFile<T>(file: string, flag: string, write: (fd: number) => Promise<T>): Promise<T> {
  // Early check only for a friendly error before a long write; step (3) is what guarantees it.
  if (existsSync(file)) throw new UsageError(`${flag}: exists already; name a new file`);
  const partial = `${file}.partial`;
  const fd = openSync(partial, 'wx', 0o600); // (1)
  let result: T;
  try {
    result = await write(fd);
    fsyncSync(fd); // (2)
  } catch (error) {
    closeSync(fd);
    rmSync(partial, { force: true });
    throw error;
  }
  closeSync(fd);
  publishPartial(partial, file, flag);
  return result;
}

/**
 * Steps (3) and (4): move the finished `partial` to `file` without ever replacing a file that
 * exists (one may have been created after the early check). On refusal the partial is removed.
 */
function publishPartial(partial: string, file: string, flag: string): void {
  try {
    linkSync(partial, file); // (3)
  } catch (error) {
    rmSync(partial, { force: true });
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new UsageError(`${flag}: ${file} was created by something else while writing; left it untouched, name a new file`);
    }
    throw error;
  }
  unlinkSync(partial); // (4)
}
