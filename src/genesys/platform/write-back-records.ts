/**
 * The records of the participant-data write-back queue as they sit in the node's spool, their
 * keys, and the retry delay rule. Never card data: every record passes the card-data guard (the
 * spool runs it again on every set). Times are ISO strings: a millisecond epoch has 13 digits,
 * which the guard rightly takes for a card number.
 */

/** Spool key prefixes: queued writes, dead letters and acknowledged versions, one key per call. */
export const QUEUED_PREFIX = 'gw:q:';
export const DEAD_PREFIX = 'gw:d:';
export const ACKED_PREFIX = 'gw:a:';

/** One write waiting for Genesys: the latest version of one call's result. */
export interface QueuedWrite {
  /** Idempotency key: `<callRef>#<version>`. */
  key: string;
  conversationId: string;
  /** Local call id (the result id). */
  callRef: string;
  /** Grows with every change of the call's result queued on this node (1, 2, ...). */
  version: number;
  /** When this version was queued (ISO). */
  updatedAt: string;
  /** The result's outcome (reports, dead letters). */
  outcome: string;
  /**
   * Attribute name -> value. A value equal to the PSP's transaction id is kept in
   * `transactionId` instead and named in `transactionIdAttributes` (the card-data guard exempts
   * that field only: an Adyen pspReference has 16 digits by design).
   */
  attributes: Record<string, string>;
  transactionId?: string | undefined;
  transactionIdAttributes?: string[] | undefined;
  /** Global queue order on this node (write order across restarts). */
  seq: number;
  /** Sends that answered `retry`. */
  tries: number;
  lastError?: string | undefined;
  /** ISO time of the latest send. */
  lastTryAt?: string | undefined;
}

export type DeadReason = 'rejected' | 'max-attempts' | 'max-age';
export const DEAD_REASONS: readonly DeadReason[] = ['rejected', 'max-attempts', 'max-age'];

/** A write given up on: kept until an operator retries or dismisses it (or a newer version is written). */
export interface DeadLetter extends QueuedWrite {
  reason: DeadReason;
  /** ISO time it went to the dead-letter list. */
  deadAt: string;
}

/** The last version of a call Genesys acknowledged (idempotency across restarts). */
export interface AckedWrite {
  version: number;
  /** Fingerprint of the attributes written: an unchanged re-save is not sent again. */
  digest: string;
  /** ISO time of the acknowledgement (old marks are pruned). */
  at: string;
}

/** The attributes to send: the stored ones plus the transaction id where it was taken out. */
export function attributesToSend(w: QueuedWrite): Record<string, string> {
  const out: Record<string, string> = { ...w.attributes };
  for (const name of w.transactionIdAttributes ?? []) if (w.transactionId !== undefined) out[name] = w.transactionId;
  return out;
}

/**
 * Retry delay after the n-th failure (n >= 1): retryBaseMs doubling up to maxRetryMs; a longer
 * Retry-After (afterMs) wins.
 */
export function retryDelayMs(n: number, delivery: { retryBaseMs: number; maxRetryMs: number }, afterMs?: number): number {
  const exp = Math.min(delivery.retryBaseMs * 2 ** Math.max(0, Math.min(n - 1, 30)), delivery.maxRetryMs);
  return afterMs !== undefined && Number.isFinite(afterMs) && afterMs > exp ? afterMs : exp;
}
