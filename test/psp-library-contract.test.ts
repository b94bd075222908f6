import { describe, expect, it } from 'vitest';
import { Types } from '@adyen/api-library';
import { ApiConstants } from '@adyen/api-library/lib/src/constants/apiConstants.js';
import type Stripe from 'stripe';
import { adyenPaymentOutcome, adyenPaymentRequest, ADYEN_RESULT_CODES, type AdyenPaymentResponse } from '../src/psp/adyen.js';
import { CardJsonBody } from '../src/psp/card-body.js';
import { ADYEN_REFUSALS, STRIPE_DECLINE_CODES } from '../src/psp/decline-codes.js';
import { ADYEN_HOLDER_NAME_TRIGGERS, DECLINE_TEST_CARDS } from '../src/psp/sandbox/cards.js';
import { intentOutcome } from '../src/psp/stripe.js';
import type { ChargeOutcome } from '../src/domain/charge.js';
import { chargeRequest } from './support/psp-fixtures.js';

/**
 * The PSP adapters and the sandbox are written from the PSPs' documentation; if both misread it the
 * same way, every other test passes. These checks hold them to the PSPs' own published models:
 * @adyen/api-library (a dev dependency only for this) and the `stripe` package's types.
 * Type-level checks fail `npm run typecheck` (this file is part of the tsconfig); value-level ones fail here.
 */

type PaymentRequest = Types.checkout.PaymentRequest;
type PaymentResponse = Types.checkout.PaymentResponse;
type CardDetails = Types.checkout.CardDetails;
const ResultCodeEnum = Types.checkout.PaymentResponse.ResultCodeEnum;
type ResultCode = `${Types.checkout.PaymentResponse.ResultCodeEnum}`;

/** The library's string enums as the strings that go over the wire (TS enums are nominal). */
type Wire<T> = T extends string ? `${T}` : T extends readonly (infer U)[] ? Wire<U>[] : T extends object ? { [K in keyof T]: Wire<T[K]> } : T;

/** The literal members of a Stripe union, without its catch-all `OtherString`. */
type Known<T> = T extends unknown ? (string extends T ? never : T) : never;

describe('Adyen adapter against @adyen/api-library', () => {
  it('the /payments request type-checks as the library PaymentRequest and carries its required fields', () => {
    const b = new CardJsonBody();
    const body = adyenPaymentRequest(chargeRequest('4242424242424242', { amount: 1250, currency: 'eur' }), 'TestMerchantMOTO', b, 'J. Doe');
    // returnUrl: the library marks it required because redirect flows need it; a MOTO card
    // payment never redirects (no 3-D Secure), so the adapter does not send one.
    const asLibrary: Wire<Omit<PaymentRequest, 'returnUrl'>> = body;
    const method: Wire<CardDetails> = body.paymentMethod;
    const interaction: Wire<PaymentRequest['shopperInteraction']> = body.shopperInteraction;
    expect(interaction).toBe(`${Types.checkout.PaymentRequest.ShopperInteractionEnum.Moto}`);
    expect(method.type).toBe(`${Types.checkout.CardDetails.TypeEnum.Scheme}`);
    // Value level: every field the library marks required (but returnUrl) is present.
    const required = Types.checkout.PaymentRequest.getAttributeTypeMap()
      .map((a) => a.name)
      .filter((n) => ['amount', 'merchantAccount', 'paymentMethod', 'reference'].includes(n));
    expect(required.sort()).toEqual(['amount', 'merchantAccount', 'paymentMethod', 'reference']);
    for (const name of required) expect(asLibrary[name as keyof typeof asLibrary], name).toBeDefined();
    const known = new Set(Types.checkout.PaymentRequest.getAttributeTypeMap().map((a) => a.name));
    for (const name of Object.keys(body)) expect(known.has(name), `PaymentRequest.${name}`).toBe(true);
    const cardFields = new Set(Types.checkout.CardDetails.getAttributeTypeMap().map((a) => a.name));
    for (const name of Object.keys(body.paymentMethod)) expect(cardFields.has(name), `CardDetails.${name}`).toBe(true);
    b.toBuffer(body).fill(0);
  });

  it('the response fields the adapter reads exist in the library PaymentResponse', () => {
    type Read = keyof AdyenPaymentResponse;
    const fields: Record<Read, true> = { pspReference: true, resultCode: true, refusalReason: true, refusalReasonCode: true, additionalData: true };
    // Type level: each field we read is a PaymentResponse field.
    const inLibrary: readonly (keyof PaymentResponse)[] = Object.keys(fields) as Read[];
    const names = new Set(Types.checkout.PaymentResponse.getAttributeTypeMap().map((a) => a.name));
    for (const f of inLibrary) expect(names.has(f), f).toBe(true);
  });

  it('every resultCode the adapter maps is one of the library ResultCodeEnum values', () => {
    const mapped: readonly ResultCode[] = Object.keys(ADYEN_RESULT_CODES) as (keyof typeof ADYEN_RESULT_CODES)[];
    const values = new Set<string>(Object.values(ResultCodeEnum));
    for (const code of mapped) expect(values.has(code), code).toBe(true);
  });

  it('every resultCode of the library leads to a defined outcome (exhaustive: a new library code fails the typecheck)', () => {
    const expected: Record<ResultCode, ChargeOutcome['status']> = {
      Authorised: 'approved',
      Refused: 'declined',
      Cancelled: 'declined',
      Error: 'declined',
      RedirectShopper: 'declined',
      IdentifyShopper: 'declined',
      ChallengeShopper: 'declined',
      // Final result later (webhook), or not a final payment result at all: not known now.
      Received: 'unknown',
      Pending: 'unknown',
      PresentToShopper: 'unknown',
      PartiallyAuthorised: 'unknown',
      AuthenticationFinished: 'unknown',
      AuthenticationNotRequired: 'unknown',
      Success: 'unknown',
    };
    expect(Object.keys(expected).sort()).toEqual(Object.values(ResultCodeEnum).map(String).sort());
    for (const [code, status] of Object.entries(expected)) {
      expect(adyenPaymentOutcome({ resultCode: code, pspReference: 'PSP0000000000001', refusalReasonCode: '2' }).status, code).toBe(status);
    }
  });

  it('the refusal reasons the library names have the same text in the adapter table; the sandbox says what the adapter expects', () => {
    const libraryReasons = [ApiConstants.REFUSED, ApiConstants.CVC_DECLINED, ApiConstants.TRANSACTION_NOT_PERMITTED, ApiConstants.RESTRICTED_CARD].map(String);
    const ours = new Set(Object.values(ADYEN_REFUSALS).map(([reason]) => reason));
    for (const r of libraryReasons) expect(ours.has(r), r).toBe(true);
    // The sandbox's refusals (test cards and holder-name triggers) use the adapter's codes and texts.
    const sandbox = [...ADYEN_HOLDER_NAME_TRIGGERS.values(), ...[...DECLINE_TEST_CARDS.values()].map((s) => (s.kind === 'decline' ? s.adyen : undefined))];
    let checked = 0;
    for (const r of sandbox) {
      if (r === undefined || typeof r === 'string' || r.refusalReasonCode === '0') continue;
      expect(ADYEN_REFUSALS[r.refusalReasonCode]?.[0], `refusal ${r.refusalReasonCode}`).toBe(r.refusalReason);
      expect(Object.values(ResultCodeEnum).map(String)).toContain(r.resultCode);
      checked++;
    }
    expect(checked).toBeGreaterThan(25);
  });
});

// The create params need no check here: src/psp/stripe.ts builds them typed as the SDK's own
// Stripe.PaymentIntentCreateParams, so a change in the SDK fails the typecheck of the adapter itself.
describe('Stripe adapter against the stripe package types', () => {
  it('every PaymentIntent status leads to a defined outcome (exhaustive: a new status fails the typecheck)', () => {
    const expected: Record<Known<Stripe.PaymentIntent.Status>, ChargeOutcome['status']> = {
      succeeded: 'approved',
      requires_capture: 'approved',
      requires_payment_method: 'declined',
      canceled: 'declined',
      requires_action: 'declined',
      requires_confirmation: 'declined',
      processing: 'unknown',
    };
    for (const [status, outcome] of Object.entries(expected)) {
      const pi = {
        id: 'pi_1',
        status,
        latest_charge: null,
        last_payment_error: status === 'requires_payment_method' ? { type: 'card_error', code: 'card_declined', decline_code: 'insufficient_funds' } : null,
      } as unknown as Stripe.PaymentIntent;
      expect(intentOutcome(pi).status, status).toBe(outcome);
    }
  });

  it('the card error codes the adapter maps are Stripe error codes (type level), with the class the caller needs', () => {
    // Error codes (not issuer decline codes) the adapter relies on for re-entry and retry.
    const errorCodes = {
      expired_card: 'expired-card',
      invalid_expiry_month: 'expired-card',
      invalid_expiry_year: 'expired-card',
      incorrect_cvc: 'incorrect-cvc',
      invalid_cvc: 'incorrect-cvc',
      incorrect_number: 'incorrect-number',
      invalid_number: 'incorrect-number',
      insufficient_funds: 'insufficient-funds',
      processing_error: 'processing-error',
      authentication_required: 'do-not-honor',
    } as const satisfies Partial<Record<Known<Stripe.PaymentIntent.LastPaymentError.Code>, string>>;
    for (const [code, cls] of Object.entries(errorCodes)) expect(STRIPE_DECLINE_CODES[code], code).toBe(cls);
  });

  it("the sandbox's Stripe declines use codes the adapter maps", () => {
    for (const s of DECLINE_TEST_CARDS.values()) {
      if (s.kind !== 'decline') continue;
      const code = s.stripe.declineCode ?? s.stripe.code;
      expect(Object.hasOwn(STRIPE_DECLINE_CODES, code), code).toBe(true);
    }
  });

});
