import { SensitiveDigits } from '../../domain/sensitive.js';
import { ownBuffer } from '../card-body.js';

/**
 * The sandbox often runs inside the pay-ivr process (`psp: { type: sandbox }` without a URL), so
 * its request parsing must not leave card numbers behind either: parsing a body into JS strings
 * would (strings cannot be wiped, and freed heap memory keeps their bytes). The card fields are
 * therefore taken out of the raw body Buffer first, straight into SensitiveDigits; only the rest
 * of the body becomes text. The caller wipes the digits (wipeTaken) when the request is handled.
 */

/** A card field as found: its digits, or `invalid` when present but not plain ASCII digits. */
export type TakenField = SensitiveDigits | 'invalid';

interface TakenBody {
  /** The body without the card values (form: pairs removed; JSON: digits masked as 'X'). */
  text: string;
  fields: Map<string, TakenField>;
}

const AMP = 0x26;
const EQ = 0x3d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const DIGIT_0 = 0x30;

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= DIGIT_0 && c <= DIGIT_0 + 9;
}

function digitsOf(buf: Buffer, start: number, end: number): TakenField {
  if (end - start < 1 || end - start > 32) return 'invalid';
  const d = new SensitiveDigits(end - start);
  for (let i = start; i < end; i++) {
    if (!isDigit(buf[i])) {
      d.wipe();
      return 'invalid';
    }
    d.push(String.fromCharCode(buf[i] as number));
  }
  return d;
}

function decodeKey(raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return raw;
  }
}

/**
 * A form body (`a=1&b[c]=2`): the pairs whose decoded key is in `keys` are taken out; the other
 * pairs are returned as text for parseForm.
 */
export function takeFormCardFields(body: Buffer, keys: ReadonlySet<string>): TakenBody {
  const fields = new Map<string, TakenField>();
  const kept: string[] = [];
  let start = 0;
  while (start <= body.length) {
    let end = body.indexOf(AMP, start);
    if (end < 0) end = body.length;
    const eq = body.indexOf(EQ, start);
    const keyEnd = eq >= 0 && eq < end ? eq : end;
    const key = decodeKey(body.toString('latin1', start, keyEnd));
    if (keys.has(key)) {
      const prev = fields.get(key);
      if (prev instanceof SensitiveDigits) prev.wipe();
      fields.set(key, keyEnd < end ? digitsOf(body, keyEnd + 1, end) : 'invalid');
    } else if (end > start) {
      kept.push(body.toString('latin1', start, end));
    }
    start = end + 1;
  }
  return { text: kept.join('&'), fields };
}

/**
 * A JSON body: every string member named one of `keys` whose value is plain digits is copied into
 * SensitiveDigits, and masked with 'X' in the text returned for JSON.parse (same length, so the
 * JSON stays valid). A member with other content is reported `invalid` and masked too.
 */
export function takeJsonCardFields(body: Buffer, keys: ReadonlySet<string>): TakenBody {
  const fields = new Map<string, TakenField>();
  const copy = ownBuffer(body.length);
  body.copy(copy);
  try {
    for (const key of keys) {
      const needle = Buffer.from(`"${key}"`, 'latin1');
      for (let at = copy.indexOf(needle); at >= 0; at = copy.indexOf(needle, at + needle.length)) {
        let i = at + needle.length;
        while (copy[i] === 0x20 || copy[i] === 0x09 || copy[i] === 0x0a || copy[i] === 0x0d) i++;
        if (copy[i] !== 0x3a) continue; // not a member name
        i++;
        while (copy[i] === 0x20 || copy[i] === 0x09 || copy[i] === 0x0a || copy[i] === 0x0d) i++;
        if (copy[i] !== QUOTE) continue; // a number or object: not ours to mask
        const vStart = i + 1;
        let vEnd = vStart;
        while (vEnd < copy.length && copy[vEnd] !== QUOTE) vEnd += copy[vEnd] === BACKSLASH ? 2 : 1;
        const prev = fields.get(key);
        if (prev === undefined) fields.set(key, digitsOf(copy, vStart, Math.min(vEnd, copy.length)));
        copy.fill(0x58, vStart, Math.min(vEnd, copy.length)); // 'X'
      }
    }
    return { text: copy.toString('utf8'), fields };
  } finally {
    copy.fill(0);
  }
}

/** Wipes every taken card field. */
export function wipeTaken(t: TakenBody): void {
  for (const v of t.fields.values()) if (v instanceof SensitiveDigits) v.wipe();
}

/** The numeric value of a short field (month, year), or NaN. */
export function fieldNumber(f: TakenField | undefined): number {
  return f instanceof SensitiveDigits && f.length > 0 ? f.slice(0, f.length) : NaN;
}
