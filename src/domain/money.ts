/**
 * Money: amounts are integers in minor units of an ISO 4217 currency (4990 EUR = 49.90 euros).
 * Parsing and formatting use integer arithmetic on digit strings only; no float ever touches an
 * amount (0.1 + 0.2 style errors would charge the wrong sum).
 */

const EXPONENT_0 = ['BIF', 'CLP', 'DJF', 'GNF', 'ISK', 'JPY', 'KMF', 'KRW', 'PYG', 'RWF', 'UGX', 'UYI', 'VND', 'VUV', 'XAF', 'XOF', 'XPF'];
const EXPONENT_3 = ['BHD', 'IQD', 'JOD', 'KWD', 'LYD', 'OMR', 'TND'];
const EXPONENT_4 = ['CLF', 'UYW'];
const EXPONENT_2 = [
  'AED', 'AFN', 'ALL', 'AMD', 'ANG', 'AOA', 'ARS', 'AUD', 'AWG', 'AZN', 'BAM', 'BBD', 'BDT', 'BGN', 'BMD', 'BND',
  'BOB', 'BRL', 'BSD', 'BTN', 'BWP', 'BYN', 'BZD', 'CAD', 'CDF', 'CHF', 'CNY', 'COP', 'CRC', 'CUP', 'CVE', 'CZK',
  'DKK', 'DOP', 'DZD', 'EGP', 'ERN', 'ETB', 'EUR', 'FJD', 'FKP', 'GBP', 'GEL', 'GHS', 'GIP', 'GMD', 'GTQ', 'GYD',
  'HKD', 'HNL', 'HTG', 'HUF', 'IDR', 'ILS', 'INR', 'IRR', 'JMD', 'KES', 'KGS', 'KHR', 'KPW', 'KYD', 'KZT', 'LAK',
  'LBP', 'LKR', 'LRD', 'LSL', 'MAD', 'MDL', 'MGA', 'MKD', 'MMK', 'MNT', 'MOP', 'MRU', 'MUR', 'MVR', 'MWK', 'MXN',
  'MYR', 'MZN', 'NAD', 'NGN', 'NIO', 'NOK', 'NPR', 'NZD', 'PAB', 'PEN', 'PGK', 'PHP', 'PKR', 'PLN', 'QAR', 'RON',
  'RSD', 'RUB', 'SAR', 'SBD', 'SCR', 'SDG', 'SEK', 'SGD', 'SHP', 'SLE', 'SOS', 'SRD', 'SSP', 'STN', 'SVC', 'SYP',
  'SZL', 'THB', 'TJS', 'TMT', 'TOP', 'TRY', 'TTD', 'TWD', 'TZS', 'UAH', 'USD', 'UYU', 'UZS', 'VES', 'WST', 'XCD',
  'YER', 'ZAR', 'ZMW', 'ZWG',
];

const EXPONENTS: ReadonlyMap<string, number> = new Map<string, number>([
  ...EXPONENT_0.map((c) => [c, 0] as const),
  ...EXPONENT_2.map((c) => [c, 2] as const),
  ...EXPONENT_3.map((c) => [c, 3] as const),
  ...EXPONENT_4.map((c) => [c, 4] as const),
]);

/** Every currency code this module knows. */
export const CURRENCIES: readonly string[] = [...EXPONENTS.keys()].sort();

/** ISO 4217 minor-unit exponent (EUR 2, JPY 0, KWD 3); undefined for an unknown code. */
export function currencyExponent(code: string): number | undefined {
  return EXPONENTS.get(code);
}

/**
 * The largest amount, in major units, that can be entered or read back (readback says numbers up
 * to 999,999,999). Also keeps every minor amount far below Number.MAX_SAFE_INTEGER.
 */
export const MAX_MAJOR = 999_999_999;

type AmountParse = { ok: true; minor: number } | { ok: false; reason: 'empty' | 'format' | 'too-many-decimals' | 'too-large' };

const DIGITS = /^[0-9]+$/;

/** Integer part digits + fraction digits (both plain decimal strings) -> minor units. */
function toMinor(intPart: string, fracPart: string, exponent: number): AmountParse {
  if (fracPart.length > exponent) return { ok: false, reason: 'too-many-decimals' };
  const trimmed = intPart.replace(/^0+(?=.)/, '');
  if (trimmed.length > String(MAX_MAJOR).length || Number(trimmed) > MAX_MAJOR) return { ok: false, reason: 'too-large' };
  // Integer digits are concatenated, then parsed once: exact below 2^53 by construction.
  return { ok: true, minor: Number(trimmed + fracPart.padEnd(exponent, '0')) };
}

/**
 * A DTMF amount as typed, without the final '#'. '*' is the decimal point: "49*9" is 49.90,
 * "49*90" too, "49" is 49.00, "49*" is 49.00. There must be at least one integer digit.
 */
export function parseDtmfAmount(keys: string, currency: string): AmountParse {
  if (keys.length === 0) return { ok: false, reason: 'empty' };
  const exponent = currencyExponent(currency);
  if (exponent === undefined) return { ok: false, reason: 'format' };
  const parts = keys.split('*');
  if (parts.length > 2) return { ok: false, reason: 'format' };
  const intPart = parts[0] ?? '';
  const fracPart = parts[1] ?? '';
  if (!DIGITS.test(intPart) || (fracPart !== '' && !DIGITS.test(fracPart))) return { ok: false, reason: 'format' };
  return toMinor(intPart, fracPart, exponent);
}

/**
 * An amount in major units as text (the UUI `amt` field): "49.90", "49.9", "49". Only digits and
 * one '.', with digits on both sides of it; no sign, exponent, comma or spaces.
 */
export function parseMajorAmount(text: string, currency: string): number | undefined {
  const exponent = currencyExponent(currency);
  if (exponent === undefined) return undefined;
  const m = /^([0-9]+)(?:\.([0-9]+))?$/.exec(text);
  if (m === null) return undefined;
  const r = toMinor(m[1] ?? '', m[2] ?? '', exponent);
  return r.ok ? r.minor : undefined;
}

function exponentOrThrow(currency: string): number {
  const e = currencyExponent(currency);
  if (e === undefined) throw new RangeError(`unknown currency ${currency}`);
  return e;
}

/** Splits a non-negative integer amount into major and fraction digit strings. */
export function splitMinor(minor: number, currency: string): { major: number; fraction: string; exponent: number } {
  if (!Number.isSafeInteger(minor) || minor < 0) throw new RangeError('amount must be a non-negative safe integer');
  const exponent = exponentOrThrow(currency);
  const s = String(minor).padStart(exponent + 1, '0');
  return { major: Number(s.slice(0, s.length - exponent)), fraction: s.slice(s.length - exponent), exponent };
}

/** 4990 EUR -> "49.90"; 500 JPY -> "500"; 1234 KWD -> "1.234". Throws on an unknown currency. */
export function formatMajor(minor: number, currency: string): string {
  const { major, fraction, exponent } = splitMinor(minor, currency);
  return exponent === 0 ? String(major) : `${major}.${fraction}`;
}

/** The DTMF keys that enter this amount (inverse of parseDtmfAmount): 4990 EUR -> "49*90". */
export function minorToDtmf(minor: number, currency: string): string {
  const { major, fraction, exponent } = splitMinor(minor, currency);
  return exponent === 0 ? String(major) : `${major}*${fraction}`;
}
