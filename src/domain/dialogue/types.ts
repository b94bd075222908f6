import type { Brand } from '../brand.js';
import type { AmountSource, CallMode, DeclineClass, Outcome } from '../outcome.js';
import type { CardData } from '../sensitive.js';
import type { ChargeOutcome } from '../charge.js';
import type { DtmfDigit } from '../dtmf.js';

/**
 * Contract of the payment dialogue: a pure state machine `(state, event) -> (state, commands)`.
 * No I/O and no clock inside: timers, playback and the PSP are commands that the call layer
 * (src/call) carries out, and their completions come back as events.
 */

/** Per-call settings, taken from the profile. Amounts in minor units. */
export interface DialogueSettings {
  language: 'fr-FR' | 'en-US';
  currency: string;
  amountSource: 'context' | 'choice' | 'entered';
  minAmount: number;
  maxAmount: number;
  allowedBrands: readonly Brand[];
  securityCode: 'required' | 'brand';
  maxDeclines: number;
  attempts: { amount: number; pan: number; expiry: number; securityCode: number; confirm: number };
  readback: { amount: boolean; pan: boolean; expiry: boolean; securityCode: boolean };
  timeouts: { firstDigitMs: number; interDigitMs: number };
}

/** What the INVITE context says about this payment. */
export interface DialogueContext {
  identified: boolean;
  mode: CallMode;
  /** Amount due from the context, minor units; undefined when not given. */
  amount?: number | undefined;
  reference?: string | undefined;
}

export interface DialogueInput {
  settings: DialogueSettings;
  context: DialogueContext;
  /** The current month, for expiry checks (passed in: the domain has no clock). */
  now: { year: number; month: number };
}

export type DialogueEvent =
  /** The call was answered: begin. */
  | { type: 'start' }
  /** A key press (also during a prompt: type-ahead). */
  | { type: 'digit'; digit: DtmfDigit }
  /** The timer started by `start-timer` with this id expired. */
  | { type: 'timeout'; timerId: number }
  /** The `play` with this id finished (completed, or interrupted by barge-in). */
  | { type: 'play-done'; playId: number; interrupted: boolean }
  /** The `charge` command finished. */
  | { type: 'charge-result'; outcome: ChargeOutcome }
  /** The caller hung up. */
  | { type: 'hangup' };

export type DialogueCommand =
  /**
   * Play prompt fragments (ids from the prompt catalog) in order; report `play-done` with this id.
   * `sensitive` marks a card readback: the fragment list spells card digits and must never be logged.
   */
  | { type: 'play'; playId: number; fragments: string[]; bargeIn: boolean; sensitive: boolean }
  /** Wait music while the PSP runs; stopped by the next `play` or `stop-play`. */
  | { type: 'play-wait' }
  | { type: 'stop-play' }
  /** Start (replacing any running one) the single collection timer; report `timeout` with this id. */
  | { type: 'start-timer'; timerId: number; ms: number }
  | { type: 'cancel-timer' }
  /** Charge the card; report `charge-result`. The dialogue wipes the card data after the result. */
  | { type: 'charge'; amount: number; currency: string; card: CardData; brand: Brand; attempt: number }
  /** The dialogue is over: hand back (unless the caller hung up) with this result. */
  | { type: 'finish'; result: DialogueResult };

/** The domain part of the result record (the call layer adds ids, timings and hand-back). */
export interface DialogueResult {
  outcome: Outcome;
  amount?: number | undefined;
  /** Where `amount` came from (set together with it). */
  amountSource?: AmountSource | undefined;
  currency: string;
  brand?: Brand | undefined;
  last4?: string | undefined;
  transactionId?: string | undefined;
  authCode?: string | undefined;
  declineClass?: DeclineClass | undefined;
  attempts: { charges: number; declines: number; invalidEntries: number };
  /** True when the caller had already hung up when the dialogue ended (no hand-back). */
  callerGone: boolean;
}

export interface Transition<S> {
  state: S;
  commands: DialogueCommand[];
}
