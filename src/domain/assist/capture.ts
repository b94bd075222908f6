import type { Brand } from '../brand.js';
import { brandInfo, detectBrand, securityCodeRule, validateExpiry, validatePan } from '../card.js';
import type { ChargeOutcome } from '../charge.js';
import type { DtmfDigit } from '../dtmf.js';
import type { DeclineClass, Outcome } from '../outcome.js';
import { SensitiveDigits, wipeCard, type CardData } from '../sensitive.js';

/**
 * Agent-assisted card capture: the caller keys the card while the agent stays on the call and
 * sees only masked progress. A pure state machine `(state, event) -> (state, commands)` like the
 * IVR dialogue, with the same card rules (card.ts), but no prompts to drive, no menus and one
 * charge per capture (the agent starts a new capture for another card).
 *
 * Keys (caller) for the current field: digits are kept; '*' clears the field; '#' ends it (a '#'
 * with nothing typed is ignored). The card number also ends by itself at the detected brand's
 * longest length (Luhn-valid or not: more digits cannot make it valid), the expiry (MMYY) at 4
 * digits, the security code at the brand's length. A field that ends valid moves on to the next
 * field still missing; one that ends invalid stays current, shown invalid with a reason, and the
 * next digit starts it again. A-D are ignored.
 *
 * Key flood: each field takes at most `maxKeysPerField` keys (digits, '*' and '#') since it was
 * entered or cleared by the agent; beyond that the field ends invalid ('too-many-keys') and
 * further keys are ignored until the agent clears it. Memory stays bounded whatever arrives: the
 * buffers have fixed capacities and the rest are counters.
 *
 * Card data ownership: the machine creates every SensitiveDigits it holds and wipes each one
 * when it is dropped (clear, restart, end). The `charge` command carries copies; they are wiped
 * when the charge result comes back in. Nothing here reads a digit into text except last4 of a
 * complete, valid card number; the view (`viewOf`) holds counts, flags, the brand and that last 4.
 */

export type CaptureField = 'pan' | 'expiry' | 'securityCode';
export const CAPTURE_FIELDS: readonly CaptureField[] = ['pan', 'expiry', 'securityCode'];

/** Why a field was refused (what the agent may tell the caller). */
export type FieldProblem =
  | 'too-short'
  | 'invalid'
  | 'unknown-brand'
  | 'brand-not-accepted'
  | 'bad-month'
  | 'expired'
  | 'wrong-length'
  | 'too-many-keys';

export interface CaptureSettings {
  allowedBrands: readonly Brand[];
  securityCode: 'required' | 'brand';
  /** Keys one field takes before a flood ends it invalid. */
  maxKeysPerField: number;
}

export interface CaptureInput {
  settings: CaptureSettings;
  /** The current month, for the expiry check (the domain has no clock). */
  now: { year: number; month: number };
  amount: number;
  currency: string;
}

/** How a capture ended. `timeout`: the service's capture timer ran out (outcome `cancelled`). */
export type CaptureEndReason = 'charged' | 'agent' | 'timeout' | 'hangup' | 'error';

export interface CaptureResult {
  outcome: Extract<Outcome, 'approved' | 'declined' | 'psp-error' | 'unconfirmed' | 'cancelled' | 'hangup' | 'error'>;
  reason: CaptureEndReason;
  amount: number;
  currency: string;
  brand?: Brand | undefined;
  last4?: string | undefined;
  transactionId?: string | undefined;
  authCode?: string | undefined;
  declineClass?: DeclineClass | undefined;
  /** Fields that ended invalid during the capture (wrong entries, floods). */
  invalidEntries: number;
  charged: boolean;
}

export type CaptureEvent =
  | { type: 'digit'; digit: DtmfDigit }
  /** The agent clears a field (default: the current one); a cleared card number clears everything. */
  | { type: 'clear-field'; field?: CaptureField | undefined }
  /** The agent asks for the charge; refused (no command) unless every field is valid. */
  | { type: 'charge' }
  | { type: 'charge-result'; outcome: ChargeOutcome }
  /** The agent cancels; refused while a charge is with the PSP. */
  | { type: 'cancel' }
  /** The service's capture timer ran out; while charging, the real outcome is waited for. */
  | { type: 'timeout' }
  /** The call ended; while charging, the real outcome is waited for. */
  | { type: 'hangup' };

export type CaptureCommand =
  /** The current field changed (the service may prompt the caller). */
  | { type: 'field'; field: CaptureField }
  /** Charge this card; report `charge-result`. The machine wipes the copy when the result comes. */
  | { type: 'charge'; amount: number; currency: string; card: CardData; brand: Brand }
  | { type: 'finish'; result: CaptureResult };

type FieldState =
  | { status: 'empty' }
  | { status: 'typing' }
  | { status: 'valid' }
  | { status: 'invalid'; problem: FieldProblem };

interface FieldSlot {
  digits: SensitiveDigits;
  state: FieldState;
  /** Keys since the field was entered or cleared by the agent (flood bound). */
  keys: number;
}

export type CapturePhase =
  | { kind: 'collecting'; field: CaptureField }
  /** Every field valid: waiting for the agent's charge. */
  | { kind: 'ready' }
  /** `card`: the copy in the charge command; `gone`: hang-up or timeout meanwhile. */
  | { kind: 'charging'; card: CardData; callerGone: boolean; timedOut: boolean }
  | { kind: 'done'; result: CaptureResult };

export interface CaptureState {
  readonly input: CaptureInput;
  phase: CapturePhase;
  fields: Record<CaptureField, FieldSlot>;
  brand: Brand | undefined;
  invalidEntries: number;
  /** Last 4 of a complete valid card number (the one part that may be shown). */
  last4: string | undefined;
}

/** Buffer sizes: the longest card number, MMYY, the longest security code. */
const CAPACITY: Record<CaptureField, number> = { pan: 19, expiry: 4, securityCode: 4 };

function slot(field: CaptureField): FieldSlot {
  return { digits: new SensitiveDigits(CAPACITY[field]), state: { status: 'empty' }, keys: 0 };
}

export function createCapture(input: CaptureInput): CaptureState {
  return {
    input,
    phase: { kind: 'collecting', field: 'pan' },
    fields: { pan: slot('pan'), expiry: slot('expiry'), securityCode: slot('securityCode') },
    brand: undefined,
    invalidEntries: 0,
    last4: undefined,
  };
}

/** A new capture and its first commands (the card number is the current field). */
export function startCapture(input: CaptureInput): { state: CaptureState; commands: CaptureCommand[] } {
  return { state: createCapture(input), commands: [{ type: 'field', field: 'pan' }] };
}

function copy(s: CaptureState): CaptureState {
  return {
    ...s,
    phase: { ...s.phase },
    fields: { pan: { ...s.fields.pan }, expiry: { ...s.fields.expiry }, securityCode: { ...s.fields.securityCode } },
  };
}

/**
 * One event. Never throws: an internal error wipes everything and ends with `error` (a charge
 * already with the PSP is still waited for, so its outcome is reported truthfully).
 */
export function stepCapture(state: CaptureState, event: CaptureEvent): { state: CaptureState; commands: CaptureCommand[] } {
  if (state.phase.kind === 'done') return { state, commands: [] };
  const s = copy(state);
  const out: CaptureCommand[] = [];
  try {
    dispatch(s, out, event);
    return { state: s, commands: out };
  } catch {
    return fault(state);
  }
}

export function captureResult(s: CaptureState): CaptureResult | undefined {
  return s.phase.kind === 'done' ? s.phase.result : undefined;
}

function dispatch(s: CaptureState, out: CaptureCommand[], ev: CaptureEvent): void {
  switch (ev.type) {
    case 'digit':
      if (s.phase.kind === 'collecting') onKey(s, out, s.phase.field, ev.digit);
      return; // ready, charging: keys change nothing
    case 'clear-field':
      onClear(s, out, ev.field);
      return;
    case 'charge':
      if (s.phase.kind === 'ready') charge(s, out);
      return;
    case 'charge-result':
      if (s.phase.kind === 'charging') onChargeResult(s, out, s.phase, ev.outcome);
      return;
    case 'cancel':
      if (s.phase.kind !== 'charging') finish(s, out, 'cancelled', 'agent');
      return;
    case 'timeout':
      if (s.phase.kind === 'charging') s.phase.timedOut = true;
      else finish(s, out, 'cancelled', 'timeout');
      return;
    case 'hangup':
      if (s.phase.kind === 'charging') s.phase.callerGone = true;
      else finish(s, out, 'hangup', 'hangup');
      return;
    default:
      return;
  }
}

function isDecimal(d: unknown): d is DtmfDigit {
  return typeof d === 'string' && d.length === 1 && d >= '0' && d <= '9';
}

function onKey(s: CaptureState, out: CaptureCommand[], field: CaptureField, d: DtmfDigit): void {
  const f = s.fields[field];
  if (f.state.status === 'invalid' && f.state.problem === 'too-many-keys') return; // until the agent clears it
  if (d !== '*' && d !== '#' && !isDecimal(d)) return; // A-D
  f.keys++;
  if (f.keys > s.input.settings.maxKeysPerField) {
    refuse(s, field, 'too-many-keys');
    return;
  }
  if (d === '*') {
    f.digits.clear();
    f.state = { status: 'empty' };
    if (field === 'pan') s.brand = undefined;
    return;
  }
  if (d === '#') {
    if (f.digits.length > 0) evaluate(s, out, field);
    return;
  }
  f.digits.push(d);
  f.state = { status: 'typing' };
  if (field === 'pan') s.brand = detectBrand(f.digits);
  if (f.digits.length >= autoEndLength(s, field)) evaluate(s, out, field);
}

/** Where a field ends by itself. */
function autoEndLength(s: CaptureState, field: CaptureField): number {
  if (field === 'expiry') return 4;
  if (field === 'securityCode') return codeLength(s);
  const brand = s.brand;
  if (brand === undefined) return CAPACITY.pan;
  const lengths = brandInfo(brand).lengths;
  return lengths[lengths.length - 1] ?? CAPACITY.pan;
}

function codeLength(s: CaptureState): 3 | 4 {
  return s.brand === undefined ? 3 : securityCodeRule(s.brand, s.input.settings.securityCode).length;
}

function codeAsked(s: CaptureState): boolean {
  return s.brand === undefined || securityCodeRule(s.brand, s.input.settings.securityCode).ask;
}

/** The field ended invalid: its digits are dropped at once (the next digit starts it again). */
function refuse(s: CaptureState, field: CaptureField, problem: FieldProblem): void {
  s.fields[field].digits.clear();
  s.fields[field].state = { status: 'invalid', problem };
  s.invalidEntries++;
}

function evaluate(s: CaptureState, out: CaptureCommand[], field: CaptureField): void {
  const f = s.fields[field];
  switch (field) {
    case 'pan': {
      const check = validatePan(f.digits, s.input.settings.allowedBrands);
      if (!check.ok) {
        refuse(s, field, check.reason);
        return;
      }
      s.brand = check.brand;
      s.last4 = f.digits.lastDigits(4);
      break;
    }
    case 'expiry': {
      const check = validateExpiry(f.digits, s.input.now);
      if (!check.ok) {
        refuse(s, field, check.reason === 'expired' ? 'expired' : check.reason === 'month' ? 'bad-month' : 'wrong-length');
        return;
      }
      break;
    }
    case 'securityCode':
      if (f.digits.length !== codeLength(s)) {
        refuse(s, field, 'wrong-length');
        return;
      }
      break;
  }
  f.state = { status: 'valid' };
  advance(s, out);
}

/** The first field not yet valid becomes current; with none left the card is ready to charge. */
function advance(s: CaptureState, out: CaptureCommand[]): void {
  const next = CAPTURE_FIELDS.find((k) => s.fields[k].state.status !== 'valid' && (k !== 'securityCode' || codeAsked(s)));
  const prev = s.phase.kind === 'collecting' ? s.phase.field : undefined;
  if (next === undefined) {
    s.phase = { kind: 'ready' };
    return;
  }
  s.phase = { kind: 'collecting', field: next };
  if (next !== prev) out.push({ type: 'field', field: next });
}

function resetField(s: CaptureState, field: CaptureField): void {
  const f = s.fields[field];
  f.digits.clear();
  f.state = { status: 'empty' };
  f.keys = 0;
  if (field === 'pan') {
    s.brand = undefined;
    s.last4 = undefined;
  }
}

function onClear(s: CaptureState, out: CaptureCommand[], requested: CaptureField | undefined): void {
  const p = s.phase;
  if (p.kind !== 'collecting' && p.kind !== 'ready') return;
  let field = requested;
  if (field === undefined) {
    // With the card complete, "clear" takes back the last field typed.
    field = p.kind === 'collecting' ? p.field : codeAsked(s) ? 'securityCode' : 'expiry';
  }
  if (field === 'securityCode' && !codeAsked(s)) return;
  // The brand decides the security code's length: a new card number means a new card.
  const cleared = field === 'pan' ? CAPTURE_FIELDS : [field];
  for (const k of cleared) resetField(s, k);
  const prev = p.kind === 'collecting' ? p.field : undefined;
  s.phase = { kind: 'collecting', field };
  if (field !== prev) out.push({ type: 'field', field });
}

function charge(s: CaptureState, out: CaptureCommand[]): void {
  const { pan, expiry, securityCode } = s.fields;
  const brand = s.brand;
  if (brand === undefined || pan.state.status !== 'valid' || expiry.state.status !== 'valid') throw new Error('capture invariant: charge without a complete card');
  const ask = codeAsked(s);
  if (ask && securityCode.state.status !== 'valid') throw new Error('capture invariant: charge without a security code');
  const card: CardData = { pan: pan.digits.clone(), expiry: expiry.digits.clone(), securityCode: ask ? securityCode.digits.clone() : undefined };
  // The machine's own buffers are done with: only the copy sent to the PSP lives on, until its result.
  wipeFields(s);
  s.phase = { kind: 'charging', card, callerGone: false, timedOut: false };
  out.push({ type: 'charge', amount: s.input.amount, currency: s.input.currency, card, brand });
}

const CHARGE_OUTCOME: Record<ChargeOutcome['status'], CaptureResult['outcome']> = { approved: 'approved', declined: 'declined', failed: 'psp-error', unknown: 'unconfirmed' };

function onChargeResult(s: CaptureState, out: CaptureCommand[], p: Extract<CapturePhase, { kind: 'charging' }>, o: ChargeOutcome): void {
  wipeCard(p.card);
  const status = typeof o === 'object' && o !== null && o.status in CHARGE_OUTCOME ? o.status : 'unknown';
  const extra: Partial<CaptureResult> = { charged: true };
  if (o.status === 'approved') Object.assign(extra, { transactionId: o.transactionId, authCode: o.authCode });
  if (o.status === 'declined') Object.assign(extra, { transactionId: o.transactionId, declineClass: o.declineClass });
  finish(s, out, CHARGE_OUTCOME[status], 'charged', extra);
}

function wipeFields(s: CaptureState): void {
  for (const k of CAPTURE_FIELDS) s.fields[k].digits.wipe();
}

function finish(s: CaptureState, out: CaptureCommand[], outcome: CaptureResult['outcome'], reason: CaptureEndReason, extra: Partial<CaptureResult> = {}): void {
  wipeFields(s);
  if (s.phase.kind === 'charging') wipeCard(s.phase.card);
  const result: CaptureResult = {
    outcome,
    reason,
    amount: s.input.amount,
    currency: s.input.currency,
    brand: s.brand,
    last4: s.last4,
    invalidEntries: s.invalidEntries,
    charged: false,
    ...extra,
  };
  s.phase = { kind: 'done', result };
  out.push({ type: 'finish', result });
}

/** Every card buffer a state holds. */
export function heldCaptureBuffers(s: CaptureState): SensitiveDigits[] {
  const out = CAPTURE_FIELDS.map((k) => s.fields[k].digits);
  if (s.phase.kind === 'charging') {
    const c = s.phase.card;
    out.push(c.pan, c.expiry);
    if (c.securityCode !== undefined) out.push(c.securityCode);
  }
  return out;
}

function fault(prev: CaptureState): { state: CaptureState; commands: CaptureCommand[] } {
  try {
    const s = copy(prev);
    if (s.phase.kind === 'charging') {
      // Money may be on its way: keep only the in-flight copy and wait for its result.
      wipeFields(s);
      return { state: s, commands: [] };
    }
    const out: CaptureCommand[] = [];
    finish(s, out, 'error', 'error');
    return { state: s, commands: out };
  } catch {
    for (const d of heldCaptureBuffers(prev)) d.wipe();
    const result: CaptureResult = { outcome: 'error', reason: 'error', amount: 0, currency: '', invalidEntries: 0, charged: false };
    return { state: { ...prev, phase: { kind: 'done', result } }, commands: [{ type: 'finish', result }] };
  }
}

// ---------------------------------------------------------------------------------------------
// The masked view: what the agent and the API may see.

export type FieldStatus = 'empty' | 'typing' | 'valid' | 'invalid';

export interface FieldView {
  /** How many digits are typed (a count, never the digits). */
  digits: number;
  status: FieldStatus;
  problem?: FieldProblem | undefined;
}

export interface CaptureView {
  /** Where the capture is. */
  phase: 'collecting' | 'ready' | 'charging' | 'done';
  /** The field the caller's keys go to (collecting only). */
  field?: CaptureField | undefined;
  pan: FieldView & { brand?: Brand | undefined; last4?: string | undefined };
  expiry: FieldView & { entered: boolean };
  securityCode: FieldView & { entered: boolean; required: boolean; length: 3 | 4 };
  invalidEntries: number;
}

function fieldView(s: CaptureState, k: CaptureField): FieldView {
  const f = s.fields[k];
  const st = f.state;
  // After the end (or once sent to the PSP) the buffers are wiped: show what was entered.
  const digits = s.phase.kind === 'charging' || s.phase.kind === 'done' ? 0 : f.digits.length;
  return st.status === 'invalid' ? { digits, status: 'invalid', problem: st.problem } : { digits, status: st.status };
}

/** The masked view of a capture: counts, flags, the brand, and last 4 of a complete valid card number only. */
export function viewOf(s: CaptureState): CaptureView {
  const pan = fieldView(s, 'pan');
  const expiry = fieldView(s, 'expiry');
  const code = fieldView(s, 'securityCode');
  const panValid = s.fields.pan.state.status === 'valid';
  return {
    phase: s.phase.kind,
    field: s.phase.kind === 'collecting' ? s.phase.field : undefined,
    pan: { ...pan, brand: s.brand, last4: panValid ? s.last4 : undefined },
    expiry: { ...expiry, entered: s.fields.expiry.state.status === 'valid' },
    securityCode: { ...code, entered: s.fields.securityCode.state.status === 'valid', required: codeAsked(s), length: codeLength(s) },
    invalidEntries: s.invalidEntries,
  };
}
