import type { Outcome } from './outcome.js';

/**
 * How pay-ivr came into the Genesys conversation, and so how its leg ends.
 * - `transfer`: the caller was transferred to pay-ivr (a flow or an agent's blind transfer); the
 *   call goes back with a REFER whose Refer-To carries the result UUI.
 * - `conference`: an agent dialed pay-ivr and conferenced it in; caller, agent and pay-ivr share
 *   one mix. There is nothing to transfer back: the caller and the agent are still together, and a
 *   REFER would move the agent's own leg. pay-ivr announces the result and leaves with a BYE; the
 *   result reaches the conversation through the participant-data write-back.
 */
export const ENTRY_MODES = ['transfer', 'conference'] as const;
export type EntryMode = (typeof ENTRY_MODES)[number];

/** The hand-back status detail of a conference leg (results, reports, the admin API). */
export const CONFERENCE_LEG_DETAIL = 'conference leg: ended with BYE';

/** The Reason of the BYE that ends a conference leg (RFC 3326), without the transport framing. */
export interface LegEndReason {
  cause: number;
  text: string;
}

/** How the call ends once the dialogue is over (the caller still on the line). */
export type HandBackMethod = { kind: 'refer' } | { kind: 'bye'; reason: LegEndReason; detail: string };

/**
 * The one rule: a transferred call is handed back with a REFER; a conference leg is never
 * REFERred (it would move the agent's leg, not the caller's), it ends with a BYE after the result
 * was announced. The Reason names the outcome (no card data: outcomes are a closed list).
 */
export function handBackMethod(entry: EntryMode, outcome: Outcome): HandBackMethod {
  if (entry === 'transfer') return { kind: 'refer' };
  return { kind: 'bye', reason: { cause: 200, text: `Conference leg ended; outcome ${outcome}` }, detail: CONFERENCE_LEG_DETAIL };
}

/**
 * What the dialogue may read back in a conference: the agent hears every prompt, so nothing but
 * masked digits (the card number is always read as its last 4, domain/readback.ts). The expiry
 * and security code readbacks are off whatever the profile says; the amount stays (not card data).
 */
export function readbackFor<R extends { expiry: boolean; securityCode: boolean }>(entry: EntryMode, readback: R): R {
  return entry === 'conference' ? { ...readback, expiry: false, securityCode: false } : readback;
}

/**
 * The entry mode of a call: the context's `entry=` field when it was sent and read, else the
 * profile's setting. The context wins because the flow or script that dialed pay-ivr knows how it
 * did; the profile's setting is for numbers only ever conferenced in.
 */
export function resolveEntryMode(profileEntry: EntryMode, contextEntry: EntryMode | undefined): EntryMode {
  return contextEntry ?? profileEntry;
}

/** The `entry=` value of the UUI: `conf`/`conference` or `transfer`/`xfer`, any case; anything else is undefined. */
export function parseEntryMode(v: string): EntryMode | undefined {
  const s = v.trim().toLowerCase();
  if (s === 'conf' || s === 'conference') return 'conference';
  if (s === 'transfer' || s === 'xfer') return 'transfer';
  return undefined;
}
