/**
 * The agent's side of AgentService.Session: its config, fetch and report requests as messages on
 * one long-lived gRPC call, each matched to its answer by id (daemon/src/grpc-agent-session.ts
 * is the other side).
 * 1. The call opens with the first request, and again with the first request after it ended.
 * 2. A request waits for its answer at most `timeoutMs`. One that times out fails with
 *    DEADLINE_EXCEEDED and ends the call too: a call that stops answering is presumed dead
 *    (a half-open connection), and the next request opens a new one.
 * 3. When the call ends — the daemon stopped, the connection dropped, the token was revoked —
 *    every request in flight fails with the call's status. Nothing is retried here: the agent's
 *    sync loop decides what to do again.
 * Errors carry `code` (a gRPC status) and `details`, as a failed unary call's do.
 */
import type * as grpc from '@grpc/grpc-js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { LockboxClient } from '../../shared/src/client.js';

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

type Kind = 'config' | 'fetch' | 'report';

interface AgentResponse {
  id?: number;
  kind?: Kind | 'error';
  error?: { code?: number; error_code?: string; message?: string };
  [answer: string]: unknown;
}

export class AgentSession {
  private call: grpc.ClientDuplexStream<object, AgentResponse> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(
    private readonly client: LockboxClient,
    private readonly timeoutMs: number,
  ) {}

  config(): Promise<{ nats_url?: string; subjects?: string[]; deployment?: { secrets?: string[] } }> {
    return this.request('config', {});
  }

  fetch(names: string[]): Promise<{ secrets?: any[]; change_seq?: number }> {
    return this.request('fetch', { names });
  }

  report(report: object): Promise<void> {
    return this.request('report', report);
  }

  /** Step (1). */
  private open(): grpc.ClientDuplexStream<object, AgentResponse> {
    const call = this.client.stream('AgentService', 'Session');
    call.on('data', (response: AgentResponse) => {
      const waiting = this.pending.get(response.id ?? 0);
      if (!waiting) return; // answered after its timeout
      this.pending.delete(response.id!);
      clearTimeout(waiting.timer);
      const { error } = response;
      if (error) waiting.reject(new SessionRequestError(error.code ?? GrpcStatus.UNKNOWN, error.message ?? '', error.error_code));
      else waiting.resolve(response[response.kind!] ?? {});
    });
    // (3) 'error' carries a failed status; 'end' alone means the daemon ended the call cleanly.
    call.on('error', (error: grpc.ServiceError) => this.ended(call, new SessionRequestError(error.code ?? GrpcStatus.UNAVAILABLE, error.details || error.message)));
    call.on('end', () => this.ended(call, new SessionRequestError(GrpcStatus.UNAVAILABLE, 'lockboxd ended the session')));
    return call;
  }

  private ended(call: grpc.ClientDuplexStream<object, AgentResponse>, error: SessionRequestError): void {
    if (this.call !== call) return;
    this.call = undefined;
    for (const waiting of this.pending.values()) {
      clearTimeout(waiting.timer);
      waiting.reject(error);
    }
    this.pending.clear();
  }

  private request(kind: Kind, body: object): Promise<any> {
    this.call ??= this.open();
    const call = this.call;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { // (2)
        this.pending.delete(id);
        reject(new SessionRequestError(GrpcStatus.DEADLINE_EXCEEDED, `no answer from lockboxd within ${this.timeoutMs} ms`));
        this.ended(call, new SessionRequestError(GrpcStatus.UNAVAILABLE, 'the session stopped answering'));
        call.cancel();
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      call.write({ id, [kind]: body });
    });
  }

  /** Ends the call; requests in flight fail with CANCELLED. */
  close(): void {
    const call = this.call;
    if (!call) return;
    this.ended(call, new SessionRequestError(GrpcStatus.CANCELLED, 'the agent closed the session'));
    call.cancel();
  }
}
