import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  captureResult,
  heldCaptureBuffers,
  startCapture,
  stepCapture,
  viewOf,
  type CaptureCommand,
  type CaptureEvent,
  type CaptureInput,
  type CaptureState,
} from '../src/domain/assist/capture.js';
import type { CardData } from '../src/domain/sensitive.js';
import { securityCodeRule, validateExpiry, validatePan } from '../src/domain/card.js';
import type { DtmfDigit } from '../src/domain/dtmf.js';
import type { ChargeOutcome } from '../src/domain/charge.js';

const INPUT: CaptureInput = {
  settings: { allowedBrands: ['visa', 'mastercard', 'amex', 'maestro'], securityCode: 'required', maxKeysPerField: 40 },
  now: { year: 2026, month: 12 },
  amount: 4990,
  currency: 'EUR',
};

const VISA = '4242424242424242';
const AMEX = '378282246310005';
const MC = '5555555555554444';

class Driver {
  state: CaptureState;
  commands: CaptureCommand[];
  constructor(input: CaptureInput = INPUT) {
    const t = startCapture(input);
    this.state = t.state;
    this.commands = [...t.commands];
  }
  send(ev: CaptureEvent): CaptureCommand[] {
    const t = stepCapture(this.state, ev);
    this.state = t.state;
    this.commands.push(...t.commands);
    return t.commands;
  }
  keys(keys: string): this {
    for (const k of keys) this.send({ type: 'digit', digit: k as DtmfDigit });
    return this;
  }
  get view() {
    return viewOf(this.state);
  }
  chargeCard(): CardData {
    const c = this.send({ type: 'charge' }).find((x) => x.type === 'charge');
    if (c === undefined || c.type !== 'charge') throw new Error('no charge command');
    return c.card;
  }
}

describe('assist capture: the card fields', () => {
  it('takes a Visa number (with #), an expiry and a 3-digit code; the view shows counts, brand, last 4 only when valid', () => {
    const d = new Driver();
    d.keys('4242');
    expect(d.view).toMatchObject({ phase: 'collecting', field: 'pan', pan: { digits: 4, status: 'typing', brand: 'visa' } });
    expect(d.view.pan.last4).toBeUndefined();
    d.keys(VISA.slice(4));
    // 16 digits: Visa may have 19, so the number waits for '#'.
    expect(d.view.field).toBe('pan');
    d.keys('#');
    expect(d.view).toMatchObject({ field: 'expiry', pan: { status: 'valid', brand: 'visa', last4: '4242', digits: 16 } });
    expect(d.commands).toContainEqual({ type: 'field', field: 'expiry' });
    d.keys('1230');
    expect(d.view).toMatchObject({ field: 'securityCode', expiry: { entered: true, status: 'valid' }, securityCode: { required: true, length: 3 } });
    d.keys('737');
    expect(d.view).toMatchObject({ phase: 'ready', securityCode: { entered: true } });
    const card = d.chargeCard();
    expect(card.pan.reveal()).toBe(VISA);
    expect(card.expiry.reveal()).toBe('1230');
    expect(card.securityCode?.reveal()).toBe('737');
    // The machine's own buffers are wiped once the copy is sent.
    expect(heldCaptureBuffers(d.state).filter((b) => b !== card.pan && b !== card.expiry && b !== card.securityCode).every((b) => b.length === 0)).toBe(true);
    expect(d.view.phase).toBe('charging');
    d.send({ type: 'charge-result', outcome: { status: 'approved', transactionId: 'ch_1', authCode: 'A1' } });
    expect(card.pan.wiped && card.expiry.wiped && card.securityCode?.wiped).toBe(true);
    expect(captureResult(d.state)).toMatchObject({ outcome: 'approved', reason: 'charged', brand: 'visa', last4: '4242', transactionId: 'ch_1', amount: 4990, currency: 'EUR', charged: true });
  });

  it('ends a card number by itself at the brand maximum (Mastercard 16, Amex 15) and asks Amex for 4 digits', () => {
    const mc = new Driver().keys(MC);
    expect(mc.view).toMatchObject({ field: 'expiry', pan: { status: 'valid', brand: 'mastercard' } });
    const amex = new Driver().keys(AMEX).keys('0130');
    expect(amex.view).toMatchObject({ field: 'securityCode', securityCode: { length: 4 } });
    amex.keys('737');
    expect(amex.view.field).toBe('securityCode');
    amex.keys('3');
    expect(amex.view.phase).toBe('ready');
  });

  it('a Luhn-invalid number at the brand maximum ends invalid; the next digit starts it again', () => {
    const d = new Driver().keys('5555555555554445');
    expect(d.view).toMatchObject({ field: 'pan', pan: { status: 'invalid', problem: 'invalid', digits: 0 }, invalidEntries: 1 });
    d.keys('5');
    expect(d.view.pan).toMatchObject({ status: 'typing', digits: 1 });
  });

  it('refuses short, unknown and not accepted numbers, past and malformed expiries, wrong code lengths', () => {
    expect(new Driver().keys('4242#').view.pan).toMatchObject({ status: 'invalid', problem: 'too-short' });
    expect(new Driver().keys('9999999999999#').view.pan).toMatchObject({ status: 'invalid', problem: 'unknown-brand' });
    expect(new Driver().keys('6011111111111117#').view.pan).toMatchObject({ status: 'invalid', problem: 'brand-not-accepted', brand: 'discover' });
    const d = new Driver().keys(`${VISA}#`);
    expect(d.keys('1126').view.expiry).toMatchObject({ status: 'invalid', problem: 'expired' });
    expect(d.keys('1326').view.expiry).toMatchObject({ status: 'invalid', problem: 'bad-month' });
    expect(d.keys('12#').view.expiry).toMatchObject({ status: 'invalid', problem: 'wrong-length' });
    // The current month is still valid.
    expect(d.keys('1226').view.field).toBe('securityCode');
    expect(d.keys('73#').view.securityCode).toMatchObject({ status: 'invalid', problem: 'wrong-length' });
    expect(d.view.invalidEntries).toBe(4);
  });

  it("'*' clears the field, '#' with nothing typed and A-D are ignored", () => {
    const d = new Driver().keys('#AB4242*');
    expect(d.view.pan).toMatchObject({ digits: 0, status: 'empty' });
    expect(d.view.pan.brand).toBeUndefined();
    d.keys(`${VISA}#`);
    expect(d.view.field).toBe('expiry');
  });

  it("the agent's clear-field clears the current field, a named one, or after a new card number everything", () => {
    const d = new Driver().keys(`${VISA}#1230`);
    expect(d.view.field).toBe('securityCode');
    d.keys('73');
    d.send({ type: 'clear-field' });
    expect(d.view.securityCode).toMatchObject({ digits: 0, status: 'empty' });
    d.send({ type: 'clear-field', field: 'expiry' });
    expect(d.view).toMatchObject({ field: 'expiry', expiry: { entered: false }, pan: { status: 'valid' } });
    d.keys('0129');
    expect(d.view.field).toBe('securityCode');
    d.keys('737');
    expect(d.view.phase).toBe('ready');
    // Ready: a clear takes back the last field.
    d.send({ type: 'clear-field' });
    expect(d.view.field).toBe('securityCode');
    d.send({ type: 'clear-field', field: 'pan' });
    expect(d.view).toMatchObject({ field: 'pan', pan: { digits: 0, status: 'empty' }, expiry: { entered: false, digits: 0 }, securityCode: { entered: false } });
    expect(d.view.pan.last4).toBeUndefined();
  });

  it('Maestro with securityCode "brand" is ready without a code; "required" asks for it', () => {
    const brandRule = new Driver({ ...INPUT, settings: { ...INPUT.settings, securityCode: 'brand' } }).keys('6759649826438453#1230');
    expect(brandRule.view).toMatchObject({ phase: 'ready', pan: { brand: 'maestro' }, securityCode: { required: false } });
    const card = brandRule.chargeCard();
    expect(card.securityCode).toBeUndefined();
    const required = new Driver().keys('6759649826438453#1230');
    expect(required.view.field).toBe('securityCode');
  });

  it('a key flood ends the field invalid and is ignored until the agent clears it', () => {
    const d = new Driver();
    d.keys('1*'.repeat(20));
    expect(d.view.pan.status).toBe('empty');
    d.keys('1');
    expect(d.view.pan).toMatchObject({ status: 'invalid', problem: 'too-many-keys', digits: 0 });
    d.keys(`${VISA}#`.repeat(50));
    expect(d.view.pan).toMatchObject({ status: 'invalid', problem: 'too-many-keys', digits: 0 });
    d.send({ type: 'clear-field' });
    d.keys(`${VISA}#`);
    expect(d.view.field).toBe('expiry');
  });

  it('charge before the card is complete does nothing; cancel, timeout and hangup end and wipe', () => {
    const d = new Driver().keys(`${VISA}#12`);
    expect(d.send({ type: 'charge' })).toEqual([]);
    const buffers = heldCaptureBuffers(d.state);
    d.send({ type: 'cancel' });
    expect(captureResult(d.state)).toMatchObject({ outcome: 'cancelled', reason: 'agent', brand: 'visa', last4: '4242', charged: false });
    expect(buffers.every((b) => b.wiped)).toBe(true);
    const t = new Driver().keys('42');
    t.send({ type: 'timeout' });
    expect(captureResult(t.state)).toMatchObject({ outcome: 'cancelled', reason: 'timeout' });
    const h = new Driver().keys('42');
    h.send({ type: 'hangup' });
    expect(captureResult(h.state)).toMatchObject({ outcome: 'hangup', reason: 'hangup' });
    // Done: everything is ignored.
    expect(h.send({ type: 'cancel' })).toEqual([]);
  });

  it('while charging: keys and cancel are ignored, a hangup or timeout waits for the real outcome', () => {
    const d = new Driver().keys(`${VISA}#1230737`);
    const card = d.chargeCard();
    d.keys('1234');
    expect(d.send({ type: 'cancel' })).toEqual([]);
    expect(d.send({ type: 'hangup' })).toEqual([]);
    expect(d.send({ type: 'timeout' })).toEqual([]);
    expect(card.pan.wiped).toBe(false);
    d.send({ type: 'charge-result', outcome: { status: 'declined', declineClass: 'insufficient-funds', transactionId: 'ch_2' } });
    expect(card.pan.wiped).toBe(true);
    expect(captureResult(d.state)).toMatchObject({ outcome: 'declined', declineClass: 'insufficient-funds', last4: '4242' });
  });

  it('maps failed and unknown PSP outcomes to psp-error and unconfirmed', () => {
    for (const [o, want] of [
      [{ status: 'failed', reason: 'http-429' }, 'psp-error'],
      [{ status: 'unknown', reason: 'timeout' }, 'unconfirmed'],
    ] as const) {
      const d = new Driver().keys(`${VISA}#1230737`);
      d.chargeCard();
      d.send({ type: 'charge-result', outcome: o });
      expect(captureResult(d.state)?.outcome).toBe(want);
    }
  });
});

// ---------------------------------------------------------------------------------------------

const CARDS = [VISA, AMEX, MC, '4222222222222', '6759649826438453'];
const SECRETS = CARDS.flatMap((c) => [c, c.slice(0, c.length - 4), c.slice(0, 8)]);
const KEYS: DtmfDigit[] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'D'];

const outcomeArb: fc.Arbitrary<ChargeOutcome> = fc.oneof(
  fc.constant<ChargeOutcome>({ status: 'approved', transactionId: 'T1' }),
  fc.constant<ChargeOutcome>({ status: 'declined', declineClass: 'do-not-honor' }),
  fc.constant<ChargeOutcome>({ status: 'unknown', reason: 'timeout' }),
  fc.constant<ChargeOutcome>({ status: 'failed', reason: 'x' }),
);

const eventArb: fc.Arbitrary<CaptureEvent[]> = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom(...KEYS).map((digit): CaptureEvent[] => [{ type: 'digit', digit }]) },
  {
    weight: 5,
    arbitrary: fc
      .tuple(fc.constantFrom(...CARDS, '1230', '0125', '737', '7373', '1399'), fc.boolean())
      .map(([k, hash]) => [...(hash ? `${k}#` : k)].map((digit): CaptureEvent => ({ type: 'digit', digit: digit as DtmfDigit }))),
  },
  { weight: 1, arbitrary: fc.option(fc.constantFrom('pan' as const, 'expiry' as const, 'securityCode' as const), { nil: undefined }).map((field): CaptureEvent[] => [{ type: 'clear-field', field }]) },
  { weight: 2, arbitrary: fc.constant<CaptureEvent[]>([{ type: 'charge' }]) },
  { weight: 2, arbitrary: outcomeArb.map((outcome): CaptureEvent[] => [{ type: 'charge-result', outcome }]) },
  { weight: 1, arbitrary: fc.constantFrom<CaptureEvent['type']>('cancel', 'timeout', 'hangup').map((type) => [{ type } as CaptureEvent]) },
);

function run(events: CaptureEvent[], maxKeys: number, check: (s: CaptureState, cmds: CaptureCommand[]) => void): CaptureState {
  const t = startCapture({ ...INPUT, settings: { ...INPUT.settings, maxKeysPerField: maxKeys } });
  let s = t.state;
  check(s, t.commands);
  for (const ev of events) {
    const n = stepCapture(s, ev);
    s = n.state;
    check(s, n.commands);
  }
  return s;
}

describe('assist capture: properties', () => {
  it('no event sequence ever puts card digits in the view, a finish result or a command other than charge', () => {
    fc.assert(
      fc.property(fc.array(eventArb, { maxLength: 120 }).map((a) => a.flat()), fc.integer({ min: 4, max: 64 }), (events, maxKeys) => {
        run(events, maxKeys, (s, cmds) => {
          const texts = [JSON.stringify(viewOf(s)), JSON.stringify(s), ...cmds.map((c) => JSON.stringify(c))];
          for (const t of texts) {
            for (const secret of SECRETS) expect(t.includes(secret)).toBe(false);
            // Digits in the view come only as counts, the brand and a last 4.
            expect(/\d{5,}/.test(t)).toBe(false);
          }
          const v = viewOf(s);
          if (v.pan.last4 !== undefined) expect(v.pan.status).toBe('valid');
          if (v.phase === 'charging' || v.phase === 'done') expect(v.pan.digits + v.expiry.digits + v.securityCode.digits).toBe(0);
        });
      }),
      { numRuns: 400 },
    );
  });

  it('every buffer is wiped once the capture is done, and memory stays bounded under any flood', () => {
    fc.assert(
      fc.property(fc.array(eventArb, { maxLength: 200 }).map((a) => a.flat()), fc.integer({ min: 4, max: 64 }), (events, maxKeys) => {
        const charged: CardData[] = [];
        const s = run([...events, { type: 'cancel' }, { type: 'charge-result', outcome: { status: 'failed', reason: 'x' } }], maxKeys, (st, cmds) => {
          for (const c of cmds) if (c.type === 'charge') charged.push(c.card);
          for (const b of heldCaptureBuffers(st)) expect(b.length).toBeLessThanOrEqual(19);
          for (const k of ['pan', 'expiry', 'securityCode'] as const) expect(st.fields[k].keys).toBeLessThanOrEqual(maxKeys + 1);
        });
        expect(captureResult(s)).toBeDefined();
        for (const b of heldCaptureBuffers(s)) expect(b.length).toBe(0);
        for (const c of charged) expect(c.pan.wiped && c.expiry.wiped).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('a charge is only ever asked for a card that passed every check', () => {
    fc.assert(
      fc.property(fc.array(eventArb, { maxLength: 120 }).map((a) => a.flat()), (events) => {
        run(events, 40, (_s, cmds) => {
          for (const c of cmds) {
            if (c.type !== 'charge') continue;
            expect(validatePan(c.card.pan, INPUT.settings.allowedBrands)).toMatchObject({ ok: true, brand: c.brand });
            expect(validateExpiry(c.card.expiry, INPUT.now).ok).toBe(true);
            expect(c.card.securityCode?.length).toBe(securityCodeRule(c.brand, 'required').length);
          }
        });
      }),
      { numRuns: 300 },
    );
  });
});
