import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { startDialogue, step } from '../src/domain/dialogue/machine.js';
import type { DialogueEvent, DialogueSettings } from '../src/domain/dialogue/types.js';
import { DECLINE_CLASSES, OUTCOMES } from '../src/domain/outcome.js';
import { BRANDS } from '../src/domain/brand.js';
import type { ChargeOutcome } from '../src/domain/charge.js';
import type { DtmfDigit } from '../src/domain/dtmf.js';
import { BASE_SETTINGS, DialogueDriver, makeInput } from './dialogue-driver.js';

const CARDS = ['4242424242424242', '378282246310005', '5555555555554444', '4222222222222', '6011111111111117'];
const SECRETS = CARDS.flatMap((c) => [c, c.slice(0, c.length - 4)]);

const settingsArb: fc.Arbitrary<DialogueSettings> = fc.record({
  language: fc.constantFrom('en-US' as const, 'fr-FR' as const),
  currency: fc.constantFrom('EUR', 'USD', 'GBP', 'JPY', 'KWD', 'CHF'),
  amountSource: fc.constantFrom('context' as const, 'choice' as const, 'entered' as const),
  minAmount: fc.constantFrom(0, 1, 100),
  maxAmount: fc.constantFrom(5000, 1_000_000),
  allowedBrands: fc.subarray([...BRANDS], { minLength: 1 }),
  securityCode: fc.constantFrom('required' as const, 'brand' as const),
  maxDeclines: fc.integer({ min: 1, max: 3 }),
  attempts: fc.record({
    amount: fc.integer({ min: 1, max: 3 }),
    pan: fc.integer({ min: 1, max: 3 }),
    expiry: fc.integer({ min: 1, max: 3 }),
    securityCode: fc.integer({ min: 1, max: 3 }),
    confirm: fc.integer({ min: 1, max: 3 }),
  }),
  readback: fc.record({ amount: fc.boolean(), pan: fc.boolean(), expiry: fc.boolean(), securityCode: fc.boolean() }),
  timeouts: fc.constant(BASE_SETTINGS.timeouts),
});

const contextArb = fc.record({
  identified: fc.constantFrom(true, true, true, false),
  amount: fc.option(fc.constantFrom(0, 50, 4990, 20_000_000), { nil: undefined }),
  reference: fc.option(fc.constantFrom('INV-77', 'A'), { nil: undefined }),
});

const outcomeArb: fc.Arbitrary<ChargeOutcome> = fc.oneof(
  fc.constant<ChargeOutcome>({ status: 'approved', transactionId: 'T1', authCode: 'AC' }),
  fc.constantFrom(...DECLINE_CLASSES).map((declineClass): ChargeOutcome => ({ status: 'declined', declineClass })),
  fc.constant<ChargeOutcome>({ status: 'unknown', reason: 'timeout' }),
  fc.constant<ChargeOutcome>({ status: 'failed', reason: 'http-429' }),
);

type Action =
  | { kind: 'digit'; digit: DtmfDigit }
  | { kind: 'keys'; keys: string }
  | { kind: 'timeout'; stale: number | undefined }
  | { kind: 'play-done'; stale: number | undefined; interrupted: boolean }
  | { kind: 'charge-result'; outcome: ChargeOutcome }
  | { kind: 'hangup' }
  /** What a cooperative caller would type now (drives runs deep into charges and declines). */
  | { kind: 'sensible'; pick: number };

const DIGITS: DtmfDigit[] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'D'];

interface Weights {
  noise: number;
  timeout: number;
  playDone: number;
  result: number;
  hangup: number;
  sensible: number;
}

/** With little noise (random keys, silences), runs reach charges, declines and approvals. */
function actionArbitrary(w: Weights): fc.Arbitrary<Action> {
  const noise = w.noise;
  return fc.oneof(
    { weight: 10 * noise, arbitrary: fc.constantFrom(...DIGITS).map((digit): Action => ({ kind: 'digit', digit })) },
    { weight: 6 * noise, arbitrary: fc.constantFrom('1', '1', '2', '9', '3').map((digit): Action => ({ kind: 'digit', digit: digit as DtmfDigit })) },
    {
      weight: 3 * noise,
      arbitrary: fc
        .tuple(fc.constantFrom(...CARDS, '0931', '1230', '0125', '737', '7373', '12*5', '49*90'), fc.boolean())
        .map(([k, hash]): Action => ({ kind: 'keys', keys: hash ? `${k}#` : k })),
    },
    { weight: w.timeout, arbitrary: fc.option(fc.integer({ min: -2, max: 400 }), { nil: undefined, freq: 3 }).map((stale): Action => ({ kind: 'timeout', stale })) },
    {
      weight: w.playDone,
      arbitrary: fc
        .tuple(fc.option(fc.integer({ min: -2, max: 400 }), { nil: undefined, freq: 4 }), fc.boolean())
        .map(([stale, interrupted]): Action => ({ kind: 'play-done', stale, interrupted })),
    },
    { weight: w.result, arbitrary: outcomeArb.map((outcome): Action => ({ kind: 'charge-result', outcome })) },
    { weight: w.hangup, arbitrary: fc.constant<Action>({ kind: 'hangup' }) },
    { weight: w.sensible, arbitrary: fc.nat(99).map((pick): Action => ({ kind: 'sensible', pick })) },
  );
}

const noisyArb = actionArbitrary({ noise: 1, timeout: 3, playDone: 8, result: 4, hangup: 1, sensible: 12 });
const cooperativeArb = actionArbitrary({ noise: 1, timeout: 3, playDone: 60, result: 40, hangup: 2, sensible: 120 });
const actionsArb = (maxLength: number): fc.Arbitrary<Action[]> =>
  fc.oneof(fc.array(noisyArb, { maxLength, size: 'max' }), fc.array(cooperativeArb, { maxLength, size: 'max' }));

function sensibleKeys(d: DialogueDriver, pick: number): string {
  const p = d.state.phase;
  switch (p.kind) {
    case 'amount-entry':
      return pick % 5 === 0 ? '0*5#' : '20#';
    case 'card-entry':
      if (p.field === 'pan') return `${CARDS[pick % CARDS.length] ?? ''}#`;
      if (p.field === 'expiry') return pick % 7 === 0 ? '0125' : '0931';
      return d.state.card.brand === 'amex' ? '7373' : '737';
    case 'menu':
      return pick % 9 === 0 ? '2' : '1';
    default:
      return '';
  }
}

function apply(d: DialogueDriver, a: Action): void {
  switch (a.kind) {
    case 'digit':
      d.send({ type: 'digit', digit: a.digit });
      return;
    case 'keys':
      d.typeAhead(a.keys);
      return;
    case 'timeout':
      if (a.stale !== undefined) d.send({ type: 'timeout', timerId: a.stale });
      else if (d.timerId !== undefined) d.fireTimer();
      return;
    case 'play-done':
      if (a.stale !== undefined) d.send({ type: 'play-done', playId: a.stale, interrupted: a.interrupted });
      else d.endPlay(a.interrupted);
      return;
    case 'charge-result':
      d.answer(a.outcome);
      return;
    case 'hangup':
      d.hangup();
      return;
    case 'sensible':
      d.endPlay();
      d.typeAhead(sensibleKeys(d, a.pick));
      return;
  }
}

describe('dialogue properties', () => {
  it('any event sequence ends, once hung up, in exactly one finish with a known outcome; invariants hold on every step', () => {
    fc.assert(
      fc.property(settingsArb, contextArb, actionsArb(300), (settings, ctx, actions) => {
        const input = makeInput(settings, { identified: ctx.identified, amount: ctx.amount, reference: ctx.reference });
        const d = new DialogueDriver(input, { secrets: SECRETS });
        let approvals = 0;
        let resultsWhileCharging = 0;
        for (const a of actions) {
          // A result held back until "please wait" ends counts once: later ones are ignored.
          const charging = d.state.phase.kind === 'charging' && d.state.phase.deferred === undefined;
          apply(d, a);
          if (a.kind === 'charge-result' && charging) {
            resultsWhileCharging++;
            if (a.outcome.status === 'approved') approvals++;
          }
        }
        const hungUpBeforeEnd = !d.finished;
        d.hangup();
        if (!d.finished && d.state.phase.kind === 'charging') d.answer({ status: 'unknown', reason: 'end of test' });
        expect(d.finishes).toBe(1);
        const r = d.result;
        expect(r).toBeDefined();
        if (r === undefined) return;
        expect(OUTCOMES).toContain(r.outcome);
        // Counters agree with what the call layer saw.
        expect(r.attempts.charges).toBe(d.charges.length);
        expect(d.charges.map((c) => c.attempt)).toEqual(d.charges.map((_, i) => i + 1));
        expect(r.attempts.declines).toBeLessThanOrEqual(r.attempts.charges);
        if (r.outcome === 'approved') {
          expect(approvals).toBeGreaterThan(0);
          expect(r.last4).toMatch(/^[0-9]{4}$/);
        }
        expect(resultsWhileCharging).toBeLessThanOrEqual(r.attempts.charges);
        if (!ctx.identified) {
          expect(r.outcome).toBe('not-identified');
          expect(d.plays).toHaveLength(0);
        }
        if (hungUpBeforeEnd) expect(r.callerGone).toBe(true);
        if (r.outcome === 'max-declines') expect(r.attempts.declines).toBe(settings.maxDeclines);
        expect(r.attempts.declines).toBeLessThanOrEqual(settings.maxDeclines);
        // Every play has a positive, increasing id; every timer too.
        const ids = d.plays.map((p) => p.playId);
        expect([...ids].sort((a, b) => a - b)).toEqual(ids);
      }),
      { numRuns: 200 },
    );
  });

  it('charges carry only unwiped buffers and a card result never leaves a charge copy unwiped', () => {
    fc.assert(
      fc.property(actionsArb(200), (actions) => {
        const d = new DialogueDriver(makeInput({ readback: { amount: false, pan: false, expiry: false, securityCode: false } }), { secrets: SECRETS });
        for (const a of actions) {
          const pending = d.pendingCharge;
          apply(d, a);
          // Once the result of a charge is in, its copy is wiped (checked right after the result).
          if (a.kind === 'charge-result' && pending !== undefined && d.pendingCharge === undefined) {
            expect(pending.card.pan.wiped).toBe(true);
            expect(pending.card.expiry.wiped).toBe(true);
          }
        }
        d.hangup();
        if (!d.finished) d.answer({ status: 'declined', declineClass: 'do-not-honor' });
        expect(d.finishes).toBe(1);
      }),
      { numRuns: 100 },
    );
  });

  it('never throws, whatever it is fed (malformed events included)', () => {
    const junk = fc.oneof(
      fc.anything(),
      fc.record({ type: fc.constantFrom('digit', 'timeout', 'play-done', 'charge-result', 'hangup', 'start', 'nope'), digit: fc.anything(), timerId: fc.anything(), playId: fc.anything(), outcome: fc.anything() }),
    );
    fc.assert(
      fc.property(fc.array(junk, { maxLength: 100 }), (events) => {
        let t = startDialogue(makeInput({ amountSource: 'entered' }));
        let finishes = 0;
        for (const ev of events) {
          t = step(t.state, ev as DialogueEvent);
          finishes += t.commands.filter((c) => c.type === 'finish').length;
          for (const c of t.commands) if (c.type === 'finish') expect(OUTCOMES).toContain(c.result.outcome);
        }
        expect(finishes).toBeLessThanOrEqual(1);
      }),
      { numRuns: 300 },
    );
  });

  it('a state with nothing pending ignores stale ids entirely', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1000, max: 1_000_000 }), (id) => {
        const d = new DialogueDriver(makeInput());
        expect(step(d.state, { type: 'timeout', timerId: id }).commands).toEqual([]);
        expect(step(d.state, { type: 'play-done', playId: id, interrupted: false }).commands).toEqual([]);
      }),
    );
  });
});
