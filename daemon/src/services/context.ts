import { pastDeadline } from '../../../shared/src/errors.js';
import type { Principal } from '../security/auth.js';

/** Who is calling and how, as the transport saw it. */
export interface CallContext {
  principal: Principal;
  requestId: string;
  idempotencyKey?: string;
  /**
   * What a retry with the same idempotency key must repeat exactly, when that is not the service
   * request itself (a REST call that derives its service request from the current state).
   */
  idempotencyRequest?: unknown;
  /**
   * When the caller stops waiting (ms since the epoch; gRPC's deadline). Past it, a write is not
   * begun: the caller has already been told DEADLINE_EXCEEDED and would never learn it happened.
   */
  deadline?: number;
}

/**
 * Throws DEADLINE_EXCEEDED when the caller's deadline has passed, naming the step not begun. Called
 * just before a write commits (after any wait for a lock or a connection), so a call whose client
 * gave up changes nothing; a write already committing runs to its end (it is atomic either way).
 */
export function beforeDeadline(ctx: CallContext, step: string, now = Date.now()): void {
  const late = pastDeadline(ctx.deadline, step, now);
  if (late) throw late;
}
