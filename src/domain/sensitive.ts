
const REDACTED = '[redacted]';
const DIGIT_0 = 0x30;

/**
 * Card data (PAN, expiry, security code) as DTMF digits in a zeroable Buffer.
 *
 * Why not a string: JS strings are immutable and cannot be wiped. Every way this value could be
 * turned into text by accident (template strings, JSON, util.inspect, pino) yields "[redacted]".
 * The only way to read the digits is `reveal()`, called where a PSP request body is built.
 */
export class SensitiveDigits {
  #buf: Buffer;
  #len = 0;
  #wiped = false;

  constructor(capacity = 19) {
    // Its own ArrayBuffer: not allocUnsafe (a shared pool we could not zero alone), and not
    // Buffer.alloc either, which keeps arrays this small inside the V8 heap, where the garbage
    // collector moves them and leaves the old copy of the digits behind in freed memory.
    this.#buf = Buffer.from(new ArrayBuffer(capacity));
  }

  static from(digits: string): SensitiveDigits {
    const s = new SensitiveDigits(Math.max(1, digits.length));
    for (const d of digits) s.push(d);
    return s;
  }

  get length(): number {
    return this.#len;
  }

  get wiped(): boolean {
    return this.#wiped;
  }

  /** Appends one decimal digit; returns false (and stores nothing) when full or not a digit. */
  push(d: string): boolean {
    if (this.#wiped || this.#len >= this.#buf.length) return false;
    const c = d.charCodeAt(0);
    if (d.length !== 1 || c < DIGIT_0 || c > DIGIT_0 + 9) return false;
    this.#buf[this.#len++] = c;
    return true;
  }

  /** Digit value (0-9) at index i. */
  digitAt(i: number): number {
    if (i < 0 || i >= this.#len) throw new RangeError('index out of range');
    return (this.#buf[i] as number) - DIGIT_0;
  }

  /** Numeric value of digits [start, end): for IIN prefixes and MM/YY, never for the whole PAN. */
  slice(start: number, end: number): number {
    let v = 0;
    for (let i = start; i < Math.min(end, this.#len); i++) v = v * 10 + this.digitAt(i);
    return v;
  }

  /** The last n digits as text: the only part of a PAN that may be shown (masked PAN). */
  lastDigits(n = 4): string {
    let s = '';
    for (let i = Math.max(0, this.#len - n); i < this.#len; i++) s += String.fromCharCode(this.#buf[i] as number);
    return s;
  }

  /** Drops all digits (field restart) by zeroing them. */
  clear(): void {
    this.#buf.fill(0);
    this.#len = 0;
  }

  /** Zeroes the memory for good; the value is unusable afterwards. Idempotent. */
  wipe(): void {
    this.#buf.fill(0);
    this.#len = 0;
    this.#wiped = true;
  }

  /** A copy (for handing to the PSP layer, which wipes its own copy). */
  clone(): SensitiveDigits {
    const c = new SensitiveDigits(this.#buf.length);
    for (let i = 0; i < this.#len; i++) c.#buf[i] = this.#buf[i] as number;
    c.#len = this.#len;
    return c;
  }

  /** The digits as a string, for building a PSP request body only. */
  reveal(): string {
    if (this.#wiped) throw new Error('sensitive value already wiped');
    return this.#buf.toString('latin1', 0, this.#len);
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  // Symbol.for keeps the domain free of node:util; it is the symbol util.inspect looks for.
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return REDACTED;
  }
}

/** Card data for one charge attempt. */
export interface CardData {
  readonly pan: SensitiveDigits;
  /** MMYY */
  readonly expiry: SensitiveDigits;
  /** Absent where the brand/profile allows no security code. */
  readonly securityCode: SensitiveDigits | undefined;
}

export function wipeCard(card: CardData): void {
  card.pan.wipe();
  card.expiry.wipe();
  card.securityCode?.wipe();
}
