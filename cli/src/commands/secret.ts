/** `lockbox secret …`: create, get, update, delete, list, history, restore (apply is apply.ts). */
import { Option, type Command } from 'commander';
import type { CliContext } from '../context.js';
import { collect, mountOf, positiveInt, scopeOf, withMount, withScope } from '../flags.js';
import { readMap, readValues } from '../inputs.js';
import { presentData, renderFields, renderTable } from '../output.js';

function secretTable(s: any): string {
  const fields: Array<[string, string]> = [
    ['name', s.name],
    ['scope', `${s.scope?.tenant}/${s.scope?.resource_group === '' ? '(main)' : s.scope?.resource_group}`],
    ['type', s.type],
    ['template', s.template],
    ['version', String(s.version)],
    ['keys', (s.keys ?? []).join(', ')],
    ['mount', `${s.mount?.kind} ${s.mount?.path}${s.mount?.format ? ` (${s.mount.format})` : ''}`],
    ['labels', Object.entries(s.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(', ')],
    ['description', s.description ?? ''],
    ['created', s.create_time],
    ['updated', s.update_time],
    ['uid', s.uid],
  ];
  for (const [k, v] of Object.entries(s.mount?.sub_paths ?? {})) fields.push([`subpath ${k}`, String(v)]);
  let out = renderFields(fields);
  if (s.data) {
    out += '\n' + renderTable(['KEY', 'VALUE'], Object.entries(presentData(s.data).data ?? {}).map(([k, v]) => [k, v]));
    for (const [k, v] of Object.entries(presentData(s.data).data_base64 ?? {})) out += `${k} (base64): ${v}\n`;
  }
  return out;
}

function secretView(s: any) {
  const { data, ...rest } = s;
  return { ...rest, ...presentData(data) };
}

/** Adds `secret` and its subcommands to the program; returns the `secret` command. */
export function addSecretCommands(program: Command, ctx: CliContext): Command {
  const { io, print } = ctx;
  const secretsCall = (method: string, request: object, idempotencyKey?: string) => ctx.rpc('SecretsService', method, request, idempotencyKey);
  const secret = program.command('secret').description('create, read, change and delete secrets');

  withMount(withScope(secret.command('create <name> [values...]')))
    .description('create a secret from KEY=VALUE, KEY=@file or KEY=- (stdin) arguments')
    .addOption(new Option('--type <type>', 'secret type').choices(['opaque', 'container_registry']))
    .option('--template <slug>', 'provider template: openai, aws, huggingface, github, custom')
    .option('--description <text>', 'description')
    .option('--label <k=v>', 'label (repeatable)', collect)
    .option('--idempotency-key <key>', 'retry-safe key: a repeat returns the first result')
    .action(async (name: string, values: string[], o) => {
      const data = readValues(values, io.readStdin);
      const secret = await secretsCall(
        'CreateSecret',
        { scope: scopeOf(o), secret: { name, type: o.type, template: o.template, description: o.description, labels: readMap(o.label, '--label'), mount: mountOf(o), data } },
        o.idempotencyKey,
      );
      print(secretView(secret), () => `created ${secret.name} version ${secret.version}\n`, () => [`secret/${secret.name}`]);
    });

  withScope(secret.command('get <name>'))
    .description('show a secret; values only with --reveal')
    .option('--version <n>', 'a kept version instead of the current one')
    .option('--reveal', 'print the values')
    .action(async (name: string, o) => {
      const s = await secretsCall('GetSecret', { scope: scopeOf(o), name, version: positiveInt(o.version, '--version'), include_values: Boolean(o.reveal) });
      print(secretView(s), () => secretTable(s), () => [`secret/${s.name}`]);
    });

  withMount(withScope(secret.command('update <name> [values...]')))
    .description('set KEY=VALUE (or @file, -) keys, remove keys, or change metadata; makes a new version')
    .option('--remove <key>', 'remove a key (repeatable)', collect)
    .option('--replace', 'the given keys become the whole data')
    .option('--expected-version <n>', 'apply only if the current version is n')
    .option('--template <slug>', 'change the provider template')
    .option('--description <text>', 'description')
    .option('--label <k=v>', 'set a label (repeatable)', collect)
    .option('--remove-label <key>', 'remove a label (repeatable)', collect)
    .option('--idempotency-key <key>', 'retry-safe key: a repeat returns the first result')
    .action(async (name: string, values: string[], o) => {
      const s = await secretsCall('UpdateSecret', {
        scope: scopeOf(o),
        name,
        set: readValues(values, io.readStdin),
        remove: o.remove,
        replace: Boolean(o.replace),
        expected_version: positiveInt(o.expectedVersion, '--expected-version'),
        description: o.description,
        set_labels: readMap(o.label, '--label'),
        remove_labels: o.removeLabel,
        mount: mountOf(o),
        template: o.template,
      }, o.idempotencyKey);
      print(secretView(s), () => `updated ${s.name} to version ${s.version}\n`, () => [`secret/${s.name}`]);
    });

  withScope(secret.command('delete <name>'))
    .description('delete a secret and every kept version')
    .option('--expected-version <n>', 'delete only if the current version is n')
    .option('--force', 'delete even if deployments mount it')
    .option('--idempotency-key <key>', 'retry-safe key: a repeat returns the first result')
    .action(async (name: string, o) => {
      const r = await secretsCall('DeleteSecret', { scope: scopeOf(o), name, expected_version: positiveInt(o.expectedVersion, '--expected-version'), force: Boolean(o.force) }, o.idempotencyKey);
      print(r, () => `deleted ${r.name} (was version ${r.version})\n`, () => [`secret/${r.name}`]);
    });

  withScope(secret.command('list'))
    .description('list secrets (never values)')
    .option('--limit <n>', 'page size (1-1000)')
    .option('--cursor <cursor>', 'continue from a previous page')
    .option('--all', 'follow cursors to the end')
    .option('--template <slug>', 'only this provider template')
    .addOption(new Option('--type <type>', 'only this type').choices(['opaque', 'container_registry']))
    .option('--label <k=v>', 'only with this label (repeatable)', collect)
    .option('--own-only', "a resource group's own secrets only, without the tenant-wide ones visible there (listed with SCOPE *)")
    .action(async (o) => {
      const request = { scope: scopeOf(o), limit: positiveInt(o.limit, '--limit'), cursor: o.cursor, template: o.template, type: o.type, labels: o.label, own_only: Boolean(o.ownOnly) };
      const secrets: any[] = [];
      let next = '';
      do {
        const page = await secretsCall('ListSecrets', { ...request, cursor: next || request.cursor });
        secrets.push(...(page.secrets ?? []));
        next = page.next_cursor ?? '';
      } while (o.all && next);
      print({ secrets, next_cursor: next }, () =>
        renderTable(
          ['NAME', 'SCOPE', 'TYPE', 'TEMPLATE', 'VERSION', 'KEYS', 'UPDATED'],
          secrets.map((s) => [s.name, s.scope?.resource_group || '-', s.type, s.template, String(s.version), (s.keys ?? []).join(','), s.update_time]),
        ) + (next ? `(more: --cursor ${next})\n` : ''),
        () => secrets.map((s) => `secret/${s.name}`),
      );
    });

  withScope(secret.command('history <name>'))
    .description('list the kept versions of a secret')
    .action(async (name: string, o) => {
      const r = await secretsCall('ListVersions', { scope: scopeOf(o), name });
      print(r, () =>
        renderTable(
          ['VERSION', 'OPERATION', 'CREATED', 'KEYS'],
          (r.versions ?? []).map((v: any) => [
            `${v.version}${v.version === r.current_version ? ' (current)' : ''}`,
            v.operation + (v.restored_from ? ` of v${v.restored_from}` : ''),
            v.create_time,
            (v.keys ?? []).join(','),
          ]),
        ),
      );
    });

  withScope(secret.command('restore <name> <version>'))
    .description('make a kept version current again (as a new version)')
    .option('--expected-version <n>', 'restore only if the current version is n')
    .option('--idempotency-key <key>', 'retry-safe key: a repeat returns the first result')
    .action(async (name: string, version: string, o) => {
      const s = await secretsCall('RestoreVersion', {
        scope: scopeOf(o),
        name,
        version: positiveInt(version, 'version'),
        expected_version: positiveInt(o.expectedVersion, '--expected-version'),
      }, o.idempotencyKey);
      print(secretView(s), () => `restored ${s.name} version ${version} as version ${s.version}\n`, () => [`secret/${s.name}`]);
    });

  return secret;
}
