import { unmapIPv4 } from '../../../net/cidr.js';
import type { MediaRanges } from '../../media-ranges.js';

/** A latched source that has been silent this long may be replaced by another port of its address (NAT rebinding). */
export const RELATCH_AFTER_MS = 2000;

export interface RtpEndpoint {
  readonly address: string;
  readonly port: number;
}

/**
 * What may become of a packet from a source, decided before any SRTP work:
 * - 'latched': the latched source itself;
 * - 'new': a source that may be latched once the packet proves valid (authenticated, parseable);
 * - 'refused': ignored (no latch, no watchdog, no digit, no audio).
 */
export type SourceVerdict = 'latched' | 'new' | 'refused';

/**
 * Where one call's RTP may come from and go to (docs/adr/0007-media-source-rules.md). Pure: no
 * socket, no clock (the caller passes `now`, in ms); the media session asks it about every
 * datagram and every tick.
 *
 * - Before an SDP named the far end, nothing is taken.
 * - A packet is taken only from the address the SDP names; with security.mediaRanges configured,
 *   also from another address inside them. The first packet taken latches its address and port.
 * - Once latched, never another address until an SDP moves the stream; another port of the same
 *   address (NAT rebinding) only after the latched one has been quiet for RELATCH_AFTER_MS.
 * - When an SDP moves the stream, the source latched before is refused for RELATCH_AFTER_MS (its
 *   late packets must not latch us back), then treated like any other.
 * - Nothing is sent before confirm() (the ACK: the peer has shown it receives at the addresses it
 *   gave); then to the latched source, else to the SDP's address and port (none on hold or port 0).
 */
export class RtpSourceRule {
  readonly #ranges: MediaRanges;
  #negotiated = false;
  /** The SDP's address; undefined on hold (c=0.0.0.0) or without c=. */
  #sdpAddress: string | undefined;
  #sdpPort = 0;
  /** The SDP's address and port as one object, so the per-tick path allocates nothing. */
  #sdpDestination: RtpEndpoint | undefined;
  #latched: RtpEndpoint | undefined;
  #stale: RtpEndpoint | undefined;
  #staleUntil = 0;
  #lastAcceptedAt = 0;
  #confirmed = false;

  constructor(ranges: MediaRanges) {
    this.#ranges = ranges;
  }

  /** The latched source (the same object until the latch changes), or undefined. */
  get latched(): RtpEndpoint | undefined {
    return this.#latched;
  }

  /** When the last packet was taken (0: never). */
  get lastAcceptedAt(): number {
    return this.#lastAcceptedAt;
  }

  get confirmed(): boolean {
    return this.#confirmed;
  }

  /** The ACK confirmed the dialog: RTP may be sent from now on. */
  confirm(): void {
    this.#confirmed = true;
  }

  /**
   * An offer/answer completed, naming `address` (undefined: hold) and `port`. Returns true when
   * the stream moved (first negotiation, or another address or port): the latch is dropped then.
   */
  negotiated(address: string | undefined, port: number, now: number): boolean {
    const moved = !this.#negotiated || address !== this.#sdpAddress || port !== this.#sdpPort;
    this.#negotiated = true;
    this.#sdpAddress = address;
    this.#sdpPort = port;
    if (moved) {
      this.#stale = this.#latched;
      this.#staleUntil = now + RELATCH_AFTER_MS;
      this.#latched = undefined;
    }
    this.#sdpDestination = address === undefined || port === 0 ? undefined : { address, port };
    return moved;
  }

  /** The verdict on a packet from `address`:`port`; changes nothing. */
  check(address: string, port: number, now: number): SourceVerdict {
    if (!this.#negotiated) return 'refused';
    const l = this.#latched;
    if (l !== undefined) {
      if (l.address === address && l.port === port) return 'latched';
      if (address !== l.address || now - this.#lastAcceptedAt < RELATCH_AFTER_MS) return 'refused';
    } else if (unmapIPv4(address) !== this.#sdpAddress && !this.#ranges.includes(address)) {
      // (unmapIPv4: a dual-stack socket reports IPv4 sources as ::ffff:a.b.c.d.)
      return 'refused';
    }
    const s = this.#stale;
    return s !== undefined && now < this.#staleUntil && s.address === address && s.port === port ? 'refused' : 'new';
  }

  /**
   * A packet from a source check() did not refuse proved valid (authenticated, parseable): it is
   * taken, and latches its source when that is new. Returns true when the latch changed. A
   * refused source changes nothing.
   */
  accept(address: string, port: number, now: number): boolean {
    const verdict = this.check(address, port, now);
    if (verdict === 'refused') return false;
    this.#lastAcceptedAt = now;
    if (verdict === 'latched') return false;
    this.#latched = { address, port };
    return true;
  }

  /** True when the latched source has been quiet long enough for another port of its address to take over. */
  latchedQuiet(now: number): boolean {
    return this.#latched !== undefined && now - this.#lastAcceptedAt >= RELATCH_AFTER_MS;
  }

  /** Where RTP goes now, when the stream may send (`sending`: the negotiated direction allows it). */
  destination(sending: boolean): RtpEndpoint | undefined {
    if (!this.#confirmed || !sending) return undefined;
    return this.#latched ?? this.#sdpDestination;
  }
}
