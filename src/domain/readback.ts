import { splitMinor } from './money.js';
import { CURRENCY_WORDS, NAMED_CURRENCIES, type Gender, type Language, type NamedCurrency } from './prompts/fragments.js';
import type { SensitiveDigits } from './sensitive.js';

/**
 * Readback: numbers, amounts, dates, digits and references as lists of prompt fragment ids (see
 * src/domain/prompts/fragments.ts for the inventory). Pure; the ids are played in order.
 * PCI: a readback of card data spells that data; such lists must never be logged, and errors
 * thrown here never include the input.
 */

export type { Language } from './prompts/fragments.js';

/** Largest number readNumber can say. */
export const MAX_READ_NUMBER = 999_999_999;

function checkNumber(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0 || n > MAX_READ_NUMBER) throw new RangeError('number out of readback range');
}

function enBelow1000(g: number): string[] {
  const out: string[] = [];
  const h = Math.floor(g / 100);
  const r = g % 100;
  if (h > 0) out.push(`h-${h}`);
  if (r > 0) out.push(`n-${r}`);
  return out;
}

function readEnglish(n: number): string[] {
  if (n === 0) return ['n-0'];
  const millions = Math.floor(n / 1_000_000);
  const thousands = Math.floor(n / 1000) % 1000;
  const units = n % 1000;
  const out: string[] = [];
  if (millions > 0) out.push(...enBelow1000(millions), 'mult-million');
  if (thousands > 0) out.push(...enBelow1000(thousands), 'mult-thousand');
  if (units > 0) out.push(...enBelow1000(units));
  return out;
}

const FR_FEMININE_IDS: ReadonlySet<number> = new Set([1, 21, 31, 41, 51, 61, 81]);

/**
 * A French group 1..999. `beforeMille`: followed by "mille", which never takes the plural, so
 * "deux cent mille", "quatre-vingt mille"; at the end or before "millions" (a noun) they keep
 * their s: "deux cents", "quatre-vingts millions".
 */
function frBelow1000(g: number, beforeMille: boolean, gender: Gender): string[] {
  const out: string[] = [];
  const h = Math.floor(g / 100);
  const r = g % 100;
  if (h === 1) out.push('h-1');
  else if (h > 1) out.push(r === 0 && !beforeMille ? `h-${h}` : `h-${h}b`);
  if (r === 80 && beforeMille) out.push('n-80b');
  else if (r > 0) out.push(gender === 'f' && FR_FEMININE_IDS.has(r) ? `n-${r}f` : `n-${r}`);
  return out;
}

function readFrench(n: number, gender: Gender): string[] {
  if (n === 0) return ['n-0'];
  const millions = Math.floor(n / 1_000_000);
  const thousands = Math.floor(n / 1000) % 1000;
  const units = n % 1000;
  const out: string[] = [];
  // "un million", "deux millions": the count before million(s) is masculine.
  if (millions === 1) out.push('n-1', 'mult-million');
  else if (millions > 1) out.push(...frBelow1000(millions, false, 'm'), 'mult-millions');
  // "mille", never "un mille"; "vingt et un mille".
  if (thousands === 1) out.push('mult-mille');
  else if (thousands > 1) out.push(...frBelow1000(thousands, true, 'm'), 'mult-mille');
  if (units > 0) out.push(...frBelow1000(units, false, gender));
  return out;
}

/**
 * A whole number 0 .. 999,999,999 as words. `gender` matters in French only: the feminine form
 * of a final "un" ("vingt et une livres").
 */
export function readNumber(lang: Language, n: number, gender: Gender = 'm'): string[] {
  checkNumber(n);
  return lang === 'en-US' ? readEnglish(n) : readFrench(n, gender);
}

function isNamed(currency: string): currency is NamedCurrency {
  return (NAMED_CURRENCIES as readonly string[]).includes(currency);
}

/** "forty-nine euros and ninety cents", "quarante-neuf euros quatre-vingt-dix", "fifty cents". */
function readNamedAmount(lang: Language, major: number, fraction: number, code: NamedCurrency): string[] {
  const w = CURRENCY_WORDS[lang][code];
  const k = code.toLowerCase();
  const fr = lang === 'fr-FR';
  const unit = (n: number): string => {
    if (n === 1 || (fr && n === 0)) return `cur-${k}-1`;
    if (fr && w.de !== undefined && n % 1_000_000 === 0) return `cur-${k}-de`;
    return `cur-${k}-n`;
  };
  const sub = w.sub;
  if (sub === undefined || fraction === 0) return [...readNumber(lang, major, w.gender), unit(major)];
  const subUnit = fraction === 1 || (fr && fraction === 0) ? `cur-${k}-sub-1` : `cur-${k}-sub-n`;
  if (major === 0) return [...readNumber(lang, fraction, sub.gender), subUnit];
  const head = [...readNumber(lang, major, w.gender), unit(major)];
  // French says the cents as a bare number after the unit ("dix euros cinquante").
  if (fr) return [...head, ...readNumber(lang, fraction, sub.gender)];
  return [...head, 'w-and', ...readNumber(lang, fraction), subUnit];
}

/**
 * An amount in minor units. EUR, USD, GBP and JPY have unit words; any other ISO 4217 currency is
 * read as number, "point" and the fraction's digits, then the code letter by letter
 * ("twelve point three four five K W D"). Throws RangeError for an unknown currency.
 */
export function readAmount(lang: Language, minor: number, currency: string): string[] {
  const { major, fraction, exponent } = splitMinor(minor, currency);
  checkNumber(major);
  if (isNamed(currency)) return readNamedAmount(lang, major, exponent === 0 ? 0 : Number(fraction), currency);
  const out = readNumber(lang, major);
  if (exponent > 0 && /[1-9]/.test(fraction)) out.push('w-point', ...readDigits(lang, fraction));
  for (const c of currency) out.push(letterId(c));
  return out;
}

function letterId(c: string): string {
  return `l-${c.toLowerCase()}`;
}

/** One DTMF key or digit; throws (without saying which character) for anything else. */
function keyId(c: string): string {
  if (c >= '0' && c <= '9') return `n-${c}`;
  if (c === '*') return 'key-star';
  if (c === '#') return 'key-hash';
  if (c >= 'A' && c <= 'D') return letterId(c);
  throw new RangeError('not a DTMF key');
}

/** Digit by digit: '0'..'9', '*', '#' (and the DTMF keys A-D). */
export function readDigits(_lang: Language, digits: string): string[] {
  const out: string[] = [];
  for (const c of digits) out.push(keyId(c));
  return out;
}

/** Card digits one by one, read straight from the buffer (no string of the digits is made). */
export function readSensitiveDigits(_lang: Language, digits: SensitiveDigits): string[] {
  const out: string[] = [];
  for (let i = 0; i < digits.length; i++) out.push(`n-${digits.digitAt(i)}`);
  return out;
}

/** "December two thousand twenty-seven" / "décembre deux mille vingt-sept". */
export function readExpiry(lang: Language, month: number, year: number): string[] {
  if (!Number.isInteger(month) || month < 1 || month > 12) throw new RangeError('month out of range');
  return [`month-${month}`, ...readNumber(lang, year)];
}

const SYMBOLS: Readonly<Record<string, string>> = { '-': 'sym-dash', '/': 'sym-slash', '.': 'sym-dot', _: 'sym-underscore' };

/**
 * A payment reference, character by character: letters (any case) A-Z, digits, '-', '/', '.',
 * '_'. Anything else (spaces, accents) is skipped: a reference comes from outside.
 */
export function readReference(_lang: Language, ref: string): string[] {
  const out: string[] = [];
  for (const ch of ref) {
    const c = ch.toUpperCase();
    if (c >= 'A' && c <= 'Z' && c.length === 1) out.push(letterId(c));
    else if (c >= '0' && c <= '9') out.push(`n-${c}`);
    else {
      const s = SYMBOLS[c];
      if (s !== undefined) out.push(s);
    }
  }
  return out;
}
