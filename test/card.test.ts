import { describe, expect, it } from 'vitest';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { BRANDS, type Brand } from '../src/domain/brand.js';
import {
  IIN_TABLE,
  brandInfo,
  detectBrand,
  luhnValid,
  maxPanLength,
  securityCodeRule,
  validateExpiry,
  validatePan,
} from '../src/domain/card.js';
import { SensitiveDigits } from '../src/domain/sensitive.js';

const d = (s: string): SensitiveDigits => SensitiveDigits.from(s);
const ALL: readonly Brand[] = BRANDS;

/** Appends the Luhn check digit to a body (independent implementation for the tests). */
function withCheckDigit(body: string): string {
  let sum = 0;
  for (let i = 0; i < body.length; i++) {
    let v = Number(body[body.length - 1 - i]);
    if (i % 2 === 0) {
      v *= 2;
      if (v > 9) v -= 9;
    }
    sum += v;
  }
  return body + String((10 - (sum % 10)) % 10);
}

/** Pads a prefix to `len` digits (zeros), with a valid Luhn check digit. */
function panOf(prefix: string, len: number): string {
  return withCheckDigit(prefix.padEnd(len - 1, '0'));
}

describe('Stripe test cards', () => {
  const cards: [string, Brand][] = [
    ['4242424242424242', 'visa'],
    ['4000056655665556', 'visa'],
    ['5555555555554444', 'mastercard'],
    ['2223003122003222', 'mastercard'],
    ['5200828282828210', 'mastercard'],
    ['5105105105105100', 'mastercard'],
    ['378282246310005', 'amex'],
    ['371449635398431', 'amex'],
    ['6011111111111117', 'discover'],
    ['6011000990139424', 'discover'],
    ['6011981111111113', 'discover'],
    ['3056930009020004', 'diners'],
    ['36227206271667', 'diners'],
    ['3566002020360505', 'jcb'],
    ['6200000000000005', 'unionpay'],
    ['6200000000000047', 'unionpay'],
    ['6205500000000000004', 'unionpay'],
  ];
  it.each(cards)('%s is %s and valid', (pan, brand) => {
    expect(detectBrand(d(pan))).toBe(brand);
    expect(validatePan(d(pan), ALL)).toEqual({ ok: true, brand });
    expect(maxPanLength(d(pan))).toBe(Math.max(...brandInfo(brand).lengths));
  });
  it('the decline test cards of the sandbox are Luhn-valid Visa', () => {
    for (const pan of ['4000000000000002', '4000000000009995', '4000000000000127', '4000000000000069', '4000000000000119', '4000000000009987', '4000000000009979']) {
      expect(validatePan(d(pan), ['visa'])).toEqual({ ok: true, brand: 'visa' });
    }
  });
});

describe('detectBrand: ranges and edges', () => {
  const cases: [string, Brand | undefined][] = [
    ['4', 'visa'],
    ['50', 'maestro'],
    ['51', 'mastercard'],
    ['55', 'mastercard'],
    ['56', 'maestro'],
    ['58', 'maestro'],
    ['59', undefined],
    ['222099', undefined],
    ['222100', 'mastercard'],
    ['272099', 'mastercard'],
    ['272100', undefined],
    ['2221', undefined], // not enough digits yet for the 2-series
    ['2199', undefined],
    ['2200', 'mir'],
    ['2204', 'mir'],
    ['2205', undefined],
    ['34', 'amex'],
    ['35', undefined],
    ['37', 'amex'],
    ['300', 'diners'],
    ['305', 'diners'],
    ['306', undefined],
    ['309', undefined],
    ['36', 'diners'],
    ['38', 'diners'],
    ['39', 'diners'],
    ['3527', undefined],
    ['3528', 'jcb'],
    ['3589', 'jcb'],
    ['3590', undefined],
    ['6011', 'discover'],
    ['6010', 'maestro'],
    ['6012', 'maestro'],
    ['643', 'maestro'],
    ['644', 'discover'],
    ['649', 'discover'],
    ['65', 'discover'],
    ['62', 'unionpay'],
    ['622125', 'unionpay'],
    ['622126', 'discover'],
    ['622925', 'discover'],
    ['622926', 'unionpay'],
    ['81', 'unionpay'],
    ['80', undefined],
    ['6', 'maestro'],
    ['63', 'maestro'],
    ['67', 'maestro'],
    ['69', 'maestro'],
    ['1', undefined],
    ['7', undefined],
    ['9', undefined],
    ['', undefined],
  ];
  it.each(cases)('%s -> %s', (prefix, brand) => {
    expect(detectBrand(d(prefix))).toBe(brand);
  });
  it('a partial PAN keeps the max length of what it may become', () => {
    expect(maxPanLength(d('37'))).toBe(15);
    expect(maxPanLength(d('51'))).toBe(16);
    expect(maxPanLength(d('2221'))).toBe(19);
    expect(maxPanLength(d('222100'))).toBe(16);
    expect(maxPanLength(d(''))).toBe(19);
    expect(maxPanLength(d('4'))).toBe(19);
  });
});

describe('brand lengths', () => {
  const cases: [Brand, string, number[]][] = [
    ['visa', '4', [13, 16, 19]],
    ['mastercard', '51', [16]],
    ['mastercard', '2221', [16]],
    ['amex', '34', [15]],
    ['discover', '6011', [16, 17, 18, 19]],
    ['diners', '36', [14, 15, 16, 17, 18, 19]],
    ['jcb', '3528', [16, 17, 18, 19]],
    ['unionpay', '62', [14, 15, 16, 17, 18, 19]],
    ['maestro', '50', [12, 13, 14, 15, 16, 17, 18, 19]],
    ['mir', '2200', [16, 17, 18, 19]],
  ];
  it.each(cases)('%s (%s) accepts exactly %j', (brand, prefix, lengths) => {
    const p = brand === 'mastercard' && prefix === '2221' ? '222100' : prefix;
    for (let len = 10; len <= 19; len++) {
      const r = validatePan(d(panOf(p, len)), ALL);
      if (lengths.includes(len)) expect(r).toEqual({ ok: true, brand });
      else expect(r.ok).toBe(false);
    }
    expect(brandInfo(brand).lengths).toEqual(lengths);
  });
});

describe('validatePan reasons', () => {
  it('too short', () => {
    expect(validatePan(d('4242'), ALL)).toEqual({ ok: false, reason: 'too-short', brand: 'visa' });
    expect(validatePan(d('12'), ALL)).toEqual({ ok: false, reason: 'too-short' });
    expect(validatePan(d(''), ALL)).toEqual({ ok: false, reason: 'too-short' });
    expect(validatePan(d(panOf('37', 14)), ALL)).toEqual({ ok: false, reason: 'too-short', brand: 'amex' });
  });
  it('unknown brand', () => {
    expect(validatePan(d(panOf('9', 16)), ALL)).toEqual({ ok: false, reason: 'unknown-brand' });
  });
  it('invalid length for the brand', () => {
    expect(validatePan(d(panOf('4', 14)), ALL)).toEqual({ ok: false, reason: 'invalid', brand: 'visa' });
    expect(validatePan(d(panOf('51', 17)), ALL)).toEqual({ ok: false, reason: 'invalid', brand: 'mastercard' });
  });
  it('Luhn failure, except for UnionPay', () => {
    expect(validatePan(d('4242424242424241'), ALL)).toEqual({ ok: false, reason: 'invalid', brand: 'visa' });
    expect(validatePan(d('6200000000000001'), ALL)).toEqual({ ok: true, brand: 'unionpay' });
  });
  it('brand not accepted', () => {
    expect(validatePan(d('378282246310005'), ['visa', 'mastercard'])).toEqual({
      ok: false,
      reason: 'brand-not-accepted',
      brand: 'amex',
    });
  });
});

describe('luhnValid', () => {
  it('known values', () => {
    expect(luhnValid(d('79927398713'))).toBe(true);
    expect(luhnValid(d('79927398710'))).toBe(false);
    expect(luhnValid(d('0'))).toBe(true);
    expect(luhnValid(d(''))).toBe(false);
  });
  it('any single-digit change breaks it', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 11, maxLength: 18 }), fc.nat(), fc.integer({ min: 1, max: 9 }), (body, pos, delta) => {
        const pan = withCheckDigit(body);
        expect(luhnValid(d(pan))).toBe(true);
        const i = pos % pan.length;
        const changed = pan.slice(0, i) + String((Number(pan[i]) + delta) % 10) + pan.slice(i + 1);
        expect(luhnValid(d(changed))).toBe(false);
      }),
    );
  });
});

describe('property: a valid PAN of each brand', () => {
  const arbPan = fc
    .constantFrom(...IIN_TABLE)
    .chain((r) =>
      fc.record({
        r: fc.constant(r),
        prefix: fc.integer({ min: r.from, max: r.to }),
        len: fc.constantFrom(...brandInfo(r.brand).lengths),
        body: fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 19, maxLength: 19 }),
      }),
    )
    .map(({ r, prefix, len, body }) => ({ r, pan: withCheckDigit((String(prefix).padStart(r.digits, '0') + body).slice(0, len - 1)) }))
    // A less specific range (62 UnionPay, 6x Maestro) can generate a more specific brand's prefix.
    .filter(({ r, pan }) => !IIN_TABLE.some((o) => o.digits > r.digits && Number(pan.slice(0, o.digits)) >= o.from && Number(pan.slice(0, o.digits)) <= o.to));

  it('is detected as that brand and passes validatePan', () => {
    fc.assert(
      fc.property(arbPan, ({ r, pan }) => {
        expect(detectBrand(d(pan))).toBe(r.brand);
        expect(validatePan(d(pan), ALL)).toEqual({ ok: true, brand: r.brand });
        expect(validatePan(d(pan), ALL.filter((b) => b !== r.brand))).toEqual({ ok: false, reason: 'brand-not-accepted', brand: r.brand });
      }),
      { numRuns: 2000 },
    );
  });
});

describe('securityCodeRule', () => {
  it('Amex has 4 digits, the others 3', () => {
    for (const b of BRANDS) expect(securityCodeRule(b, 'required').length).toBe(b === 'amex' ? 4 : 3);
  });
  it('asks always when required, and skips only Maestro when deferring to the brand', () => {
    for (const b of BRANDS) {
      expect(securityCodeRule(b, 'required').ask).toBe(true);
      expect(securityCodeRule(b, 'brand').ask).toBe(b !== 'maestro');
    }
  });
});

describe('validateExpiry', () => {
  const now = { year: 2026, month: 5 };
  it('current month is ok, previous month expired', () => {
    expect(validateExpiry(d('0526'), now)).toEqual({ ok: true, month: 5, year: 2026 });
    expect(validateExpiry(d('0426'), now)).toEqual({ ok: false, reason: 'expired' });
    expect(validateExpiry(d('1225'), now)).toEqual({ ok: false, reason: 'expired' });
    expect(validateExpiry(d('0127'), now)).toEqual({ ok: true, month: 1, year: 2027 });
  });
  it('month 00 and 13 are invalid', () => {
    expect(validateExpiry(d('0030'), now)).toEqual({ ok: false, reason: 'month' });
    expect(validateExpiry(d('1330'), now)).toEqual({ ok: false, reason: 'month' });
    expect(validateExpiry(d('1230'), now)).toEqual({ ok: true, month: 12, year: 2030 });
  });
  it('year rollover: in December, January of next year is ok and December still ok', () => {
    const dec = { year: 2026, month: 12 };
    expect(validateExpiry(d('1226'), dec)).toEqual({ ok: true, month: 12, year: 2026 });
    expect(validateExpiry(d('1126'), dec)).toEqual({ ok: false, reason: 'expired' });
    expect(validateExpiry(d('0127'), dec)).toEqual({ ok: true, month: 1, year: 2027 });
    const jan = { year: 2027, month: 1 };
    expect(validateExpiry(d('1226'), jan)).toEqual({ ok: false, reason: 'expired' });
    expect(validateExpiry(d('0127'), jan)).toEqual({ ok: true, month: 1, year: 2027 });
  });
  it('needs exactly 4 digits', () => {
    expect(validateExpiry(d('526'), now)).toEqual({ ok: false, reason: 'format' });
    expect(validateExpiry(d('05267'), now)).toEqual({ ok: false, reason: 'format' });
    expect(validateExpiry(d(''), now)).toEqual({ ok: false, reason: 'format' });
  });
});

describe('PCI: nothing the card rules return carries card digits', () => {
  it('results of every check, for every Stripe card, hold no digit run of the PAN', () => {
    const pans = ['4242424242424242', '5555555555554444', '378282246310005', '6011111111111117', '3056930009020004', '3566002020360505', '6200000000000005', '4242424242424241', '12345678'];
    const now = { year: 2026, month: 5 };
    for (const pan of pans) {
      const v = d(pan);
      const out = JSON.stringify([validatePan(v, ALL), validatePan(v, []), detectBrand(v), maxPanLength(v), luhnValid(v), validateExpiry(v, now), String(v), `${v.toString()}`]);
      for (let i = 0; i + 6 <= pan.length; i++) expect(out).not.toContain(pan.slice(i, i + 6));
    }
  });
});

describe('SensitiveDigits as text', () => {
  it('util.inspect, console-style formatting, template strings and JSON all give [redacted]', () => {
    const v = d('4242424242424242');
    expect(inspect(v)).toBe('[redacted]');
    expect(inspect({ card: v }, { depth: 5 })).not.toContain('4242');
    expect(`${v.toString()}`).toBe('[redacted]');
    expect(JSON.stringify({ pan: v })).toBe('{"pan":"[redacted]"}');
  });
});
