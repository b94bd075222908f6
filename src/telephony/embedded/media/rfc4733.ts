import type { DtmfDigit } from '../../types.js';
import { tsAfter } from './rtp-packet.js';

/** RFC 4733 §3.2 DTMF event codes 0-15. */
export const DTMF_EVENTS: readonly DtmfDigit[] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D'];

export function dtmfEventCode(digit: DtmfDigit): number {
  return DTMF_EVENTS.indexOf(digit);
}

// A long event is split into segments once its duration would overflow 16 bits (RFC 4733
// §2.5.1.3); a new timestamp right after such a segment continues the same key press.
const LONG_EVENT_DURATION = 0xff00;

/**
 * Turns telephone-event packets into key presses, one per event.
 *
 * An event is identified by its RTP timestamp (the start of the tone), which stays the same in
 * the start packet, the continuation packets, the (usually three) end packets and any
 * retransmission. So:
 * - a packet with the current event's timestamp and code is a repeat: ignored;
 * - a later timestamp is a new key press, even with the same digit ('44');
 * - the digit is reported at the first packet seen of the event, whether it is the start, a
 *   continuation or an end packet (lost start packets);
 * - an earlier timestamp is a late packet of an old event: ignored;
 * - the same timestamp with a different code is a new key press: some generators (SIPp's
 *   dtmf pcaps replayed back to back) reuse one timestamp for every digit.
 */
export class Rfc4733Receiver {
  #have = false;
  #ssrc = 0;
  #ts = 0;
  #code = -1;
  #ended = false;
  #duration = 0;

  /** Feeds one telephone-event payload; returns the digit when this packet starts a new event. */
  receive(ssrc: number, timestamp: number, payload: Uint8Array, offset: number, length: number): DtmfDigit | undefined {
    if (length < 4) return undefined;
    const code = payload[offset] as number;
    const end = ((payload[offset + 1] as number) & 0x80) !== 0;
    const duration = ((payload[offset + 2] as number) << 8) | (payload[offset + 3] as number);
    if (this.#have && ssrc === this.#ssrc) {
      if (timestamp === this.#ts) {
        if (code === this.#code) {
          if (end) this.#ended = true;
          if (duration > this.#duration) this.#duration = duration;
          return undefined;
        }
      } else if (!tsAfter(timestamp, this.#ts)) {
        return undefined;
      } else if (code === this.#code && !this.#ended && this.#duration >= LONG_EVENT_DURATION) {
        this.#ts = timestamp;
        this.#duration = duration;
        this.#ended = end;
        return undefined;
      }
    }
    this.#have = true;
    this.#ssrc = ssrc;
    this.#ts = timestamp;
    this.#code = code;
    this.#ended = end;
    this.#duration = duration;
    return DTMF_EVENTS[code];
  }

  reset(): void {
    this.#have = false;
    this.#code = -1;
  }
}

/** Writes one RFC 4733 event payload (4 bytes) at `offset`. */
export function writeDtmfEvent(buf: Buffer, offset: number, code: number, end: boolean, volume: number, duration: number): void {
  buf[offset] = code;
  buf[offset + 1] = (end ? 0x80 : 0) | (volume & 0x3f);
  buf.writeUInt16BE(duration & 0xffff, offset + 2);
}
