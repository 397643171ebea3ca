/**
 * Files the CLI writes from a stream (`backup`, `audit export`) are whole or absent: written to
 * FILE.partial (0600, which must not exist), synced, then renamed into place; a failure removes
 * the partial file and rethrows.
 */
import { closeSync, existsSync, fsyncSync, openSync, renameSync, rmSync } from 'node:fs';
import { UsageError } from './inputs.js';

/** `write` fills the open file descriptor; `flag` names the setting in the error for a file that exists. */
export async function writeWholeFile<T>(file: string, flag: string, write: (fd: number) => Promise<T>): Promise<T> {
  if (existsSync(file)) throw new UsageError(`${flag}: exists already; name a new file`);
  const partial = `${file}.partial`;
  const fd = openSync(partial, 'wx', 0o600);
  let result: T;
  try {
    result = await write(fd);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(partial, { force: true });
    throw error;
  }
  closeSync(fd);
  renameSync(partial, file);
  return result;
}
