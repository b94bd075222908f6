import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { genesysPlatformSchema } from '../src/config/genesys-platform-schema.js';
import { OUTCOMES, type PaymentResult } from '../src/domain/outcome.js';
import { isPayIvrError } from '../src/errors.js';
import { participantAttributes } from '../src/genesys/platform/attributes.js';
import { sampleResult } from './support/result-fixtures.js';

const cfg = genesysPlatformSchema.parse({});

function attrs(r: PaymentResult, c = cfg): Record<string, string> {
  return participantAttributes(r, c, 'node-a');
}

/** The error participantAttributes throws for `r` (the test fails if it does not throw). */
function refusal(r: PaymentResult): { code: string; message: string } {
  try {
    attrs(r);
  } catch (e) {
    if (isPayIvrError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error('participantAttributes accepted the result');
}

describe('participant attributes of a result', () => {
  it('writes every field of an approved payment under the prefixed names', () => {
    const r = sampleResult('r1', {
      amountSource: 'context',
      timings: { startedAt: '2025-01-01T10:00:00.000Z', endedAt: '2025-01-01T10:01:30.000Z' },
    });
    expect(attrs(r)).toEqual({
      'payivr.outcome': 'approved',
      'payivr.mode': 'automated',
      'payivr.amount': '49.90',
      'payivr.currency': 'EUR',
      'payivr.amountSource': 'context',
      'payivr.brand': 'visa',
      'payivr.last4': '4242',
      // An Adyen pspReference: 16 digits, allowed in this one field as in the store.
      'payivr.pspReference': '8515131751004933',
      'payivr.attempts': '1',
      'payivr.node': 'node-a',
      'payivr.origin': 'call',
      'payivr.updatedAt': '2025-01-01T10:01:30.000Z',
    });
  });

  it('writes a declined, an error and a reconciled result with their own fields, and leaves absent ones out', () => {
    const declined = attrs(sampleResult('r2', { outcome: 'declined', declineClass: 'insufficient-funds', transactionId: undefined, attempts: { charges: 2, declines: 2, invalidEntries: 0 } }));
    expect(declined['payivr.declineClass']).toBe('insufficient-funds');
    expect(declined['payivr.attempts']).toBe('2');
    expect(declined).not.toHaveProperty('payivr.pspReference');

    const error = attrs({ outcome: 'error', mode: 'agent', currency: 'EUR', errorReason: 'bad-amount', attempts: { charges: 0, declines: 0, invalidEntries: 0 } });
    expect(error).toEqual({ 'payivr.outcome': 'error', 'payivr.mode': 'agent', 'payivr.currency': 'EUR', 'payivr.errorReason': 'bad-amount', 'payivr.attempts': '0', 'payivr.node': 'node-a', 'payivr.origin': 'call' });

    const reconciled = attrs(sampleResult('r3', { outcome: 'approved', origin: 'reconciled', reconciledAt: '2025-01-01T11:00:00.000Z', timings: { startedAt: '2025-01-01T10:00:00.000Z', endedAt: '2025-01-01T10:01:00.000Z' } }));
    expect(reconciled['payivr.origin']).toBe('reconciled');
    expect(reconciled['payivr.updatedAt']).toBe('2025-01-01T11:00:00.000Z');
  });

  it('gives every outcome a record the guard accepts, with the outcome and only string values', () => {
    for (const outcome of OUTCOMES) {
      const a = attrs(sampleResult(`o-${outcome}`, { outcome }));
      expect(a['payivr.outcome']).toBe(outcome);
      for (const v of Object.values(a)) expect(typeof v).toBe('string');
    }
  });

  it('writes the entry mode (conference or transfer) under its configured name, and leaves it out on a record without one', () => {
    expect(attrs(sampleResult('e1', { entry: 'conference', mode: 'agent' }))).toMatchObject({ 'payivr.entry': 'conference', 'payivr.mode': 'agent' });
    expect(attrs(sampleResult('e2', { entry: 'transfer' }))['payivr.entry']).toBe('transfer');
    expect(attrs(sampleResult('e3', { entry: undefined }))).not.toHaveProperty('payivr.entry');
    const renamed = genesysPlatformSchema.parse({ attributes: { entry: 'EntryMode' } });
    const a = attrs(sampleResult('e4', { entry: 'conference' }), renamed);
    expect(a['payivr.EntryMode']).toBe('conference');
    expect(a).not.toHaveProperty('payivr.entry');
    // The default name is unique: naming another field `entry` is refused like any clash.
    expect(genesysPlatformSchema.safeParse({ attributes: { mode: 'entry' } }).success).toBe(false);
  });

  it('formats the amount in major units of its currency', () => {
    expect(attrs(sampleResult('j', { currency: 'JPY', amount: 1500 }))['payivr.amount']).toBe('1500');
    expect(attrs(sampleResult('k', { currency: 'KWD', amount: 1234 }))['payivr.amount']).toBe('1.234');
    expect(attrs(sampleResult('z', { amount: 5 }))['payivr.amount']).toBe('0.05');
  });

  it('uses the configured prefix and names', () => {
    const custom = genesysPlatformSchema.parse({ attributePrefix: 'pay_', attributes: { outcome: 'Result', reference: 'PSPRef' } });
    const a = attrs(sampleResult('c'), custom);
    expect(a['pay_Result']).toBe('approved');
    expect(a['pay_PSPRef']).toBe('8515131751004933');
    expect(Object.keys(a).every((k) => k.startsWith('pay_'))).toBe(true);
  });

  it('refuses a last 4 that is not 4 digits and an unknown currency with a coded error', () => {
    expect(refusal(sampleResult('l', { last4: '42424' })).code).toBe('ERR_PARTICIPANT_DATA');
    expect(refusal(sampleResult('u', { currency: 'XXQ' })).code).toBe('ERR_PARTICIPANT_DATA');
  });

  it('refuses the whole write when any field other than the PSP reference holds a PAN-like digit run, and never echoes it', () => {
    const pan = fc.stringMatching(/^[0-9]{13,19}$/);
    const around = fc.tuple(fc.stringMatching(/^[a-z -]{0,6}$/), pan, fc.stringMatching(/^[a-z -]{0,6}$/));
    const field = fc.constantFrom<keyof PaymentResult>('brand', 'currency', 'errorReason', 'declineClass', 'amountSource', 'reconciledAt', 'origin', 'mode', 'outcome', 'entry');
    fc.assert(
      fc.property(field, around, (f, [pre, digits, post]) => {
        const r = { ...sampleResult('p'), [f]: `${pre}${digits}${post}` } as PaymentResult;
        const e = refusal(r);
        expect(e.code).toBe('ERR_PARTICIPANT_DATA');
        expect(e.message).not.toContain(digits);
      }),
      { numRuns: 300 },
    );
    // The node id and the end time come from elsewhere but go through the same check.
    expect(() => participantAttributes(sampleResult('n'), cfg, 'node-4111111111111111')).toThrow(/participant data refused/);
    expect(refusal(sampleResult('t', { timings: { startedAt: '4111111111111111' } })).code).toBe('ERR_PARTICIPANT_DATA');
  });
});
