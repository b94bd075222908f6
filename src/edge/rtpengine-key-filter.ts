import type { DtmfDigit } from '../domain/dtmf.js';

/**
 * Decides, for one leg of one call, which DTMF events rtpengine reported become key presses.
 *
 * - Rate: a token bucket (`perSecond` tokens a second, as many in a burst). Whoever can make
 *   rtpengine report events (a caller mashing keys, a flood of RFC 4733 packets) gets at most
 *   that many through; the rest are dropped and counted, and nothing grows with them.
 * - Echo: while the leg's keys are blocked with in-band detection on (`detect DTMF`), rtpengine
 *   10.5 turns each RFC 4733 event into PCM (to replace it) and its tone detector then reports
 *   the same key a second time, 60-80 ms after the first (measured). While `blocked`, the first
 *   event of the same key within `echoWindowMs` (150 ms) after a reported one is taken for that
 *   echo and dropped. A person pressing one key twice needs a tone and a pause (about 100 ms
 *   each on a phone keypad), so a real repeat comes later; a dialler sending keys faster than
 *   that could lose a repeated key.
 *
 * Pure: the caller passes the time.
 */
export interface KeyFilterOptions {
  perSecond: number;
  echoWindowMs?: number;
}

export type KeyVerdict = 'key' | 'rate-limited' | 'echo';

export const DEFAULT_ECHO_WINDOW_MS = 150;

export class KeyFilter {
  readonly #perSecond: number;
  readonly #echoWindowMs: number;
  #tokens: number;
  #refilledAt: number | undefined;
  #last: { digit: DtmfDigit; at: number; echoExpected: boolean } | undefined;
  /** Set while the leg's keys are blocked (in-band detection on, so echoes happen). */
  blocked = false;
  /** When the last event of the leg was judged, whatever the verdict (undefined: none yet). */
  lastEventAt: number | undefined;

  constructor(opts: KeyFilterOptions) {
    this.#perSecond = opts.perSecond;
    this.#echoWindowMs = opts.echoWindowMs ?? DEFAULT_ECHO_WINDOW_MS;
    this.#tokens = opts.perSecond;
  }

  judge(digit: DtmfDigit, now: number): KeyVerdict {
    this.lastEventAt = now;
    const last = this.#last;
    if (last !== undefined && last.echoExpected && last.digit === digit && now - last.at <= this.#echoWindowMs) {
      last.echoExpected = false;
      return 'echo';
    }
    if (this.#refilledAt !== undefined) {
      const elapsed = Math.max(0, now - this.#refilledAt);
      this.#tokens = Math.min(this.#perSecond, this.#tokens + (elapsed * this.#perSecond) / 1000);
    }
    this.#refilledAt = now;
    if (this.#tokens < 1) return 'rate-limited';
    this.#tokens -= 1;
    this.#last = { digit, at: now, echoExpected: this.blocked };
    return 'key';
  }
}
