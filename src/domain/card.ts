import type { Brand } from './brand.js';
import type { SensitiveDigits } from './sensitive.js';

/**
 * Card rules: IIN table, brand detection, lengths, Luhn, security-code rule, expiry.
 * Pure functions over SensitiveDigits: digits are read one by one (digitAt/slice), never turned
 * into a string, so nothing here can leak a PAN into a log or an error.
 */

interface BrandInfo {
  brand: Brand;
  /** Valid PAN lengths, ascending. */
  lengths: readonly number[];
  /** Whether the last digit is a Luhn check digit (UnionPay does not guarantee it). */
  luhn: boolean;
  securityCodeLength: 3 | 4;
  /** The card may have no security code at all (Maestro). */
  securityCodeOptional: boolean;
}

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i <= to; i++) out.push(i);
  return out;
}

const BRAND_INFO: Readonly<Record<Brand, BrandInfo>> = {
  visa: { brand: 'visa', lengths: [13, 16, 19], luhn: true, securityCodeLength: 3, securityCodeOptional: false },
  mastercard: { brand: 'mastercard', lengths: [16], luhn: true, securityCodeLength: 3, securityCodeOptional: false },
  amex: { brand: 'amex', lengths: [15], luhn: true, securityCodeLength: 4, securityCodeOptional: false },
  discover: { brand: 'discover', lengths: range(16, 19), luhn: true, securityCodeLength: 3, securityCodeOptional: false },
  diners: { brand: 'diners', lengths: range(14, 19), luhn: true, securityCodeLength: 3, securityCodeOptional: false },
  jcb: { brand: 'jcb', lengths: range(16, 19), luhn: true, securityCodeLength: 3, securityCodeOptional: false },
  unionpay: { brand: 'unionpay', lengths: range(14, 19), luhn: false, securityCodeLength: 3, securityCodeOptional: false },
  maestro: { brand: 'maestro', lengths: range(12, 19), luhn: true, securityCodeLength: 3, securityCodeOptional: true },
  mir: { brand: 'mir', lengths: range(16, 19), luhn: true, securityCodeLength: 3, securityCodeOptional: false },
};

/** The longest PAN any brand allows (ISO/IEC 7812). */
const MAX_PAN_LENGTH = 19;
/** The shortest PAN any brand allows. */
const MIN_PAN_LENGTH = 12;

export function brandInfo(brand: Brand): BrandInfo {
  return BRAND_INFO[brand];
}

/** One IIN range: the first `digits` digits of the PAN, read as a number, in [from, to]. */
interface IinRange {
  brand: Brand;
  digits: number;
  from: number;
  to: number;
}

/**
 * The IIN table. Overlaps are resolved by specificity: the range with the
 * most prefix digits wins (622126-622925 Discover over 62 UnionPay over 6x Maestro).
 */
export const IIN_TABLE: readonly IinRange[] = [
  { brand: 'visa', digits: 1, from: 4, to: 4 },
  { brand: 'mastercard', digits: 2, from: 51, to: 55 },
  { brand: 'mastercard', digits: 6, from: 222100, to: 272099 },
  { brand: 'amex', digits: 2, from: 34, to: 34 },
  { brand: 'amex', digits: 2, from: 37, to: 37 },
  { brand: 'discover', digits: 4, from: 6011, to: 6011 },
  { brand: 'discover', digits: 3, from: 644, to: 649 },
  { brand: 'discover', digits: 2, from: 65, to: 65 },
  { brand: 'discover', digits: 6, from: 622126, to: 622925 },
  { brand: 'diners', digits: 3, from: 300, to: 305 },
  { brand: 'diners', digits: 2, from: 36, to: 36 },
  { brand: 'diners', digits: 2, from: 38, to: 39 },
  { brand: 'jcb', digits: 4, from: 3528, to: 3589 },
  { brand: 'unionpay', digits: 2, from: 62, to: 62 },
  { brand: 'unionpay', digits: 2, from: 81, to: 81 },
  { brand: 'maestro', digits: 2, from: 50, to: 50 },
  { brand: 'maestro', digits: 2, from: 56, to: 58 },
  { brand: 'maestro', digits: 1, from: 6, to: 6 },
  { brand: 'mir', digits: 4, from: 2200, to: 2204 },
];

/**
 * The brand of a (possibly partial) PAN: among the ranges whose prefix is fully typed, the most
 * specific one. Undefined while no range matches (e.g. "2221" before the sixth digit).
 */
export function detectBrand(pan: SensitiveDigits): Brand | undefined {
  let best: IinRange | undefined;
  for (const r of IIN_TABLE) {
    if (pan.length < r.digits) continue;
    const prefix = pan.slice(0, r.digits);
    if (prefix < r.from || prefix > r.to) continue;
    if (best === undefined || r.digits > best.digits) best = r;
  }
  return best?.brand;
}

/** Where digit entry may end by itself: the detected brand's longest length, 19 when unknown. */
export function maxPanLength(pan: SensitiveDigits): number {
  const brand = detectBrand(pan);
  if (brand === undefined) return MAX_PAN_LENGTH;
  const lengths = BRAND_INFO[brand].lengths;
  return lengths[lengths.length - 1] ?? MAX_PAN_LENGTH;
}

/** Luhn (mod 10) check over all digits; false for an empty value. */
export function luhnValid(pan: SensitiveDigits): boolean {
  const n = pan.length;
  if (n === 0) return false;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    let d = pan.digitAt(n - 1 - i);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

type PanCheck =
  | { ok: true; brand: Brand }
  | { ok: false; reason: 'too-short' | 'invalid' | 'unknown-brand' | 'brand-not-accepted'; brand?: Brand };

/**
 * Full PAN check, in the order a caller should hear about problems: too short, unknown brand,
 * wrong length or Luhn for the brand (Luhn skipped for UnionPay), then the profile's brands.
 */
export function validatePan(pan: SensitiveDigits, allowed: readonly Brand[]): PanCheck {
  const brand = detectBrand(pan);
  if (brand === undefined) {
    return pan.length < MIN_PAN_LENGTH ? { ok: false, reason: 'too-short' } : { ok: false, reason: 'unknown-brand' };
  }
  const info = BRAND_INFO[brand];
  const min = info.lengths[0] ?? MIN_PAN_LENGTH;
  if (pan.length < min) return { ok: false, reason: 'too-short', brand };
  if (!info.lengths.includes(pan.length)) return { ok: false, reason: 'invalid', brand };
  if (info.luhn && !luhnValid(pan)) return { ok: false, reason: 'invalid', brand };
  if (!allowed.includes(brand)) return { ok: false, reason: 'brand-not-accepted', brand };
  return { ok: true, brand };
}

/**
 * How to collect the security code. `ask` is false only when the profile defers to the brand
 * ('brand') and the brand's cards may have none (Maestro); 'required' always asks.
 */
export function securityCodeRule(brand: Brand, profileRule: 'required' | 'brand'): { length: 3 | 4; ask: boolean } {
  const info = BRAND_INFO[brand];
  return { length: info.securityCodeLength, ask: !(profileRule === 'brand' && info.securityCodeOptional) };
}

type ExpiryCheck = { ok: true; month: number; year: number } | { ok: false; reason: 'format' | 'month' | 'expired' };

/**
 * Expiry as typed (MMYY). A card is valid through the end of its expiry month, so the current
 * month is accepted. `now` is passed in: the domain has no clock.
 */
export function validateExpiry(mmyy: SensitiveDigits, now: { year: number; month: number }): ExpiryCheck {
  if (mmyy.length !== 4) return { ok: false, reason: 'format' };
  const month = mmyy.slice(0, 2);
  const year = 2000 + mmyy.slice(2, 4);
  if (month < 1 || month > 12) return { ok: false, reason: 'month' };
  if (year * 12 + month < now.year * 12 + now.month) return { ok: false, reason: 'expired' };
  return { ok: true, month, year };
}
