import type { CardData } from '../domain/sensitive.js';
import type { ChargeOutcome } from '../domain/charge.js';

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
