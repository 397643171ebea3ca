/**
 * What every command of the CLI is handed: the program's I/O, the global options, one gRPC
 * client opened on first use (closed by runCli), and `print` for `-o table|json|yaml`.
 * A failed call becomes CallFailed, one line on stderr and exit 1.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { LockboxClient, type ServiceName } from '../../shared/src/client.js';
import { decodeErrorInfo, statusDetailsKey } from '../../shared/src/error-details.js';
import { parseDuration } from '../../shared/src/settings.js';
import { UsageError } from './inputs.js';
import { renderStructured, type OutputFormat } from './output.js';

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  readStdin: () => Buffer;
  /** Where ./.lockbox/admin.token is looked for. Settings' env vars come from process.env. */
  cwd: string;
}

export interface GlobalOptions {
  addr: string;
  token?: string;
  tokenFile?: string;
  output: OutputFormat;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  timeout: string;
}

export class CallFailed extends Error {
  override name = 'CallFailed';
}

/**
 * `NOT_FOUND (SECRET_NOT_FOUND): …`: the status, the stable code of docs/errors.md when lockboxd
 * sent one that says more than the status (google.rpc.ErrorInfo in the trailers), the message.
 */
function grpcMessage(error: unknown): string {
  const e = error as ServiceError;
  if (typeof e?.code === 'number') {
    const status = GrpcStatus[e.code] ?? String(e.code);
    const [details] = e.metadata?.get(statusDetailsKey) ?? [];
    const reason = details instanceof Buffer ? decodeErrorInfo(details)?.reason : undefined;
    const name = reason && reason !== status ? `${status} (${reason})` : status;
    if (e.code === GrpcStatus.UNAVAILABLE) return `${name}: cannot reach lockboxd (${e.details})`;
    if (e.code === GrpcStatus.DEADLINE_EXCEEDED) return `${name}: lockboxd did not answer in time`;
    return `${name}: ${e.details}`;
  }
  return error instanceof Error ? error.message : String(error);
}

export interface CliContext {
  io: CliIo;
  globals(): GlobalOptions;
  /** One call; a gRPC error becomes CallFailed with its status name and message. */
  rpc(service: ServiceName, method: string, request: object, idempotencyKey?: string): Promise<any>;
  /** A server-streaming call's responses; a gRPC error becomes CallFailed as in `rpc`. */
  stream(service: ServiceName, method: string, request: object): AsyncIterable<any>;
  /**
   * `value` as JSON/YAML, the text `table()` renders, or for `-o name` the `kind/name` lines
   * `names()` gives (a command without names refuses `-o name` as a usage error).
   */
  print(value: unknown, table: () => string, names?: () => string[]): void;
  /** A file's text, or standard input for `-`; a file that cannot be read is a usage error. */
  readInputFile(file: string): string;
  close(): void;
}

/** A file a flag names, read from the command's working directory; unreadable is a usage error naming both. */
function readSettingFile(cwd: string, file: string, flag: string): Buffer {
  try {
    return readFileSync(resolve(cwd, file));
  } catch (error) {
    throw new UsageError(`${flag} ${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

export function cliContext(program: Command, io: CliIo): CliContext {
  let client: LockboxClient | undefined;
  const globals = () => program.opts<GlobalOptions>();
  const connect = (): LockboxClient => {
    if (client) return client;
    const g = globals();
    let token = g.token;
    if (!token) {
      const fallback = join(io.cwd, '.lockbox', 'admin.token');
      if (g.tokenFile === undefined && !existsSync(fallback))
        throw new UsageError(`no token: pass --token, set LOCKBOX_TOKEN or LOCKBOX_TOKEN_FILE, or run where ./.lockbox/admin.token exists`);
      const file = g.tokenFile ?? fallback;
      token = readSettingFile(io.cwd, file, '--token-file').toString('utf8').trim();
      if (!token) throw new UsageError(`--token-file ${file} is empty`);
    }
    for (const [flag, file] of [['--tls-ca', g.tlsCa], ['--tls-cert', g.tlsCert], ['--tls-key', g.tlsKey]] as const)
      if (file !== undefined) readSettingFile(io.cwd, file, flag);
    const timeoutMs = parseDuration(g.timeout, '--timeout');
    if (timeoutMs <= 0) throw new UsageError(`--timeout: "${g.timeout}" must be more than 0`);
    const at = (file: string | undefined) => (file === undefined ? undefined : resolve(io.cwd, file));
    client = new LockboxClient({ addr: g.addr, token, tlsCa: at(g.tlsCa), tlsCert: at(g.tlsCert), tlsKey: at(g.tlsKey), timeoutMs });
    return client;
  };
  return {
    io,
    globals,
    rpc: (service, method, request, idempotencyKey) =>
      connect().call(service, method, request, { idempotencyKey }).catch((error: unknown) => {
        throw new CallFailed(grpcMessage(error));
      }),
    async *stream(service, method, request) {
      try {
        for await (const item of connect().serverStream(service, method, request)) yield item;
      } catch (error) {
        throw new CallFailed(grpcMessage(error));
      }
    },
    print(value, table, names) {
      const format = globals().output;
      if (format === 'name') {
        if (!names) throw new UsageError('-o name does not apply to this command (it prints no objects); use -o json or -o yaml');
        io.stdout(names().map((line) => `${line}\n`).join(''));
      } else io.stdout(format === 'table' ? table() : renderStructured(value, format));
    },
    readInputFile(file) {
      try {
        return file === '-' ? io.readStdin().toString('utf8') : readFileSync(resolve(io.cwd, file), 'utf8');
      } catch (error) {
        throw new UsageError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      }
    },
    close: () => client?.close(),
  };
}
