/**
 * The `lockbox` CLI, a gRPC client. `runCli` is the whole program with its I/O handed in, so
 * tests run it in-process; main.ts binds it to the real process.
 * Exit codes: 0 ok, 1 the call failed (one line on stderr), 2 usage error.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { LockboxClient, type ServiceName } from '../../shared/src/client.js';
import { parseBatchFile, parseDeploymentFile, readMap, readValues, UsageError } from './inputs.js';
import { presentData, renderFields, renderStructured, renderTable, type OutputFormat } from './output.js';

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  readStdin: () => Buffer;
  /** Where ./.lockbox/admin.token is looked for. Settings' env vars come from process.env. */
  cwd: string;
}

interface GlobalOptions {
  addr: string;
  token?: string;
  tokenFile?: string;
  output: OutputFormat;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  timeout: string;
}

interface ScopeOptions {
  tenant?: string;
  resourceGroup?: string;
  tenantWide?: boolean;
}

class CallFailed extends Error {
  override name = 'CallFailed';
}

function grpcMessage(error: unknown): string {
  const e = error as ServiceError;
  if (typeof e?.code === 'number') {
    const name = GrpcStatus[e.code] ?? String(e.code);
    if (e.code === GrpcStatus.UNAVAILABLE) return `${name}: cannot reach lockboxd (${e.details})`;
    if (e.code === GrpcStatus.DEADLINE_EXCEEDED) return `${name}: lockboxd did not answer in time`;
    return `${name}: ${e.details}`;
  }
  return error instanceof Error ? error.message : String(error);
}

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let client: LockboxClient | undefined;
  const program = new Command('lockbox')
    .description('lockbox CLI: manage secrets in lockboxd over gRPC')
    .addOption(new Option('--addr <host:port>', 'lockboxd gRPC address').env('LOCKBOX_ADDR').default('127.0.0.1:7700'))
    .addOption(new Option('--token <token>', 'API token (prefer LOCKBOX_TOKEN or --token-file: flags show in ps)').env('LOCKBOX_TOKEN'))
    .addOption(new Option('--token-file <path>', 'file holding the token (default ./.lockbox/admin.token)').env('LOCKBOX_TOKEN_FILE'))
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json', 'yaml']).default('table'))
    .addOption(new Option('--tls-ca <path>', 'CA bundle (PEM) to verify lockboxd: enables TLS').env('LOCKBOX_TLS_CA'))
    .addOption(new Option('--tls-cert <path>', 'client certificate (PEM) for mTLS').env('LOCKBOX_TLS_CERT'))
    .addOption(new Option('--tls-key <path>', 'client key (PEM) for mTLS').env('LOCKBOX_TLS_KEY'))
    .addOption(new Option('--timeout <duration>', 'per-call deadline in seconds').env('LOCKBOX_TIMEOUT').default('30'))
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError('(run with --help for usage)');

  const globals = () => program.opts<GlobalOptions>();
  const readInputFile = (file: string): string => {
    try {
      return file === '-' ? io.readStdin().toString('utf8') : readFileSync(resolve(io.cwd, file), 'utf8');
    } catch (error) {
      throw new UsageError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  };

  const connect = (): LockboxClient => {
    if (client) return client;
    const g = globals();
    let token = g.token;
    if (!token) {
      const file = g.tokenFile ?? join(io.cwd, '.lockbox', 'admin.token');
      if (!existsSync(file))
        throw new UsageError(`no token: pass --token, set LOCKBOX_TOKEN or LOCKBOX_TOKEN_FILE, or run where ./.lockbox/admin.token exists`);
      token = readFileSync(resolve(io.cwd, file), 'utf8').trim();
    }
    const timeout = Number(g.timeout);
    if (!(timeout > 0)) throw new UsageError(`--timeout "${g.timeout}" must be a positive number of seconds`);
    client = new LockboxClient({ addr: g.addr, token, tlsCa: g.tlsCa, tlsCert: g.tlsCert, tlsKey: g.tlsKey, timeoutMs: timeout * 1000 });
    return client;
  };
  const rpc = (service: ServiceName, method: string, request: object, idempotencyKey?: string) =>
    connect().call(service, method, request, { idempotencyKey }).catch((error: unknown) => {
      throw new CallFailed(grpcMessage(error));
    });
  const secretsCall = (method: string, request: object, idempotencyKey?: string) => rpc('SecretsService', method, request, idempotencyKey);

  const print = (value: unknown, table: () => string) => {
    const format = globals().output;
    io.stdout(format === 'table' ? table() : renderStructured(value, format));
  };

  const withScope = (command: Command) =>
    command
      .option('--tenant <tenant>', 'tenant (default: "default")')
      .option('--resource-group <group>', 'resource group ("" main tenant, "*" tenant-wide)')
      .option('--tenant-wide', 'the tenant-wide scope (resource group "*")');
  const scopeOf = (o: ScopeOptions) => {
    if (o.tenantWide && o.resourceGroup !== undefined && o.resourceGroup !== '*') throw new UsageError('--tenant-wide and --resource-group disagree');
    return { tenant: o.tenant ?? '', resource_group: o.tenantWide ? '*' : (o.resourceGroup ?? '') };
  };
  const positiveInt = (text: string | undefined, flag: string): number | undefined => {
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} "${text}" must be a whole number of 1 or more`);
    return n;
  };
  const collect = (value: string, previous: string[] = []) => [...previous, value];
  const withMount = (command: Command) =>
    command
      .addOption(new Option('--mount <kind>', 'how the agent writes it').choices(['file', 'env']))
      .option('--path <path>', 'mount path relative to $BENTOML_HOME (default on create: the name)')
      .option('--subpath <key=sub>', 'per-key sub-path under the mount path (repeatable)', collect)
      .addOption(new Option('--format <format>', 'env file format').choices(['dotenv', 'sh', 'json']));
  const mountOf = (o: { mount?: string; path?: string; subpath?: string[]; format?: string }) =>
    o.mount || o.path || o.subpath || o.format
      ? { kind: o.mount ?? '', path: o.path ?? '', sub_paths: readMap(o.subpath, '--subpath'), format: o.format ?? '' }
      : undefined;

  const secretTable = (s: any) => {
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
  };
  const secretView = (s: any) => {
    const { data, ...rest } = s;
    return { ...rest, ...presentData(data) };
  };

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
      print(secretView(secret), () => `created ${secret.name} version ${secret.version}\n`);
    });

  withScope(secret.command('get <name>'))
    .description('show a secret; values only with --reveal')
    .option('--version <n>', 'a kept version instead of the current one')
    .option('--reveal', 'print the values')
    .action(async (name: string, o) => {
      const s = await secretsCall('GetSecret', { scope: scopeOf(o), name, version: positiveInt(o.version, '--version'), include_values: Boolean(o.reveal) });
      print(secretView(s), () => secretTable(s));
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
      });
      print(secretView(s), () => `updated ${s.name} to version ${s.version}\n`);
    });

  withScope(secret.command('delete <name>'))
    .description('delete a secret and every kept version')
    .option('--expected-version <n>', 'delete only if the current version is n')
    .option('--force', 'delete even if deployments mount it')
    .action(async (name: string, o) => {
      const r = await secretsCall('DeleteSecret', { scope: scopeOf(o), name, expected_version: positiveInt(o.expectedVersion, '--expected-version'), force: Boolean(o.force) });
      print(r, () => `deleted ${r.name} (was version ${r.version})\n`);
    });

  withScope(secret.command('list'))
    .description('list secrets (never values)')
    .option('--limit <n>', 'page size (1-1000)')
    .option('--cursor <cursor>', 'continue from a previous page')
    .option('--all', 'follow cursors to the end')
    .option('--template <slug>', 'only this provider template')
    .addOption(new Option('--type <type>', 'only this type').choices(['opaque', 'container_registry']))
    .option('--label <k=v>', 'only with this label (repeatable)', collect)
    .action(async (o) => {
      const request = { scope: scopeOf(o), limit: positiveInt(o.limit, '--limit'), cursor: o.cursor, template: o.template, type: o.type, labels: o.label };
      const secrets: any[] = [];
      let next = '';
      do {
        const page = await secretsCall('ListSecrets', { ...request, cursor: next || request.cursor });
        secrets.push(...(page.secrets ?? []));
        next = page.next_cursor ?? '';
      } while (o.all && next);
      print({ secrets, next_cursor: next }, () =>
        renderTable(
          ['NAME', 'TYPE', 'TEMPLATE', 'VERSION', 'KEYS', 'UPDATED'],
          secrets.map((s) => [s.name, s.type, s.template, String(s.version), (s.keys ?? []).join(','), s.update_time]),
        ) + (next ? `(more: --cursor ${next})\n` : ''),
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
    .action(async (name: string, version: string, o) => {
      const s = await secretsCall('RestoreVersion', {
        scope: scopeOf(o),
        name,
        version: positiveInt(version, 'version'),
        expected_version: positiveInt(o.expectedVersion, '--expected-version'),
      });
      print(secretView(s), () => `restored ${s.name} version ${version} as version ${s.version}\n`);
    });

  const applyAction = async (o: ScopeOptions & { file: string; idempotencyKey?: string }) => {
    const text = readInputFile(o.file);
    const batch = parseBatchFile(text, o.file);
    const explicit = o.tenant !== undefined || o.resourceGroup !== undefined || o.tenantWide;
    const r = await secretsCall('BatchSecrets', { scope: explicit ? scopeOf(o) : (batch.scope ?? scopeOf(o)), items: batch.items }, o.idempotencyKey);
    print(r, () =>
      renderTable(
        ['#', 'OPERATION', 'NAME', 'STATUS', 'VERSION', 'MESSAGE'],
        (r.results ?? []).map((x: any) => [String(x.index ?? 0), x.operation, x.name, x.status, x.secret ? String(x.secret.version) : '', x.message ?? '']),
      ) + `${r.succeeded ?? 0} applied, ${r.failed ?? 0} failed\n`,
    );
    if (r.failed) throw new CallFailed(`${r.failed} of ${(r.results ?? []).length} items failed`);
  };
  for (const parent of [program, secret])
    withScope(parent.command('apply'))
      .description('create, update and delete secrets from a JSON or YAML batch file (a status per item)')
      .requiredOption('-f, --file <path>', 'the batch file, or - for standard input')
      .option('--idempotency-key <key>', 'retry-safe key: a repeat returns the first result')
      .action(applyAction);

  const key = program.command('key').description('master keys');
  key
    .command('rotate')
    .description('add a master key and re-wrap every data key under it, while lockboxd serves')
    .action(async () => {
      const r = await rpc('KeysService', 'RotateMasterKey', {});
      print(r, () => `active master key ${r.active_key_id} (was ${r.previous_key_id}); re-wrapped ${r.rewrapped} data keys\n`);
    });
  key
    .command('list')
    .description('list master keys and how many data keys each wraps')
    .action(async () => {
      const r = await rpc('KeysService', 'ListMasterKeys', {});
      print(r, () => renderTable(['ID', 'ACTIVE', 'DATA KEYS', 'CREATED'], (r.keys ?? []).map((k: any) => [k.id, k.active ? 'yes' : '', String(k.data_keys ?? 0), k.create_time ?? ''])));
    });

  // ---- rollout status ----
  withScope(program.command('status <name>'))
    .description('which agents hold which version of a secret (rollout status)')
    .action(async (name: string, o) => {
      const r = await rpc('AgentService', 'SecretStatus', { scope: scopeOf(o), name });
      print(r, () =>
        renderTable(
          ['AGENT', 'DEPLOYMENT', 'VERSION', 'APPLIED', 'LAST SEEN', 'STATE'],
          (r.agents ?? []).map((a: any) => [
            a.agent_id,
            `${a.deployment_resource_group || '(main)'}/${a.deployment}`,
            a.version ? `v${a.version}` : 'other',
            a.applied_time,
            a.last_seen_time,
            a.stale ? 'stale' : a.version === r.current_version ? 'current' : 'behind',
          ]),
        ) + `${r.summary}\n`,
      );
    });

  // ---- tokens ----
  const tokenCommand = program.command('token').description('API tokens: create (shown once), list, revoke');
  const tokenTable = (tokens: any[]) =>
    renderTable(
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
  tokenCommand
    .command('create')
    .description('create a token; it is printed once and never again')
    .addOption(new Option('--role <role>', 'what the token may do').choices(['tenant-admin', 'rg-admin', 'reader', 'viewer', 'agent']).makeOptionMandatory())
    .option('--tenant <tenant>', 'tenant (default: your own)')
    .option('--resource-group <group>', 'rg-admin: a group it administers; reader/viewer: a group it reads (repeatable; none = whole tenant)', collect)
    .option('--deployment <name>', 'agent: the deployment it serves')
    .option('--deployment-resource-group <group>', 'agent: the deployment\'s resource group ("" main tenant)')
    .option('--ttl <seconds>', 'lifetime in seconds (default: no expiry)')
    .option('--description <text>', 'what the token is for')
    .action(async (o) => {
      const r = await rpc('TokensService', 'CreateToken', {
        role: o.role,
        tenant: o.tenant,
        resource_groups: o.resourceGroup,
        deployment: o.deployment,
        deployment_resource_group: o.deploymentResourceGroup,
        ttl_seconds: positiveInt(o.ttl, '--ttl'),
        description: o.description,
      });
      print(r, () => `${r.token}\n`);
      if (globals().output === 'table') io.stderr(`token ${r.info.id} (${r.info.role}) created; this is the only time it is shown\n`);
    });
  tokenCommand
    .command('list')
    .description('list tokens (never the tokens themselves)')
    .option('--tenant <tenant>', 'tenant (default: your own)')
    .option('--all', 'include revoked tokens')
    .action(async (o) => {
      const r = await rpc('TokensService', 'ListTokens', { tenant: o.tenant, include_revoked: Boolean(o.all) });
      print(r, () => tokenTable(r.tokens ?? []));
    });
  tokenCommand
    .command('revoke <id>')
    .description('revoke a token by id (the 16 hex characters after lbx_)')
    .action(async (id: string) => {
      const r = await rpc('TokensService', 'RevokeToken', { id });
      print(r, () => `revoked ${r.id}\n`);
    });

  // ---- deployments ----
  const deployment = program.command('deployment').description('deployments: the secrets an agent mounts');
  const deploymentView = (x: any) =>
    renderFields([
      ['name', x.name],
      ['scope', `${x.scope?.tenant}/${x.scope?.resource_group === '' ? '(main)' : x.scope?.resource_group}`],
      ['version', String(x.version)],
      ['secrets', (x.secrets ?? []).map((s: string) => `${s}${x.resolved?.[s] === '*' ? ' (tenant-wide)' : x.resolved?.[s] === '' ? ' (missing)' : ''}`).join(', ')],
      ['description', x.description ?? ''],
      ['updated', x.update_time],
    ]);
  const withDeploymentScope = (command: Command) =>
    command.option('--tenant <tenant>', 'tenant (default: "default")').option('--resource-group <group>', 'resource group ("" main tenant)');
  withDeploymentScope(deployment.command('create <name>'))
    .description('create a deployment that mounts the given secrets')
    .option('--secret <name>', 'a secret to mount (repeatable)', collect)
    .option('--description <text>', 'description')
    .action(async (name: string, o) => {
      const r = await rpc('DeploymentsService', 'CreateDeployment', { scope: scopeOf(o), deployment: { name, secrets: o.secret ?? [], description: o.description } });
      print(r, () => `created deployment ${r.name} with ${(r.secrets ?? []).length} secret(s)\n`);
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
      print(r, () => `updated deployment ${r.name} to version ${r.version}\n`);
    });
  withDeploymentScope(deployment.command('apply'))
    .description('create or update deployments from YAML/JSON (name, secrets: [...]; other fields are ignored with a note)')
    .requiredOption('-f, --file <path>', 'the file, or - for standard input')
    .action(async (o) => {
      const text = readInputFile(o.file);
      const { deployments, notes } = parseDeploymentFile(text, o.file);
      for (const note of notes) io.stderr(`note: ${note}\n`);
      const results: any[] = [];
      for (const spec of deployments) {
        const scope = o.tenant !== undefined || o.resourceGroup !== undefined ? scopeOf(o) : (spec.scope ?? scopeOf(o));
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
      print({ deployments: results }, () => results.map((r) => `${r.version === 1 ? 'created' : 'updated'} deployment ${r.name} (version ${r.version})\n`).join(''));
    });
  withDeploymentScope(deployment.command('get <name>'))
    .description('show a deployment and where each secret resolves')
    .action(async (name: string, o) => {
      const r = await rpc('DeploymentsService', 'GetDeployment', { scope: scopeOf(o), name });
      print(r, () => deploymentView(r));
    });
  withDeploymentScope(deployment.command('list'))
    .description('list the deployments of a scope')
    .action(async (o) => {
      const r = await rpc('DeploymentsService', 'ListDeployments', { scope: scopeOf(o) });
      print(r, () => renderTable(['NAME', 'VERSION', 'SECRETS', 'UPDATED'], (r.deployments ?? []).map((x: any) => [x.name, String(x.version), (x.secrets ?? []).join(','), x.update_time])));
    });
  withDeploymentScope(deployment.command('delete <name>'))
    .description('delete a deployment (its secrets stay)')
    .action(async (name: string, o) => {
      const r = await rpc('DeploymentsService', 'DeleteDeployment', { scope: scopeOf(o), name });
      print(r, () => `deleted deployment ${r.name}\n`);
    });

  // ---- audit ----
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
    .command('verify')
    .description('check the hash chain of the whole audit log; exit 1 at the first broken entry')
    .action(async () => {
      const r = await rpc('AuditService', 'VerifyAudit', {});
      print(r, () => (r.ok ? `audit log intact: ${r.checked} entries verified\n` : `audit log BROKEN at entry ${r.first_broken_seq}: ${r.problem}\n`));
      if (!r.ok) throw new CallFailed(`audit log broken at entry ${r.first_broken_seq}`);
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return 0;
      if (error.code === 'commander.executeSubCommandAsync') return 1;
      return 2;
    }
    if (error instanceof UsageError) {
      io.stderr(`lockbox: ${error.message}\n`);
      return 2;
    }
    io.stderr(`lockbox: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  } finally {
    client?.close();
  }
}
