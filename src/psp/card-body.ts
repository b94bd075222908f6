import { randomBytes } from 'node:crypto';
import type { SensitiveDigits } from '../domain/sensitive.js';

interface CardSlice {
  src: SensitiveDigits;
  start: number;
  end: number;
  /** Non-sensitive characters written before the digits ("20" before a two-digit year). */
  prefix: string;
}

const DIGIT_0 = 0x30;

/**
 * A zero-filled Buffer on its own ArrayBuffer: not allocUnsafe (a shared pool we could not zero
 * alone), and never inside the V8 heap (where the garbage collector may move it and leave the old
 * bytes behind), whatever its size.
 */
export function ownBuffer(size: number): Buffer {
  return Buffer.from(new ArrayBuffer(size));
}

/**
 * Builds a JSON request body in which card digits never become JavaScript strings (which cannot
 * be wiped): the body object carries placeholders, and `toBuffer()` copies the digits straight
 * from the SensitiveDigits buffers into the body bytes. The adapter zeroes that Buffer once the
 * send has settled, so after a charge no copy of the card is left in our memory.
 */
export class CardJsonBody {
  readonly #nonce = randomBytes(6).toString('hex');
  readonly #slices: CardSlice[] = [];

  /** A placeholder for digits [start, end) of a sensitive value, for use inside a JSON string. */
  digits(src: SensitiveDigits, start = 0, end = src.length, prefix = ''): string {
    const i = this.#slices.push({ src, start, end: Math.min(end, src.length), prefix }) - 1;
    return `~~${this.#nonce}.${i}~~`;
  }

  /** Serialises `value`, splicing the digits in place of the placeholders. Drops the card references. */
  toBuffer(value: unknown): Buffer {
    const text = JSON.stringify(value) ?? 'null';
    const re = new RegExp(`~~${this.#nonce}\\.(\\d+)~~`, 'g');
    const parts: (string | CardSlice)[] = [];
    let last = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      parts.push(text.slice(last, m.index));
      const slice = this.#slices[Number(m[1])];
      if (slice) parts.push(slice);
      last = m.index + m[0].length;
    }
    parts.push(text.slice(last));
    let size = 0;
    for (const p of parts) size += typeof p === 'string' ? Buffer.byteLength(p) : p.prefix.length + Math.max(0, p.end - p.start);
    const buf = ownBuffer(size);
    let off = 0;
    for (const p of parts) {
      if (typeof p === 'string') {
        off += buf.write(p, off, 'utf8');
        continue;
      }
      off += buf.write(p.prefix, off, 'latin1');
      for (let i = p.start; i < p.end; i++) buf[off++] = DIGIT_0 + p.src.digitAt(i);
    }
    this.#slices.length = 0;
    return buf;
  }
}

/** Card digits [start, end) of a sensitive value, for a form field. */
interface CardDigitsRef {
  src: SensitiveDigits;
  start?: number;
  end?: number;
  /** Non-sensitive characters written before the digits ("20" before a two-digit year). */
  prefix?: string;
}

export type FormField = readonly [key: string, value: string | CardDigitsRef];

/** application/x-www-form-urlencoded escaping as Stripe's SDK does it (RFC 3986; brackets kept in keys). */
function formEscape(s: string, key: boolean): string {
  const e = encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return key ? e.replace(/%5B/g, '[').replace(/%5D/g, ']') : e;
}

/**
 * A form-encoded request body (Stripe's wire format) in which the card digits never become
 * JavaScript strings: they are copied from the SensitiveDigits buffers straight into the body
 * bytes. The caller zeroes the Buffer once the send has settled.
 */
export function cardFormBody(fields: readonly FormField[]): Buffer {
  const parts: (string | CardDigitsRef)[] = [];
  fields.forEach(([k, v], i) => {
    parts.push(`${i > 0 ? '&' : ''}${formEscape(k, true)}=`);
    parts.push(typeof v === 'string' ? formEscape(v, false) : v);
  });
  const span = (r: CardDigitsRef): [number, number] => [r.start ?? 0, Math.min(r.end ?? r.src.length, r.src.length)];
  let size = 0;
  for (const p of parts) {
    if (typeof p === 'string') size += Buffer.byteLength(p);
    else {
      const [a, b] = span(p);
      size += formEscape(p.prefix ?? '', false).length + Math.max(0, b - a);
    }
  }
  const buf = ownBuffer(size);
  let off = 0;
  for (const p of parts) {
    if (typeof p === 'string') {
      off += buf.write(p, off, 'latin1');
      continue;
    }
    off += buf.write(formEscape(p.prefix ?? '', false), off, 'latin1');
    const [a, b] = span(p);
    for (let i = a; i < b; i++) buf[off++] = DIGIT_0 + p.src.digitAt(i);
  }
  return buf;
}
