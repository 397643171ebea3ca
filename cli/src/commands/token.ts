/** `lockbox token …`: create (the token is shown once), list, revoke. */
import { Option, type Command } from 'commander';
import type { CliContext } from '../context.js';
import { collect, durationSeconds } from '../flags.js';
import { renderTable } from '../output.js';

function tokenTable(tokens: any[]): string {
  return renderTable(
    ['ID', 'ROLE', 'TENANT', 'SCOPE', 'EXPIRES', 'REVOKED', 'DESCRIPTION'],
    tokens.map((x) => [
      x.id,
      x.role,
      x.tenant,
      x.role === 'agent' ? `deployment ${x.deployment_resource_group || '(main)'}/${x.deployment}` : (x.resource_groups ?? []).join(',') || '(tenant)',
      x.expire_time || 'never',
      x.revoke_time || '',
      x.description ?? '',
    ]),
  );
}

export function addTokenCommands(program: Command, { io, rpc, print, globals }: CliContext): void {
  const tokenCommand = program.command('token').description('API tokens: create (shown once), list, revoke');
  tokenCommand
    .command('create')
    .description('create a token; it is printed once and never again')
    .addOption(new Option('--role <role>', 'what the token may do').choices(['tenant-admin', 'rg-admin', 'reader', 'viewer', 'agent']).makeOptionMandatory())
    .option('--tenant <tenant>', 'tenant (default: your own)')
    .option('--resource-group <group>', 'rg-admin: a group it administers; reader/viewer: a group it reads (repeatable; none = whole tenant)', collect)
    .option('--deployment <name>', 'agent: the deployment it serves')
    .option('--deployment-resource-group <group>', 'agent: the deployment\'s resource group ("" main tenant)')
    .option('--ttl <duration>', 'lifetime, e.g. 3600s, 90m, 24h (a bare number is seconds; default: no expiry)')
    .option('--description <text>', 'what the token is for')
    .action(async (o) => {
      const r = await rpc('TokensService', 'CreateToken', {
        role: o.role,
        tenant: o.tenant,
        resource_groups: o.resourceGroup,
        deployment: o.deployment,
        deployment_resource_group: o.deploymentResourceGroup,
        ttl_seconds: durationSeconds(o.ttl, '--ttl'),
        description: o.description,
      });
      print(r, () => `${r.token}\n`, () => [`token/${r.info.id}`]);
      if (globals().output === 'table') io.stderr(`token ${r.info.id} (${r.info.role}) created; this is the only time it is shown\n`);
    });
  tokenCommand
    .command('list')
    .description('list tokens (never the tokens themselves)')
    .option('--tenant <tenant>', 'tenant (default: your own)')
    .option('--all', 'include revoked tokens')
    .action(async (o) => {
      const r = await rpc('TokensService', 'ListTokens', { tenant: o.tenant, include_revoked: Boolean(o.all) });
      print(r, () => tokenTable(r.tokens ?? []), () => (r.tokens ?? []).map((x: any) => `token/${x.id}`));
    });
  tokenCommand
    .command('revoke <id>')
    .description('revoke a token by id (the 16 hex characters after lbx_)')
    .action(async (id: string) => {
      const r = await rpc('TokensService', 'RevokeToken', { id });
      print(r, () => `revoked ${r.id}\n`, () => [`token/${r.id}`]);
    });
}
