/**
 * `lockbox backup --file FILE` (`-f`; `-o` is the output format everywhere): lockboxd streams an online, consistent copy of its SQLite database
 * (values still sealed); the CLI writes it to FILE.partial (0600), checks the size and SHA-256 the
 * daemon sent last, then renames it into place, so FILE is a whole backup or absent.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { UsageError } from '../inputs.js';

export function addBackupCommand(program: Command, { stream, print, io }: CliContext): void {
  program
    .command('backup')
    .description('write an online, consistent copy of lockboxd\'s database to FILE (values stay encrypted; restore with `lockboxd restore`)')
    .requiredOption('-f, --file <file>', 'where to write the backup (must not exist)')
    .action(async (o: { file: string }) => {
      const file = resolve(io.cwd, o.file);
      if (existsSync(file)) throw new UsageError(`--file ${o.file}: exists already; name a new file`);
      const partial = `${file}.partial`;
      const fd = openSync(partial, 'wx', 0o600);
      const hash = createHash('sha256');
      let size = 0;
      let last: { size: number; sha256: string } | undefined;
      try {
        for await (const chunk of stream('BackupService', 'Backup', {})) {
          if (chunk.done) {
            last = { size: Number(chunk.size), sha256: chunk.sha256 };
            break;
          }
          const data = Buffer.from(chunk.data ?? []);
          writeSync(fd, data);
          hash.update(data);
          size += data.length;
        }
        if (!last) throw new Error('the backup stream ended early; nothing was written');
        if (last.size !== size || last.sha256 !== hash.digest('hex')) throw new Error('the backup arrived damaged (size or SHA-256 differ); nothing was written');
        fsyncSync(fd);
      } catch (error) {
        closeSync(fd);
        rmSync(partial, { force: true });
        throw error;
      }
      closeSync(fd);
      renameSync(partial, file);
      print({ file, size, sha256: last.sha256 }, () => `wrote a backup of ${size} bytes to ${file} (sha256 ${last!.sha256})\n`);
    });
}
