import type { PaymentGateway } from './types.js';

/** What a PSP lets us do to avoid a double charge; the resilient layer plans around it. */
export interface PspCapabilities {
  /**
   * Resending the identical request with the same idempotency key never charges twice (the PSP
   * replays the first answer). When false the resilient layer sends once and only looks up.
   */
  readonly idempotentReplay: boolean;
  /** `lookup({ idempotencyKey })` asks the PSP for the attempt (a search or a GET). */
  readonly lookupByKey: boolean;
  /** `lookup({ transactionId })` asks the PSP for a transaction. */
  readonly lookupById: boolean;
}

/**
 * One PSP adapter: a single send per `charge()` call, no retries. Failures are thrown as PspError
 * (classified retryable or not); approvals and declines are returned. Wrap it in ResilientGateway.
 */
export interface PspAdapter extends PaymentGateway {
  readonly capabilities: PspCapabilities;
  /** Releases sockets. Idempotent. */
  close(): Promise<void>;
}
