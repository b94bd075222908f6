import type { DeclineClass } from './outcome.js';

/** What one charge attempt ended with, as the dialogue reasons about it (the gateway port returns it). */
export type ChargeOutcome =
  | { status: 'approved'; transactionId: string; authCode?: string | undefined }
  | { status: 'declined'; declineClass: DeclineClass; pspCode?: string | undefined; transactionId?: string | undefined }
  /** Outcome not known (timeout, 5xx, lost reply, breaker open): reported as `psp-error`, never retried as a new charge. */
  | { status: 'unknown'; reason: string };
