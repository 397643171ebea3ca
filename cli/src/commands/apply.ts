/** `lockbox apply -f FILE` (also `lockbox secret apply`): a batch file of creates, updates, deletes. */
import type { Command } from 'commander';
import { CallFailed, type CliContext } from '../context.js';
import { scopeGiven, scopeOf, withScope, type ScopeOptions } from '../flags.js';
import { parseBatchFile } from '../inputs.js';
import { renderTable } from '../output.js';

export function addApplyCommand(parent: Command, ctx: CliContext): void {
  withScope(parent.command('apply'))
    .description('create, update and delete secrets from a JSON or YAML batch file (a status per item)')
    .requiredOption('-f, --file <path>', 'the batch file, or - for standard input')
    .option('--idempotency-key <key>', 'retry-safe key: a repeat returns the first result')
    .action(async (o: ScopeOptions & { file: string; idempotencyKey?: string }) => {
      const batch = parseBatchFile(ctx.readInputFile(o.file), o.file);
      const scope = scopeGiven(o) ? scopeOf(o) : (batch.scope ?? scopeOf(o));
      const r = await ctx.rpc('SecretsService', 'BatchSecrets', { scope, items: batch.items }, o.idempotencyKey);
      ctx.print(r, () =>
        renderTable(
          ['#', 'OPERATION', 'NAME', 'STATUS', 'VERSION', 'MESSAGE'],
          (r.results ?? []).map((x: any) => [String(x.index ?? 0), x.operation, x.name, x.status, x.secret ? String(x.secret.version) : '', x.message ?? '']),
        ) + `${r.succeeded ?? 0} applied, ${r.failed ?? 0} failed\n`,
      );
      if (r.failed) throw new CallFailed(`${r.failed} of ${(r.results ?? []).length} items failed`);
    });
}
