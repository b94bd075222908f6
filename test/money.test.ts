import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  CURRENCIES,
  MAX_MAJOR,
  currencyExponent,
  formatMajor,
  minorToDtmf,
  parseDtmfAmount,
  parseMajorAmount,
} from '../src/domain/money.js';

describe('currencyExponent', () => {
  it('ISO 4217 exponents', () => {
    expect(currencyExponent('EUR')).toBe(2);
    expect(currencyExponent('USD')).toBe(2);
    expect(currencyExponent('GBP')).toBe(2);
    expect(currencyExponent('CHF')).toBe(2);
    expect(currencyExponent('JPY')).toBe(0);
    expect(currencyExponent('KRW')).toBe(0);
    expect(currencyExponent('KWD')).toBe(3);
    expect(currencyExponent('BHD')).toBe(3);
    expect(currencyExponent('TND')).toBe(3);
    expect(currencyExponent('CLF')).toBe(4);
    expect(currencyExponent('XXX')).toBeUndefined();
    expect(currencyExponent('eur')).toBeUndefined();
  });
  it('knows the common list', () => {
    expect(CURRENCIES.length).toBeGreaterThan(150);
    for (const c of CURRENCIES) expect(c).toMatch(/^[A-Z]{3}$/);
  });
});

describe('parseDtmfAmount', () => {
  it('EUR', () => {
    expect(parseDtmfAmount('49*9', 'EUR')).toEqual({ ok: true, minor: 4990 });
    expect(parseDtmfAmount('49', 'EUR')).toEqual({ ok: true, minor: 4900 });
    expect(parseDtmfAmount('49*90', 'EUR')).toEqual({ ok: true, minor: 4990 });
    expect(parseDtmfAmount('49*05', 'EUR')).toEqual({ ok: true, minor: 4905 });
    expect(parseDtmfAmount('0*5', 'EUR')).toEqual({ ok: true, minor: 50 });
    expect(parseDtmfAmount('0049', 'EUR')).toEqual({ ok: true, minor: 4900 });
    expect(parseDtmfAmount('49*', 'EUR')).toEqual({ ok: true, minor: 4900 });
    expect(parseDtmfAmount('49*999', 'EUR')).toEqual({ ok: false, reason: 'too-many-decimals' });
    expect(parseDtmfAmount('', 'EUR')).toEqual({ ok: false, reason: 'empty' });
    expect(parseDtmfAmount('*', 'EUR')).toEqual({ ok: false, reason: 'format' });
    expect(parseDtmfAmount('*5', 'EUR')).toEqual({ ok: false, reason: 'format' });
    expect(parseDtmfAmount('4*9*0', 'EUR')).toEqual({ ok: false, reason: 'format' });
    expect(parseDtmfAmount('49#', 'EUR')).toEqual({ ok: false, reason: 'format' });
    expect(parseDtmfAmount('4A', 'EUR')).toEqual({ ok: false, reason: 'format' });
  });
  it('JPY has no minor unit', () => {
    expect(parseDtmfAmount('500', 'JPY')).toEqual({ ok: true, minor: 500 });
    expect(parseDtmfAmount('500*5', 'JPY')).toEqual({ ok: false, reason: 'too-many-decimals' });
  });
  it('KWD has three decimals', () => {
    expect(parseDtmfAmount('12*345', 'KWD')).toEqual({ ok: true, minor: 12345 });
    expect(parseDtmfAmount('12*3', 'KWD')).toEqual({ ok: true, minor: 12300 });
    expect(parseDtmfAmount('12', 'KWD')).toEqual({ ok: true, minor: 12000 });
    expect(parseDtmfAmount('12*3456', 'KWD')).toEqual({ ok: false, reason: 'too-many-decimals' });
  });
  it('too large', () => {
    expect(parseDtmfAmount(String(MAX_MAJOR), 'EUR')).toEqual({ ok: true, minor: MAX_MAJOR * 100 });
    expect(parseDtmfAmount(String(MAX_MAJOR + 1), 'EUR')).toEqual({ ok: false, reason: 'too-large' });
    expect(parseDtmfAmount('9'.repeat(40), 'EUR')).toEqual({ ok: false, reason: 'too-large' });
    expect(parseDtmfAmount('000000000000001', 'EUR')).toEqual({ ok: true, minor: 100 });
  });
  it('unknown currency is a format error', () => {
    expect(parseDtmfAmount('1', 'XXX')).toEqual({ ok: false, reason: 'format' });
  });
});

describe('parseMajorAmount', () => {
  it('accepts plain decimals', () => {
    expect(parseMajorAmount('49.90', 'EUR')).toBe(4990);
    expect(parseMajorAmount('49', 'EUR')).toBe(4900);
    expect(parseMajorAmount('49.9', 'EUR')).toBe(4990);
    expect(parseMajorAmount('0.01', 'EUR')).toBe(1);
    expect(parseMajorAmount('500', 'JPY')).toBe(500);
    expect(parseMajorAmount('1.234', 'KWD')).toBe(1234);
  });
  it('rejects everything else', () => {
    for (const s of ['4,9', '-1', '1e3', '49.999', '', '.5', '5.', ' 5', '5 ', '+5', '0x10', 'Infinity', 'NaN', '1.2.3']) {
      expect(parseMajorAmount(s, 'EUR')).toBeUndefined();
    }
    expect(parseMajorAmount('500.5', 'JPY')).toBeUndefined();
    expect(parseMajorAmount('1000000000', 'EUR')).toBeUndefined();
    expect(parseMajorAmount('1', 'XXX')).toBeUndefined();
  });
  it('no float rounding: 0.1 + 0.2 style values are exact', () => {
    expect(parseMajorAmount('0.29', 'EUR')).toBe(29);
    expect(parseMajorAmount('1.15', 'EUR')).toBe(115);
    expect(parseMajorAmount('4.35', 'EUR')).toBe(435);
    expect(parseMajorAmount('999999999.99', 'EUR')).toBe(99999999999);
  });
});

describe('formatMajor and minorToDtmf', () => {
  it('format', () => {
    expect(formatMajor(4990, 'EUR')).toBe('49.90');
    expect(formatMajor(5, 'EUR')).toBe('0.05');
    expect(formatMajor(0, 'EUR')).toBe('0.00');
    expect(formatMajor(500, 'JPY')).toBe('500');
    expect(formatMajor(1234, 'KWD')).toBe('1.234');
    expect(minorToDtmf(4990, 'EUR')).toBe('49*90');
    expect(minorToDtmf(500, 'JPY')).toBe('500');
  });
  it('rejects bad input', () => {
    expect(() => formatMajor(-1, 'EUR')).toThrow(RangeError);
    expect(() => formatMajor(1.5, 'EUR')).toThrow(RangeError);
    expect(() => formatMajor(1, 'XXX')).toThrow(RangeError);
  });
});

describe('round trips', () => {
  const currencies = ['EUR', 'JPY', 'KWD', 'USD', 'CLF'];
  const arb = fc.record({ cur: fc.constantFrom(...currencies), seed: fc.nat({ max: MAX_MAJOR }), frac: fc.nat({ max: 9999 }) }).map(({ cur, seed, frac }) => {
    const e = currencyExponent(cur) ?? 0;
    return { cur, minor: seed * 10 ** e + (frac % 10 ** e) };
  });
  it('minorToDtmf then parseDtmfAmount', () => {
    fc.assert(
      fc.property(arb, ({ cur, minor }) => {
        expect(parseDtmfAmount(minorToDtmf(minor, cur), cur)).toEqual({ ok: true, minor });
      }),
      { numRuns: 3000 },
    );
  });
  it('formatMajor then parseMajorAmount', () => {
    fc.assert(
      fc.property(arb, ({ cur, minor }) => {
        expect(parseMajorAmount(formatMajor(minor, cur), cur)).toBe(minor);
      }),
      { numRuns: 3000 },
    );
  });
});
