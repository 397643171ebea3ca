/**
 * `lockbox backup --file FILE` (`-f`; `-o` is the output format everywhere): lockboxd streams an online, consistent copy of its SQLite database
 * (values still sealed); the CLI writes it whole or not at all (whole-file.ts), checking the size
 * and SHA-256 the daemon sent last.
 */
import { createHash } from 'node:crypto';
import { writeSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { writeWholeFile } from '../whole-file.js';

export function addBackupCommand(program: Command, { stream, print, io }: CliContext): void {
  program
    .command('backup')
    .description('write an online, consistent copy of lockboxd\'s database to FILE (values stay encrypted; restore with `lockboxd restore`)')
    .requiredOption('-f, --file <file>', 'where to write the backup (must not exist)')
    .action(async (o: { file: string }) => {
      const file = resolve(io.cwd, o.file);
      const hash = createHash('sha256');
      let size = 0;
      const last = await writeWholeFile(file, `--file ${o.file}`, async (fd) => {
        for await (const chunk of stream('BackupService', 'Backup', {})) {
          if (chunk.done) {
            const end = { size: Number(chunk.size), sha256: String(chunk.sha256) };
            if (end.size !== size || end.sha256 !== hash.digest('hex')) throw new Error('the backup arrived damaged (size or SHA-256 differ); nothing was written');
            return end;
          }
          const data = Buffer.from(chunk.data ?? []);
          writeSync(fd, data);
          hash.update(data);
          size += data.length;
        }
        throw new Error('the backup stream ended early; nothing was written');
      });
      print({ file, size, sha256: last.sha256 }, () => `wrote a backup of ${size} bytes to ${file} (sha256 ${last.sha256})\n`);
    });
}
