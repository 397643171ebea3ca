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
}
