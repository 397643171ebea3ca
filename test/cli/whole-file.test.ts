/** `writeWholeFile`: a file that appears at the target while the CLI writes is never overwritten. */
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeWholeFile } from '../../cli/src/whole-file.js';

t.test('a target created during the write is left untouched and the partial removed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lockbox-whole-'));
  const file = join(dir, 'backup.bin');
  await t.rejects(
    writeWholeFile(file, '--out', async (fd) => {
      writeSync(fd, 'ours');
      writeFileSync(file, 'theirs'); // appears after the early exists check
    }),
    { name: 'UsageError', message: /--out: .*created by something else/ },
  );
  t.equal(readFileSync(file, 'utf8'), 'theirs', 'the other file is not overwritten');
  t.notOk(existsSync(`${file}.partial`), 'no partial file left behind');
});

t.test('a new target is written whole', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lockbox-whole-'));
  const file = join(dir, 'backup.bin');
  t.equal(await writeWholeFile(file, '--out', async (fd) => { writeSync(fd, 'ours'); return 7; }), 7);
  t.equal(readFileSync(file, 'utf8'), 'ours');
  t.notOk(existsSync(`${file}.partial`));
  await t.rejects(writeWholeFile(file, '--out', async () => undefined), { message: /--out: exists already/ });
});
