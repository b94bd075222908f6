import type { DtmfDigit } from '../../../domain/dtmf.js';
import { tsAfter } from './rtp-packet.js';

/** RFC 4733 §3.2 DTMF event codes 0-15. */
export const DTMF_EVENTS: readonly DtmfDigit[] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D'];

export function dtmfEventCode(digit: DtmfDigit): number {
  return DTMF_EVENTS.indexOf(digit);
}

// A long event is split into segments once its duration would overflow 16 bits (RFC 4733
// §2.5.1.3); a new timestamp right after such a segment continues the same key press.
const LONG_EVENT_DURATION = 0xff00;

/** Events remembered per stream to recognise retransmitted or late packets. */
const HISTORY = 16;

/**
 * Turns telephone-event packets into key presses, one per event.
 *
 * An event is identified by its RTP timestamp (the start of the tone) and its code, which stay
 * the same in the start packet, the continuation packets, the (usually three) end packets and
 * any retransmission. So:
 * - a packet of an event already seen (same timestamp and code, among the last 16 events of
 *   this SSRC) is a repeat or a late packet: ignored;
 * - anything else is a new key press, reported at its first packet whether that is the start,
 *   a continuation or an end packet (lost start packets). The same digit again has a new
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

  /** Feeds one telephone-event payload; returns the digit when this packet starts a new event. */
  receive(ssrc: number, timestamp: number, payload: Uint8Array, offset: number, length: number): DtmfDigit | undefined {
    if (length < 4) return undefined;
    const code = payload[offset] as number;
    const end = ((payload[offset + 1] as number) & 0x80) !== 0;
    const duration = ((payload[offset + 2] as number) << 8) | (payload[offset + 3] as number);
    if (ssrc !== this.#ssrc) {
      this.reset();
      this.#ssrc = ssrc;
    }
    if (this.#count > 0 && timestamp === this.#lastTs && code === this.#lastCode) {
      if (end) this.#lastEnded = true;
      if (duration > this.#lastDuration) this.#lastDuration = duration;
      return undefined;
    }
    for (let i = 0; i < this.#count; i++) {
      if (this.#ts[i] === timestamp && this.#code[i] === code) return undefined;
    }
    const continuesLong = this.#count > 0 && code === this.#lastCode && !this.#lastEnded && this.#lastDuration >= LONG_EVENT_DURATION && tsAfter(timestamp, this.#lastTs);
    this.#remember(timestamp, code);
    this.#lastTs = timestamp;
    this.#lastCode = code;
    this.#lastEnded = end;
    this.#lastDuration = duration;
    return continuesLong ? undefined : DTMF_EVENTS[code];
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

/** Writes one RFC 4733 event payload (4 bytes) at `offset`. */
export function writeDtmfEvent(buf: Buffer, offset: number, code: number, end: boolean, volume: number, duration: number): void {
  buf[offset] = code;
  buf[offset + 1] = (end ? 0x80 : 0) | (volume & 0x3f);
  buf.writeUInt16BE(duration & 0xffff, offset + 2);
}
