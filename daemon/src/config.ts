/**
 * lockboxd settings: flags, then LOCKBOX_* environment variables, then defaults. Parsed and
 * validated once into a typed object; a bad setting stops the program with one line naming it.
 */
import { Command, Option } from 'commander';
import { checkNatsOptions, natsSecretFlagHelp, refuseNatsSecretFlags, type NatsOptions } from '../../shared/src/nats-options.js';
import { SettingError, durationHelp, parseDuration, parseHostPort, parseNatsUrl, parseNatsUrls } from '../../shared/src/settings.js';
import { versionLine } from '../../shared/src/version.js';

export interface DaemonConfig {
  dataDir: string;
  /** postgres://… to keep the data in PostgreSQL (several replicas may share it); empty: SQLite in the data dir. */
  databaseUrl: string;
  /** PostgreSQL: connect, query, statement and idle-in-transaction timeout. */
  databaseTimeoutMs: number;
  grpcAddr: string;
  /** The REST gateway's address; empty: no REST gateway. */
  httpAddr: string;
  /** Serve the web console at /ui/ on the REST address. */
  ui: boolean;
  /** Largest REST request body, in bytes. */
  httpBodyLimit: number;
  /** Where `/metrics` is served: "rest" (on the REST gateway), "none", or its own host:port. */
  metricsAddr?: string;
  /** A comma list of NATS URLs (the client tries each); empty: run without NATS. */
  natsUrl: string;
  /** NATS credentials (token, user and password, or a creds file) and the CA for its TLS. */
  nats: NatsOptions;
  /** The NATS URL agents are told to use (default: natsUrl). */
  natsAdvertiseUrl?: string;
  /**
   * The root key file (--root-key-file, or its old name --master-key-file). Undefined:
   * <dataDir>/master.key, generated only for an empty database.
   */
  masterKeyFile?: string;
  /** LOCKBOX_ROOT_KEY: the root key itself (base64 or hex); wins over the file. */
  rootKey?: string;
  /** How often the keyring is re-read from the database besides keyring notices; 0: never. */
  keyringRefreshMs: number;
  tls?: { cert: string; key: string; clientCa?: string };
  maxVersions: number;
  logLevel: string;
  drainTimeoutMs: number;
  idempotencyTtlMs: number;
  /** Agents silent this long leave rollout status and are deleted by a sweep (service-agent.ts step (6)); 0: kept. */
  agentRetentionMs: number;
  /** How often a signed checkpoint of the audit chain's head is written (when it moved); 0: never. */
  auditCheckpointIntervalMs: number;
  quotas: { maxTenantWideSecrets: number; maxResourceGroups: number };
  /** "durable": a value leaves only after its read is on disk in the audit log; "async": queued. */
  auditReads: 'durable' | 'async';
  /** Live agent ids per deployment (on this daemon); a new one past it is refused (AGENT_LIMIT). */
  maxAgentsPerDeployment: number;
  /** gRPC keepalive towards agents and clients: a ping after timeMs without traffic, the connection dropped after timeoutMs unanswered. */
  keepalive: { timeMs: number; timeoutMs: number };
}

export const defaults = {
  dataDir: './.lockbox',
  grpcAddr: '127.0.0.1:7700',
  httpAddr: '127.0.0.1:7701',
  httpBodyLimit: '8MiB',
  natsUrl: 'nats://127.0.0.1:4222',
  maxVersions: 10,
  logLevel: 'info',
  drainTimeout: '10s',
  idempotencyTtl: '24h',
  auditCheckpointInterval: '10m',
  agentRetention: '168h',
  maxTenantWideSecrets: 5,
  maxResourceGroups: 50,
  maxAgentsPerDeployment: 1000,
  keepaliveTime: '5s',
  databaseTimeout: '10s',
  keepaliveTimeout: '5s',
  keyringRefreshInterval: '10s',
};

/** "8MiB", "512KiB", "1048576" (bytes). */
export function parseSize(text: string, setting: string): number {
  const match = /^(\d+)\s*(B|KiB|MiB|GiB)?$/i.exec(text.trim());
  if (!match) throw new SettingError(`${setting}: "${text}" is not a size (e.g. 8MiB, 512KiB, 1048576)`);
  const unit = { b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 }[(match[2] ?? 'b').toLowerCase() as 'b']!;
  return Number(match[1]) * unit;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

export function daemonCommand(): Command {
  const env = (name: string) => `LOCKBOX_${name}`;
  return new Command('lockboxd')
    .description('lockbox daemon: stores secrets encrypted, serves the gRPC admin API and a REST gateway, publishes change notices over NATS')
    .addOption(new Option('--data-dir <dir>', 'where the database, master key and admin token live').env(env('DATA_DIR')).default(defaults.dataDir))
    .addOption(new Option('--database-url <url>', 'postgres://user@host:5432/db to keep data in PostgreSQL (replicas may share it); default: SQLite in the data dir').env(env('DATABASE_URL')))
    .addOption(new Option('--grpc-addr <host:port>', 'gRPC listen address').env(env('GRPC_ADDR')).default(defaults.grpcAddr))
    .addOption(new Option('--http-addr <host:port>', 'REST gateway listen address; "none" turns it off').env(env('HTTP_ADDR')).default(defaults.httpAddr))
    .addOption(new Option('--ui <on|off>', 'serve the web console at /ui/ on the REST address (--http-addr)').choices(['on', 'off', 'true', 'false']).env(env('UI')).default('on'))
    .addOption(new Option('--metrics-addr <host:port>', 'serve Prometheus /metrics here (no token); default: on the REST gateway; "none" turns it off').env(env('METRICS_ADDR')))
    .addOption(new Option('--http-body-limit <size>', 'largest REST request body (e.g. 8MiB)').env(env('HTTP_BODY_LIMIT')).default(defaults.httpBodyLimit))
    .addOption(new Option('--nats-url <url,...>', 'NATS server(s) for change notices, a comma list; "" or "none" runs without NATS').env(env('NATS_URL')).default(defaults.natsUrl))
    .addOption(new Option('--nats-token <token>', natsSecretFlagHelp('NATS token', 'LOCKBOX_NATS_TOKEN')).env(env('NATS_TOKEN')))
    .addOption(new Option('--nats-user <user>', 'NATS user (with --nats-password)').env(env('NATS_USER')))
    .addOption(new Option('--nats-password <password>', natsSecretFlagHelp('NATS password', 'LOCKBOX_NATS_PASSWORD')).env(env('NATS_PASSWORD')))
    .addOption(new Option('--nats-creds <path>', 'NATS creds file (JWT and NKey seed)').env(env('NATS_CREDS')))
    .addOption(new Option('--nats-ca <path>', 'CA bundle for the NATS server\'s certificate: enables TLS').env(env('NATS_CA')))
    .addOption(new Option('--nats-advertise-url <url>', 'NATS URL handed to agents (default: --nats-url)').env(env('NATS_ADVERTISE_URL')))
    .addOption(new Option('--root-key-file <path>', 'root key file: 32 bytes, base64 or hex; it unlocks the keyring kept in the database; read-only is fine (default: <data dir>/master.key, generated only for an empty database). LOCKBOX_ROOT_KEY (the key itself) wins over it').env(env('ROOT_KEY_FILE')))
    .addOption(new Option('--master-key-file <path>', 'the same as --root-key-file (its name before the keyring moved into the database; an old keyring file given here is migrated)').env(env('MASTER_KEY_FILE')))
    .addOption(new Option('--keyring-refresh-interval <duration>', 'how often the keyring is re-read from the database, in case a keyring notice from another replica was missed (NATS down); 0 turns it off').env(env('KEYRING_REFRESH_INTERVAL')).default(defaults.keyringRefreshInterval))
    .addOption(new Option('--tls-cert <path>', 'TLS certificate chain (PEM)').env(env('TLS_CERT')))
    .addOption(new Option('--tls-key <path>', 'TLS private key (PEM)').env(env('TLS_KEY')))
    .addOption(new Option('--tls-client-ca <path>', 'CA bundle (PEM) that client certificates must chain to: enables mTLS').env(env('TLS_CLIENT_CA')))
    .addOption(new Option('--max-versions <n>', 'versions kept per secret, the current one included').env(env('MAX_VERSIONS')).default(String(defaults.maxVersions)))
    .addOption(new Option('--log-level <level>', 'trace, debug, info, warn, error').env(env('LOG_LEVEL')).default(defaults.logLevel))
    .addOption(new Option('--drain-timeout <duration>', 'how long SIGTERM waits for calls in flight').env(env('DRAIN_TIMEOUT')).default(defaults.drainTimeout))
    .addOption(new Option('--idempotency-ttl <duration>', 'how long idempotency keys are kept').env(env('IDEMPOTENCY_TTL')).default(defaults.idempotencyTtl))
    .addOption(new Option('--audit-checkpoint-interval <duration>', 'how often the audit chain\'s head is signed, logged and published on NATS (when it moved); 0 turns it off').env(env('AUDIT_CHECKPOINT_INTERVAL')).default(defaults.auditCheckpointInterval))
    .addOption(new Option('--agent-retention <duration>', 'agents silent this long (sidecars gone, one-shot runs done) leave rollout status and are deleted; 0 or "off" keeps them').env(env('AGENT_RETENTION')).default(defaults.agentRetention))
    .addOption(new Option('--max-tenant-wide-secrets <n>', 'tenant-wide ("*") secrets per tenant').env(env('MAX_TENANT_WIDE_SECRETS')).default(String(defaults.maxTenantWideSecrets)))
    .addOption(new Option('--audit-reads <mode>', 'durable: a value is sent only once its read is on disk in the audit log; async: the record follows within milliseconds').choices(['durable', 'async']).env(env('AUDIT_READS')).default('durable'))
    .addOption(new Option('--max-resource-groups <n>', 'resource groups in use per tenant').env(env('MAX_RESOURCE_GROUPS')).default(String(defaults.maxResourceGroups)))
    .addOption(new Option('--max-agents-per-deployment <n>', 'live agents per deployment; a new agent id past it is refused (AGENT_LIMIT)').env(env('MAX_AGENTS_PER_DEPLOYMENT')).default(String(defaults.maxAgentsPerDeployment)))
    .addOption(new Option('--database-timeout <duration>', 'PostgreSQL: longest wait to connect, for a query, a statement, or a transaction left idle; past it the call is UNAVAILABLE').env(env('DATABASE_TIMEOUT')).default(defaults.databaseTimeout))
    .addOption(new Option('--keepalive-time <duration>', 'gRPC keepalive: ping a connection after this long without traffic').env(env('KEEPALIVE_TIME')).default(defaults.keepaliveTime))
    .addOption(new Option('--keepalive-timeout <duration>', 'gRPC keepalive: drop a connection whose ping is unanswered this long (a dead or hung agent)').env(env('KEEPALIVE_TIMEOUT')).default(defaults.keepaliveTimeout))
    .version(versionLine('lockboxd'), '-V, --version', 'print the version and exit')
    .addHelpText('after', `\n${durationHelp}\n\nlockboxd restore FILE --data-dir DIR puts a \`lockbox backup\` file in place as the database of a new data dir.\n`)
    .showHelpAfterError()
    .allowExcessArguments(false)
    .exitOverride();
}

interface RawOptions {
  dataDir: string;
  databaseUrl?: string;
  databaseTimeout?: string;
  grpcAddr: string;
  httpAddr?: string;
  httpBodyLimit?: string;
  ui?: string;
  metricsAddr?: string;
  natsUrl: string;
  natsToken?: string;
  natsUser?: string;
  natsPassword?: string;
  natsCreds?: string;
  natsCa?: string;
  natsAdvertiseUrl?: string;
  masterKeyFile?: string;
  rootKeyFile?: string;
  /** LOCKBOX_ROOT_KEY, read from the environment only (never a flag: it would show in ps). */
  rootKey?: string;
  keyringRefreshInterval?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsClientCa?: string;
  maxVersions: string;
  logLevel: string;
  drainTimeout: string;
  idempotencyTtl: string;
  auditCheckpointInterval?: string;
  agentRetention?: string;
  maxTenantWideSecrets?: string;
  maxResourceGroups?: string;
  auditReads?: string;
  maxAgentsPerDeployment?: string;
  keepaliveTime?: string;
  keepaliveTimeout?: string;
}

function wholeNumber(text: string, min: number, max: number, setting: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < min || n > max) throw new SettingError(`${setting}: "${text}" must be a whole number from ${min} to ${max}`);
  return n;
}

function keepaliveDuration(text: string, setting: string): number {
  const ms = parseDuration(text, setting);
  if (ms < 1000 || ms > 3_600_000) throw new SettingError(`${setting}: "${text}" must be from 1s to 1h`);
  return ms;
}

function databaseTimeout(text: string): number {
  const setting = '--database-timeout (LOCKBOX_DATABASE_TIMEOUT)';
  const ms = parseDuration(text, setting);
  if (ms < 100 || ms > 600_000) throw new SettingError(`${setting}: "${text}" must be from 100ms to 10m`);
  return ms;
}

/** --root-key-file, or its old name --master-key-file; both naming different files is an error. */
function rootKeyFile(raw: RawOptions): string | undefined {
  if (raw.rootKeyFile && raw.masterKeyFile && raw.rootKeyFile !== raw.masterKeyFile)
    throw new SettingError('--root-key-file and --master-key-file (LOCKBOX_ROOT_KEY_FILE, LOCKBOX_MASTER_KEY_FILE) name different files; give one');
  return raw.rootKeyFile || raw.masterKeyFile || undefined;
}

export function configFromOptions(raw: RawOptions): DaemonConfig {
  if (!raw.dataDir) throw new SettingError('--data-dir (LOCKBOX_DATA_DIR) must not be empty');
  parseHostPort(raw.grpcAddr, '--grpc-addr (LOCKBOX_GRPC_ADDR)');
  const databaseUrl = raw.databaseUrl ?? '';
  if (databaseUrl && !/^postgres(ql)?:\/\/\S+$/.test(databaseUrl))
    throw new SettingError('--database-url (LOCKBOX_DATABASE_URL): must be a postgres:// URL (or empty for SQLite in the data dir)');
  const httpAddr = raw.httpAddr === undefined ? defaults.httpAddr : raw.httpAddr === 'none' ? '' : raw.httpAddr;
  if (httpAddr) parseHostPort(httpAddr, '--http-addr (LOCKBOX_HTTP_ADDR)');
  const httpBodyLimit = parseSize(raw.httpBodyLimit ?? defaults.httpBodyLimit, '--http-body-limit (LOCKBOX_HTTP_BODY_LIMIT)');
  if (httpBodyLimit < 1024 || httpBodyLimit > 1024 ** 3) throw new SettingError('--http-body-limit (LOCKBOX_HTTP_BODY_LIMIT): must be from 1KiB to 1GiB');
  const metricsAddr = !raw.metricsAddr ? 'rest' : raw.metricsAddr;
  if (metricsAddr !== 'rest' && metricsAddr !== 'none') parseHostPort(metricsAddr, '--metrics-addr (LOCKBOX_METRICS_ADDR)');
  const natsUrl = parseNatsUrls(raw.natsUrl, '--nats-url (LOCKBOX_NATS_URL)');
  const nats: NatsOptions = { token: raw.natsToken || undefined, user: raw.natsUser || undefined, password: raw.natsPassword || undefined, credsFile: raw.natsCreds || undefined, caFile: raw.natsCa || undefined };
  checkNatsOptions(nats);
  const maxVersions = wholeNumber(raw.maxVersions, 1, 1000, '--max-versions (LOCKBOX_MAX_VERSIONS)');
  const quotas = {
    maxTenantWideSecrets: wholeNumber(raw.maxTenantWideSecrets ?? String(defaults.maxTenantWideSecrets), 0, 1_000_000, '--max-tenant-wide-secrets (LOCKBOX_MAX_TENANT_WIDE_SECRETS)'),
    maxResourceGroups: wholeNumber(raw.maxResourceGroups ?? String(defaults.maxResourceGroups), 0, 1_000_000, '--max-resource-groups (LOCKBOX_MAX_RESOURCE_GROUPS)'),
  };
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(raw.logLevel))
    throw new SettingError(`--log-level (LOCKBOX_LOG_LEVEL): "${raw.logLevel}" must be trace, debug, info, warn or error`);
  if (Boolean(raw.tlsCert) !== Boolean(raw.tlsKey)) throw new SettingError('--tls-cert and --tls-key (LOCKBOX_TLS_CERT, LOCKBOX_TLS_KEY) must be given together');
  if (raw.tlsClientCa && !raw.tlsCert) throw new SettingError('--tls-client-ca (LOCKBOX_TLS_CLIENT_CA) needs --tls-cert and --tls-key');
  return {
    dataDir: raw.dataDir,
    databaseUrl,
    databaseTimeoutMs: databaseTimeout(raw.databaseTimeout ?? defaults.databaseTimeout),
    grpcAddr: raw.grpcAddr,
    httpAddr,
    ui: raw.ui === undefined || raw.ui === 'on' || raw.ui === 'true',
    httpBodyLimit,
    metricsAddr,
    natsUrl,
    nats,
    natsAdvertiseUrl: raw.natsAdvertiseUrl ? parseNatsUrl(raw.natsAdvertiseUrl, '--nats-advertise-url (LOCKBOX_NATS_ADVERTISE_URL)') || undefined : undefined,
    masterKeyFile: rootKeyFile(raw),
    rootKey: raw.rootKey || undefined,
    keyringRefreshMs: parseDuration(raw.keyringRefreshInterval ?? defaults.keyringRefreshInterval, '--keyring-refresh-interval (LOCKBOX_KEYRING_REFRESH_INTERVAL)'),
    tls: raw.tlsCert ? { cert: raw.tlsCert, key: raw.tlsKey!, clientCa: raw.tlsClientCa } : undefined,
    maxVersions,
    logLevel: raw.logLevel,
    drainTimeoutMs: parseDuration(raw.drainTimeout, '--drain-timeout (LOCKBOX_DRAIN_TIMEOUT)'),
    idempotencyTtlMs: parseDuration(raw.idempotencyTtl, '--idempotency-ttl (LOCKBOX_IDEMPOTENCY_TTL)'),
    agentRetentionMs: raw.agentRetention === 'off' ? 0 : parseDuration(raw.agentRetention ?? defaults.agentRetention, '--agent-retention (LOCKBOX_AGENT_RETENTION)'),
    auditCheckpointIntervalMs: parseDuration(raw.auditCheckpointInterval ?? defaults.auditCheckpointInterval, '--audit-checkpoint-interval (LOCKBOX_AUDIT_CHECKPOINT_INTERVAL)'),
    quotas,
    auditReads: raw.auditReads === 'async' ? 'async' : 'durable',
    maxAgentsPerDeployment: wholeNumber(raw.maxAgentsPerDeployment ?? String(defaults.maxAgentsPerDeployment), 1, 1_000_000, '--max-agents-per-deployment (LOCKBOX_MAX_AGENTS_PER_DEPLOYMENT)'),
    keepalive: {
      timeMs: keepaliveDuration(raw.keepaliveTime ?? defaults.keepaliveTime, '--keepalive-time (LOCKBOX_KEEPALIVE_TIME)'),
      timeoutMs: keepaliveDuration(raw.keepaliveTimeout ?? defaults.keepaliveTimeout, '--keepalive-timeout (LOCKBOX_KEEPALIVE_TIMEOUT)'),
    },
  };
}

/** Parses argv (without node and script) and the environment. */
export function parseDaemonConfig(argv: string[]): DaemonConfig {
  const command = daemonCommand();
  command.parse(argv, { from: 'user' });
  refuseNatsSecretFlags(command);
  return configFromOptions({ ...command.opts<RawOptions>(), rootKey: process.env.LOCKBOX_ROOT_KEY });
}
