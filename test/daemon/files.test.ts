/**
 * The daemon's own durable file writes (daemon/src/files.ts): the bootstrap admin token and a
 * generated root key. A replace leaves the old or the new content, with the mode asked for and no
 * temp file behind; an exclusive create never overwrites.
 */
import t from 'tap';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/daemon.js';
import { createFileExclusively, writeFileDurably } from '../../daemon/src/files.js';

t.test('writeFileDurably replaces a file whole, with its mode, and leaves no temp file', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'admin.token');
  writeFileSync(path, 'old\n', { mode: 0o644 });
  writeFileDurably(path, 'new\n', 0o600);
  t.equal(readFileSync(path, 'utf8'), 'new\n');
  t.equal(statSync(path).mode & 0o777, 0o600, 'the mode asked for, not the old file\'s');
  writeFileDurably(path, Buffer.from('bytes\n'), 0o600);
  t.equal(readFileSync(path, 'utf8'), 'bytes\n', 'bytes as well as text');
  t.same(readdirSync(dir), ['admin.token'], 'no temp file left');
});

t.test('writeFileDurably: a rename that fails removes its temp file and keeps the target', async (t) => {
  const dir = tempDir(t);
  const target = join(dir, 'occupied');
  mkdirSync(target); // a directory in the way: rename(2) of a file over it fails (EISDIR)
  writeFileSync(join(target, 'inside'), 'x');
  t.throws(() => writeFileDurably(target, 'content', 0o600), { code: 'EISDIR' });
  t.same(readdirSync(dir), ['occupied'], 'the temp file is gone');
  t.ok(statSync(target).isDirectory(), 'what was there is untouched');
});

t.test('createFileExclusively creates once and never overwrites', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'master.key');
  t.equal(createFileExclusively(path, 'first\n', 0o600), true);
  t.equal(statSync(path).mode & 0o777, 0o600);
  t.equal(createFileExclusively(path, 'second\n', 0o600), false, 'an existing file: false');
  t.equal(readFileSync(path, 'utf8'), 'first\n', 'and left as it was');
  t.throws(() => createFileExclusively(join(dir, 'missing-dir', 'key'), 'x', 0o600), { code: 'ENOENT' }, 'other errors are thrown');
});
