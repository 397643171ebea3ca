import type { Principal } from '../security/auth.js';

/** Who is calling and how, as the transport saw it. */
export interface CallContext {
  principal: Principal;
  requestId: string;
  idempotencyKey?: string;
}
