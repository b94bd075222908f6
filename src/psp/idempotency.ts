import { randomUUID } from 'node:crypto';

/** Adyen accepts at most 64 characters, Stripe 255: keys must fit the smaller. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 64;

const KEY_RE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * A fresh idempotency key for one charge attempt. The call layer makes it once per attempt,
 * before the first send; every resend and lookup of that attempt reuses it.
 */
export function newIdempotencyKey(prefix = 'payivr'): string {
  const key = `${prefix}-${randomUUID()}`;
  if (!KEY_RE.test(key)) throw new RangeError('idempotency key prefix must be short and [A-Za-z0-9_-]');
  return key;
}

/** Whether a key is acceptable to every PSP we speak to (length and a header-safe alphabet). */
export function isValidIdempotencyKey(key: string): boolean {
  return KEY_RE.test(key);
}
