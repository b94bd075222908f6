/**
 * Makes a PSP request or error body safe to log. PSPs do not echo card numbers, but a gateway we
 * do not control (generic REST) might, and a log line is forever: drop every value whose key names
 * card data or a secret, blank every digit run that could be a PAN, then truncate.
 */

const REDACTED = '[redacted]';
/** Keys (compared lower case, without `_`/`-`) whose values are card data or secrets. */
const SENSITIVE_KEYS = new Set([
  'pan',
  'number',
  'cardnumber',
  'accountnumber',
  'cvc',
  'cvv',
  'cvc2',
  'cvv2',
  'cid',
  'securitycode',
  'expiry',
  'expirydate',
  'expirymonth',
  'expiryyear',
  'expmonth',
  'expyear',
  'expirationdate',
  'expirationmonth',
  'expirationyear',
  'holdername',
  'track1',
  'track2',
  'encryptedcardnumber',
  'encryptedsecuritycode',
  'encryptedexpirymonth',
  'encryptedexpiryyear',
  'authorization',
  'apikey',
  'xapikey',
  'secret',
  'clientsecret',
  'password',
  'token',
]);

/** 13-19 digits, possibly grouped by single spaces or dashes: anything that could be a PAN. */
const PAN_LIKE = /\d(?:[ -]?\d){12,18}/g;
const API_KEY_LIKE = /\b(?:sk|rk|pk)_(?:test|live)_[A-Za-z0-9]+|\bBearer\s+\S+/g;

function isSensitiveKey(key: string): boolean {
  return SENSITIVE_KEYS.has(key.toLowerCase().replace(/[_-]/g, ''));
}

/** Blanks PAN-like digit runs and API-key-like tokens in free text. */
export function scrubText(s: string): string {
  return s.replace(PAN_LIKE, REDACTED).replace(API_KEY_LIKE, REDACTED);
}

/** Whether text holds a digit run that could be a PAN (used to refuse such metadata). */
export function hasPanLikeDigits(s: string): boolean {
  PAN_LIKE.lastIndex = 0;
  const hit = PAN_LIKE.test(s);
  PAN_LIKE.lastIndex = 0;
  return hit;
}

function scrubValue(v: unknown, depth: number): unknown {
  if (typeof v === 'string') return scrubText(v);
  if (typeof v === 'number') return Number.isInteger(v) && Math.abs(v) >= 1e12 ? REDACTED : v;
  if (v === null || typeof v !== 'object') return v;
  if (depth > 8) return '[depth]';
  if (Array.isArray(v)) return v.slice(0, 20).map((x) => scrubValue(x, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = isSensitiveKey(k) ? REDACTED : scrubValue(x, depth + 1);
  return out;
}

/**
 * A loggable rendering of a PSP body (object or raw text), at most `maxChars` characters.
 * JSON text is parsed so keys can be judged; other text is scrubbed as is.
 */
export function sanitizePspBody(body: unknown, maxChars = 600): string {
  let value: unknown = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body) as unknown;
    } catch {
      value = undefined;
    }
    if (value === undefined || typeof value !== 'object') return truncate(scrubText(body), maxChars);
  }
  let text: string;
  try {
    text = JSON.stringify(scrubValue(value, 0)) ?? '';
  } catch {
    text = '[unserialisable]';
  }
  // A second pass over the serialised text catches digit runs split across keys we kept.
  return truncate(scrubText(text), maxChars);
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max)}…(${s.length - max} more)`;
}
