/**
 * How lockboxd and the agent's optional NATS mode connect to NATS (--nats-url and --nats-*):
 * several servers, credentials (token, user and password, or a creds file), TLS with a CA, and a
 * ping interval, so a dead or hung NATS server is noticed within seconds rather than nats.js's
 * default two minutes.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { ConnectionOptions } from 'nats';
import { SettingError } from './settings.js';

export interface NatsOptions {
  token?: string;
  user?: string;
  password?: string;
  /** A NATS creds file (JWT and NKey seed). */
  credsFile?: string;
  /** PEM CA bundle that the NATS server's certificate must chain to: enables TLS. */
  caFile?: string;
  /** Ping interval; two unanswered pings drop the connection. */
  pingIntervalMs?: number;
}

/** The NATS credentials taken from the environment only, as LOCKBOX_ROOT_KEY: [option key, flag, variable]. */
const ENV_ONLY = [
  ['natsToken', '--nats-token', 'LOCKBOX_NATS_TOKEN'],
  ['natsPassword', '--nats-password', 'LOCKBOX_NATS_PASSWORD'],
] as const;

/**
 * Refuses a NATS token or password given as a flag: a command line is readable by every user of
 * the host (`ps`, /proc/PID/cmdline). The flags stay so that their help names the variable, and
 * this error says what to do instead of commander's "unknown option".
 */
export function refuseNatsSecretFlags(command: Command): void {
  for (const [key, flag, variable] of ENV_ONLY)
    if (command.getOptionValueSource(key) === 'cli')
      throw new SettingError(`${flag}: a credential on the command line is visible in ps; set ${variable} in the environment (or use --nats-creds FILE) instead`);
}

/** Help text for an env-only credential flag. */
export function natsSecretFlagHelp(what: string, variable: string): string {
  return `${what}: from ${variable} only (a value given on the command line is refused: it would show in ps)`;
}

/** Checks the combination once at start-up. */
export function checkNatsOptions(o: NatsOptions): void {
  if (Boolean(o.user) !== Boolean(o.password)) throw new SettingError('--nats-user and --nats-password must be given together');
  const ways = [o.token, o.user, o.credsFile].filter(Boolean).length;
  if (ways > 1) throw new SettingError('give one of --nats-token, --nats-user/--nats-password or --nats-creds');
  for (const [path, setting] of [[o.credsFile, '--nats-creds'], [o.caFile, '--nats-ca']] as const) {
    if (!path) continue;
    try {
      readFileSync(path);
    } catch (error) {
      throw new SettingError(`${setting}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  }
}

/** `servers` is a comma list of URLs (each checked by parseNatsUrls). nats is loaded only here, so the agent loads it only once it is ready. */
export async function natsConnectOptions(servers: string, o: NatsOptions): Promise<ConnectionOptions> {
  const { credsAuthenticator } = await import('nats');
  return {
    servers: servers.split(',').map((s) => s.trim()),
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    timeout: 2000,
    pingInterval: o.pingIntervalMs ?? 5000,
    maxPingOut: 2,
    ...(o.token ? { token: o.token } : {}),
    ...(o.user ? { user: o.user, pass: o.password } : {}),
    ...(o.credsFile ? { authenticator: credsAuthenticator(readFileSync(o.credsFile)) } : {}),
    ...(o.caFile ? { tls: { caFile: o.caFile } } : {}),
  };
}
