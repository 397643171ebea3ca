/**
 * `lockbox audit …`: list entries, sign the chain's head (`head`), verify the hash chain (exit 1
 * at the first broken entry, or when a head kept elsewhere is no longer there); retention:
 * `export` to a signed JSON-lines file that `verify --file` checks offline, `prune`.
 */
import { readFileSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { checkAuditExport } from '../../../shared/src/audit-export.js';
import { initCrypto } from '../../../shared/src/crypto.js';
import { CallFailed, type CliContext } from '../context.js';
import { positiveInt, timeOrAgo } from '../flags.js';
import { UsageError } from '../inputs.js';
import { renderTable } from '../output.js';
import { writeWholeFile } from '../whole-file.js';

/** "SEQ:HASH" (from `audit head`) as its parts; a UsageError naming --head otherwise. */
function headFlag(text: string): { seq: number; hash: string } {
  const match = /^(\d{1,15}):([0-9a-f]{64})$/.exec(text.trim());
  if (!match) throw new UsageError(`--head "${text}" must be SEQ:HASH, e.g. 1234:<64 hex digits> (from lockbox audit head)`);
  return { seq: Number(match[1]), hash: match[2] };
}

export function addAuditCommands(program: Command, { rpc, stream, print, io }: CliContext): void {
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
    .description('check the hash chain of the whole audit log (from the signed cut of the last prune); exit 1 at the first broken entry. With --file: check an export offline, exit 1 naming the first bad line')
    .option('--head <seq:hash>', 'a head kept elsewhere (from `audit head`, the log or NATS): also fail when entry SEQ is gone or hashes otherwise')
    .option('--file <file>', 'check this `audit export` file offline (no daemon needed)')
    .option('--public-key <hex>', 'with --file: the key that must have signed it (the public key `audit head` prints); default: the key in the file\'s header')
    .action(async (o) => {
      if (o.publicKey && !o.file) throw new UsageError('--public-key goes with --file');
      if (o.file) {
        await initCrypto();
        let text: string;
        try {
          text = readFileSync(resolve(io.cwd, o.file), 'utf8');
        } catch (error) {
          throw new UsageError(`--file ${o.file}: cannot read it (${(error as NodeJS.ErrnoException).code})`);
        }
        const r = checkAuditExport(text, { publicKey: o.publicKey, head: o.head ? headFlag(o.head) : undefined });
        const key = o.publicKey ? `the pinned key ${r.publicKey}` : `the key in its header, ${r.publicKey} (pin it with --public-key)`;
        print(r, () => (r.ok ? `audit export intact: ${r.entries} entries (after entry ${r.from}, up to ${r.to}), signed by ${key}\n` : `audit export BROKEN at line ${r.line}: ${r.problem}\n`));
        if (!r.ok) throw new CallFailed(`audit export ${o.file} broken at line ${r.line}`);
        return;
      }
      const r = await rpc('AuditService', 'VerifyAudit', { head: o.head ?? '' });
      const from = Number(r.verified_from ?? 0) > 0 ? ` (from the signed cut of the last prune, entry ${r.verified_from})` : '';
      print(r, () => (r.ok ? `audit log intact: ${r.checked} entries verified${from}\n` : `audit log BROKEN at entry ${r.first_broken_seq}: ${r.problem}\n`));
      if (!r.ok) throw new CallFailed(`audit log broken at entry ${r.first_broken_seq}`);
    });
  audit
    .command('export')
    .description('write the audit entries since a time as signed JSON lines, for `audit verify --file` (operator admins)')
    .option('--since <date|duration>', 'from this date (2026-01-31, RFC 3339) or this long ago (720h); default: every entry kept')
    .option('-f, --file <file>', 'write here (must not exist; whole or absent); default: stdout')
    .action(async (o) => {
      const lines = stream('AuditService', 'ExportAudit', { since: timeOrAgo(o.since, '--since') ?? '' });
      if (!o.file) {
        for await (const { line } of lines) io.stdout(`${line}\n`);
        return;
      }
      const file = resolve(io.cwd, o.file);
      const count = await writeWholeFile(file, `--file ${o.file}`, async (fd) => {
        let n = 0;
        for await (const { line } of lines) {
          writeSync(fd, `${line}\n`);
          n++;
        }
        return n;
      });
      io.stderr(`wrote ${count - 2} audit entries to ${file}; check it with: lockbox audit verify --file ${o.file}\n`);
    });
  audit
    .command('prune')
    .description('remove audit entries older than a time, after verifying the chain; a signed cut keeps it verifiable (operator admins; audited)')
    .requiredOption('--before <date|duration>', 'remove entries before this date (2026-01-31, RFC 3339) or older than this (2160h); the newest entry always stays')
    .action(async (o) => {
      const r = await rpc('AuditService', 'PruneAudit', { before: timeOrAgo(o.before, '--before') });
      const cut = r.checkpoint ? `; the chain is verified from the signed cut at entry ${r.checkpoint.seq} (${r.checkpoint.seq}:${r.checkpoint.hash})` : '';
      print(r, () => `removed ${r.removed} audit entries${cut}\n`);
    });
}
