import type { DeclineClass } from '../../src/domain/outcome.js';

/**
 * The documented decline test cards the sandbox's Stripe and Adyen faces implement, and the
 * decline class each must end as: one table for every PSP suite, which adds only its own codes.
 */
export const DECLINE_CARDS = {
  '4000000000000002': 'do-not-honor',
  '4000000000009995': 'insufficient-funds',
  '4000000000000069': 'expired-card',
  '4000000000000127': 'incorrect-cvc',
  '4000000000000119': 'processing-error',
  '4000000000009987': 'fraud',
  '4000000000009979': 'fraud',
  '4100000000000019': 'fraud',
  '4242424242424241': 'incorrect-number',
  '4000000000006975': 'insufficient-funds',
} as const satisfies Record<string, DeclineClass>;

export type DeclineCard = keyof typeof DECLINE_CARDS;

/** `[pan, decline class, PSP code]` rows for `it.each`, from one PSP's code per card. */
export function declineCases(codes: Partial<Record<DeclineCard, string>>): [string, DeclineClass, string][] {
  return Object.entries(codes).map(([pan, code]) => [pan, DECLINE_CARDS[pan as DeclineCard], code as string]);
}
