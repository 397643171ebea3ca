/** `lockbox key …`: rotate the master key online, list master keys. */
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { renderTable } from '../output.js';

export function addKeyCommands(program: Command, { rpc, print }: CliContext): void {
  const key = program.command('key').description('master keys');
  key
    .command('rotate')
    .description('add a master key and re-wrap every data key under it, while lockboxd serves')
    .action(async () => {
      const r = await rpc('KeysService', 'RotateMasterKey', {});
      print(r, () => `active master key ${r.active_key_id} (was ${r.previous_key_id}); re-wrapped ${r.rewrapped} data keys\n`, () => [`key/${r.active_key_id}`]);
    });
  key
    .command('list')
    .description('list master keys and how many data keys each wraps')
    .action(async () => {
      const r = await rpc('KeysService', 'ListMasterKeys', {});
      print(r, () => renderTable(['ID', 'ACTIVE', 'DATA KEYS', 'CREATED'], (r.keys ?? []).map((k: any) => [k.id, k.active ? 'yes' : '', String(k.data_keys ?? 0), k.create_time ?? ''])), () => (r.keys ?? []).map((k: any) => `key/${k.id}`));
    });
}
