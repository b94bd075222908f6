/**
 * The sandbox's test cards. The numbers are Stripe's documented test numbers
 * and behave the same on both faces; the Adyen face maps each decline to the Adyen refusal code
 * of the same meaning. Any other number that passes Luhn is approved, so unseen test numbers work.
 */

export interface StripeDecline {
  /** Stripe error `code` (card_declined, expired_card, incorrect_cvc, ...). */
  code: string;
  /** Stripe `decline_code`, where Stripe documents one. */
  declineCode?: string;
  message: string;
}

export interface AdyenRefusal {
  resultCode: 'Refused' | 'Error' | 'Cancelled';
  refusalReasonCode: string;
  refusalReason: string;
}

type CardScenario = { kind: 'approve' } | { kind: 'decline'; stripe: StripeDecline; adyen: AdyenRefusal };

/** Stripe's approved test numbers, one or more per brand. */
export const APPROVED_TEST_CARDS: readonly string[] = [
  '4242424242424242', // Visa
  '4000056655665556', // Visa debit
  '5555555555554444', // Mastercard
  '2223003122003222', // Mastercard 2-series
  '5200828282828210', // Mastercard debit
  '5105105105105100', // Mastercard prepaid
  '378282246310005', // Amex
  '371449635398431', // Amex
  '6011111111111117', // Discover
  '6011000990139424', // Discover
  '6011981111111113', // Discover debit
  '3056930009020004', // Diners
  '36227206271667', // Diners 14-digit
  '3566002020360505', // JCB
  '6200000000000005', // UnionPay
  '6200000000000047', // UnionPay debit
  '6205500000000000004', // UnionPay 19-digit
];

const declined = (stripe: StripeDecline, adyen: AdyenRefusal): CardScenario => ({ kind: 'decline', stripe, adyen });
const DECLINED_MSG = 'Your card was declined.';

export const DECLINE_TEST_CARDS: ReadonlyMap<string, CardScenario> = new Map([
  ['4000000000000002', declined({ code: 'card_declined', declineCode: 'generic_decline', message: DECLINED_MSG }, { resultCode: 'Refused', refusalReasonCode: '2', refusalReason: 'Refused' })],
  ['4000000000009995', declined({ code: 'card_declined', declineCode: 'insufficient_funds', message: 'Your card has insufficient funds.' }, { resultCode: 'Refused', refusalReasonCode: '12', refusalReason: 'Not enough balance' })],
  ['4000000000009987', declined({ code: 'card_declined', declineCode: 'lost_card', message: DECLINED_MSG }, { resultCode: 'Refused', refusalReasonCode: '5', refusalReason: 'Blocked Card' })],
  ['4000000000009979', declined({ code: 'card_declined', declineCode: 'stolen_card', message: DECLINED_MSG }, { resultCode: 'Refused', refusalReasonCode: '5', refusalReason: 'Blocked Card' })],
  ['4000000000000069', declined({ code: 'expired_card', message: 'Your card has expired.' }, { resultCode: 'Refused', refusalReasonCode: '6', refusalReason: 'Expired Card' })],
  ['4000000000000127', declined({ code: 'incorrect_cvc', message: "Your card's security code is incorrect." }, { resultCode: 'Refused', refusalReasonCode: '24', refusalReason: 'CVC Declined' })],
  ['4000000000000119', declined({ code: 'processing_error', message: 'An error occurred while processing your card. Try again in a little bit.' }, { resultCode: 'Error', refusalReasonCode: '4', refusalReason: 'Acquirer Error' })],
  ['4100000000000019', declined({ code: 'card_declined', declineCode: 'fraudulent', message: DECLINED_MSG }, { resultCode: 'Refused', refusalReasonCode: '20', refusalReason: 'FRAUD' })],
  ['4000000000006975', declined({ code: 'card_declined', declineCode: 'card_velocity_exceeded', message: DECLINED_MSG }, { resultCode: 'Refused', refusalReasonCode: '28', refusalReason: 'Withdrawal amount exceeded' })],
]);

/** A number that fails Luhn (Stripe's `incorrect_number` test card is 4242424242424241). */
const INCORRECT_NUMBER: CardScenario = declined(
  { code: 'incorrect_number', message: 'Your card number is incorrect.' },
  { resultCode: 'Refused', refusalReasonCode: '8', refusalReason: 'Invalid Card Number' },
);

/**
 * The card number as the sandbox sees it: digits readable one by one (SensitiveDigits), never a
 * JS string (the sandbox may run inside pay-ivr's process; see card-fields.ts).
 */
interface PanDigits {
  readonly length: number;
  digitAt(i: number): number;
  /** Numeric value of digits [start, end). */
  slice(start: number, end: number): number;
}

function luhnOk(pan: PanDigits): boolean {
  if (pan.length === 0) return false;
  let sum = 0;
  for (let i = 0; i < pan.length; i++) {
    let d = pan.digitAt(pan.length - 1 - i);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

function sameDigits(pan: PanDigits, listed: string): boolean {
  if (pan.length !== listed.length) return false;
  for (let i = 0; i < listed.length; i++) if (pan.digitAt(i) !== listed.charCodeAt(i) - 48) return false;
  return true;
}

export function scenarioFor(pan: PanDigits): CardScenario {
  for (const [listed, scenario] of DECLINE_TEST_CARDS) if (sameDigits(pan, listed)) return scenario;
  if (APPROVED_TEST_CARDS.some((listed) => sameDigits(pan, listed))) return { kind: 'approve' };
  return luhnOk(pan) ? { kind: 'approve' } : INCORRECT_NUMBER;
}

/** Brand by prefix, for the ledger (the sandbox is the PSP: it may look at the number). */
export function sandboxBrand(pan: PanDigits): string {
  if (pan.length < 6) return 'unknown';
  const p2 = pan.slice(0, 2);
  const p3 = pan.slice(0, 3);
  const p4 = pan.slice(0, 4);
  const p6 = pan.slice(0, 6);
  if (pan.digitAt(0) === 4) return 'visa';
  if ((p2 >= 51 && p2 <= 55) || (p6 >= 222100 && p6 <= 272099)) return 'mastercard';
  if (p2 === 34 || p2 === 37) return 'amex';
  if (p4 >= 2200 && p4 <= 2204) return 'mir';
  if (p4 === 6011 || p2 === 65 || (p3 >= 644 && p3 <= 649)) return 'discover';
  if (p4 >= 3528 && p4 <= 3589) return 'jcb';
  if (p2 === 36 || p2 === 38 || p2 === 39 || (p3 >= 300 && p3 <= 305)) return 'diners';
  if (p2 === 62 || p2 === 81) return 'unionpay';
  return 'unknown';
}

/**
 * Adyen's documented test triggers: `paymentMethod.holderName` set to one of these names forces
 * that result (docs.adyen.com, "Testing result codes and refusal reasons").
 */
export const ADYEN_HOLDER_NAME_TRIGGERS: ReadonlyMap<string, AdyenRefusal | 'Authorised' | 'Received'> = new Map<string, AdyenRefusal | 'Authorised' | 'Received'>([
  ['UNKNOWN', { resultCode: 'Error', refusalReasonCode: '0', refusalReason: 'Unknown' }],
  ['APPROVED', 'Authorised'],
  ['DECLINED', { resultCode: 'Refused', refusalReasonCode: '2', refusalReason: 'Refused' }],
  ['REFERRAL', { resultCode: 'Refused', refusalReasonCode: '3', refusalReason: 'Referral' }],
  ['ERROR', { resultCode: 'Error', refusalReasonCode: '4', refusalReason: 'Acquirer Error' }],
  ['BLOCK_CARD', { resultCode: 'Refused', refusalReasonCode: '5', refusalReason: 'Blocked Card' }],
  ['CARD_EXPIRED', { resultCode: 'Refused', refusalReasonCode: '6', refusalReason: 'Expired Card' }],
  ['INVALID_AMOUNT', { resultCode: 'Refused', refusalReasonCode: '7', refusalReason: 'Invalid Amount' }],
  ['INVALID_CARD_NUMBER', { resultCode: 'Refused', refusalReasonCode: '8', refusalReason: 'Invalid Card Number' }],
  ['ISSUER_UNAVAILABLE', { resultCode: 'Refused', refusalReasonCode: '9', refusalReason: 'Issuer Unavailable' }],
  ['NOT_SUPPORTED', { resultCode: 'Refused', refusalReasonCode: '10', refusalReason: 'Not supported' }],
  ['NOT_3D_AUTHENTICATED', { resultCode: 'Refused', refusalReasonCode: '11', refusalReason: '3D Not Authenticated' }],
  ['NOT_ENOUGH_BALANCE', { resultCode: 'Refused', refusalReasonCode: '12', refusalReason: 'Not enough balance' }],
  ['PENDING', 'Received'],
  ['ACQUIRER_FRAUD', { resultCode: 'Refused', refusalReasonCode: '14', refusalReason: 'Acquirer Fraud' }],
  ['CANCELLED', { resultCode: 'Refused', refusalReasonCode: '15', refusalReason: 'Cancelled' }],
  ['SHOPPER_CANCELLED', { resultCode: 'Refused', refusalReasonCode: '16', refusalReason: 'Shopper Cancelled' }],
  ['INVALID_PIN', { resultCode: 'Refused', refusalReasonCode: '17', refusalReason: 'Invalid Pin' }],
  ['PIN_TRIES_EXCEEDED', { resultCode: 'Refused', refusalReasonCode: '18', refusalReason: 'Pin tries exceeded' }],
  ['PIN_VALIDATION_NOT_POSSIBLE', { resultCode: 'Refused', refusalReasonCode: '19', refusalReason: 'Pin validation not possible' }],
  ['FRAUD', { resultCode: 'Refused', refusalReasonCode: '20', refusalReason: 'FRAUD' }],
  ['NOT_SUBMITTED', { resultCode: 'Refused', refusalReasonCode: '21', refusalReason: 'Not Submitted' }],
  ['FRAUD_CANCELLED', { resultCode: 'Cancelled', refusalReasonCode: '22', refusalReason: 'FRAUD-CANCELLED' }],
  ['TRANSACTION_NOT_PERMITTED', { resultCode: 'Refused', refusalReasonCode: '23', refusalReason: 'Transaction Not Permitted' }],
  ['CVC_DECLINED', { resultCode: 'Refused', refusalReasonCode: '24', refusalReason: 'CVC Declined' }],
  ['RESTRICTED_CARD', { resultCode: 'Refused', refusalReasonCode: '25', refusalReason: 'Restricted Card' }],
  ['REVOCATION_OF_AUTH', { resultCode: 'Refused', refusalReasonCode: '26', refusalReason: 'Revocation Of Auth' }],
  ['DECLINED_NON_GENERIC', { resultCode: 'Refused', refusalReasonCode: '27', refusalReason: 'Declined Non Generic' }],
  ['WITHDRAWAL_AMOUNT_EXCEEDED', { resultCode: 'Refused', refusalReasonCode: '28', refusalReason: 'Withdrawal amount exceeded' }],
  ['WITHDRAWAL_COUNT_EXCEEDED', { resultCode: 'Refused', refusalReasonCode: '29', refusalReason: 'Withdrawal count exceeded' }],
  ['ISSUER_SUSPECTED_FRAUD', { resultCode: 'Refused', refusalReasonCode: '31', refusalReason: 'Issuer Suspected Fraud' }],
  ['AVS_DECLINED', { resultCode: 'Refused', refusalReasonCode: '32', refusalReason: 'AVS Declined' }],
]);
