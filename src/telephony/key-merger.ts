import type { DtmfDigit } from '../domain/dtmf.js';
import type { DtmfSource } from './types.js';

/**
 * How far apart (ms) two reports of one key press by two different sources may be. The in-band
 * detector reports ~35 ms into the tone, plus a 20 ms packet and the jitter between the audio and
 * the event stream; RFC 4733 reports at the first event packet. Two real presses of the same key
 * are at least ~80 ms apart (40 ms tone + 40 ms pause, ITU-T Q.24), and each pair is matched at
 * most once, so a quick "44" still gives two keys.
 */
export const SAME_PRESS_MS = 120;

/**
 * One key press seen both as an RFC 4733 event and as in-band tones (a conference leg listens to
 * both, docs/genesys.md) counts once, on either backend: a key is dropped when the last key let
 * through is the same digit from another source, less than SAME_PRESS_MS earlier, and not already
 * paired. A second report from the same source is always a new press (each source de-duplicates
 * its own).
 */
export class KeyMerger {
  readonly #windowMs: number;
  #last: { digit: DtmfDigit; source: DtmfSource; at: number; paired: boolean } | undefined;

  constructor(windowMs = SAME_PRESS_MS) {
    this.#windowMs = windowMs;
  }

  /**
   * True when the key is a new press (deliver it), false when it is the other source's copy.
   * `nowMs`: when the press began as far as the backend knows - the time of the report on the
   * embedded engine; on drachtio an RFC 2833 key reported at its end has its duration taken off.
   */
  accept(digit: DtmfDigit, source: DtmfSource, nowMs: number): boolean {
    const last = this.#last;
    if (last !== undefined && !last.paired && last.digit === digit && last.source !== source && nowMs - last.at <= this.#windowMs) {
      last.paired = true;
      return false;
    }
    this.#last = { digit, source, at: nowMs, paired: false };
    return true;
  }
}
