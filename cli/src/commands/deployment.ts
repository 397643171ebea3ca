/** `lockbox deployment …`: the secrets an agent mounts: create, update, apply, get, list, delete. */
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { collect, positiveInt, scopeGiven, scopeOf, withDeploymentScope } from '../flags.js';
import { parseDeploymentFile } from '../inputs.js';
import { renderFields, renderTable } from '../output.js';

function deploymentView(x: any): string {
  return renderFields([
    ['name', x.name],
    ['scope', `${x.scope?.tenant}/${x.scope?.resource_group === '' ? '(main)' : x.scope?.resource_group}`],
    ['version', String(x.version)],
    ['secrets', (x.secrets ?? []).map((s: string) => `${s}${x.resolved?.[s] === '*' ? ' (tenant-wide)' : x.resolved?.[s] === '' ? ' (missing)' : ''}`).join(', ')],
    ['description', x.description ?? ''],
    ['updated', x.update_time],
  ]);
}

export function addDeploymentCommands(program: Command, ctx: CliContext): void {
  const { io, rpc, print } = ctx;
  const deployment = program.command('deployment').description('deployments: the secrets an agent mounts');
  withDeploymentScope(deployment.command('create <name>'))
    .description('create a deployment that mounts the given secrets')
    .option('--secret <name>', 'a secret to mount (repeatable)', collect)
    .option('--description <text>', 'description')
    .action(async (name: string, o) => {
      const r = await rpc('DeploymentsService', 'CreateDeployment', { scope: scopeOf(o), deployment: { name, secrets: o.secret ?? [], description: o.description } });
      print(r, () => `created deployment ${r.name} with ${(r.secrets ?? []).length} secret(s)\n`, () => [`deployment/${r.name}`]);
    });
  withDeploymentScope(deployment.command('update <name>'))
    .description('replace the secrets (and description) of a deployment')
    .option('--secret <name>', 'a secret to mount (repeatable)', collect)
    .option('--description <text>', 'description')
    .option('--expected-version <n>', 'apply only if the current version is n')
    .action(async (name: string, o) => {
      const r = await rpc('DeploymentsService', 'UpdateDeployment', {
        scope: scopeOf(o),
        deployment: { name, secrets: o.secret ?? [], description: o.description },
        expected_version: positiveInt(o.expectedVersion, '--expected-version'),
      });
      print(r, () => `updated deployment ${r.name} to version ${r.version}\n`, () => [`deployment/${r.name}`]);
    });
  withDeploymentScope(deployment.command('apply'))
    .description('create or update deployments from YAML/JSON (name, secrets: [...]; other fields are ignored with a note)')
    .requiredOption('-f, --file <path>', 'the file, or - for standard input')
    .action(async (o) => {
      const { deployments, notes } = parseDeploymentFile(ctx.readInputFile(o.file), o.file);
      for (const note of notes) io.stderr(`note: ${note}\n`);
      const results: any[] = [];
      for (const spec of deployments) {
        const scope = scopeGiven(o) ? scopeOf(o) : (spec.scope ?? scopeOf(o));
        const input = { name: spec.name, secrets: spec.secrets, description: spec.description, labels: spec.labels };
        const exists = await rpc('DeploymentsService', 'GetDeployment', { scope, name: spec.name }).then(
          () => true,
          (error: Error) => {
            if (/^NOT_FOUND/.test(error.message)) return false;
            throw error;
          },
        );
        results.push(await rpc('DeploymentsService', exists ? 'UpdateDeployment' : 'CreateDeployment', { scope, deployment: input }));
      }
      print({ deployments: results }, () => results.map((r) => `${r.version === 1 ? 'created' : 'updated'} deployment ${r.name} (version ${r.version})\n`).join(''), () => results.map((r) => `deployment/${r.name}`));
    });
  withDeploymentScope(deployment.command('get <name>'))
    .description('show a deployment and where each secret resolves')
    .action(async (name: string, o) => {
      const r = await rpc('DeploymentsService', 'GetDeployment', { scope: scopeOf(o), name });
      print(r, () => deploymentView(r), () => [`deployment/${r.name}`]);
    });
  withDeploymentScope(deployment.command('list'))
    .description('list the deployments of a scope')
    .action(async (o) => {
      const r = await rpc('DeploymentsService', 'ListDeployments', { scope: scopeOf(o) });
      print(r, () => renderTable(['NAME', 'VERSION', 'SECRETS', 'UPDATED'], (r.deployments ?? []).map((x: any) => [x.name, String(x.version), (x.secrets ?? []).join(','), x.update_time])), () => (r.deployments ?? []).map((x: any) => `deployment/${x.name}`));
    });
  withDeploymentScope(deployment.command('delete <name>'))
    .description('delete a deployment (its secrets stay)')
    .action(async (name: string, o) => {
      const r = await rpc('DeploymentsService', 'DeleteDeployment', { scope: scopeOf(o), name });
      print(r, () => `deleted deployment ${r.name}\n`, () => [`deployment/${r.name}`]);
    });
}
