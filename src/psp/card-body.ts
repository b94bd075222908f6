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
    // Buffer.alloc, not allocUnsafe: a pooled buffer shares memory we could not zero alone.
    const buf = Buffer.alloc(size);
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
