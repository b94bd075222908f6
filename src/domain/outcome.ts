import type { EntryMode } from './entry.js';

/** The one outcome vocabulary: REFER UUI, logs, reports and metrics. */
export const OUTCOMES = [
  'approved',
  'declined',
  'max-declines',
  'max-attempts',
  'cancelled',
  'hangup',
  'not-identified',
  'amount-refused',
  /** The PSP failed and the card was NOT charged. */
  'psp-error',
  /** The PSP may have charged, but the outcome could not be confirmed: the caller is told not to pay again; reconciliation settles it. */
  'unconfirmed',
  'error',
] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** PSP decline, mapped to what the caller is told and may do next. */
export const DECLINE_CLASSES = [
  'insufficient-funds', // try another card
  'do-not-honor', // generic decline: try another card
  'expired-card', // re-enter expiry once
  'incorrect-cvc', // re-enter security code once
  'incorrect-number', // re-enter card number
  'fraud', // fraud / lost / stolen / pickup: generic message, no retry
  'processing-error', // transient at the issuer: one retry
] as const;
export type DeclineClass = (typeof DECLINE_CLASSES)[number];

export const CALL_MODES = ['automated', 'agent'] as const;
export type CallMode = (typeof CALL_MODES)[number];

/**
 * Where the charged amount came from: the context's `amt` (confirmed or not), the balance the
 * caller chose to pay in the "balance or another amount" menu, or keys the caller typed.
 */
export const AMOUNT_SOURCES = ['context', 'caller', 'balance'] as const;
export type AmountSource = (typeof AMOUNT_SOURCES)[number];

/**
 * Why the call context (UUI) was refused, field by field; with outcome `error` the first of these,
 * in this order, is the UUI `why` code. `return-refused` never ends a call by itself: the
 * configured hand-back target is used instead.
 */
export const CONTEXT_PROBLEMS = [
  'unreadable', // a User-to-User header was present but could not be decoded
  'duplicate-key', // a key appeared more than once (every copy is rejected)
  'bad-currency', // not a known ISO 4217 code
  'currency-not-accepted', // a known code, but neither the profile's nor one it accepts
  'bad-amount', // not a plain decimal, too many decimals for the currency, zero, or too large
  'amount-out-of-range', // outside the profile's minimum/maximum for that currency
  'bad-field', // mode, ident, lang, profile, entry, acct, ref or agent that does not parse
  'return-refused', // ret= is not one of the allowed hand-back targets
] as const;
export type ContextProblem = (typeof CONTEXT_PROBLEMS)[number];

/**
 * Why a call ended with outcome `error` (UUI `why`): a bad context, or `node-drained` when the
 * node's drain deadline ended the dialogue before a payment was made (docs/fleet.md).
 */
type ErrorReason = ContextProblem | 'node-drained';

/**
 * What one payment call ended with. Never PAN, security code or expiry: last 4 only.
 * Amounts are integers in minor units of `currency`.
 */
export interface PaymentResult {
  outcome: Outcome;
  mode: CallMode;
  /** How pay-ivr entered the conversation (transfer or conference leg); absent on older records. */
  entry?: EntryMode | undefined;
  currency: string;
  amount?: number | undefined;
  reference?: string | undefined;
  accountId?: string | undefined;
  conversationId?: string | undefined;
  brand?: string | undefined;
  last4?: string | undefined;
  transactionId?: string | undefined;
  authCode?: string | undefined;
  declineClass?: DeclineClass | undefined;
  /** Where `amount` came from; absent when no amount was settled. */
  amountSource?: AmountSource | undefined;
  /** With outcome `error`: the reason code (UUI `why`), when one is known. */
  errorReason?: ErrorReason | undefined;
  /** Context fields rejected on this call: key name and reason, never the value. */
  contextProblems?: { key: string; problem: ContextProblem }[] | undefined;
  /** Counters: card attempts sent to the PSP, declines, invalid entries. */
  attempts: { charges: number; declines: number; invalidEntries: number };
  /** Filled by the call layer (the domain has no clock). ISO timestamps and durations in ms. */
  timings?: {
    startedAt: string;
    endedAt?: string | undefined;
    durationMs?: number | undefined;
    pspMs?: number | undefined;
  } | undefined;
  callId?: string | undefined;
  profile?: string | undefined;
  /**
   * `charged`: written as soon as a charge outcome was known, before the hand-back; `ended`: the
   * call's final record (hand-back status filled). Filled by the call layer.
   */
  stage?: 'charged' | 'ended' | undefined;
  /** `reconciled`: the outcome was settled after the call by a PSP lookup (payment journal). */
  origin?: 'call' | 'reconciled' | undefined;
  /** When reconciliation changed this record (ISO). */
  reconciledAt?: string | undefined;
  /** Whether the hand-back REFER was accepted (filled by the call layer). */
  handBack?: { target: string; status: 'accepted' | 'failed' | 'skipped'; detail?: string | undefined } | undefined;
}
