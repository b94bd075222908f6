import type { DtmfDigit } from '../../../domain/dtmf.js';
import { tsAfter } from './rtp-packet.js';

/** RFC 4733 §3.2 DTMF event codes 0-15. */
const DTMF_EVENTS: readonly DtmfDigit[] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D'];

// A long event is split into segments once its duration would overflow 16 bits (RFC 4733
// §2.5.1.3); a new timestamp right after such a segment continues the same key press.
const LONG_EVENT_DURATION = 0xff00;

/** Events remembered per stream to recognise retransmitted or late packets. */
const HISTORY = 16;

/** RFC 4733 §2.3: E (end) and R (reserved) bits and the 6-bit volume of the second byte. */
const END_BIT = 0x80;
const RESERVED_BIT = 0x40;
const VOLUME_MASK = 0x3f;
/**
 * RFC 4733 §3.2 (after ITU-T Q.24): DTMF from 0 to -36 dBm0 must be accepted, below -55 dBm0
 * rejected. The volume field is the level with the sign dropped, so larger means quieter.
 */
const MAX_DTMF_VOLUME = 55;
const EVENT_BLOCK_SIZE = 4;

/** Why a telephone-event payload or event block was not taken as a key press (tests, debug counters). */
export type Rfc4733Verdict = 'digit' | 'repeat' | 'long-event-segment' | 'bad-length' | 'unended-packed-event' | 'reserved-bit' | 'zero-duration' | 'too-quiet' | 'unknown-event';

/**
 * Turns telephone-event packets into key presses, one per event.
 *
 * Validation (each block of 4 bytes, RFC 4733 §2.3), before anything is remembered:
 * - the payload is one or more whole 4-byte event blocks (§2.5.1.5 packs consecutive events;
 *   every block but the last must then be ended), else the whole packet is dropped;
 * - the reserved bit set: dropped. §2.3 tells receivers to ignore the bit; a conforming sender
 *   always clears it, and on a payment line a packet that breaks the format is not a key press;
 * - duration 0: dropped (no tone yet; some senders start that way, the next packet counts);
 * - volume quieter than -55 dBm0: dropped (§3.2, a tone a DTMF receiver must reject);
 * - event codes other than the 16 DTMF ones: ignored.
 *
 * An event is identified by its RTP timestamp (the start of the tone) and its code, which stay
 * the same in the start packet, the continuation packets, the (usually three) end packets and
 * any retransmission. So:
 * - a packet of an event already seen (same timestamp and code, among the last 16 events of
 *   this SSRC) is a repeat or a late packet: ignored;
 * - anything else is a new key press, reported at its first valid packet whether that is the
 *   start, a continuation or an end packet (lost start packets). The same digit again has a new
 *   timestamp ('44'); the same timestamp with another code is another key (generators that
 *   reuse one timestamp for every digit);
 * - SIPp's shipped dtmf_2833_<d>.pcap files carry one SSRC and a fixed timestamp per file:
 *   replaying the same file twice is, correctly, one key press.
 */
export class Rfc4733Receiver {
  #ssrc = -1;
  readonly #ts = new Float64Array(HISTORY);
  readonly #code = new Int16Array(HISTORY).fill(-1);
  #count = 0;
  #next = 0;
  /** The most recent event, for long-event segments. */
  #lastTs = 0;
  #lastCode = -1;
  #lastEnded = false;
  #lastDuration = 0;

  /**
   * Feeds one telephone-event payload; returns the digit when this packet starts a new event
   * (the first new one when several are packed).
   */
  receive(ssrc: number, timestamp: number, payload: Uint8Array, offset: number, length: number): DtmfDigit | undefined {
    let digit: DtmfDigit | undefined;
    this.inspect(ssrc, timestamp, payload, offset, length, (d) => {
      digit ??= d;
    });
    return digit;
  }

  /** Like receive(), with every new key of a packed payload passed to `onDigit`; returns the verdict of the last block. */
  inspect(ssrc: number, timestamp: number, payload: Uint8Array, offset: number, length: number, onDigit: (d: DtmfDigit) => void): Rfc4733Verdict {
    if (length < EVENT_BLOCK_SIZE || length % EVENT_BLOCK_SIZE !== 0) return 'bad-length';
    const blocks = length / EVENT_BLOCK_SIZE;
    for (let b = 0; b < blocks - 1; b++) {
      if (((payload[offset + b * EVENT_BLOCK_SIZE + 1] as number) & END_BIT) === 0) return 'unended-packed-event';
    }
    if (ssrc !== this.#ssrc) {
      this.reset();
      this.#ssrc = ssrc;
    }
    let ts = timestamp;
    let verdict: Rfc4733Verdict = 'bad-length';
    for (let b = 0; b < blocks; b++) {
      const o = offset + b * EVENT_BLOCK_SIZE;
      const duration = ((payload[o + 2] as number) << 8) | (payload[o + 3] as number);
      verdict = this.#block(ts, payload[o] as number, payload[o + 1] as number, duration);
      if (verdict === 'digit') onDigit(DTMF_EVENTS[payload[o] as number] as DtmfDigit);
      // §2.5.1.5: a packed event starts where the previous one ended.
      ts = (ts + duration) >>> 0;
    }
    return verdict;
  }

  #block(timestamp: number, code: number, flags: number, duration: number): Rfc4733Verdict {
    if ((flags & RESERVED_BIT) !== 0) return 'reserved-bit';
    if (duration === 0) return 'zero-duration';
    if ((flags & VOLUME_MASK) > MAX_DTMF_VOLUME) return 'too-quiet';
    if (code >= DTMF_EVENTS.length) return 'unknown-event';
    const end = (flags & END_BIT) !== 0;
    if (this.#count > 0 && timestamp === this.#lastTs && code === this.#lastCode) {
      if (end) this.#lastEnded = true;
      if (duration > this.#lastDuration) this.#lastDuration = duration;
      return 'repeat';
    }
    for (let i = 0; i < this.#count; i++) {
      if (this.#ts[i] === timestamp && this.#code[i] === code) return 'repeat';
    }
    const continuesLong = this.#count > 0 && code === this.#lastCode && !this.#lastEnded && this.#lastDuration >= LONG_EVENT_DURATION && tsAfter(timestamp, this.#lastTs);
    this.#remember(timestamp, code);
    this.#lastTs = timestamp;
    this.#lastCode = code;
    this.#lastEnded = end;
    this.#lastDuration = duration;
    return continuesLong ? 'long-event-segment' : 'digit';
  }

  #remember(ts: number, code: number): void {
    this.#ts[this.#next] = ts;
    this.#code[this.#next] = code;
    this.#next = (this.#next + 1) % HISTORY;
    if (this.#count < HISTORY) this.#count++;
  }

  reset(): void {
    this.#ssrc = -1;
    this.#count = 0;
    this.#next = 0;
    this.#lastCode = -1;
    this.#lastEnded = false;
    this.#lastDuration = 0;
  }
}
