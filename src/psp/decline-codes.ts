import { DECLINE_CLASSES, type DeclineClass } from '../domain/outcome.js';

/**
 * PSP decline codes -> our decline classes, which decide what the caller
 * hears and may do next. Unknown codes fall back to the generic decline: "try another card".
 */

/** Stripe decline_code / card error code -> class (docs.stripe.com "Decline codes", "Error codes"). */
export const STRIPE_DECLINE_CODES: Readonly<Record<string, DeclineClass>> = {
  insufficient_funds: 'insufficient-funds',
  card_velocity_exceeded: 'insufficient-funds',
  withdrawal_count_limit_exceeded: 'insufficient-funds',
  generic_decline: 'do-not-honor',
  do_not_honor: 'do-not-honor',
  do_not_try_again: 'do-not-honor',
  call_issuer: 'do-not-honor',
  card_not_supported: 'do-not-honor',
  currency_not_supported: 'do-not-honor',
  invalid_account: 'do-not-honor',
  invalid_amount: 'do-not-honor',
  new_account_information_available: 'do-not-honor',
  no_action_taken: 'do-not-honor',
  not_permitted: 'do-not-honor',
  restricted_card: 'do-not-honor',
  revocation_of_all_authorizations: 'do-not-honor',
  revocation_of_authorization: 'do-not-honor',
  security_violation: 'do-not-honor',
  service_not_allowed: 'do-not-honor',
  stop_payment_order: 'do-not-honor',
  transaction_not_allowed: 'do-not-honor',
  approve_with_id: 'do-not-honor',
  authentication_required: 'do-not-honor',
  duplicate_transaction: 'do-not-honor',
  incorrect_zip: 'do-not-honor',
  incorrect_pin: 'do-not-honor',
  invalid_pin: 'do-not-honor',
  offline_pin_required: 'do-not-honor',
  online_or_offline_pin_required: 'do-not-honor',
  pin_try_exceeded: 'do-not-honor',
  expired_card: 'expired-card',
  invalid_expiry_month: 'expired-card',
  invalid_expiry_year: 'expired-card',
  incorrect_cvc: 'incorrect-cvc',
  invalid_cvc: 'incorrect-cvc',
  incorrect_number: 'incorrect-number',
  invalid_number: 'incorrect-number',
  fraudulent: 'fraud',
  lost_card: 'fraud',
  stolen_card: 'fraud',
  pickup_card: 'fraud',
  merchant_blacklist: 'fraud',
  processing_error: 'processing-error',
  issuer_not_available: 'processing-error',
  reenter_transaction: 'processing-error',
  try_again_later: 'processing-error',
};

/** Stripe card_error: the decline_code when the issuer gave one, else the error code. */
export function stripeDeclineClass(code: string | undefined, declineCode: string | undefined): DeclineClass {
  const known = (c: string | undefined): DeclineClass | undefined => (c !== undefined && Object.hasOwn(STRIPE_DECLINE_CODES, c) ? STRIPE_DECLINE_CODES[c] : undefined);
  return known(declineCode) ?? known(code) ?? 'do-not-honor';
}

/**
 * Adyen refusalReasonCode -> [refusalReason as Adyen spells it, class] (docs.adyen.com "Refusal
 * reasons"). The reason texts are checked against @adyen/api-library and the sandbox in the tests.
 */
export const ADYEN_REFUSALS: Readonly<Record<string, readonly [reason: string, declineClass: DeclineClass]>> = {
  '2': ['Refused', 'do-not-honor'],
  '3': ['Referral', 'do-not-honor'],
  '4': ['Acquirer Error', 'processing-error'],
  '5': ['Blocked Card', 'fraud'], // lost, stolen or blocked
  '6': ['Expired Card', 'expired-card'],
  '7': ['Invalid Amount', 'do-not-honor'],
  '8': ['Invalid Card Number', 'incorrect-number'],
  '9': ['Issuer Unavailable', 'processing-error'],
  '10': ['Not supported', 'do-not-honor'],
  '11': ['3D Not Authenticated', 'do-not-honor'],
  '12': ['Not enough balance', 'insufficient-funds'],
  '14': ['Acquirer Fraud', 'fraud'],
  '15': ['Cancelled', 'do-not-honor'],
  '16': ['Shopper Cancelled', 'do-not-honor'],
  '17': ['Invalid Pin', 'do-not-honor'],
  '18': ['Pin tries exceeded', 'do-not-honor'],
  '19': ['Pin validation not possible', 'do-not-honor'],
  '20': ['FRAUD', 'fraud'],
  '21': ['Not Submitted', 'processing-error'],
  '22': ['FRAUD-CANCELLED', 'fraud'],
  '23': ['Transaction Not Permitted', 'do-not-honor'],
  '24': ['CVC Declined', 'incorrect-cvc'],
  '25': ['Restricted Card', 'do-not-honor'],
  '26': ['Revocation Of Auth', 'do-not-honor'],
  '27': ['Declined Non Generic', 'do-not-honor'],
  '28': ['Withdrawal amount exceeded', 'insufficient-funds'],
  '29': ['Withdrawal count exceeded', 'insufficient-funds'],
  '31': ['Issuer Suspected Fraud', 'fraud'],
  '32': ['AVS Declined', 'do-not-honor'],
  '42': ['Transaction Timeout', 'processing-error'],
};

export function adyenDeclineClass(refusalReasonCode: string | undefined): DeclineClass {
  return (refusalReasonCode !== undefined && Object.hasOwn(ADYEN_REFUSALS, refusalReasonCode) ? ADYEN_REFUSALS[refusalReasonCode]?.[1] : undefined) ?? 'do-not-honor';
}

export function isDeclineClass(s: string): s is DeclineClass {
  return (DECLINE_CLASSES as readonly string[]).includes(s);
}
