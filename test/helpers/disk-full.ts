/**
 * A full disk on demand, for this test file's process only: openSync and writeSync are wrapped
 * so that a write to a file opened under `diskFull.under` throws ENOSPC (after `diskFull.onFail`
 * sees the file's path, for tests that race something in at that moment). `""`: every write works.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

export const diskFull: { under: string; onFail?: (path: string) => void } = { under: '' };

export function injectDiskFull(t: { teardown(fn: () => unknown): void }): void {
  const realOpenSync = fs.openSync;
  const realWriteSync = fs.writeSync;
  const pathOf = new Map<number, string>();
  fs.openSync = ((path: fs.PathLike, ...rest: unknown[]) => {
    const fd = (realOpenSync as (...a: unknown[]) => number)(path, ...rest);
    pathOf.set(fd, String(path));
    return fd;
  }) as typeof fs.openSync;
  fs.writeSync = ((fd: number, ...rest: unknown[]) => {
    const path = pathOf.get(fd);
    if (diskFull.under && path?.includes(diskFull.under)) {
      diskFull.onFail?.(path);
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
    }
    return (realWriteSync as (...a: unknown[]) => number)(fd, ...rest);
  }) as typeof fs.writeSync;
  syncBuiltinESMExports();
  t.teardown(() => {
    fs.openSync = realOpenSync;
    fs.writeSync = realWriteSync;
    syncBuiltinESMExports();
  });
}
