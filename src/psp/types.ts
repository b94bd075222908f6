import type { CardData } from '../domain/sensitive.js';
import type { DeclineClass } from '../domain/outcome.js';

/** One charge attempt. The idempotency key is made once per attempt, before the first send. */
export interface ChargeRequest {
  /** Minor units. */
  amount: number;
  /** ISO 4217, upper case. */
  currency: string;
  card: CardData;
  /** Payment reference (invoice); shown to the PSP as description/merchant reference. */
  reference: string;
  idempotencyKey: string;
  /** Non-card context (conversation id, account id). Never card data. */
  metadata: Readonly<Record<string, string>>;
}

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

export interface LookupKey {
  idempotencyKey?: string;
  transactionId?: string;
}

/** The gateway port: one adapter per PSP. Adapters do one send; retries live in the resilient wrapper. */
export interface PaymentGateway {
  readonly name: string;
  charge(req: ChargeRequest, signal?: AbortSignal): Promise<ChargeOutcome>;
  /** Finds the outcome of an earlier attempt; undefined when the PSP has no record of it. */
  lookup(key: LookupKey, signal?: AbortSignal): Promise<ChargeOutcome | undefined>;
}
