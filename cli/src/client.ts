/** A small promise wrapper over the generated gRPC clients, used by the CLI (and the agent). */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { loadServices } from '../../shared/src/proto.js';

export interface ClientOptions {
  addr: string;
  token: string;
  /** PEM CA bundle: enables TLS. */
  tlsCa?: string;
  /** Client certificate and key for mTLS. */
  tlsCert?: string;
  tlsKey?: string;
  timeoutMs?: number;
}

export interface CallOptions {
  idempotencyKey?: string;
}

export type Unary = (method: string, request: object, options?: CallOptions) => Promise<any>;

export class LockboxClient {
  private readonly secrets: grpc.Client;
  private readonly keys: grpc.Client;
  private readonly timeoutMs: number;

  constructor(private readonly options: ClientOptions) {
    const services = loadServices();
    const credentials = options.tlsCa
      ? grpc.credentials.createSsl(
          readFileSync(options.tlsCa),
          options.tlsKey ? readFileSync(options.tlsKey) : null,
          options.tlsCert ? readFileSync(options.tlsCert) : null,
        )
      : grpc.credentials.createInsecure();
    this.secrets = new services.SecretsService(options.addr, credentials);
    this.keys = new services.KeysService(options.addr, credentials, {}) as grpc.Client;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  private call(client: grpc.Client, method: string, request: object, options: CallOptions = {}): Promise<any> {
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${this.options.token}`);
    if (options.idempotencyKey) metadata.set('idempotency-key', options.idempotencyKey);
    const fn = (client as unknown as Record<string, Function>)[method];
    return new Promise((resolve, reject) => {
      fn.call(client, request, metadata, { deadline: Date.now() + this.timeoutMs }, (error: grpc.ServiceError | null, response: unknown) =>
        error ? reject(error) : resolve(response),
      );
    });
  }

  secretsCall: Unary = (method, request, options) => this.call(this.secrets, method, request, options);
  keysCall: Unary = (method, request, options) => this.call(this.keys, method, request, options);

  close(): void {
    this.secrets.close();
    this.keys.close();
  }
}
