/**
 * AgentService.Session, the daemon's side, kept thin: it authenticates and routes each message.
 * `resync` and `ack` go to the session registry (daemon/src/delivery/session-registry.ts), which
 * answers a resync with a push and pushes later changes on its own; `config`, `fetch` and
 * `report` are answered by the same service methods as their unary calls (a message on an open
 * call costs an agent ~0.2 ms of CPU in lite mode, a unary call ~0.9 ms).
 * 1. Every request is authenticated anew with the token the call opened with (the token cache
 *    makes that one keyed hash), so revocation and expiry hold as for unary calls. An
 *    UNAUTHENTICATED answer also ends the session with that status.
 * 2. A request is answered by a response with its id: the service's answer, or `error` with the
 *    status code, stable code and message the unary call would have failed with. Other requests
 *    and the session go on.
 * 3. At most MAX_IN_FLIGHT requests of a session run at once; more are refused
 *    (RESOURCE_EXHAUSTED), as is a request without a kind.
 * 4. Stopping (`closeAll`): new requests are refused with UNAVAILABLE, each session ends with
 *    UNAVAILABLE once its requests in flight are answered, so the server's drain can finish.
 * Each request is logged as its unary call would be (method, status, duration, request id
 * `<session id>.<request id>`, token id), never a body.
 */
import type * as grpc from '@grpc/grpc-js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { InvalidArgumentError, ResourceExhaustedError, UnavailableError, type LockboxError } from '../../../shared/src/errors.js';
import type { Principal, TokenAuthority } from '../security/auth.js';
import { grpcStatusOf, logCall, publicError, requestIdFrom, tokenFromHeaders, type CallMetrics } from './boundary.js';
import type { DaemonMetrics } from '../metrics.js';
import type { CallContext } from '../services/context.js';
import { firstValue } from './grpc-metadata.js';
import type { Logger } from '../log.js';
import type { AgentService } from '../services/service-agent.js';
import type { AckMessage, ResyncMessage, SessionHandle, SessionRegistry } from '../delivery/session-registry.js';

const MAX_IN_FLIGHT = 16;

interface AgentRequest {
  id?: number;
  kind?: 'config' | 'fetch' | 'report' | 'resync' | 'ack';
  config?: object;
  fetch?: { names?: string[] };
  report?: object;
  resync?: ResyncMessage;
  ack?: AckMessage;
}

type SessionCall = grpc.ServerDuplexStream<AgentRequest, object>;

interface Route {
  name: string;
  /** Resolves with the answer to write, or undefined when the registry answered (resync) or nothing is answered (ack). */
  run(parts: { agents: AgentService; registry: SessionRegistry; handle: SessionHandle; id: number }, request: any, ctx: CallContext): Promise<object | undefined>;
}

const methods: Record<NonNullable<AgentRequest['kind']>, Route> = {
  config: { name: 'GetAgentConfig', run: ({ agents }, _request, ctx) => agents.config(ctx) },
  fetch: { name: 'FetchSecrets', run: ({ agents }, request, ctx) => agents.fetch(request, ctx) },
  report: { name: 'ReportStatus', run: ({ agents }, request, ctx) => agents.report(request, ctx) },
  resync: { name: 'Session.Resync', run: ({ registry, handle, id }, request, ctx) => registry.resync(handle, request, ctx, id).then(() => undefined) },
  ack: { name: 'Session.Ack', run: ({ registry, handle }, request, ctx) => registry.ack(handle, request, ctx).then(() => undefined) },
};

const STOPPING = 'lockboxd is stopping; open a new session';

interface SessionState {
  inFlight: number;
  /** The agent closed its side: end once what is in flight is answered. */
  closing: boolean;
  end(code: number, details: string): void;
}

export class AgentSessions {
  private readonly open = new Set<SessionState>();
  private stopping = false;

  constructor(
    private readonly auth: TokenAuthority,
    private readonly agents: AgentService,
    private readonly registry: SessionRegistry,
    private readonly log: Logger,
    /** Encodes a response once for many sessions (grpc-requests.ts responseEncoder). */
    private readonly encode: (response: object) => object,
    metrics?: DaemonMetrics,
  ) {
    this.counted = metrics && { metrics, transport: 'agent-session' };
  }

  private readonly counted: CallMetrics | undefined;

  /** Sessions open now (the lockbox_agent_sessions metric). */
  get size(): number {
    return this.open.size;
  }

  /** The handler for grpc-js. */
  readonly handler = (call: SessionCall): void => {
    const token = tokenFromHeaders((name) => firstValue(call.metadata, name));
    const sessionId = requestIdFrom(firstValue(call.metadata, 'x-request-id'));
    let ended = false;
    const state: SessionState = {
      inFlight: 0,
      closing: false,
      end: (code, details) => {
        if (ended) return;
        ended = true;
        this.open.delete(state);
        this.registry.close(handle);
        if (code === GrpcStatus.OK) call.end();
        // A session ends only UNAUTHENTICATED or UNAVAILABLE (stopping), whose stable codes are their names.
        else call.emit('error', grpcStatusOf({ grpcCode: code, code: GrpcStatus[code], message: details }, sessionId));
      },
    };
    const handle = this.registry.open(sessionId, token, {
      write: (response) => {
        if (!ended) call.write(response);
      },
      encode: this.encode,
      end: (code, details) => state.end(code, details),
    });
    const gone = () => {
      ended = true;
      this.open.delete(state);
      this.registry.close(handle);
    };
    const endIfIdle = () => {
      if (state.inFlight > 0) return;
      if (this.stopping) state.end(GrpcStatus.UNAVAILABLE, STOPPING); // (4)
      else if (state.closing) state.end(GrpcStatus.OK, 'OK');
    };
    this.open.add(state);
    call.on('cancelled', gone);
    call.on('error', gone); // the agent went away mid-write
    call.on('end', () => {
      state.closing = true;
      endIfIdle();
    });
    call.on('data', (request: AgentRequest) => {
      const started = process.hrtime.bigint();
      const id = request.id ?? 0;
      const requestId = `${sessionId}.${id}`;
      const method = request.kind ? methods[request.kind] : undefined;
      const answer = (response: object) => {
        if (!ended) call.write({ id, ...response });
      };
      const refuse = (error: LockboxError, principal?: Principal) => {
        answer({ error: { code: error.grpcCode, error_code: error.code, message: error.message } });
        logCall(this.log, { method: method?.name ?? 'Session', started, requestId, principal, status: GrpcStatus[error.grpcCode], error }, this.counted);
      };
      if (this.stopping) return refuse(new UnavailableError(STOPPING));
      if (!method) return refuse(new InvalidArgumentError('request', 'set one of resync, ack, config, fetch or report'));
      if (state.inFlight >= MAX_IN_FLIGHT) // (3)
        return refuse(new ResourceExhaustedError(`at most ${MAX_IN_FLIGHT} requests of one session run at once`));
      state.inFlight++;
      let principal: Principal | undefined;
      void (async () => {
        principal = await this.auth.authenticate(token); // (1)
        return method.run({ agents: this.agents, registry: this.registry, handle, id }, request[request.kind!] ?? {}, { principal, requestId });
      })()
        .then(
          (response) => {
            if (response) answer({ [request.kind!]: response }); // (2)
            logCall(this.log, { method: method.name, started, requestId, principal, status: 'OK' }, this.counted);
          },
          (caught: unknown) => {
            const error = publicError(caught, requestId, this.log);
            refuse(error, principal);
            if (error.kind === 'UNAUTHENTICATED') state.end(error.grpcCode, error.message); // (1)
          },
        )
        .finally(() => {
          state.inFlight--;
          endIfIdle();
        });
    });
  };

  /** Step (4). */
  closeAll(): void {
    this.stopping = true;
    for (const state of [...this.open]) if (state.inFlight === 0) state.end(GrpcStatus.UNAVAILABLE, STOPPING);
  }
}
