import type { DeclineClass } from './outcome.js';

/** What one charge attempt ended with, as the dialogue reasons about it (the gateway port returns it). */
export type ChargeOutcome =
  | { status: 'approved'; transactionId: string; authCode?: string | undefined }
  | { status: 'declined'; declineClass: DeclineClass; pspCode?: string | undefined; transactionId?: string | undefined }
  /**
   * The PSP certainly did not charge: nothing reached its processing (refused connection, 429,
   * circuit open before any send) or it refused the request (4xx validation). Reported as
   * `psp-error`: the caller may pay again.
   */
  | { status: 'failed'; reason: string }
  /**
   * The card may have been charged but the outcome could not be confirmed (timeouts, lost replies,
   * 5xx, key still in flight until the budget ended). Reported as `unconfirmed`: the caller is told
   * not to pay again; a later lookup by the same idempotency key settles it. Never a new charge.
   */
  | { status: 'unknown'; reason: string };
