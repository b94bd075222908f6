/** The one outcome vocabulary (DESIGN.md section 2): REFER UUI, logs, reports and metrics. */
export const OUTCOMES = [
  'approved',
  'declined',
  'max-declines',
  'max-attempts',
  'cancelled',
  'hangup',
  'not-identified',
  'amount-refused',
  'psp-error',
  'error',
] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** PSP decline, mapped to what the caller is told and may do next (DESIGN.md section 7). */
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

export type CallMode = 'automated' | 'agent';

/**
 * What one payment call ended with. Never PAN, security code or expiry: last 4 only.
 * Amounts are integers in minor units of `currency`.
 */
export interface PaymentResult {
  outcome: Outcome;
  mode: CallMode;
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
