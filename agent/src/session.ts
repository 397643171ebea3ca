/**
 * The agent's side of AgentService.Session (daemon/src/api/grpc-agent-session.ts and
 * daemon/src/delivery/session-registry.ts are the other side): one long-lived call to one daemon
 * at a time, over which the agent sends `resync` (what it holds) and `ack`, and receives pushes.
 * 1. The call opens with the first message, to the current daemon address, and again with the
 *    first message after it ended.
 * 2. A request (resync, config) waits for its answer at most `timeoutMs`. One that times out
 *    fails with DEADLINE_EXCEEDED and ends the call too: a call that stops answering is presumed
 *    dead (a half-open connection); gRPC keepalive finds such a peer sooner.
 * 3. When the call ends — the daemon stopped or died, the connection dropped, the token was
 *    revoked — every request in flight fails with the call's status, the next address becomes
 *    current, and `onBroken` tells the agent, which resyncs (that opens the next call).
 * 4. Pushes (response id 0, or a resync's id) are collected page by page (same nonce, `more`) and
 *    handed to `onPush` whole; a resync resolves once its answer was handed over.
 * Errors carry `code` (a gRPC status) and `details`, as a failed unary call's do.
 */
import type * as grpc from '@grpc/grpc-js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { LockboxClient, type ClientOptions } from '../../shared/src/client.js';
import type { DaemonAddress } from './daemon-addresses.js';

export class SessionRequestError extends Error {
  override name = 'SessionRequestError';
  constructor(
    readonly code: number,
    readonly details: string,
    /** The stable lockbox code (docs/errors.md), when the daemon answered with one. */
    readonly errorCode?: string,
  ) {
    super(`${GrpcStatus[code] ?? code}: ${details}`);
  }
}

interface Pending {
  resolve(value: any): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export interface PushedSecret {
  name: string;
  secret?: any;
  digest?: string;
}

export interface SecretPush {
  nonce?: string;
  secrets?: PushedSecret[];
  removed?: string[];
  deployment?: { secrets?: string[] };
  more?: boolean;
}

export interface HeldVersion {
  name: string;
  uid: string;
  version: number;
  digest: string;
}

interface AgentResponse {
  id?: number;
  kind?: string;
  error?: { code?: number; error_code?: string; message?: string };
  push?: SecretPush;
  [answer: string]: unknown;
}

export interface AgentSessionOptions {
  /** The daemons, in order; a function so names are looked up anew each round. */
  addresses: () => Promise<DaemonAddress[]>;
  client: Omit<ClientOptions, 'addr' | 'serverName'>;
  timeoutMs: number;
  onPush: (push: SecretPush) => void;
  onBroken: (error: SessionRequestError) => void;
  /** The daemon could not serve a push it meant to send (e.g. the deployment was deleted). */
  onRefused?: (error: SessionRequestError) => void;
}

export class AgentSession {
  private call: grpc.ClientDuplexStream<object, AgentResponse> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private addresses: DaemonAddress[] = [];
  private current = 0;
  private readonly clients = new Map<string, LockboxClient>();
  /** Step (4): pages of a push not complete yet, by nonce. */
  private readonly pages = new Map<string, SecretPush>();
  private closed = false;

  constructor(private readonly options: AgentSessionOptions) {}

  /** The daemon address in use (or to be used next). */
  get address(): string | undefined {
    return this.addresses[this.current]?.target;
  }

  config(): Promise<{ nats_url?: string; subjects?: string[]; deployment?: { secrets?: string[] } }> {
    return this.request('config', {});
  }

  /** Says what the agent holds; resolves once the daemon's answer (a push of what differs) was handed to onPush. */
  resync(body: { agent_id: string; held: HeldVersion[]; resync_interval_seconds: number; one_shot?: boolean }): Promise<void> {
    return this.request('resync', body);
  }

  /** ACK (no reason) or NACK; not answered. False when no call is open (the next resync reports anew). */
  ack(body: { nonce: string; applied: object[]; nack_reason: string; problems: string[] }): boolean {
    if (!this.call) return false;
    this.call.write({ id: this.nextId++, ack: body });
    return true;
  }

  private async client(): Promise<{ client: LockboxClient; address: DaemonAddress }> {
    if (this.current >= this.addresses.length) {
      this.addresses = await this.options.addresses();
      this.current = 0;
    }
    const address = this.addresses[this.current];
    let client = this.clients.get(address.target);
    if (!client) {
      client = new LockboxClient({ ...this.options.client, addr: address.target, serverName: address.serverName });
      this.clients.set(address.target, client);
    }
    return { client, address };
  }

  /** Step (1). */
  private open(client: LockboxClient): grpc.ClientDuplexStream<object, AgentResponse> {
    const call = client.stream('AgentService', 'Session');
    call.on('data', (response: AgentResponse) => {
      if (response.push) return this.received(response.id ?? 0, response.push);
      const { error } = response;
      if (!response.id && error) return this.options.onRefused?.(new SessionRequestError(error.code ?? GrpcStatus.UNKNOWN, error.message ?? '', error.error_code));
      const waiting = this.pending.get(response.id ?? 0);
      if (!waiting) return; // answered after its timeout
      this.pending.delete(response.id!);
      clearTimeout(waiting.timer);
      if (error) waiting.reject(new SessionRequestError(error.code ?? GrpcStatus.UNKNOWN, error.message ?? '', error.error_code));
      else waiting.resolve(response[response.kind!] ?? {});
    });
    // (3) 'error' carries a failed status; 'end' alone means the daemon ended the call cleanly.
    call.on('error', (error: grpc.ServiceError) => this.ended(call, new SessionRequestError(error.code ?? GrpcStatus.UNAVAILABLE, error.details || error.message)));
    call.on('end', () => this.ended(call, new SessionRequestError(GrpcStatus.UNAVAILABLE, 'lockboxd ended the session')));
    return call;
  }

  /** Step (4). */
  private received(id: number, page: SecretPush): void {
    const nonce = page.nonce ?? '';
    const collected = this.pages.get(nonce);
    const push = collected
      ? { ...page, secrets: [...(collected.secrets ?? []), ...(page.secrets ?? [])], removed: [...(collected.removed ?? []), ...(page.removed ?? [])] }
      : page;
    if (push.more) return void this.pages.set(nonce, push);
    this.pages.delete(nonce);
    this.options.onPush(push);
    const waiting = this.pending.get(id);
    if (id !== 0 && waiting) {
      this.pending.delete(id);
      clearTimeout(waiting.timer);
      waiting.resolve(undefined);
    }
  }

  private ended(call: grpc.ClientDuplexStream<object, AgentResponse>, error: SessionRequestError): void {
    if (this.call !== call) return;
    this.call = undefined;
    this.pages.clear();
    for (const waiting of this.pending.values()) {
      clearTimeout(waiting.timer);
      waiting.reject(error);
    }
    this.pending.clear();
    if (this.closed || error.code === GrpcStatus.CANCELLED) return;
    this.current++; // (3) the next address
    this.options.onBroken(error);
  }

  private async request(kind: 'config' | 'resync', body: object): Promise<any> {
    if (!this.call) {
      const { client } = await this.client();
      this.call ??= this.open(client);
    }
    const call = this.call;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { // (2)
        this.pending.delete(id);
        reject(new SessionRequestError(GrpcStatus.DEADLINE_EXCEEDED, `no answer from lockboxd within ${this.options.timeoutMs} ms`));
        this.ended(call, new SessionRequestError(GrpcStatus.UNAVAILABLE, 'the session stopped answering'));
        call.cancel();
      }, this.options.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      call.write({ id, [kind]: body });
    });
  }

  /**
   * Ends the call (half-closed first, so an ACK just written reaches the daemon; cancelled if the
   * daemon has not ended it within a second) and the channels; requests in flight fail with CANCELLED.
   */
  async close(): Promise<void> {
    this.closed = true;
    const call = this.call;
    if (call) {
      const done = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        call.on('status', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      call.end();
      await done;
      this.ended(call, new SessionRequestError(GrpcStatus.CANCELLED, 'the agent closed the session'));
      call.cancel();
    }
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }
}
