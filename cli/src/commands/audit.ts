/**
 * `lockbox audit …`: list entries, sign the chain's head (`head`), verify the hash chain (exit 1
 * at the first broken entry, or when a head kept elsewhere is no longer there).
 */
import type { Command } from 'commander';
import { CallFailed, type CliContext } from '../context.js';
import { positiveInt } from '../flags.js';
import { renderTable } from '../output.js';

export function addAuditCommands(program: Command, { rpc, print }: CliContext): void {
  const audit = program.command('audit').description('the audit log: who changed or read what');
  audit
    .command('list')
    .description('list audit entries, oldest first')
    .option('--tenant <tenant>', 'tenant (default: your own)')
    .option('--action <action>', 'only this action, e.g. secret.read')
    .option('--target <name>', 'only this target')
    .option('--after <seq>', 'entries after this sequence number')
    .option('--limit <n>', 'page size (1-1000)')
    .action(async (o) => {
      const r = await rpc('AuditService', 'ListAudit', { tenant: o.tenant, action: o.action, target: o.target, after_seq: positiveInt(o.after, '--after'), limit: positiveInt(o.limit, '--limit') });
      print(r, () =>
        renderTable(
          ['SEQ', 'TIME', 'TOKEN', 'ROLE', 'SCOPE', 'ACTION', 'TARGET', 'VERSION', 'OUTCOME', 'COUNT'],
          (r.entries ?? []).map((e: any) => [String(e.seq), e.time, e.token_id, e.role, `${e.tenant}/${e.resource_group === '' ? '(main)' : e.resource_group}`, e.action, e.target, String(e.version ?? 0), e.outcome, String(e.count ?? 1)]),
        ) + (r.next_after_seq ? `(more: --after ${r.next_after_seq})\n` : ''),
      );
    });
  audit
    .command('head')
    .description('sign the audit chain\'s head now (also logged and published on NATS); keep the SEQ:HASH line elsewhere for `audit verify --head`')
    .action(async () => {
      const r = await rpc('AuditService', 'AuditHead', {});
      print(r, () => `${r.seq}:${r.hash}\ntime ${r.time}\npublic key ${r.public_key}\nsignature ${r.signature}\n`);
    });
  audit
    .command('verify')
    .description('check the hash chain of the whole audit log; exit 1 at the first broken entry')
    .option('--head <seq:hash>', 'a head kept elsewhere (from `audit head`, the log or NATS): also fail when entry SEQ is gone or hashes otherwise')
    .action(async (o) => {
      const r = await rpc('AuditService', 'VerifyAudit', { head: o.head ?? '' });
      print(r, () => (r.ok ? `audit log intact: ${r.checked} entries verified\n` : `audit log BROKEN at entry ${r.first_broken_seq}: ${r.problem}\n`));
      if (!r.ok) throw new CallFailed(`audit log broken at entry ${r.first_broken_seq}`);
    });
}
