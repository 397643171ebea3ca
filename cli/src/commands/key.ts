/** `lockbox key …`: rotate a keyring key online, rotate the root key, list keyring keys. */
import { randomBytes } from 'node:crypto';
import { openSync, writeSync, closeSync, fsyncSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { UsageError } from '../inputs.js';
import { renderTable } from '../output.js';

const rotateRootHelp = `
The new root key travels once, on this call, to lockboxd, which re-seals every keyring key under
it in one transaction; it is written nowhere by lockboxd. From then on lockboxd needs the new key
at its next start (the old one is refused, naming the root key id the database needs). Order:
  1. write the new root key where lockboxd will read it (a new file, or a new Secret version);
  2. lockbox key rotate-root --new-root-key-file FILE;
  3. restart every lockboxd replica with the new key (--root-key-file FILE or LOCKBOX_ROOT_KEY),
     before the next \`lockbox key rotate\` (a replica still on the old key refuses to rotate).

`;

/** Writes a fresh 32-byte key, base64, mode 0600; refuses an existing file. */
function writeNewKeyFile(path: string): string {
  const text = randomBytes(32).toString('base64');
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (error) {
    throw new UsageError(`--new-root-key-file ${path}: ${(error as NodeJS.ErrnoException).code === 'EEXIST' ? 'already exists; --generate writes a new file only' : (error as Error).message}`);
  }
  try {
    writeSync(fd, text + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return text;
}

export function addKeyCommands(program: Command, { rpc, print, io, readInputFile }: CliContext): void {
  const key = program.command('key').description('keyring keys (in the database) and the root key that seals them');
  key
    .command('rotate')
    .description('add a keyring key in the database and re-wrap every data key under it, while every lockboxd replica serves')
    .action(async () => {
      const r = await rpc('KeysService', 'RotateMasterKey', {});
      print(r, () => `active master key ${r.active_key_id} (was ${r.previous_key_id}); re-wrapped ${r.rewrapped} data keys\n`, () => [`key/${r.active_key_id}`]);
    });
  key
    .command('rotate-root')
    .description('re-seal the keyring under a new root key; restart every replica with it afterwards')
    .requiredOption('--new-root-key-file <file>', 'the new root key: 32 bytes, base64 or hex (with --generate, where a fresh one is written)')
    .option('--generate', 'write a fresh random root key to --new-root-key-file (mode 0600; an existing file is refused) and use it')
    .addHelpText('after', rotateRootHelp)
    .action(async (options: { newRootKeyFile: string; generate?: boolean }) => {
      const path = resolve(io.cwd, options.newRootKeyFile);
      const newRootKey = options.generate ? writeNewKeyFile(path) : readInputFile(options.newRootKeyFile).trim();
      const r = await rpc('KeysService', 'RotateRootKey', { new_root_key: newRootKey });
      print(
        { root_key_id: r.root_key_id, previous_root_key_id: r.previous_root_key_id, resealed: r.resealed },
        () =>
          `keyring re-sealed under root key ${r.root_key_id} (was ${r.previous_root_key_id}); ${r.resealed} keys\n` +
          `restart every lockboxd with --root-key-file ${path} (or LOCKBOX_ROOT_KEY): the old root key no longer opens the keyring\n`,
        () => [`rootkey/${r.root_key_id}`],
      );
    });
  key
    .command('list')
    .description('list keyring keys and how many data keys each wraps')
    .action(async () => {
      const r = await rpc('KeysService', 'ListMasterKeys', {});
      print(
        r,
        () =>
          renderTable(['ID', 'ACTIVE', 'DATA KEYS', 'CREATED'], (r.keys ?? []).map((k: any) => [k.id, k.active ? 'yes' : '', String(k.data_keys ?? 0), k.create_time ?? ''])) +
          (r.root_key_id ? `sealed under root key ${r.root_key_id}\n` : ''),
        () => (r.keys ?? []).map((k: any) => `key/${k.id}`),
      );
    });
}
