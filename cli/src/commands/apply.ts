/**
 * `lockbox apply -f FILE` (also `lockbox secret apply`): make a scope hold what the file declares
 * (apply-file.ts). The steps:
 * (1) read what lockboxd holds for every name the file declares (values too, to compare; the
 *     reads are audited as any read) and, with --prune, every secret and deployment of the scope;
 * (2) plan (apply-plan.ts): create what is missing, update what differs, leave alone what matches
 *     (no new version), and with --prune delete what the file's lists no longer name;
 * (3) --dry-run: print the plan (key and field names, never values) and stop;
 * (4) apply: the secrets in one batch (explicit batch items included, in file order), then the
 *     deployments, then the pruned deployments, then the pruned secrets (a deployment that still
 *     mounted one is gone by then).
 * A status per item; exit 1 when any failed.
 */
import type { Command } from 'commander';
import { parseApplyFile, type ApplyFile, type DeclaredSecret } from '../apply-file.js';
import { planDeployment, planSecret, type CurrentDeployment, type CurrentSecret, type Operation, type Plan } from '../apply-plan.js';
import { CallFailed, type CliContext } from '../context.js';
import { scopeGiven, scopeOf, withScope, type ScopeOptions } from '../flags.js';
import { renderTable } from '../output.js';

interface Row {
  kind: 'secret' | 'deployment';
  index?: number;
  operation: Operation;
  name: string;
  status: string;
  version?: number;
  changes: string[];
  error?: string;
}

interface ApplyOptions extends ScopeOptions {
  file: string;
  idempotencyKey?: string;
  dryRun?: boolean;
  prune?: boolean;
}

/** A failed call's status name (`NOT_FOUND (SECRET_NOT_FOUND): …` → NOT_FOUND). */
const statusOf = (error: Error) => /^([A-Z_]+)(?: \([A-Z_]+\))?:/.exec(error.message)?.[1] ?? 'FAILED';

export function addApplyCommand(parent: Command, ctx: CliContext): void {
  const { rpc } = ctx;
  const orMissing = <T>(call: Promise<T>): Promise<T | undefined> =>
    call.catch((error: Error) => {
      if (statusOf(error) === 'NOT_FOUND') return undefined;
      throw error;
    });

  async function listAll(scope: object): Promise<{ secrets: Array<{ name: string; version: number }>; deployments: Array<{ name: string; version: number }> }> {
    const secrets: Array<{ name: string; version: number }> = [];
    let cursor = '';
    do {
      const page = await rpc('SecretsService', 'ListSecrets', { scope, limit: 1000, cursor, own_only: true });
      secrets.push(...(page.secrets ?? []).map((s: any) => ({ name: s.name, version: Number(s.version) })));
      cursor = page.next_cursor ?? '';
    } while (cursor);
    const deployments = ((await rpc('DeploymentsService', 'ListDeployments', { scope })).deployments ?? []).map((x: any) => ({ name: x.name, version: Number(x.version) }));
    return { secrets, deployments };
  }

  async function plan(file: ApplyFile, scope: { resource_group?: string }, prune: boolean) {
    const group = scope.resource_group ?? '';
    const declared = (file.secrets ?? []).filter((s): s is DeclaredSecret => s.declared);
    // (1) A GET in a group falls back to the tenant-wide secret of that name: that is not this scope's.
    const secretsNow = await Promise.all(
      declared.map((s) => orMissing(rpc('SecretsService', 'GetSecret', { scope, name: s.name, include_values: true })).then((have) => (have?.scope?.resource_group === group ? (have as CurrentSecret) : undefined))),
    );
    const deploymentsNow = await Promise.all((file.deployments ?? []).map((x) => orMissing(rpc('DeploymentsService', 'GetDeployment', { scope, name: x.name })) as Promise<CurrentDeployment | undefined>));
    const secretPlans = new Map(declared.map((s, i) => [s, { ...planSecret(s, secretsNow[i]), version: secretsNow[i]?.version }])); // (2)
    const deploymentPlans = (file.deployments ?? []).map((x, i) => ({ want: x, plan: planDeployment(x, deploymentsNow[i]), version: deploymentsNow[i]?.version }));
    const pruned = { secrets: [] as Array<{ name: string; version: number }>, deployments: [] as Array<{ name: string; version: number }> };
    if (prune) {
      const all = await listAll(scope);
      const named = (list: Array<{ name: string }> | undefined) => new Set((list ?? []).map((x) => x.name));
      if (file.secrets) pruned.secrets = all.secrets.filter((s) => !named(file.secrets).has(s.name));
      if (file.deployments) pruned.deployments = all.deployments.filter((x) => !named(file.deployments).has(x.name));
    }
    return { secretPlans, deploymentPlans, pruned };
  }

  function plannedRows(file: ApplyFile, planned: Awaited<ReturnType<typeof plan>>): Row[] {
    const rows: Row[] = [];
    const row = (kind: Row['kind'], index: number, name: string, p: Plan<unknown>, version?: number | string): Row => ({
      kind, index, name, operation: p.operation, status: p.operation === 'unchanged' ? 'OK' : 'PLANNED', version: version === undefined ? undefined : Number(version), changes: p.changes,
    });
    for (const entry of file.secrets ?? [])
      if (entry.declared) rows.push(row('secret', entry.index, entry.name, planned.secretPlans.get(entry)!, planned.secretPlans.get(entry)!.version));
      else rows.push({ kind: 'secret', index: entry.index, name: entry.name, operation: entry.mode, status: 'PLANNED', changes: [] });
    for (const { want, plan: p, version } of planned.deploymentPlans) rows.push(row('deployment', want.index, want.name, p, version));
    for (const x of planned.pruned.deployments) rows.push({ kind: 'deployment', name: x.name, operation: 'delete', status: 'PLANNED', version: x.version, changes: ['not in the file'] });
    for (const s of planned.pruned.secrets) rows.push({ kind: 'secret', name: s.name, operation: 'delete', status: 'PLANNED', version: s.version, changes: ['not in the file'] });
    return rows;
  }

  /** Runs a secrets batch and writes its results into the rows it came from. */
  async function batch(scope: object, sent: Array<{ row: Row; item: object }>, idempotencyKey?: string): Promise<void> {
    if (sent.length === 0) return;
    const r = await rpc('SecretsService', 'BatchSecrets', { scope, items: sent.map((s) => s.item) }, idempotencyKey);
    for (const result of r.results ?? []) {
      const row = sent[result.index ?? 0].row;
      row.status = result.status;
      row.operation = result.operation || row.operation;
      if (result.secret) row.version = Number(result.secret.version);
      if (result.status !== 'OK') row.error = result.message;
    }
  }

  async function apply(file: ApplyFile, scope: object, planned: Awaited<ReturnType<typeof plan>>, rows: Row[], idempotencyKey?: string): Promise<void> {
    const rowOf = (kind: Row['kind'], name: string, pruned = false) => rows.find((r) => r.kind === kind && r.name === name && (r.index === undefined) === pruned)!;
    const changed: Array<{ row: Row; item: object }> = [];
    for (const entry of file.secrets ?? []) {
      const item = entry.declared ? planned.secretPlans.get(entry)!.request : entry.item;
      if (item) changed.push({ row: rows.find((r) => r.kind === 'secret' && r.index === entry.index)!, item });
    }
    await batch(scope, changed, idempotencyKey); // (4)
    for (const { want, plan: p } of planned.deploymentPlans) {
      if (!p.request) continue;
      const row = rowOf('deployment', want.name);
      try {
        const r = await rpc('DeploymentsService', p.operation === 'create' ? 'CreateDeployment' : 'UpdateDeployment', { scope, ...p.request });
        Object.assign(row, { status: 'OK', version: Number(r.version) });
      } catch (error) {
        Object.assign(row, { status: statusOf(error as Error), error: (error as Error).message });
      }
    }
    for (const x of planned.pruned.deployments) {
      const row = rowOf('deployment', x.name, true);
      await rpc('DeploymentsService', 'DeleteDeployment', { scope, name: x.name }).then(
        () => Object.assign(row, { status: 'OK' }),
        (error: Error) => Object.assign(row, { status: statusOf(error), error: error.message }),
      );
    }
    await batch(scope, planned.pruned.secrets.map((s) => ({ row: rowOf('secret', s.name, true), item: { delete: { name: s.name, expected_version: s.version } } })));
  }

  withScope(parent.command('apply'))
    .description('make the scope hold what a YAML or JSON file declares: secrets and deployments created or updated to match (unchanged ones get no new version), explicit batch items applied; a status per item')
    .requiredOption('-f, --file <path>', 'the file, or - for standard input')
    .option('--dry-run', 'print what would change (key and field names, never values) and change nothing')
    .option('--prune', 'also delete the secrets and deployments of the scope that the file does not list (only for the lists the file has)')
    .option('--idempotency-key <key>', 'retry-safe key for the secrets batch: a repeat returns the first result')
    .action(async (o: ApplyOptions) => {
      const file = parseApplyFile(ctx.readInputFile(o.file), o.file);
      const scope = scopeGiven(o) ? scopeOf(o) : (file.scope ?? scopeOf(o));
      const planned = await plan(file, scope, Boolean(o.prune)); // (1) (2)
      const rows = plannedRows(file, planned);
      if (!o.dryRun) await apply(file, scope, planned, rows, o.idempotencyKey); // (3) (4)
      printRows(ctx, rows, Boolean(o.dryRun));
      const failed = rows.filter((r) => r.error !== undefined).length;
      const attempted = rows.filter((r) => r.operation !== 'unchanged').length;
      if (failed) throw new CallFailed(`${failed} of ${attempted} items failed`);
    });
}

function printRows(ctx: CliContext, rows: Row[], dryRun: boolean): void {
  const count = (operation: Operation) => rows.filter((r) => r.operation === operation && r.error === undefined).length;
  const failed = rows.filter((r) => r.error !== undefined).length;
  const unchanged = count('unchanged');
  const applied = rows.length - unchanged - failed;
  const summary = dryRun
    ? `dry run: ${count('create')} to create, ${count('update')} to update, ${count('delete')} to delete, ${unchanged} unchanged; nothing was changed\n`
    : `${unchanged} unchanged, ${applied} applied, ${failed} failed\n`;
  ctx.print(
    { dry_run: dryRun, results: rows, unchanged, applied: dryRun ? 0 : applied, failed },
    () =>
      renderTable(
        ['KIND', '#', 'OPERATION', 'NAME', 'STATUS', 'VERSION', 'MESSAGE'],
        rows.map((r) => [r.kind, r.index === undefined ? '-' : String(r.index), r.operation, r.name, r.status, r.version ? String(r.version) : '', r.error ?? r.changes.join('; ')]),
      ) + summary,
    () => rows.filter((r) => r.error === undefined).map((r) => `${r.kind}/${r.name}`),
  );
}
