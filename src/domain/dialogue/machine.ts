import { maxPanLength, securityCodeRule, validateExpiry, validatePan } from '../card.js';
import { parseDtmfAmount, splitMinor } from '../money.js';
import type { DeclineClass, Outcome } from '../outcome.js';
import { readAmount } from '../readback.js';
import { SensitiveDigits, wipeCard, type CardData } from '../sensitive.js';
import type { ChargeOutcome } from '../charge.js';
import type { DtmfDigit } from '../dtmf.js';
import {
  approvedAnnouncement,
  brandNotAcceptedId,
  declineMessageId,
  entryPromptId,
  menuPrompt,
  usableContextAmount,
} from './speech.js';
import { copyState, createDialogue, heldBuffers, type CardField, type DialogueState, type EntryField, type MenuKind, type Phase } from './state.js';
import type { DialogueCommand, DialogueEvent, DialogueInput, DialogueResult, Transition } from './types.js';

export { createDialogue, type DialogueState, type Phase, type MenuKind, type CardField } from './state.js';

/**
 * The payment dialogue: a pure state machine.
 * `step(state, event)` returns the next state and the commands the call layer carries out. No I/O,
 * no clock, no randomness; it never throws (an internal error ends the dialogue with `error`).
 *
 * Key conventions (the phrases say them to the caller):
 * - Entries: digits typed during a prompt are kept (type-ahead); '#' ends the entry early (a '#'
 *   with nothing typed yet is ignored: it is usually the terminator of the previous field);
 *   '*' clears the field and replays its prompt, counting nothing. The card number also ends by
 *   itself at the detected brand's longest length (Amex 15, Mastercard 16, Visa 19), the expiry
 *   at 4 digits, the security code at the brand's length (4 Amex, 3 others).
 * - Amount entry: '*' is the decimal point. A '*' as the very first key, or a second '*', clears
 *   the amount and replays the prompt (like '*' in the other fields). The entry ends by itself at
 *   an integer digit more than the maximum amount has, or a decimal more than the currency has
 *   (see MAX_AMOUNT_INTEGER_KEYS).
 * - Menus act on the first key, also one pressed while the menu's announcement (amount, readback)
 *   is still being said (barge-in); keys after it go to what the choice leads to (type-ahead).
 *   Confirm menus 1 = correct, 2 = enter again, 9 = cancel; the amount menus also take 3 = refuse
 *   the amount (`amount-refused`); '*' replays the menu; '#' is ignored; any other key is an
 *   invalid choice. After a decline: 1 = another card, 2 (or 9) = end (`declined`).
 * - Timeouts: the first-digit timer starts when the prompt ends (or the inter-digit timer at the
 *   first type-ahead digit); with nothing typed a timeout re-prompts and uses an attempt; with
 *   digits typed it ends the entry like '#'.
 * - Attempts: settings.attempts.<field> entries per field (an invalid entry, a no-input timeout or a
 *   '2' at the readback each use one); settings.attempts.confirm invalid keys or silences per menu.
 *
 * Card data ownership: the dialogue creates every SensitiveDigits it holds and wipes each one when
 * it is dropped (field restart, re-entry, decline, end). The `charge` command carries a fresh copy
 * of the card (clones); it stays readable until the dialogue receives that charge's result, then
 * the dialogue wipes it. The call layer must not keep it past the result (wiping it is harmless:
 * wipe is idempotent). The dialogue's own fields outlive a charge only when a decline asks to
 * re-enter one field (incorrect CVC, expired card) or for the one automatic processing-error retry.
 */

/**
 * Amount entry ends by itself once it cannot be valid any more: more integer digits than the
 * profile's maximum has (never more than 9: MAX_MAJOR is 999,999,999), or more decimals than the
 * currency has. Besides sparing the caller a wait, the amount keys (plain text) then never hold
 * more consecutive digits than that, so a card number typed at the amount prompt by mistake is
 * never kept as text.
 */
const MAX_AMOUNT_INTEGER_KEYS = 9;

function amountKeyLimits(s: DialogueState): { integer: number; fraction: number } {
  const { maxAmount, currency } = s.input.settings;
  const { major, exponent } = splitMinor(maxAmount, currency);
  return { integer: Math.min(MAX_AMOUNT_INTEGER_KEYS, String(major).length), fraction: exponent };
}

type Out = DialogueCommand[];

/** A new dialogue, already started: the call layer's first transition. */
export function startDialogue(input: DialogueInput): Transition<DialogueState> {
  return step(createDialogue(input), { type: 'start' });
}

export function step(state: DialogueState, event: DialogueEvent): Transition<DialogueState> {
  try {
    if (state.phase.kind === 'done') return { state, commands: [] };
    const s = copyState(state);
    const out: Out = [];
    dispatch(s, out, event);
    return { state: s, commands: out };
  } catch {
    return fault(state, event);
  }
}

function dispatch(s: DialogueState, out: Out, ev: DialogueEvent): void {
  switch (ev.type) {
    case 'start':
      if (s.phase.kind === 'idle') begin(s, out);
      return;
    case 'digit':
      onDigit(s, out, ev.digit);
      return;
    case 'timeout':
      if (s.timerId === undefined || ev.timerId !== s.timerId) return; // stale
      s.timerId = undefined;
      onTimeout(s, out);
      return;
    case 'play-done':
      if (!s.playing || ev.playId !== s.playId) return; // stale or already stopped
      s.playing = false;
      onPlayDone(s, out);
      return;
    case 'charge-result': {
      const p = s.phase;
      if (p.kind !== 'charging' || p.deferred !== undefined) return;
      const wellFormed = typeof ev.outcome === 'object' && ev.outcome !== null && ['approved', 'declined', 'failed', 'unknown'].includes(ev.outcome.status);
      if (wellFormed && s.playing && !s.waitMusic && !s.callerGone && !p.faulted) {
        // "Please wait" is still being said: keep the result until it ends (the card copy is
        // done with now, whatever the result).
        wipeCard(p.card);
        p.deferred = ev.outcome;
        return;
      }
      onChargeResult(s, out, p, ev.outcome);
      return;
    }
    case 'hangup':
      onHangup(s, out);
      return;
    default:
      return; // unknown event: ignored
  }
}

// ---------------------------------------------------------------------------------------------
// Commands

function setPhase(s: DialogueState, next: Phase): void {
  const prev = s.phase;
  // A field buffer that was not kept as a confirmed card field is dropped: wipe it.
  const reused = next.kind === 'card-entry' && prev.kind === 'card-entry' && next.digits === prev.digits;
  if (prev.kind === 'card-entry' && !reused && !isHeldField(s, prev.digits)) prev.digits.wipe();
  s.phase = next;
}

function isHeldField(s: DialogueState, d: SensitiveDigits): boolean {
  return d === s.card.pan || d === s.card.expiry || d === s.card.securityCode;
}

function play(s: DialogueState, out: Out, fragments: string[], bargeIn: boolean, sensitive: boolean): void {
  if (s.playing || s.waitMusic) out.push({ type: 'stop-play' });
  const lead = s.welcomed ? [] : ['welcome'];
  s.welcomed = true;
  s.playId = ++s.nextPlayId;
  s.playing = true;
  s.waitMusic = false;
  out.push({ type: 'play', playId: s.playId, fragments: [...lead, ...fragments], bargeIn, sensitive });
}

function startTimer(s: DialogueState, out: Out, ms: number): void {
  s.timerId = ++s.nextTimerId;
  out.push({ type: 'start-timer', timerId: s.timerId, ms });
}

function clearTimer(s: DialogueState, out: Out): void {
  if (s.timerId === undefined) return;
  s.timerId = undefined;
  out.push({ type: 'cancel-timer' });
}

function result(s: DialogueState, outcome: Outcome): DialogueResult {
  return {
    outcome,
    amount: s.amount,
    amountSource: s.amount === undefined ? undefined : s.amountSource,
    currency: s.input.settings.currency,
    brand: s.charged?.brand,
    last4: s.charged?.last4,
    transactionId: s.transactionId,
    authCode: outcome === 'approved' ? s.authCode : undefined,
    declineClass: outcome === 'approved' ? undefined : s.lastDecline,
    attempts: { ...s.counts },
    callerGone: s.callerGone,
  };
}

/** Wipes and forgets every card buffer the state holds. */
function wipeHeld(s: DialogueState): void {
  for (const d of heldBuffers(s)) d.wipe();
  s.card = { pan: undefined, brand: undefined, expiry: undefined, securityCode: undefined };
}

function finishNow(s: DialogueState, out: Out, r: DialogueResult): void {
  clearTimer(s, out);
  if (s.playing || s.waitMusic) out.push({ type: 'stop-play' });
  s.playing = false;
  s.waitMusic = false;
  wipeHeld(s);
  const final: DialogueResult = { ...r, callerGone: s.callerGone };
  setPhase(s, { kind: 'done', result: final });
  out.push({ type: 'finish', result: final });
}

/** Ends the dialogue: says `fragments` first (no barge-in) unless there are none or nobody listens. */
function endWith(s: DialogueState, out: Out, outcome: Outcome, fragments: string[]): void {
  clearTimer(s, out);
  wipeHeld(s);
  const r = result(s, outcome);
  if (s.callerGone || fragments.length === 0) {
    finishNow(s, out, r);
    return;
  }
  setPhase(s, { kind: 'closing', result: r });
  play(s, out, fragments, false, false);
}

// ---------------------------------------------------------------------------------------------
// Steps

function begin(s: DialogueState, out: Out): void {
  const { settings, context } = s.input;
  // Not identified: no card is asked for; the call layer hands back at once (no prompt).
  if (!context.identified) {
    finishNow(s, out, result(s, 'not-identified'));
    return;
  }
  const due = usableContextAmount(s);
  if (due !== undefined && settings.amountSource === 'context') {
    s.amount = due;
    s.amountSource = 'context';
    if (settings.readback.amount) enterMenu(s, out, 'amount-context', []);
    else continueCard(s, out, []);
  } else if (due !== undefined && settings.amountSource === 'choice') {
    enterMenu(s, out, 'amount-choice', []);
  } else {
    // 'entered', or no usable amount in the context (absent or outside the profile's bounds).
    enterAmount(s, out, []);
  }
}

function enterAmount(s: DialogueState, out: Out, lead: string[]): void {
  clearTimer(s, out);
  s.amount = undefined;
  setPhase(s, { kind: 'amount-entry', keys: '' });
  play(s, out, [...lead, entryPromptId('amount', 3)], true, false);
}

function codeRule(s: DialogueState): { length: 3 | 4; ask: boolean } | undefined {
  const brand = s.card.brand;
  return brand === undefined ? undefined : securityCodeRule(brand, s.input.settings.securityCode);
}

function fieldCapacity(s: DialogueState, field: CardField): number {
  if (field === 'pan') return 19;
  if (field === 'expiry') return 4;
  return codeRule(s)?.length ?? 4;
}

function enterCard(s: DialogueState, out: Out, field: CardField, lead: string[]): void {
  clearTimer(s, out);
  setPhase(s, { kind: 'card-entry', field, digits: new SensitiveDigits(fieldCapacity(s, field)) });
  play(s, out, [...lead, entryPromptId(field, codeRule(s)?.length ?? 3)], true, false);
}

/** Forgets the current card (another card, or a wrong number) and its per-card allowances. */
function newCard(s: DialogueState): void {
  wipeHeld(s);
  s.reentry = { securityCode: false, expiry: false, processing: false };
  s.failures = { ...s.failures, pan: 0, expiry: 0, securityCode: 0 };
}

/** Asks for the first card field still missing, or charges when the card is complete. */
function continueCard(s: DialogueState, out: Out, lead: string[]): void {
  const c = s.card;
  if (c.pan === undefined || c.brand === undefined) enterCard(s, out, 'pan', lead);
  else if (c.expiry === undefined) enterCard(s, out, 'expiry', lead);
  else if (codeRule(s)?.ask === true && c.securityCode === undefined) enterCard(s, out, 'securityCode', lead);
  else charge(s, out);
}

function enterMenu(s: DialogueState, out: Out, menu: MenuKind, lead: string[]): void {
  clearTimer(s, out);
  setPhase(s, { kind: 'menu', menu, failures: 0 });
  playMenu(s, out, menu, lead);
}

function playMenu(s: DialogueState, out: Out, menu: MenuKind, lead: string[]): void {
  clearTimer(s, out);
  const p = menuPrompt(s, menu);
  play(s, out, [...lead, ...p.fragments], p.bargeIn, p.sensitive);
}

/** An invalid entry or a silence: counts an attempt of the field, then asks again or gives up. */
function failField(s: DialogueState, out: Out, field: EntryField, lead: string[]): void {
  s.counts.invalidEntries++;
  useAttempt(s, out, field, lead);
}

function useAttempt(s: DialogueState, out: Out, field: EntryField, lead: string[]): void {
  s.failures[field]++;
  if (s.failures[field] >= s.input.settings.attempts[field]) {
    endWith(s, out, 'max-attempts', [...lead, 'too-many-attempts']);
    return;
  }
  if (field === 'amount') enterAmount(s, out, lead);
  else enterCard(s, out, field, lead);
}

// ---------------------------------------------------------------------------------------------
// Digits, timers, prompt ends

function isDecimalDigit(d: unknown): d is DtmfDigit {
  return typeof d === 'string' && d.length === 1 && d >= '0' && d <= '9';
}

function onDigit(s: DialogueState, out: Out, d: DtmfDigit): void {
  const p = s.phase;
  switch (p.kind) {
    case 'amount-entry':
      onAmountKey(s, out, p, d);
      return;
    case 'card-entry':
      onCardKey(s, out, p, d);
      return;
    case 'menu':
      // Every menu prompt takes barge-in (a key during the announcement answers the menu);
      // the keys that follow belong to whatever the answer leads to (type-ahead).
      onMenuKey(s, out, p, d);
      return;
    default:
      // idle, charging (never buffered into a card field), closing, done: ignored.
      return;
  }
}

function onAmountKey(s: DialogueState, out: Out, p: Extract<Phase, { kind: 'amount-entry' }>, d: DtmfDigit): void {
  const { interDigitMs } = s.input.settings.timeouts;
  if (d === '#') {
    if (p.keys.length > 0) evaluateAmount(s, out, p.keys);
    return;
  }
  if (d === '*') {
    if (p.keys.length === 0 || p.keys.includes('*')) {
      p.keys = '';
      clearTimer(s, out);
      play(s, out, [entryPromptId('amount', 3)], true, false);
      return;
    }
    p.keys += '*';
    startTimer(s, out, interDigitMs);
    return;
  }
  if (!isDecimalDigit(d)) return; // A-D: ignored
  p.keys += d;
  const star = p.keys.indexOf('*');
  const limits = amountKeyLimits(s);
  const overlong = star < 0 ? p.keys.length > limits.integer : p.keys.length - star - 1 > limits.fraction;
  if (overlong) evaluateAmount(s, out, p.keys);
  else startTimer(s, out, interDigitMs);
}

function evaluateAmount(s: DialogueState, out: Out, keys: string): void {
  clearTimer(s, out);
  const { settings } = s.input;
  const { language: lang, currency, minAmount, maxAmount } = settings;
  const parsed = parseDtmfAmount(keys, currency);
  let error: string[] | undefined;
  if (!parsed.ok) error = parsed.reason === 'too-large' ? ['amount-maximum-is', ...readAmount(lang, maxAmount, currency)] : ['amount-invalid'];
  else if (parsed.minor < minAmount) error = ['amount-minimum-is', ...readAmount(lang, minAmount, currency)];
  else if (parsed.minor > maxAmount) error = ['amount-maximum-is', ...readAmount(lang, maxAmount, currency)];
  else if (parsed.minor === 0) error = ['amount-invalid'];
  if (error !== undefined || !parsed.ok) {
    failField(s, out, 'amount', error ?? ['amount-invalid']);
    return;
  }
  s.amount = parsed.minor;
  s.amountSource = 'caller';
  if (settings.readback.amount) enterMenu(s, out, 'confirm-amount', []);
  else continueCard(s, out, []);
}

function fieldLimit(s: DialogueState, field: CardField, digits: SensitiveDigits): number {
  if (field === 'pan') return maxPanLength(digits);
  return fieldCapacity(s, field);
}

function onCardKey(s: DialogueState, out: Out, p: Extract<Phase, { kind: 'card-entry' }>, d: DtmfDigit): void {
  if (d === '#') {
    if (p.digits.length > 0) evaluateCard(s, out, p);
    return;
  }
  if (d === '*') {
    p.digits.clear();
    clearTimer(s, out);
    play(s, out, [entryPromptId(p.field, codeRule(s)?.length ?? 3)], true, false);
    return;
  }
  if (!isDecimalDigit(d)) return; // A-D: ignored
  p.digits.push(d);
  if (p.digits.length >= fieldLimit(s, p.field, p.digits)) evaluateCard(s, out, p);
  else startTimer(s, out, s.input.settings.timeouts.interDigitMs);
}

function evaluateCard(s: DialogueState, out: Out, p: Extract<Phase, { kind: 'card-entry' }>): void {
  clearTimer(s, out);
  const { settings, now } = s.input;
  const digits = p.digits;
  switch (p.field) {
    case 'pan': {
      const check = validatePan(digits, settings.allowedBrands);
      if (!check.ok) {
        let error = 'card-invalid';
        if (check.reason === 'unknown-brand') error = 'card-not-recognised';
        else if (check.reason === 'brand-not-accepted' && check.brand !== undefined) error = brandNotAcceptedId(check.brand);
        failField(s, out, 'pan', [error]);
        return;
      }
      s.card.pan = digits;
      s.card.brand = check.brand;
      if (settings.readback.pan) enterMenu(s, out, 'confirm-pan', []);
      else continueCard(s, out, []);
      return;
    }
    case 'expiry': {
      const check = validateExpiry(digits, now);
      if (!check.ok) {
        failField(s, out, 'expiry', [check.reason === 'expired' ? 'card-expired' : 'expiry-invalid']);
        return;
      }
      s.card.expiry = digits;
      if (settings.readback.expiry) enterMenu(s, out, 'confirm-expiry', []);
      else continueCard(s, out, []);
      return;
    }
    case 'securityCode': {
      if (digits.length !== fieldCapacity(s, 'securityCode')) {
        failField(s, out, 'securityCode', ['security-code-invalid']);
        return;
      }
      s.card.securityCode = digits;
      if (settings.readback.securityCode) enterMenu(s, out, 'confirm-security-code', []);
      else continueCard(s, out, []);
      return;
    }
  }
}

type MenuAction = 'yes' | 'reenter' | 'refuse' | 'cancel' | 'other-card' | 'end' | 'invalid';

function menuAction(menu: MenuKind, d: DtmfDigit): MenuAction {
  if (menu === 'other-card') {
    if (d === '1') return 'other-card';
    return d === '2' || d === '9' ? 'end' : 'invalid';
  }
  if (d === '1') return 'yes';
  if (d === '9') return 'cancel';
  if (d === '2' && menu !== 'amount-context') return 'reenter';
  if (d === '3' && (menu === 'amount-context' || menu === 'amount-choice')) return 'refuse';
  return 'invalid';
}

function onMenuKey(s: DialogueState, out: Out, p: Extract<Phase, { kind: 'menu' }>, d: DtmfDigit): void {
  if (d === '#') return; // usually the terminator of the field before: ignored
  if (d === '*') {
    playMenu(s, out, p.menu, []);
    return;
  }
  const action = menuAction(p.menu, d);
  switch (action) {
    case 'invalid':
      menuFail(s, out, p, ['invalid-choice']);
      return;
    case 'cancel':
      endWith(s, out, 'cancelled', ['payment-cancelled']);
      return;
    case 'refuse':
      endWith(s, out, 'amount-refused', ['payment-cancelled']);
      return;
    case 'end':
      endWith(s, out, 'declined', ['payment-not-completed']);
      return;
    case 'other-card':
      newCard(s);
      continueCard(s, out, []);
      return;
    case 'yes':
      onMenuYes(s, out, p.menu);
      return;
    case 'reenter':
      onMenuReenter(s, out, p.menu);
      return;
  }
}

function onMenuYes(s: DialogueState, out: Out, menu: MenuKind): void {
  if (menu === 'amount-choice') {
    const due = usableContextAmount(s);
    if (due === undefined) throw new Error('dialogue invariant: context amount missing');
    s.amount = due;
    s.amountSource = 'balance';
  }
  // amount-context / confirm-amount / confirm-<card field>: go on with what is missing.
  continueCard(s, out, []);
}

function onMenuReenter(s: DialogueState, out: Out, menu: MenuKind): void {
  switch (menu) {
    case 'amount-choice':
      // "another amount": a choice, not a failed attempt.
      enterAmount(s, out, []);
      return;
    case 'confirm-amount':
      s.amount = undefined;
      useAttempt(s, out, 'amount', []);
      return;
    case 'confirm-pan':
      s.card.pan?.wipe();
      s.card.pan = undefined;
      s.card.brand = undefined;
      useAttempt(s, out, 'pan', []);
      return;
    case 'confirm-expiry':
      s.card.expiry?.wipe();
      s.card.expiry = undefined;
      useAttempt(s, out, 'expiry', []);
      return;
    case 'confirm-security-code':
      s.card.securityCode?.wipe();
      s.card.securityCode = undefined;
      useAttempt(s, out, 'securityCode', []);
      return;
    default:
      throw new Error('dialogue invariant: no re-entry from this menu');
  }
}

function menuFail(s: DialogueState, out: Out, p: Extract<Phase, { kind: 'menu' }>, lead: string[]): void {
  p.failures++;
  s.counts.invalidEntries++;
  if (p.failures >= s.input.settings.attempts.confirm) {
    // After a decline, not choosing another card means the payment stays declined.
    if (p.menu === 'other-card') endWith(s, out, 'declined', [...lead, 'payment-not-completed']);
    else endWith(s, out, 'max-attempts', [...lead, 'too-many-attempts']);
    return;
  }
  playMenu(s, out, p.menu, lead);
}

function onTimeout(s: DialogueState, out: Out): void {
  const p = s.phase;
  switch (p.kind) {
    case 'amount-entry':
      if (p.keys.length === 0) failField(s, out, 'amount', ['no-input']);
      else evaluateAmount(s, out, p.keys);
      return;
    case 'card-entry':
      if (p.digits.length === 0) failField(s, out, p.field, ['no-input']);
      else evaluateCard(s, out, p);
      return;
    case 'menu':
      menuFail(s, out, p, ['no-input']);
      return;
    default:
      return;
  }
}

function onPlayDone(s: DialogueState, out: Out): void {
  const p = s.phase;
  const { firstDigitMs, interDigitMs } = s.input.settings.timeouts;
  switch (p.kind) {
    case 'amount-entry':
      if (s.timerId === undefined) startTimer(s, out, p.keys.length === 0 ? firstDigitMs : interDigitMs);
      return;
    case 'card-entry':
      if (s.timerId === undefined) startTimer(s, out, p.digits.length === 0 ? firstDigitMs : interDigitMs);
      return;
    case 'menu':
      if (s.timerId === undefined) startTimer(s, out, firstDigitMs);
      return;
    case 'charging':
      if (p.deferred !== undefined) {
        onChargeResult(s, out, p, p.deferred);
        return;
      }
      // "Please wait" said: loop wait music (keeps RTP flowing) until the result.
      if (!s.callerGone) {
        s.waitMusic = true;
        out.push({ type: 'play-wait' });
      }
      return;
    case 'closing':
      finishNow(s, out, p.result);
      return;
    default:
      return;
  }
}

function onHangup(s: DialogueState, out: Out): void {
  s.callerGone = true;
  const p = s.phase;
  switch (p.kind) {
    case 'charging':
      clearTimer(s, out);
      // The result may already be here, held back for the end of "please wait".
      if (p.deferred !== undefined) onChargeResult(s, out, p, p.deferred);
      // Otherwise the charge is with the PSP: wait for its real outcome, then finish without a word.
      return;
    case 'closing':
      finishNow(s, out, p.result);
      return;
    default:
      endWith(s, out, 'hangup', []);
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// Charging

function charge(s: DialogueState, out: Out): void {
  const { pan, brand, expiry } = s.card;
  const amount = s.amount;
  if (pan === undefined || brand === undefined || expiry === undefined || amount === undefined) {
    throw new Error('dialogue invariant: charge without a complete card');
  }
  const ask = codeRule(s)?.ask === true;
  if (ask && s.card.securityCode === undefined) throw new Error('dialogue invariant: charge without security code');
  const card: CardData = { pan: pan.clone(), expiry: expiry.clone(), securityCode: ask ? s.card.securityCode?.clone() : undefined };
  s.counts.charges++;
  s.charged = { brand, last4: pan.lastDigits(4) };
  clearTimer(s, out);
  const firstSend = s.phase.kind !== 'charging';
  setPhase(s, { kind: 'charging', card, faulted: false });
  if (firstSend) play(s, out, ['processing-payment'], false, false);
  else if (!s.playing && !s.waitMusic) {
    s.waitMusic = true;
    out.push({ type: 'play-wait' });
  }
  out.push({ type: 'charge', amount, currency: s.input.settings.currency, card, brand, attempt: s.counts.charges });
}

function onChargeResult(s: DialogueState, out: Out, p: Extract<Phase, { kind: 'charging' }>, outcome: ChargeOutcome): void {
  // This attempt's copy is done with, whatever the result.
  wipeCard(p.card);
  const status = outcome.status;
  if (p.faulted) {
    if (status === 'approved') s.transactionId = outcome.transactionId;
    if (status === 'approved') s.authCode = outcome.authCode;
    // A charge whose outcome is unknown stays unconfirmed even here: it may have been charged.
    finishNow(s, out, result(s, status === 'approved' ? 'approved' : status === 'unknown' ? 'unconfirmed' : 'error'));
    return;
  }
  switch (status) {
    case 'approved':
      s.transactionId = outcome.transactionId;
      s.authCode = outcome.authCode;
      wipeHeld(s);
      if (s.callerGone) finishNow(s, out, result(s, 'approved'));
      else endWith(s, out, 'approved', approvedAnnouncement(s));
      return;
    case 'declined':
      s.transactionId = outcome.transactionId;
      onDecline(s, out, outcome.declineClass);
      return;
    case 'failed':
      // The PSP certainly did not charge the card.
      s.transactionId = undefined;
      endWith(s, out, 'psp-error', ['payment-not-processed']);
      return;
    case 'unknown':
      // It may have been charged: the caller must not pay again (reconciliation settles it).
      s.transactionId = undefined;
      endWith(s, out, 'unconfirmed', ['payment-unconfirmed']);
      return;
    default:
      throw new Error('dialogue invariant: unknown charge status');
  }
}

function onDecline(s: DialogueState, out: Out, cls: DeclineClass): void {
  s.counts.declines++;
  s.lastDecline = cls;
  const maxed = s.counts.declines >= s.input.settings.maxDeclines;
  if (s.callerGone) {
    endWith(s, out, maxed ? 'max-declines' : 'declined', []);
    return;
  }
  const message = declineMessageId(cls);
  // Fraud / lost / stolen: a generic message, no retry of any kind.
  if (cls === 'fraud') {
    endWith(s, out, 'declined', [message]);
    return;
  }
  if (maxed) {
    endWith(s, out, 'max-declines', [message, 'too-many-declines']);
    return;
  }
  switch (cls) {
    case 'incorrect-cvc':
      if (!s.reentry.securityCode && codeRule(s)?.ask === true) {
        s.reentry.securityCode = true;
        s.card.securityCode?.wipe();
        s.card.securityCode = undefined;
        continueCard(s, out, [message]);
        return;
      }
      break;
    case 'expired-card':
      if (!s.reentry.expiry) {
        s.reentry.expiry = true;
        s.card.expiry?.wipe();
        s.card.expiry = undefined;
        continueCard(s, out, [message]);
        return;
      }
      break;
    case 'incorrect-number':
      // The whole card again: a new number may be another brand with another security code.
      newCard(s);
      continueCard(s, out, [message]);
      return;
    case 'processing-error':
      if (!s.reentry.processing) {
        s.reentry.processing = true;
        charge(s, out);
        return;
      }
      break;
    default:
      break;
  }
  // insufficient funds, do not honor, or a one-time re-entry already used: offer another card.
  wipeHeld(s);
  enterMenu(s, out, 'other-card', [message]);
}

// ---------------------------------------------------------------------------------------------
// Internal errors

function isApprovedResult(event: unknown): event is { type: 'charge-result'; outcome: { status: 'approved'; transactionId?: unknown; authCode?: unknown } } {
  if (typeof event !== 'object' || event === null) return false;
  const e = event as { type?: unknown; outcome?: unknown };
  if (e.type !== 'charge-result' || typeof e.outcome !== 'object' || e.outcome === null) return false;
  return (e.outcome as { status?: unknown }).status === 'approved';
}

/**
 * A bug surfaced while handling `event`. Never rethrown: wipe what is held and end with `error`,
 * except that the outcome of money already sent to the PSP must be reported truthfully: a charge
 * in flight is waited for, and an approval that arrived is reported as approved.
 */
function fault(prev: DialogueState, event: DialogueEvent): Transition<DialogueState> {
  try {
    const s = copyState(prev);
    const out: Out = [];
    if (prev.phase.kind === 'done') return { state: prev, commands: [] };
    const isResult = typeof event === 'object' && event !== null && (event as { type?: unknown }).type === 'charge-result';
    if (s.phase.kind === 'charging' && !isResult) {
      const inFlight = s.phase.card;
      // Keep only the in-flight copy (wiped when its result comes).
      s.phase = { kind: 'charging', card: inFlight, faulted: true };
      for (const d of [s.card.pan, s.card.expiry, s.card.securityCode]) d?.wipe();
      s.card = { pan: undefined, brand: undefined, expiry: undefined, securityCode: undefined };
      if ((event as { type?: unknown } | undefined)?.type === 'hangup') s.callerGone = true;
      clearTimer(s, out);
      return { state: s, commands: out };
    }
    let r: DialogueResult;
    if (s.phase.kind === 'closing') r = s.phase.result;
    else if (isApprovedResult(event)) {
      const o = event.outcome;
      s.transactionId = typeof o.transactionId === 'string' ? o.transactionId : undefined;
      s.authCode = typeof o.authCode === 'string' ? o.authCode : undefined;
      r = result(s, 'approved');
    } else r = result(s, 'error');
    if ((event as { type?: unknown } | undefined)?.type === 'hangup') s.callerGone = true;
    finishNow(s, out, r);
    return { state: s, commands: out };
  } catch {
    return lastResort(prev);
  }
}

/** Even building an `error` result failed: a minimal one, built from nothing that can throw. */
function lastResort(prev: DialogueState): Transition<DialogueState> {
  try {
    for (const d of heldBuffers(prev)) d.wipe();
  } catch {
    // nothing more can be done here
  }
  let currency: string;
  try {
    currency = String(prev.input.settings.currency);
  } catch {
    currency = '';
  }
  const r: DialogueResult = {
    outcome: 'error',
    currency,
    attempts: { charges: 0, declines: 0, invalidEntries: 0 },
    callerGone: false,
  };
  const state = { ...prev, phase: { kind: 'done', result: r } } as DialogueState;
  return { state, commands: [{ type: 'stop-play' }, { type: 'cancel-timer' }, { type: 'finish', result: r }] };
}
