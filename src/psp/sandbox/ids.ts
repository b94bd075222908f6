import { randomBytes } from 'node:crypto';

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const UPPER_ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

function randomFrom(alphabet: string, n: number): string {
  const bytes = randomBytes(n);
  let s = '';
  for (const b of bytes) s += alphabet[b % alphabet.length];
  return s;
}

/** Stripe-style object id: `pi_...`, `ch_...`, `pm_...`. */
export function stripeId(prefix: string): string {
  return `${prefix}_${randomFrom(ALNUM, 24)}`;
}

/** Adyen pspReference: 16 upper-case alphanumerics. */
export function pspReference(): string {
  return randomFrom(UPPER_ALNUM, 16);
}

/** A six-character authorisation code as issuers return them. */
export function authCode(): string {
  return randomFrom(UPPER_ALNUM, 6);
}
