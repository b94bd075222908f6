import type { ChargeOutcome } from '../charge.js';
import type { Brand } from '../brand.js';
import type { AmountSource, DeclineClass } from '../outcome.js';
import type { CardData, SensitiveDigits } from '../sensitive.js';
import type { DialogueInput, DialogueResult } from './types.js';

/** The card fields collected by DTMF. */
export type CardField = 'pan' | 'expiry' | 'securityCode';
/** Every field that has its own attempt budget (settings.attempts). */
export type EntryField = 'amount' | CardField;

/**
 * Single-key menus. `amount-context`: "you are about to pay X: 1 continue, 3 refuse, 9 cancel";
 * `amount-choice`: "your balance is X: 1 pay it, 2 another amount, 3 refuse, 9 cancel";
 * `confirm-*`: readback then "1 correct, 2 re-enter, 9 cancel"; `other-card`: after a decline,
 * "1 another card, 2 end".
 */
export type MenuKind =
  | 'amount-context'
  | 'amount-choice'
  | 'confirm-amount'
  | 'confirm-pan'
  | 'confirm-expiry'
  | 'confirm-security-code'
  | 'other-card';

/** Where the conversation is. One phase at a time; each holds only what it needs. */
export type Phase =
  /** Created, waiting for `start`. */
  | { kind: 'idle' }
  /** Amount keys as typed ('*' is the decimal point). Not card data: a plain string. */
  | { kind: 'amount-entry'; keys: string }
  /** A card field being typed: digits only ever live in a zeroable buffer. */
  | { kind: 'card-entry'; field: CardField; digits: SensitiveDigits }
  /** A single-key menu; its prompts all take barge-in, so a key acts as soon as it is pressed. */
  | { kind: 'menu'; menu: MenuKind; failures: number }
  /**
   * A charge is with the PSP. `card` is the copy handed to the call layer in the `charge` command;
   * the dialogue wipes it when the result arrives. `faulted`: an internal error happened meanwhile;
   * the dialogue only waits for the result to report it truthfully. `deferred`: a result that
   * came while "please wait" was still playing; it is announced when that prompt ends, so the
   * caller never hears the wait message cut off mid-sentence.
   */
  | { kind: 'charging'; card: CardData; faulted: boolean; deferred?: ChargeOutcome | undefined }
  /** The last announcement plays (no barge-in); `finish` follows its play-done (or a hangup). */
  | { kind: 'closing'; result: DialogueResult }
  /** `finish` was emitted; every event is ignored. */
  | { kind: 'done'; result: DialogueResult };

/** The card being collected: confirmed fields of the current attempt (kept for decline re-entries). */
interface CardFields {
  pan: SensitiveDigits | undefined;
  brand: Brand | undefined;
  /** MMYY */
  expiry: SensitiveDigits | undefined;
  securityCode: SensitiveDigits | undefined;
}

/**
 * The whole state of one payment dialogue. Treat it as opaque and linear: always continue from the
 * state the last `step` returned. `step` copies the plain parts, but the SensitiveDigits buffers are
 * shared with earlier states and are wiped in place (that is the point: no stale copy survives).
 * JSON.stringify of a state never shows card digits (buffers serialize as "[redacted]").
 */
export interface DialogueState {
  readonly input: DialogueInput;
  phase: Phase;
  /** Amount to charge (minor units) once known. */
  amount: number | undefined;
  /** Where `amount` came from; set and cleared with it. */
  amountSource: AmountSource | undefined;
  card: CardFields;
  /** Decline-driven re-entries already used for the current card (each is allowed once). */
  reentry: { securityCode: boolean; expiry: boolean; processing: boolean };
  /** Attempts used per field (invalid entry, no input, or '2' at the readback). */
  failures: Record<EntryField, number>;
  counts: { charges: number; declines: number; invalidEntries: number };
  lastDecline: DeclineClass | undefined;
  /** Brand and last 4 of the card last sent to the PSP (safe to report). */
  charged: { brand: Brand; last4: string } | undefined;
  transactionId: string | undefined;
  authCode: string | undefined;
  /** The welcome phrase was played (it leads the first prompt). */
  welcomed: boolean;
  nextPlayId: number;
  nextTimerId: number;
  /** Id of the last `play`; `playing` until its play-done (or a stop). */
  playId: number | undefined;
  playing: boolean;
  /** Id of the running timer; undefined when none runs (any timeout is then stale). */
  timerId: number | undefined;
  waitMusic: boolean;
  callerGone: boolean;
}

/** A new dialogue, waiting for `start`. */
export function createDialogue(input: DialogueInput): DialogueState {
  return {
    input,
    phase: { kind: 'idle' },
    amount: undefined,
    amountSource: undefined,
    card: { pan: undefined, brand: undefined, expiry: undefined, securityCode: undefined },
    reentry: { securityCode: false, expiry: false, processing: false },
    failures: { amount: 0, pan: 0, expiry: 0, securityCode: 0 },
    counts: { charges: 0, declines: 0, invalidEntries: 0 },
    lastDecline: undefined,
    charged: undefined,
    transactionId: undefined,
    authCode: undefined,
    welcomed: false,
    nextPlayId: 0,
    nextTimerId: 0,
    playId: undefined,
    playing: false,
    timerId: undefined,
    waitMusic: false,
    callerGone: false,
  };
}

/** A copy whose plain parts can be changed without touching the previous state. */
export function copyState(s: DialogueState): DialogueState {
  return {
    ...s,
    phase: { ...s.phase },
    card: { ...s.card },
    reentry: { ...s.reentry },
    failures: { ...s.failures },
    counts: { ...s.counts },
  };
}

/** Every card buffer the state holds (collected fields, the field being typed, the in-flight charge). */
export function heldBuffers(s: DialogueState): SensitiveDigits[] {
  const out: SensitiveDigits[] = [];
  const add = (d: SensitiveDigits | undefined): void => {
    if (d !== undefined) out.push(d);
  };
  add(s.card.pan);
  add(s.card.expiry);
  add(s.card.securityCode);
  if (s.phase.kind === 'card-entry') add(s.phase.digits);
  if (s.phase.kind === 'charging') {
    add(s.phase.card.pan);
    add(s.phase.card.expiry);
    add(s.phase.card.securityCode);
  }
  return out;
}
