import { DECLINE_CLASSES, type DeclineClass } from '../domain/outcome.js';

/**
 * PSP decline codes -> our decline classes (DESIGN.md section 7), which decide what the caller
 * hears and may do next. Unknown codes fall back to the generic decline: "try another card".
 */

const STRIPE: Readonly<Record<string, DeclineClass>> = {
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
  return (declineCode !== undefined ? STRIPE[declineCode] : undefined) ?? (code !== undefined ? STRIPE[code] : undefined) ?? 'do-not-honor';
}

/** Adyen refusalReasonCode (docs.adyen.com "Refusal reasons") -> class. */
const ADYEN: Readonly<Record<string, DeclineClass>> = {
  '2': 'do-not-honor', // Refused
  '3': 'do-not-honor', // Referral
  '4': 'processing-error', // Acquirer Error
  '5': 'fraud', // Blocked Card (lost/stolen/blocked)
  '6': 'expired-card', // Expired Card
  '7': 'do-not-honor', // Invalid Amount
  '8': 'incorrect-number', // Invalid Card Number
  '9': 'processing-error', // Issuer Unavailable
  '10': 'do-not-honor', // Not supported
  '11': 'do-not-honor', // 3D Not Authenticated
  '12': 'insufficient-funds', // Not enough balance
  '14': 'fraud', // Acquirer Fraud
  '15': 'do-not-honor', // Cancelled
  '16': 'do-not-honor', // Shopper Cancelled
  '17': 'do-not-honor', // Invalid Pin
  '18': 'do-not-honor', // Pin tries exceeded
  '19': 'do-not-honor', // Pin validation not possible
  '20': 'fraud', // FRAUD
  '21': 'processing-error', // Not Submitted
  '22': 'fraud', // FRAUD-CANCELLED
  '23': 'do-not-honor', // Transaction Not Permitted
  '24': 'incorrect-cvc', // CVC Declined
  '25': 'do-not-honor', // Restricted Card
  '26': 'do-not-honor', // Revocation Of Auth
  '27': 'do-not-honor', // Declined Non Generic
  '28': 'insufficient-funds', // Withdrawal amount exceeded
  '29': 'insufficient-funds', // Withdrawal count exceeded
  '31': 'fraud', // Issuer Suspected Fraud
  '32': 'do-not-honor', // AVS Declined
  '42': 'processing-error', // Transaction Timeout
};

export function adyenDeclineClass(refusalReasonCode: string | undefined): DeclineClass {
  return (refusalReasonCode !== undefined ? ADYEN[refusalReasonCode] : undefined) ?? 'do-not-honor';
}

export function isDeclineClass(s: string): s is DeclineClass {
  return (DECLINE_CLASSES as readonly string[]).includes(s);
}
