import { describe, expect, it } from 'vitest';
import { step } from '../src/domain/dialogue/machine.js';
import type { DialogueSettings } from '../src/domain/dialogue/types.js';
import type { ChargeOutcome } from '../src/domain/charge.js';
import { readAmount, readReference } from '../src/domain/readback.js';
import { DialogueDriver, makeInput, type Psp } from './dialogue-driver.js';

const VISA = '4242424242424242';
const VISA13 = '4222222222222';
const AMEX = '378282246310005';
const MC = '5555555555554444';
const DISCOVER = '6011111111111117';
const EXPIRY = '0931';
const CVC = '737';
const CID = '7373';
const SECRETS = [VISA, VISA.slice(0, 12), AMEX, AMEX.slice(0, 11), MC, MC.slice(0, 12), VISA13.slice(0, 9), EXPIRY];

const approve: Psp = () => ({ status: 'approved', transactionId: 'ch_9XKQ', authCode: 'A1B2' });
const sequence =
  (...outcomes: ChargeOutcome[]): Psp =>
  (_card, attempt) =>
    outcomes[attempt - 1] ?? { status: 'unknown', reason: 'test ran out of outcomes' };
const declined = (declineClass: Extract<ChargeOutcome, { status: 'declined' }>['declineClass']): ChargeOutcome => ({ status: 'declined', declineClass });

function driver(settings: Partial<DialogueSettings> = {}, context = {}, psp: Psp = approve): DialogueDriver {
  return new DialogueDriver(makeInput(settings, context), { psp, secrets: SECRETS });
}

/** From a pan prompt: number (with the keys given), confirm, expiry, confirm, security code. */
function enterCard(d: DialogueDriver, panKeys: string, code = CVC, expiry = EXPIRY): void {
  d.keys(panKeys);
  expect(d.lastPlay().fragments).toContain('card-ending-in');
  d.keys('1');
  expect(d.lastPlay().fragments).toContain('enter-expiry');
  d.keys(expiry);
  expect(d.lastPlay().fragments[0]).toBe('you-entered');
  d.keys('1');
  expect(d.lastPlay().fragments).toContain(code.length === 4 ? 'enter-security-code-4' : 'enter-security-code-3');
  d.keys(code);
}

function fragmentsPlayed(d: DialogueDriver): string[] {
  return d.plays.flatMap((p) => p.fragments);
}

describe('dialogue: a PSP faster than "please wait"', () => {
  it('holds the result until the wait prompt ends, with the card copy already wiped', () => {
    const d = driver();
    d.psp = undefined;
    d.keys('1');
    enterCard(d, `${VISA}#`);
    const wait = d.currentPlay;
    expect(wait?.fragments).toEqual(['processing-payment']);
    const during = d.answer({ status: 'approved', transactionId: 'T7' });
    expect(during).toEqual([]);
    expect(d.charges[0]?.card.pan.wiped).toBe(true);
    // A second result for the same charge is ignored.
    expect(d.answer({ status: 'declined', declineClass: 'do-not-honor' })).toEqual([]);
    const after = d.send({ type: 'play-done', playId: wait?.playId ?? -1, interrupted: false });
    expect(after.find((c) => c.type === 'play')).toMatchObject({ fragments: expect.arrayContaining(['payment-approved']) });
    expect(d.playOut()).toMatchObject({ outcome: 'approved', transactionId: 'T7', callerGone: false });
  });

  it('a hangup while a result is held finishes at once with that result', () => {
    const d = driver();
    d.psp = undefined;
    d.keys('1');
    enterCard(d, `${VISA}#`);
    d.answer({ status: 'declined', declineClass: 'insufficient-funds' });
    const cmds = d.hangup();
    expect(cmds.filter((c) => c.type === 'play')).toEqual([]);
    expect(d.result).toMatchObject({ outcome: 'declined', declineClass: 'insufficient-funds', callerGone: true });
  });
});

describe('dialogue: approved payments', () => {
  it('Visa: context amount announced, card read back masked, charged once, approval announced with amount and reference', () => {
    const d = driver();
    const first = d.lastPlay();
    expect(first.fragments).toEqual(['welcome', 'you-are-about-to-pay', ...readAmount('en-US', 4990, 'EUR'), 'amount-context-menu']);
    expect(first.bargeIn).toBe(true);
    d.keys('1');
    expect(d.lastPlay()).toMatchObject({ fragments: ['enter-card-number'], bargeIn: true, sensitive: false });
    d.keys(`${VISA}#`);
    const readback = d.lastPlay();
    expect(readback.sensitive).toBe(true);
    expect(readback.fragments).toEqual(['card-ending-in', 'n-4', 'n-2', 'n-4', 'n-2', 'confirm-menu']);
    d.keys('1');
    d.keys(EXPIRY);
    const exp = d.lastPlay();
    expect(exp.sensitive).toBe(true);
    expect(exp.fragments).toContain('month-9');
    d.keys('1');
    d.psp = undefined; // answer by hand to look at the charge first
    d.keys(CVC);
    expect(d.charges).toHaveLength(1);
    const c = d.charges[0];
    expect(c).toMatchObject({ amount: 4990, currency: 'EUR', brand: 'visa', attempt: 1 });
    expect(d.revealed[0]).toEqual({ pan: VISA, expiry: EXPIRY, securityCode: CVC });
    expect(d.lastPlay().fragments).toEqual(['processing-payment']);
    d.endPlay();
    expect(d.waitMusic).toBe(true);
    d.typeAhead('123#'); // ignored while charging
    d.answer({ status: 'approved', transactionId: 'ch_9XKQ', authCode: 'A1B2' });
    // The card copy handed to the PSP is wiped once the result is in.
    expect(c?.card.pan.wiped).toBe(true);
    expect(c?.card.securityCode?.wiped).toBe(true);
    const ann = d.lastPlay();
    expect(ann.bargeIn).toBe(false);
    expect(ann.fragments).toEqual([
      'payment-approved',
      'amount-paid',
      ...readAmount('en-US', 4990, 'EUR'),
      'your-reference-is',
      ...readReference('en-US', 'ch_9XKQ'),
      'thank-you',
    ]);
    expect(d.finished).toBe(false);
    // Only the card readbacks are marked sensitive.
    expect(d.plays.filter((p) => p.sensitive).map((p) => p.fragments[0])).toEqual(['card-ending-in', 'you-entered']);
    const r = d.playOut();
    expect(r).toEqual({
      outcome: 'approved',
      amount: 4990,
      amountSource: 'context',
      currency: 'EUR',
      brand: 'visa',
      last4: '4242',
      transactionId: 'ch_9XKQ',
      authCode: 'A1B2',
      declineClass: undefined,
      attempts: { charges: 1, declines: 0, invalidEntries: 0 },
      callerGone: false,
    });
  });

  it('Amex: the number ends by itself at 15 digits and the 4-digit code at 4', () => {
    const d = driver();
    d.keys('1');
    enterCard(d, AMEX, CID);
    expect(d.revealed[0]).toEqual({ pan: AMEX, expiry: EXPIRY, securityCode: CID });
    expect(d.charges[0]?.brand).toBe('amex');
    const r = d.playOut();
    expect(r).toMatchObject({ outcome: 'approved', brand: 'amex', last4: '0005' });
  });

  it('reads the context reference when the transaction id is too long to say', () => {
    const d = driver({}, {}, () => ({ status: 'approved', transactionId: 'pi_3MtwBwLkdIwHu7ix28a3tqPa' }));
    d.keys('1');
    enterCard(d, `${VISA}#`);
    expect(d.lastPlay().fragments).toEqual(expect.arrayContaining(['your-reference-is', ...readReference('en-US', 'INV-77')]));
    expect(d.playOut()).toMatchObject({ outcome: 'approved', transactionId: 'pi_3MtwBwLkdIwHu7ix28a3tqPa', authCode: undefined });
  });

  it('French calls play French-catalog fragments all the way', () => {
    const d = driver({ language: 'fr-FR' });
    d.keys('1');
    enterCard(d, `${VISA}#`);
    expect(d.playOut().outcome).toBe('approved');
    expect(fragmentsPlayed(d)).toContain(readAmount('fr-FR', 4990, 'EUR')[0]);
  });

  it('without readbacks the fields follow one another directly', () => {
    const d = driver({ readback: { amount: false, pan: false, expiry: false, securityCode: false } });
    expect(d.lastPlay().fragments).toEqual(['welcome', 'enter-card-number']);
    d.keys(`${MC}`); // Mastercard: 16 is its only length, ends by itself
    expect(d.lastPlay().fragments).toEqual(['enter-expiry']);
    d.keys(EXPIRY);
    expect(d.lastPlay().fragments).toEqual(['enter-security-code-3']);
    d.keys(CVC);
    expect(d.playOut()).toMatchObject({ outcome: 'approved', brand: 'mastercard', last4: '4444' });
  });

  it('reads the security code back only when configured, as a sensitive play', () => {
    const d = driver({ readback: { amount: true, pan: true, expiry: true, securityCode: true } });
    d.keys('1');
    enterCard(d, `${VISA}#`);
    const p = d.lastPlay();
    expect(p).toMatchObject({ sensitive: true, fragments: ['you-entered', 'n-7', 'n-3', 'n-7', 'confirm-menu'] });
    expect(d.charges).toHaveLength(0);
    d.keys('1');
    expect(d.charges).toHaveLength(1);
    expect(d.playOut().outcome).toBe('approved');
  });

  it('Maestro with securityCode "brand" skips the code', () => {
    const d = driver({ allowedBrands: ['maestro'], securityCode: 'brand', readback: { amount: false, pan: false, expiry: false, securityCode: false } });
    d.keys('6759649826438453#');
    d.keys(EXPIRY);
    expect(d.charges).toHaveLength(1);
    expect(d.revealed[0]?.securityCode).toBeUndefined();
    expect(d.charges[0]?.card.securityCode).toBeUndefined();
    expect(d.playOut()).toMatchObject({ outcome: 'approved', brand: 'maestro' });
  });
});

describe('dialogue: amount', () => {
  it('entered below the minimum, told the minimum, then corrected and confirmed', () => {
    const d = driver({ amountSource: 'entered' });
    expect(d.lastPlay().fragments).toEqual(['welcome', 'enter-amount']);
    d.keys('0*5#');
    expect(d.lastPlay().fragments).toEqual(['amount-minimum-is', ...readAmount('en-US', 100, 'EUR'), 'enter-amount']);
    d.keys('12*5#');
    expect(d.lastPlay().fragments).toEqual(['you-entered', ...readAmount('en-US', 1250, 'EUR'), 'confirm-menu']);
    d.keys('1');
    expect(d.lastPlay().fragments).toEqual(['enter-card-number']);
    enterCard(d, `${VISA}#`);
    expect(d.charges[0]?.amount).toBe(1250);
    expect(d.playOut()).toMatchObject({ outcome: 'approved', amount: 1250, amountSource: 'caller', attempts: { invalidEntries: 1 } });
  });

  it('above the maximum says the maximum; bad formats say the amount is invalid', () => {
    const d = driver({ amountSource: 'entered' });
    d.keys('20000#');
    expect(d.lastPlay().fragments).toEqual(['amount-maximum-is', ...readAmount('en-US', 1_000_000, 'EUR'), 'enter-amount']);
    d.keys('1*234#');
    expect(d.lastPlay().fragments).toEqual(['amount-invalid', 'enter-amount']);
    d.keys('15#');
    d.keys('2'); // enter again: the third use of attempts.amount
    expect(d.lastPlay().fragments).toEqual(['too-many-attempts']);
    expect(d.state.failures.amount).toBe(3);
    expect(d.playOut()).toMatchObject({ outcome: 'max-attempts', attempts: { invalidEntries: 2 } });
  });

  it('a context amount with amountSource "entered", or outside the bounds, is entered by the caller', () => {
    expect(driver({ amountSource: 'entered' }).lastPlay().fragments).toEqual(['welcome', 'enter-amount']);
    expect(driver({}, { amount: 5_000_000 }).lastPlay().fragments).toEqual(['welcome', 'enter-amount']);
    expect(driver({}, { amount: undefined }).lastPlay().fragments).toEqual(['welcome', 'enter-amount']);
  });

  it('choice menu: 1 pays the full balance, 2 asks for another amount', () => {
    const d = driver({ amountSource: 'choice' });
    expect(d.lastPlay().fragments).toEqual(['welcome', 'balance-is', ...readAmount('en-US', 4990, 'EUR'), 'choice-menu']);
    d.keys('1');
    enterCard(d, `${VISA}#`);
    expect(d.charges[0]?.amount).toBe(4990);
    expect(d.playOut()).toMatchObject({ outcome: 'approved', amountSource: 'balance' });

    const e = driver({ amountSource: 'choice' });
    e.keys('2');
    expect(e.lastPlay().fragments).toEqual(['enter-amount']);
    e.keys('20#');
    e.keys('1');
    enterCard(e, `${VISA}#`);
    expect(e.charges[0]?.amount).toBe(2000);
    expect(e.playOut()).toMatchObject({ outcome: 'approved', amount: 2000, amountSource: 'caller' });
  });

  it('amount refused: 3 at the amount announcement or at the choice menu', () => {
    for (const amountSource of ['context', 'choice'] as const) {
      const d = driver({ amountSource });
      d.keys('3');
      expect(d.lastPlay().fragments).toEqual(['payment-cancelled']);
      expect(d.playOut()).toMatchObject({ outcome: 'amount-refused', amount: amountSource === 'context' ? 4990 : undefined });
      expect(d.charges).toHaveLength(0);
    }
  });

  it('1 pressed while the amount is still being announced answers the menu at once (barge-in)', () => {
    const d = driver();
    const announcement = d.lastPlay();
    expect(announcement.bargeIn).toBe(true);
    const cmds = d.send({ type: 'digit', digit: '1' });
    expect(cmds[0]).toEqual({ type: 'stop-play' });
    expect(d.lastPlay()).toMatchObject({ fragments: ['enter-card-number'], bargeIn: true });
    // The interrupted announcement's play-done comes late: stale, changes nothing.
    const phase = d.state.phase;
    expect(d.send({ type: 'play-done', playId: announcement.playId, interrupted: true })).toEqual([]);
    expect(d.state.phase).toEqual(phase);
    expect(d.state.counts.invalidEntries).toBe(0);
  });

  it('1 and the card number typed over the amount announcement: the number is kept for the card field', () => {
    // The caller who knows the menu: 1, then the whole card number, all before "press 1 to confirm".
    const d = driver();
    d.typeAhead(`1${VISA}#`);
    expect(d.lastPlay().fragments).toEqual(['card-ending-in', 'n-4', 'n-2', 'n-4', 'n-2', 'confirm-menu']);
    // ...and the same habit at the readback: 1 and the expiry typed over it.
    d.typeAhead(`1${EXPIRY}`);
    expect(d.lastPlay().fragments[0]).toBe('you-entered');
    d.typeAhead(`1${CVC}`);
    expect(d.revealed).toEqual([{ pan: VISA, expiry: EXPIRY, securityCode: CVC }]);
    expect(d.playOut()).toMatchObject({ outcome: 'approved', attempts: { charges: 1, declines: 0, invalidEntries: 0 } });
  });

  it('3 or 9 during the amount announcement ends at once; another key is one invalid choice, not one per digit', () => {
    const refused = driver();
    refused.typeAhead('3');
    expect(refused.lastPlay().fragments).toEqual(['payment-cancelled']);
    expect(refused.playOut()).toMatchObject({ outcome: 'amount-refused', attempts: { invalidEntries: 0 } });
    const cancelled = driver();
    cancelled.typeAhead('9');
    expect(cancelled.playOut()).toMatchObject({ outcome: 'cancelled' });
    const wrong = driver();
    wrong.typeAhead('5');
    expect(wrong.lastPlay().fragments[0]).toBe('invalid-choice');
    expect(wrong.state.counts.invalidEntries).toBe(1);
    wrong.typeAhead('1');
    expect(wrong.lastPlay().fragments).toEqual(['enter-card-number']);
  });

  it('"*" first or a second "*" restarts the amount; "*" after digits is the decimal point', () => {
    const d = driver({ amountSource: 'entered' });
    d.keys('*');
    expect(d.lastPlay().fragments).toEqual(['enter-amount']);
    d.keys('12**');
    expect(d.lastPlay().fragments).toEqual(['enter-amount']);
    d.keys('12*34#');
    expect(d.lastPlay().fragments).toEqual(['you-entered', ...readAmount('en-US', 1234, 'EUR'), 'confirm-menu']);
    expect(d.state.counts.invalidEntries).toBe(0);
  });

  it('a card number typed at the amount prompt is cut as soon as it exceeds the maximum, never held as text', () => {
    const d = driver({ amountSource: 'entered', attempts: { ...makeInput().settings.attempts, amount: 5 } });
    d.keys(VISA); // the secret scan of the driver checks every state
    // max 10000.00 EUR: 5 integer digits at most, so the 6th digit ends each entry.
    expect(d.plays.filter((p) => p.fragments[0] === 'amount-maximum-is')).toHaveLength(2);
    expect(d.state.phase).toEqual({ kind: 'amount-entry', keys: '4242' });
    expect(d.state.counts.invalidEntries).toBe(2);
  });
});

describe('dialogue: card number', () => {
  it('type-ahead: the whole number typed over the prompt; the stale play-done is ignored', () => {
    const d = driver();
    d.keys('1');
    const prompt = d.lastPlay();
    d.typeAhead(`${VISA}#`);
    expect(d.lastPlay().fragments).toContain('card-ending-in');
    expect(d.commands.some((c) => c.type === 'stop-play')).toBe(true);
    const before = d.state;
    expect(d.send({ type: 'play-done', playId: prompt.playId, interrupted: true })).toEqual([]);
    expect(d.state.phase).toEqual(before.phase);
    enterCardRest(d);
    expect(d.playOut().outcome).toBe('approved');
  });

  it('a Visa 13 ends on "#"; a Visa 16 ends on "#" or the inter-digit timeout (Visa allows 19)', () => {
    const d = driver();
    d.keys('1');
    d.keys(`${VISA13}#`);
    expect(d.lastPlay().fragments).toEqual(['card-ending-in', 'n-2', 'n-2', 'n-2', 'n-2', 'confirm-menu']);

    const e = driver();
    e.keys('1');
    e.keys(VISA);
    expect(e.lastPlay().fragments).toEqual(['enter-card-number']);
    expect(e.timerMs).toBe(5000);
    e.fireTimer();
    expect(e.lastPlay().fragments).toContain('card-ending-in');
  });

  it('ends by itself at the brand length: Amex 15, Mastercard 16', () => {
    for (const pan of [AMEX, MC]) {
      const d = driver();
      d.keys('1');
      d.keys(pan);
      expect(d.lastPlay().fragments).toContain('card-ending-in');
    }
  });

  it('invalid, unknown and not accepted numbers get their message and are asked again', () => {
    const d = driver();
    d.keys('1');
    d.keys('4242424242424241#');
    expect(d.lastPlay().fragments).toEqual(['card-invalid', 'enter-card-number']);
    d.keys(`${DISCOVER}#`);
    expect(d.lastPlay().fragments).toEqual(['brand-not-accepted-discover', 'enter-card-number']);
    d.keys(`${VISA}#`);
    d.keys('1');
    expect(d.state.counts.invalidEntries).toBe(2);

    const u = driver();
    u.keys('1');
    u.keys('9999999999999#');
    expect(u.lastPlay().fragments).toEqual(['card-not-recognised', 'enter-card-number']);
  });

  it('"*" clears the number and replays the prompt without counting an attempt', () => {
    const d = driver();
    d.keys('1');
    d.keys('4242*');
    expect(d.lastPlay().fragments).toEqual(['enter-card-number']);
    expect(d.state.phase.kind === 'card-entry' && d.state.phase.digits.length).toBe(0);
    d.keys(`${VISA}#`);
    enterCardRest(d);
    expect(d.playOut()).toMatchObject({ outcome: 'approved', attempts: { invalidEntries: 0 } });
  });

  it('2 at the readback asks for the number again', () => {
    const d = driver();
    d.keys('1');
    d.keys(`${VISA}#`);
    d.keys('2');
    expect(d.lastPlay().fragments).toEqual(['enter-card-number']);
    d.keys(`${MC}`);
    enterCardRest(d);
    expect(d.revealed[0]?.pan).toBe(MC);
  });
});

/** From the pan readback: confirm, expiry, confirm, code. */
function enterCardRest(d: DialogueDriver): void {
  d.keys('1');
  d.keys(EXPIRY);
  d.keys('1');
  d.keys(CVC);
}

describe('dialogue: expiry and security code', () => {
  it('an expired card and an impossible month are told apart', () => {
    const d = driver();
    d.keys('1');
    d.keys(`${VISA}#`);
    d.keys('1');
    d.keys('0125');
    expect(d.lastPlay().fragments).toEqual(['card-expired', 'enter-expiry']);
    d.keys('1331');
    expect(d.lastPlay().fragments).toEqual(['expiry-invalid', 'enter-expiry']);
    d.keys('12#'); // too short
    expect(d.lastPlay().fragments).toEqual(['expiry-invalid', 'too-many-attempts']);
    expect(d.playOut()).toMatchObject({ outcome: 'max-attempts', attempts: { invalidEntries: 3 } });
  });

  it('the current month is still valid', () => {
    const d = driver();
    d.keys('1');
    d.keys(`${VISA}#`);
    d.keys('1');
    d.keys('1126');
    expect(d.lastPlay().fragments[0]).toBe('you-entered');
  });

  it('a security code of the wrong length is refused', () => {
    const d = driver();
    d.keys('1');
    d.keys(`${VISA}#`);
    d.keys('1');
    d.keys(EXPIRY);
    d.keys('1');
    d.keys('12#');
    expect(d.lastPlay().fragments).toEqual(['security-code-invalid', 'enter-security-code-3']);
    d.keys(CVC);
    expect(d.charges).toHaveLength(1);
  });
});

describe('dialogue: timeouts and stale ids', () => {
  it('the first-digit timer starts when the prompt ends; silence re-prompts and counts', () => {
    const d = driver();
    d.keys('1');
    expect(d.timerId).toBeUndefined();
    d.endPlay();
    expect(d.timerMs).toBe(8000);
    d.fireTimer();
    expect(d.lastPlay().fragments).toEqual(['no-input', 'enter-card-number']);
    expect(d.state.counts.invalidEntries).toBe(1);
    d.endPlay();
    d.fireTimer();
    d.endPlay();
    d.fireTimer();
    expect(d.lastPlay().fragments).toEqual(['no-input', 'too-many-attempts']);
    expect(d.playOut()).toMatchObject({ outcome: 'max-attempts', attempts: { invalidEntries: 3 } });
  });

  it('a type-ahead digit starts the inter-digit timer at once; partial digits are evaluated at the timeout', () => {
    const d = driver();
    d.keys('1');
    d.typeAhead('4242');
    expect(d.timerMs).toBe(5000);
    d.endPlay(true);
    d.fireTimer();
    expect(d.lastPlay().fragments).toEqual(['card-invalid', 'enter-card-number']);
  });

  it('stale timer and play ids are ignored', () => {
    const d = driver();
    d.keys('1');
    d.endPlay();
    const firstTimer = d.timerId as number;
    d.typeAhead('4');
    expect(d.timerId).not.toBe(firstTimer);
    const s = d.state;
    expect(d.send({ type: 'timeout', timerId: firstTimer })).toEqual([]);
    expect(d.send({ type: 'play-done', playId: 1, interrupted: false })).toEqual([]);
    expect(d.send({ type: 'timeout', timerId: 999 })).toEqual([]);
    expect(d.state.phase).toEqual(s.phase);
    expect(d.state.counts).toEqual(s.counts);
  });

  it('menus: silence and invalid keys re-ask up to attempts.confirm, then max-attempts', () => {
    const d = driver();
    d.keys('1');
    d.keys(`${VISA}#`);
    d.keys('5');
    expect(d.lastPlay().fragments.slice(0, 2)).toEqual(['invalid-choice', 'card-ending-in']);
    d.keys('#'); // ignored
    d.endPlay();
    d.fireTimer();
    expect(d.lastPlay().fragments[0]).toBe('no-input');
    d.keys('*'); // replays, counts nothing
    expect(d.lastPlay().fragments[0]).toBe('card-ending-in');
    d.keys('7');
    expect(d.lastPlay().fragments).toEqual(['invalid-choice', 'too-many-attempts']);
    expect(d.playOut()).toMatchObject({ outcome: 'max-attempts', attempts: { invalidEntries: 3 } });
  });
});

describe('dialogue: max-attempts per field', () => {
  const cases: { name: string; settings: Partial<DialogueSettings>; before: (d: DialogueDriver) => void; bad: string }[] = [
    { name: 'amount', settings: { amountSource: 'entered' }, before: () => {}, bad: '0#' },
    { name: 'pan', settings: {}, before: (d) => d.keys('1'), bad: '1234#' },
    {
      name: 'expiry',
      settings: {},
      before: (d) => {
        d.keys('1');
        d.keys(`${VISA}#`);
        d.keys('1');
      },
      bad: '0000',
    },
    {
      name: 'securityCode',
      settings: {},
      before: (d) => {
        d.keys('1');
        d.keys(`${VISA}#`);
        d.keys('1');
        d.keys(EXPIRY);
        d.keys('1');
      },
      bad: '1#',
    },
  ];
  for (const c of cases) {
    for (const attempts of [1, 2, 4]) {
      it(`${c.name}: ${attempts} invalid entries with attempts=${attempts}`, () => {
        const d = driver({ ...c.settings, attempts: { ...makeInput().settings.attempts, [c.name]: attempts } });
        c.before(d);
        for (let i = 0; i < attempts; i++) {
          expect(d.finished).toBe(false);
          d.keys(c.bad);
        }
        expect(d.lastPlay().fragments.at(-1)).toBe('too-many-attempts');
        expect(d.playOut()).toMatchObject({ outcome: 'max-attempts', attempts: { invalidEntries: attempts, charges: 0 } });
      });
    }
  }
});

describe('dialogue: declines', () => {
  it('declined (insufficient funds), then approved with a second card', () => {
    const d = driver({}, {}, sequence(declined('insufficient-funds'), { status: 'approved', transactionId: 'T2' }));
    d.keys('1');
    enterCard(d, `${VISA}#`);
    expect(d.lastPlay().fragments).toEqual(['declined-insufficient-funds', 'other-card-menu']);
    expect(d.charges[0]?.card.pan.wiped).toBe(true);
    d.keys('1');
    expect(d.lastPlay().fragments).toEqual(['enter-card-number']);
    enterCard(d, MC);
    expect(d.revealed.map((r) => r.pan)).toEqual([VISA, MC]);
    expect(d.charges[1]?.attempt).toBe(2);
    expect(d.playOut()).toMatchObject({
      outcome: 'approved',
      brand: 'mastercard',
      last4: '4444',
      transactionId: 'T2',
      declineClass: undefined,
      attempts: { charges: 2, declines: 1 },
    });
  });

  it('2 after a decline ends with declined and the decline class', () => {
    const d = driver({}, {}, sequence({ status: 'declined', declineClass: 'do-not-honor', transactionId: 'D1' }));
    d.keys('1');
    enterCard(d, `${VISA}#`);
    expect(d.lastPlay().fragments).toEqual(['declined-generic', 'other-card-menu']);
    d.keys('2');
    expect(d.playOut()).toMatchObject({ outcome: 'declined', declineClass: 'do-not-honor', transactionId: 'D1', brand: 'visa', last4: '4242' });
  });

  it('max-declines when declines reach maxDeclines', () => {
    const d = driver({ maxDeclines: 2 }, {}, sequence(declined('do-not-honor'), declined('insufficient-funds')));
    d.keys('1');
    enterCard(d, `${VISA}#`);
    d.keys('1');
    enterCard(d, MC);
    expect(d.lastPlay().fragments).toEqual(['declined-insufficient-funds', 'too-many-declines']);
    expect(d.playOut()).toMatchObject({ outcome: 'max-declines', declineClass: 'insufficient-funds', attempts: { charges: 2, declines: 2 } });
  });

  it('fraud: a generic message, no retry, declined', () => {
    const d = driver({}, {}, sequence(declined('fraud')));
    d.keys('1');
    enterCard(d, `${VISA}#`);
    expect(d.lastPlay().fragments).toEqual(['payment-not-processed']);
    expect(fragmentsPlayed(d)).not.toContain('other-card-menu');
    expect(d.playOut()).toMatchObject({ outcome: 'declined', declineClass: 'fraud', attempts: { charges: 1 } });
  });

  it('incorrect CVC: the code is asked again once, the number and expiry are reused; a second one offers another card', () => {
    const d = driver({}, {}, sequence(declined('incorrect-cvc'), declined('incorrect-cvc')));
    d.keys('1');
    enterCard(d, `${VISA}#`);
    expect(d.lastPlay().fragments).toEqual(['declined-incorrect-cvc', 'enter-security-code-3']);
    // The first attempt's copy is wiped; the held number and expiry are not.
    expect(d.charges[0]?.card.pan.wiped).toBe(true);
    d.keys('456');
    expect(d.revealed[1]).toEqual({ pan: VISA, expiry: EXPIRY, securityCode: '456' });
    expect(d.lastPlay().fragments).toEqual(['declined-incorrect-cvc', 'other-card-menu']);
    d.keys('2');
    expect(d.playOut()).toMatchObject({ outcome: 'declined', declineClass: 'incorrect-cvc', attempts: { charges: 2, declines: 2 } });
  });

  it('expired card: the expiry is asked again once, the code is reused', () => {
    const d = driver({}, {}, sequence(declined('expired-card'), { status: 'approved', transactionId: 'T9' }));
    d.keys('1');
    enterCard(d, `${VISA}#`);
    expect(d.lastPlay().fragments).toEqual(['declined-expired-card', 'enter-expiry']);
    d.keys('1032');
    d.keys('1');
    expect(d.revealed[1]).toEqual({ pan: VISA, expiry: '1032', securityCode: CVC });
    expect(d.playOut().outcome).toBe('approved');
  });

  it('incorrect number: the whole card is entered again', () => {
    const d = driver({}, {}, sequence(declined('incorrect-number'), { status: 'approved', transactionId: 'T3' }));
    d.keys('1');
    enterCard(d, `${VISA}#`);
    expect(d.lastPlay().fragments).toEqual(['declined-incorrect-number', 'enter-card-number']);
    enterCard(d, AMEX, CID);
    expect(d.revealed[1]).toEqual({ pan: AMEX, expiry: EXPIRY, securityCode: CID });
    expect(d.playOut()).toMatchObject({ outcome: 'approved', brand: 'amex' });
  });

  it('processing error: one automatic retry with the same card, no prompt in between', () => {
    const d = driver({}, {}, sequence(declined('processing-error'), { status: 'approved', transactionId: 'T4' }));
    d.keys('1');
    const playsBefore = () => d.plays.length;
    enterCard(d, `${VISA}#`);
    expect(d.charges).toHaveLength(2);
    expect(d.revealed[1]).toEqual(d.revealed[0]);
    expect(d.charges[0]?.card.pan).not.toBe(d.charges[1]?.card.pan);
    expect(d.plays.filter((p) => p.fragments.includes('processing-payment'))).toHaveLength(1);
    expect(playsBefore()).toBeGreaterThan(0);
    expect(d.playOut()).toMatchObject({ outcome: 'approved', attempts: { charges: 2, declines: 1 } });
  });

  it('a second processing error offers another card', () => {
    const d = driver({}, {}, sequence(declined('processing-error'), declined('processing-error')));
    d.keys('1');
    enterCard(d, `${VISA}#`);
    expect(d.lastPlay().fragments).toEqual(['declined-generic', 'other-card-menu']);
  });

  it('unconfirmed when the outcome is unknown: the caller is told not to pay again', () => {
    const d = driver({}, {}, sequence({ status: 'unknown', reason: 'timeout' }));
    d.keys('1');
    enterCard(d, `${VISA}#`);
    expect(d.lastPlay().fragments).toEqual(['payment-unconfirmed']);
    expect(d.playOut()).toMatchObject({ outcome: 'unconfirmed', brand: 'visa', last4: '4242', attempts: { charges: 1, declines: 0 } });
  });

  it('psp-error when the PSP certainly did not charge', () => {
    const d = driver({}, {}, sequence({ status: 'failed', reason: 'circuit-open' }));
    d.keys('1');
    enterCard(d, `${VISA}#`);
    expect(d.lastPlay().fragments).toEqual(['payment-not-processed']);
    expect(d.playOut()).toMatchObject({ outcome: 'psp-error', brand: 'visa', last4: '4242', attempts: { charges: 1, declines: 0 } });
  });
});

describe('dialogue: ends', () => {
  it('not identified: finish at once, nothing played', () => {
    const d = driver({}, { identified: false });
    expect(d.plays).toHaveLength(0);
    expect(d.commands.map((c) => c.type)).toEqual(['finish']);
    expect(d.result).toMatchObject({ outcome: 'not-identified', callerGone: false });
  });

  it('9 cancels at a confirm menu and wipes what was typed', () => {
    const d = driver();
    d.keys('1');
    d.keys(`${VISA}#`);
    const pan = d.state.card.pan;
    d.keys('9');
    expect(pan?.wiped).toBe(true);
    expect(d.lastPlay().fragments).toEqual(['payment-cancelled']);
    expect(d.playOut()).toMatchObject({ outcome: 'cancelled', attempts: { charges: 0 } });
  });

  it('hangup before the charge: finish hangup at once, everything wiped, nothing played after', () => {
    const d = driver();
    d.keys('1');
    d.keys(`${VISA}#`);
    d.keys('1');
    d.typeAhead('09');
    const entry = d.state.phase.kind === 'card-entry' ? d.state.phase.digits : undefined;
    const playsBefore = d.plays.length;
    const cmds = d.hangup();
    expect(cmds.map((c) => c.type)).toEqual(['cancel-timer', 'stop-play', 'finish']);
    expect(d.plays).toHaveLength(playsBefore);
    expect(entry?.wiped).toBe(true);
    expect(d.result).toMatchObject({ outcome: 'hangup', callerGone: true });
  });

  it('hangup during the charge: waits for the result and reports it, with no prompt', () => {
    for (const [outcome, expected] of [
      [{ status: 'approved', transactionId: 'T5', authCode: 'X' }, 'approved'],
      [declined('insufficient-funds'), 'declined'],
      [declined('processing-error'), 'declined'],
      [{ status: 'unknown', reason: 'lost' }, 'unconfirmed'],
      [{ status: 'failed', reason: 'http-429' }, 'psp-error'],
    ] as const) {
      const d = driver();
      d.psp = undefined;
      d.keys('1');
      enterCard(d, `${VISA}#`);
      expect(d.charges).toHaveLength(1);
      const playsBefore = d.plays.length;
      expect(d.hangup()).toEqual([]);
      expect(d.finished).toBe(false);
      d.endPlay(); // the "please wait" prompt ending does not start music for nobody
      d.answer(outcome);
      expect(d.plays).toHaveLength(playsBefore);
      expect(d.charges).toHaveLength(1);
      expect(d.result).toMatchObject({ outcome: expected, callerGone: true });
    }
  });

  it('hangup during the approval announcement still reports approved', () => {
    const d = driver();
    d.keys('1');
    enterCard(d, `${VISA}#`);
    expect(d.lastPlay().fragments[0]).toBe('payment-approved');
    d.hangup();
    expect(d.result).toMatchObject({ outcome: 'approved', callerGone: true, transactionId: 'ch_9XKQ' });
  });

  it('error: a malformed charge result ends with error, card wiped, no throw', () => {
    const d = driver();
    d.psp = undefined;
    d.keys('1');
    enterCard(d, `${VISA}#`);
    d.send({ type: 'charge-result', outcome: undefined as unknown as ChargeOutcome });
    expect(d.result).toMatchObject({ outcome: 'error' });
    expect(d.charges[0]?.card.pan.wiped).toBe(true);
  });

  it('error: a profile currency readback cannot say ends with error at start', () => {
    const d = driver({ currency: 'XYZ' });
    expect(d.result).toMatchObject({ outcome: 'error', currency: 'XYZ' });
  });

  it('an internal error during a charge waits for the result and reports an approval truthfully', () => {
    const d = driver();
    d.psp = undefined;
    d.keys('1');
    enterCard(d, `${VISA}#`);
    const play = d.currentPlay;
    expect(play?.fragments).toEqual(['processing-payment']);
    // Break the state so handling the next event throws.
    const settings = d.state.input.settings;
    const broken = new Proxy(settings, {
      get(target, key, receiver) {
        if (key === 'timeouts') throw new Error('boom');
        return Reflect.get(target, key, receiver) as unknown;
      },
    });
    d.state = { ...d.state, input: { ...d.state.input, settings: broken } };
    d.secrets = []; // the driver's JSON scan would trip over the broken settings too
    const cmds = d.send({ type: 'play-done', playId: play?.playId ?? -1, interrupted: false });
    expect(cmds.some((c) => c.type === 'finish')).toBe(false);
    expect(d.state.phase).toMatchObject({ kind: 'charging', faulted: true });
    d.answer({ status: 'approved', transactionId: 'T6' });
    expect(d.result).toMatchObject({ outcome: 'approved', transactionId: 'T6' });
  });

  it('the secret scan of the driver does catch a secret (negative control)', () => {
    expect(() => new DialogueDriver(makeInput(), { secrets: ['you-are-about-to-pay'] })).toThrow(/contains a secret/);
  });

  it('after finish every event is ignored', () => {
    const d = driver({}, { identified: false });
    for (const ev of [{ type: 'start' }, { type: 'digit', digit: '1' }, { type: 'hangup' }, { type: 'timeout', timerId: 1 }] as const) {
      expect(step(d.state, ev).commands).toEqual([]);
    }
  });

  it('an explicit start on a started dialogue is ignored; hangup before start finishes hangup', () => {
    const d = driver();
    expect(d.send({ type: 'start' })).toEqual([]);
    const idle = new DialogueDriver(makeInput(), { start: false });
    idle.hangup();
    expect(idle.result).toMatchObject({ outcome: 'hangup', callerGone: true });
  });
});
