/** A small promise wrapper over the generated gRPC clients, used by the CLI and the agent. */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { limits } from './limits.js';
import { loadServices, type LockboxServices } from './proto.js';

export interface ClientOptions {
  addr: string;
  token: string;
  /** PEM CA bundle: enables TLS. */
  tlsCa?: string;
  /** Client certificate and key for mTLS. */
  tlsCert?: string;
  tlsKey?: string;
  timeoutMs?: number;
  /** gRPC keepalive: ping after this long without traffic; drop the connection when unanswered within the timeout. */
  keepalive?: { timeMs: number; timeoutMs: number };
  /** The name TLS verifies when `addr` is an address looked up from it (lockbox-agent's failover). */
  serverName?: string;
}

export interface CallOptions {
  idempotencyKey?: string;
}

export type ServiceName = keyof LockboxServices;

/**
 * grpc-js backs off up to 120 s between reconnects, and a call made meanwhile fails at once: an
 * agent would stay cut off for minutes after a long daemon outage. Reconnect within 5 s instead
 * (grpc-js adds ±20 % jitter, so many agents do not come back in step).
 */
const channelOptions = {
  'grpc.initial_reconnect_backoff_ms': 250,
  'grpc.max_reconnect_backoff_ms': 5000,
  // The daemon's limits (daemon/src/api/grpc-server.ts): gRPC's 4 MiB receive default refused a
  // large deployment's fetch that the daemon had sent.
  'grpc.max_receive_message_length': limits.maxMessageBytes,
  'grpc.max_send_message_length': limits.maxMessageBytes,
};

export class LockboxClient {
  private readonly services = loadServices();
  private readonly clients = new Map<ServiceName, grpc.Client>();
  private readonly credentials: grpc.ChannelCredentials;
  private readonly timeoutMs: number;

  constructor(private readonly options: ClientOptions) {
    this.credentials = options.tlsCa
      ? grpc.credentials.createSsl(
          readFileSync(options.tlsCa),
          options.tlsKey ? readFileSync(options.tlsKey) : null,
          options.tlsCert ? readFileSync(options.tlsCert) : null,
        )
      : grpc.credentials.createInsecure();
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  private client(service: ServiceName): grpc.Client {
    let client = this.clients.get(service);
    if (!client) {
      // Clients of one address share a channel (grpc-js pools subchannels by target and options).
      const keepalive = this.options.keepalive
        ? { 'grpc.keepalive_time_ms': this.options.keepalive.timeMs, 'grpc.keepalive_timeout_ms': this.options.keepalive.timeoutMs, 'grpc.keepalive_permit_without_calls': 1 }
        : {};
      const name = this.options.serverName ? { 'grpc.ssl_target_name_override': this.options.serverName, 'grpc.default_authority': this.options.serverName } : {};
      client = new this.services[service](this.options.addr, this.credentials, { ...channelOptions, ...keepalive, ...name });
      this.clients.set(service, client);
    }
    return client;
  }

  private metadata(options: CallOptions = {}): grpc.Metadata {
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${this.options.token}`);
    if (options.idempotencyKey) metadata.set('idempotency-key', options.idempotencyKey);
    return metadata;
  }

  /** One unary call with the token and, when given, an idempotency key. */
  call(service: ServiceName, method: string, request: object, options: CallOptions = {}): Promise<any> {
    const client = this.client(service);
    const metadata = this.metadata(options);
    const fn = (client as unknown as Record<string, Function>)[method];
    return new Promise((resolve, reject) => {
      fn.call(client, request, metadata, { deadline: Date.now() + this.timeoutMs }, (error: grpc.ServiceError | null, response: unknown) =>
        error ? reject(error) : resolve(response),
      );
    });
  }

  /** A bidirectional streaming call with the token, open until either side ends it (no deadline). */
  stream(service: ServiceName, method: string): grpc.ClientDuplexStream<object, any> {
    const client = this.client(service);
    return (client as unknown as Record<string, (metadata: grpc.Metadata) => grpc.ClientDuplexStream<object, any>>)[method].call(client, this.metadata());
  }

  /** A server-streaming call with the token: the responses in order (no deadline: it may be long). */
  serverStream(service: ServiceName, method: string, request: object): grpc.ClientReadableStream<any> {
    const client = this.client(service);
    return (client as unknown as Record<string, (request: object, metadata: grpc.Metadata) => grpc.ClientReadableStream<any>>)[method].call(client, request, this.metadata());
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }
}
