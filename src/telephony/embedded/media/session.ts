import { randomInt } from 'node:crypto';
import type { RemoteInfo, Socket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { PayIvrError } from '../../../errors.js';
import type { Logger } from '../../../log.js';
import { TypedEmitter } from '../../../util/typed-emitter.js';
import type { MediaRanges } from '../../media-ranges.js';
import type { DtmfSource, PlayOptions, PlayResult } from '../../types.js';
import type { DtmfDigit } from '../../../domain/dtmf.js';
import { decodeInto, G711_SILENCE, type G711Codec } from './g711.js';
import { InbandDtmfDetector } from './goertzel-dtmf.js';
import { KeyMerger } from '../../key-merger.js';
import type { PacedStream, Pacer } from './pacer.js';
import type { Prompt, PromptLibrary } from './prompt-library.js';
import { Rfc4733Receiver } from './rfc4733.js';
import { newRtpHeader, parseRtpHeader, RTP_HEADER_SIZE, writeRtpHeader } from './rtp-packet.js';
import * as sdp from './sdp.js';
import { RtpSourceRule, type RtpEndpoint } from './source-rule.js';
import type { SrtpPolicy, SrtpSuite } from '../../../config/media-options.js';
import { SdesKey, SrtpContext } from './srtp.js';
import { srtpRefusal } from '../../srtp-policy.js';

const SAMPLES_PER_FRAME = 160;
const PACKET_SIZE = RTP_HEADER_SIZE + SAMPLES_PER_FRAME;
/**
 * Packet buffers per session, used in turn. dgram may still hold a buffer queued in the kernel
 * send path; eight frames (160 ms) later it is long gone, so the buffer can be rewritten.
 */
const RING = 8;

export interface MediaSessionEvents extends Record<string, unknown[]> {
  digit: [digit: DtmfDigit, source: DtmfSource];
  /** No inbound RTP for noRtpTimeoutMs while the far end should be sending: treat as a dead call. */
  'rtp-timeout': [];
}

/** What the engine shares with its sessions. */
export interface MediaContext {
  readonly prompts: PromptLibrary;
  readonly pacer: Pacer;
  readonly logger: Logger;
  readonly advertisedAddress: string;
  readonly srtp: SrtpPolicy;
  /** SDES suites accepted (config rtp.srtpSuites). */
  readonly srtpSuites?: readonly SrtpSuite[] | undefined;
  /** security.mediaRanges: where SDP addresses must lie and RTP may come from (empty = the SDP address only). */
  readonly mediaRanges: MediaRanges;
  readonly noRtpTimeoutMs: number;
  /** connect() the socket to the latched source while it is alive (cheaper sends); see #connectTo. */
  readonly connectSockets: boolean;
  /** Pre-encoded comfort noise to send instead of digital silence; undefined = silence. */
  readonly comfortNoise: Readonly<Record<G711Codec, Buffer>> | undefined;
  release(session: MediaSession): void;
}

/** What became of received datagrams (diagnostics and tests). */
interface RtpReceiveStats {
  /** Taken: authenticated (SRTP), from the accepted source, a valid RTP header. */
  accepted: number;
  /** From an address (or, while the latched port is alive, a port) the source rules refuse. */
  refusedSource: number;
  /** SRTP packets whose tag did not verify, or replays. */
  unauthenticated: number;
  /** Not RTP, or not parseable. */
  malformed: number;
}

interface Playback {
  readonly prompts: readonly Prompt[];
  readonly totalSamples: number;
  readonly loop: boolean;
  readonly bargeIn: boolean;
  readonly resolve: (r: PlayResult) => void;
  index: number;
  offset: number;
}

function canSend(m: sdp.NegotiatedMedia): boolean {
  return m.localDirection === 'sendrecv' || m.localDirection === 'sendonly';
}

/** The far end is expected to send (not on hold): only then does silence mean a dead call. */
function expectsInbound(m: sdp.NegotiatedMedia): boolean {
  return m.remoteDirection === 'sendrecv' && m.remoteAddress !== undefined;
}

/**
 * One call's audio stream: SDP negotiation, the RTP sender (driven by the engine's pacer),
 * playback of prompt fragments, DTMF detection (RFC 4733, SIP INFO injected, in-band fallback),
 * SRTP and the no-RTP watchdog.
 *
 * Where RTP may come from and go to (latching, nothing sent before confirm()) is decided by
 * RtpSourceRule (source-rule.ts, docs/adr/0007-media-source-rules.md). It is asked first for
 * every datagram, before any SRTP work; with SRTP a packet is taken only once its tag verified:
 * a forged one latches nothing, feeds no watchdog, moves no SRTP state and carries no digit.
 */
export class MediaSession extends TypedEmitter<MediaSessionEvents> implements PacedStream {
  readonly localPort: number;
  readonly #ctx: MediaContext;
  readonly #socket: Socket;
  readonly #log: Logger;
  readonly #ssrc = randomInt(0x100000000);
  #seq = randomInt(0x10000);
  #ts = randomInt(0x100000000);
  #marker = true;
  #ring: Buffer[] = [];
  #ringIdx = 0;
  #noisePos = 0;

  readonly #sessionId = String(randomInt(1_000_000_000, 9_999_999_999));
  #sdpVersion = 0;
  /** Our SDES key: serialises as "[SDES key]", so no log line can carry it. */
  readonly #localKey = SdesKey.random();
  #pendingOffer: sdp.OfferState | undefined;
  #media: sdp.NegotiatedMedia | undefined;
  #txSrtp: SrtpContext | undefined;
  #rxSrtp: SrtpContext | undefined;

  readonly #source: RtpSourceRule;
  /** The peer the socket is connect()ed to: always the source rule's latched object itself, or undefined. */
  #connected: RtpEndpoint | undefined;
  #armedAt = 0;
  #timeoutFired = false;
  readonly #stats: RtpReceiveStats = { accepted: 0, refusedSource: 0, unauthenticated: 0, malformed: 0 };

  #play: Playback | undefined;
  readonly #rfc4733 = new Rfc4733Receiver();
  #inband: InbandDtmfDetector | undefined;
  /** Set by listenForInbandKeys(): in-band detection whatever was negotiated, keys merged across sources. */
  #merger: KeyMerger | undefined;
  #pcm = new Int16Array(SAMPLES_PER_FRAME);
  readonly #rx = newRtpHeader();
  #closed = false;

  /** @internal Sessions are created by MediaEngine.createSession(). */
  constructor(ctx: MediaContext, port: number, socket: Socket) {
    super();
    this.#ctx = ctx;
    this.#source = new RtpSourceRule(ctx.mediaRanges);
    this.localPort = port;
    this.#socket = socket;
    this.#log = ctx.logger.child({ rtpPort: port });
    this.#allocRing(0);
    socket.on('message', this.#onMessage);
    socket.on('error', (e) => this.#log.debug({ err: e.message }, 'rtp socket error'));
    ctx.pacer.add(this);
    this.#log.debug('media session created');
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The negotiated codec, once an offer/answer completed. */
  get codec(): G711Codec | undefined {
    return this.#media?.codec;
  }

  /** True when RFC 4733 telephone-event was negotiated (in-band detection is off then, unless listenForInbandKeys()). */
  get telephoneEvent(): boolean {
    return this.#media?.telephoneEvent !== undefined;
  }

  /** True when the stream is SRTP. */
  get secure(): boolean {
    return this.#txSrtp !== undefined;
  }

  /** Where RTP goes now: the latched source, else the SDP address; undefined when nothing is sent. */
  get remote(): RtpEndpoint | undefined {
    return this.#destination();
  }

  /** @internal True while the socket is connected to the latched source (tests, bench). */
  get connected(): boolean {
    return this.#connected !== undefined;
  }

  get playing(): boolean {
    return this.#play !== undefined;
  }

  /** Counters of received datagrams by fate (a copy). */
  get rxStats(): RtpReceiveStats {
    return { ...this.#stats };
  }

  /**
   * The ACK confirmed the dialog: RTP may flow from now on. RFC 3264 would let the answerer send
   * once its answer is out, but until the ACK nobody has shown they receive at the addresses the
   * INVITE named, and an INVITE that is never ACKed must not turn us into a traffic reflector.
   */
  confirm(): void {
    if (this.#source.confirmed || this.#closed) return;
    this.#source.confirm();
    this.#marker = true;
    this.#armedAt = performance.now(); // the no-RTP watchdog counts from here
  }

  // ---- SDP -----------------------------------------------------------------------------------

  #localParams(): sdp.LocalSdpParams {
    return {
      address: this.#ctx.advertisedAddress,
      port: this.localPort,
      sessionId: this.#sessionId,
      sessionVersion: this.#sdpVersion + 1,
      srtp: this.#ctx.srtp,
      srtpSuites: this.#ctx.srtpSuites,
      localKey: this.#localKey,
    };
  }

  /** Offer/answer. Returns our answer SDP, or undefined when no common codec (caller sends 488). */
  answerOffer(offerSdp: string): string | undefined {
    if (this.#closed) return undefined;
    const r = sdp.answerOffer(offerSdp, this.#localParams());
    if (r === undefined) {
      this.#log.debug({ why: srtpRefusal(offerSdp, this.#ctx.srtp) ?? 'no usable audio stream, codec or crypto line' }, 'sdp offer rejected');
      return undefined;
    }
    if (!this.#addressAllowed(r.media)) return undefined;
    this.#sdpVersion++;
    this.#applyMedia(r.media);
    return r.sdp;
  }

  /** Late offer (INVITE without SDP): our offer for the 200 OK; the answer arrives in the ACK. */
  createOffer(): string {
    const r = sdp.createOffer(this.#localParams());
    this.#sdpVersion++;
    this.#pendingOffer = r.state;
    return r.sdp;
  }

  /** The answer to createOffer(); false when it is unusable (no common codec, bad crypto). */
  applyAnswer(answerSdp: string): boolean {
    if (this.#closed || this.#pendingOffer === undefined) return false;
    const m = sdp.applyAnswer(answerSdp, this.#pendingOffer);
    if (m === undefined) {
      this.#log.debug('sdp answer unusable');
      return false;
    }
    if (!this.#addressAllowed(m)) return false;
    this.#pendingOffer = undefined;
    this.#applyMedia(m);
    return true;
  }

  /**
   * re-INVITE / UPDATE with a new offer (hold: a=sendonly/inactive or c=0.0.0.0; unhold): our
   * answer, or undefined (488, and the current stream stays as it was).
   */
  updateOffer(offerSdp: string): string | undefined {
    return this.answerOffer(offerSdp);
  }

  /** An IP literal, inside security.mediaRanges when configured (else the offer gets 488). */
  #addressAllowed(m: sdp.NegotiatedMedia): boolean {
    if (this.#ctx.mediaRanges.sdpAddressAllowed(m.remoteAddress)) return true;
    // The address is the carrier's media server, not caller data: safe to log.
    this.#log.info({ sdpAddress: m.remoteAddress, mediaRanges: this.#ctx.mediaRanges.size }, 'sdp refused: media address not an IP inside security.mediaRanges');
    return false;
  }

  #applyMedia(m: sdp.NegotiatedMedia): void {
    const prev = this.#media;
    const now = performance.now();
    if (prev === undefined || prev.payloadType !== m.payloadType) this.#marker = true;
    if (prev !== undefined && !canSend(prev) && canSend(m)) this.#marker = true;
    // The far end moved: the latch is dropped (source-rule.ts), and with it the connected peer.
    if (this.#source.negotiated(m.remoteAddress, m.remotePort, now)) this.#disconnect();
    if (m.srtp !== undefined) {
      if (this.#txSrtp?.suite !== m.srtp.suite) this.#txSrtp = new SrtpContext(m.srtp.suite, this.#localKey);
      const p = prev?.srtp;
      if (this.#rxSrtp === undefined || p === undefined || p.suite !== m.srtp.suite || !p.remoteKey.equals(m.srtp.remoteKey)) {
        this.#rxSrtp = new SrtpContext(m.srtp.suite, m.srtp.remoteKey);
      }
    } else {
      this.#txSrtp = undefined;
      this.#rxSrtp = undefined;
    }
    this.#allocRing(this.#txSrtp?.tagLength ?? 0);
    if (m.telephoneEvent !== undefined && this.#merger === undefined) this.#inband = undefined;
    else if (this.#inband === undefined) this.#inband = new InbandDtmfDetector();
    if (expectsInbound(m) && (prev === undefined || !expectsInbound(prev))) {
      this.#armedAt = now;
      this.#timeoutFired = false;
    }
    this.#media = m;
    this.#log.debug(
      { codec: m.codec, telephoneEventPt: m.telephoneEvent?.payloadType, srtp: m.srtp !== undefined, direction: m.localDirection, hold: !expectsInbound(m) },
      'media negotiated',
    );
  }

  #allocRing(tagLength: number): void {
    const size = PACKET_SIZE + tagLength;
    if (this.#ring[0]?.length === size) return;
    this.#ring = Array.from({ length: RING }, () => Buffer.alloc(size));
  }

  #destination(): RtpEndpoint | undefined {
    const m = this.#media;
    if (m === undefined || this.#closed) return undefined;
    return this.#source.destination(canSend(m));
  }

  // ---- sending (called by the pacer) ---------------------------------------------------------

  /** @internal */
  onTick(frames: number, skipped: number, now: number): void {
    if (this.#closed) return;
    if (skipped > 0) {
      this.#ts = (this.#ts + skipped * SAMPLES_PER_FRAME) >>> 0;
      this.#marker = true;
    }
    const m = this.#media;
    const codec: G711Codec = m?.codec ?? 'PCMU';
    const dest = this.#destination();
    for (let f = 0; f < frames; f++) {
      const buf = this.#ring[this.#ringIdx] as Buffer;
      this.#ringIdx = (this.#ringIdx + 1) % RING;
      const finished = this.#fillFrame(buf, codec);
      if (m !== undefined && dest !== undefined) {
        writeRtpHeader(buf, this.#marker, m.payloadType, this.#seq, this.#ts, this.#ssrc);
        this.#marker = false;
        this.#seq = (this.#seq + 1) & 0xffff;
        if (this.#txSrtp !== undefined) this.#txSrtp.protect(buf, PACKET_SIZE, RTP_HEADER_SIZE, buf);
        if (dest === this.#connected) this.#socket.send(buf);
        else this.#socket.send(buf, dest.port, dest.address);
      }
      this.#ts = (this.#ts + SAMPLES_PER_FRAME) >>> 0;
      if (finished) this.#finishPlay('done');
    }
    // The latched source went quiet: another may take over now, which a connected socket would not let in.
    if (this.#connected !== undefined && this.#source.latchedQuiet(now)) this.#disconnect();
    // Not before the ACK: an un-ACKed INVITE ends by its own timer, and the watchdog's BYE would go
    // to the very addresses nobody has vouched for.
    if (m !== undefined && this.#source.confirmed && !this.#timeoutFired && expectsInbound(m) && now - Math.max(this.#source.lastAcceptedAt, this.#armedAt) >= this.#ctx.noRtpTimeoutMs) {
      this.#timeoutFired = true;
      this.#log.debug({ timeoutMs: this.#ctx.noRtpTimeoutMs }, 'no inbound rtp');
      this.emit('rtp-timeout');
    }
  }

  /** Writes the next 160 samples of audio into the packet; true when the playback just ended. */
  #fillFrame(buf: Buffer, codec: G711Codec): boolean {
    let pos = RTP_HEADER_SIZE;
    const end = PACKET_SIZE;
    const p = this.#play;
    let finished = false;
    if (p !== undefined && p.totalSamples > 0) {
      while (pos < end) {
        const src = (p.prompts[p.index] as Prompt)[codec];
        const n = Math.min(end - pos, src.length - p.offset);
        if (n > 0) {
          src.copy(buf, pos, p.offset, p.offset + n);
          pos += n;
          p.offset += n;
        }
        if (p.offset >= src.length) {
          p.index++;
          p.offset = 0;
          if (p.index >= p.prompts.length) {
            if (!p.loop) {
              finished = true;
              break;
            }
            p.index = 0;
          }
        }
      }
    }
    if (pos < end) this.#fillIdle(buf, pos, end, codec);
    return finished;
  }

  #fillIdle(buf: Buffer, from: number, to: number, codec: G711Codec): void {
    const noise = this.#ctx.comfortNoise?.[codec];
    if (noise === undefined) {
      buf.fill(G711_SILENCE[codec], from, to);
      return;
    }
    let pos = from;
    while (pos < to) {
      const n = Math.min(to - pos, noise.length - this.#noisePos);
      noise.copy(buf, pos, this.#noisePos, this.#noisePos + n);
      pos += n;
      this.#noisePos = (this.#noisePos + n) % noise.length;
    }
  }

  // ---- playback ------------------------------------------------------------------------------

  /**
   * Plays prompt fragments back to back. Rejects with ERR_PROMPT_MISSING (before touching the
   * current playback) when a fragment is not in the language's pack.
   */
  play(fragments: readonly string[], options: PlayOptions): Promise<PlayResult> {
    if (this.#closed) return Promise.resolve('ended');
    const prompts: Prompt[] = [];
    let missing = 0;
    for (const id of fragments) {
      const p = this.#ctx.prompts.get(options.language, id);
      if (p === undefined) missing++;
      else prompts.push(p);
    }
    if (missing > 0) {
      // Fragment ids may spell out card data (readbacks): only the language and a count.
      return Promise.reject(
        new PayIvrError('ERR_PROMPT_MISSING', `${missing} of ${fragments.length} prompt fragments missing in language ${options.language}`, {
          details: { language: options.language, missing, fragments: fragments.length },
        }),
      );
    }
    this.#finishPlay('stopped');
    const totalSamples = prompts.reduce((n, p) => n + p.samples, 0);
    if (totalSamples === 0 && options.loop !== true) return Promise.resolve('done');
    return new Promise<PlayResult>((resolve) => {
      this.#play = { prompts, totalSamples, loop: options.loop === true, bargeIn: options.bargeIn, resolve, index: 0, offset: 0 };
      this.#marker = true;
    });
  }

  stopPlay(): void {
    this.#finishPlay('stopped');
  }

  #finishPlay(result: PlayResult): void {
    const p = this.#play;
    if (p === undefined) return;
    this.#play = undefined;
    this.#marker = true;
    p.resolve(result);
  }

  // ---- receiving -----------------------------------------------------------------------------

  /**
   * A conference leg: the mix may carry the caller's keys as tones only, even where telephone-event
   * was negotiated. From now on the audio is always searched for keys, and a key reported by two
   * sources (RFC 4733 and in-band) within one press counts once (telephony/key-merger.ts).
   */
  listenForInbandKeys(): void {
    if (this.#closed || this.#merger !== undefined) return;
    this.#merger = new KeyMerger();
    this.#inband ??= new InbandDtmfDetector();
  }

  /** SIP INFO digits (application/dtmf-relay, application/dtmf) enter here, so all digits come out of one place. */
  injectDigit(digit: DtmfDigit, source: DtmfSource): void {
    this.#deliverDigit(digit, source);
  }

  #deliverDigit(digit: DtmfDigit, source: DtmfSource): void {
    if (this.#closed) return;
    if (this.#merger !== undefined && !this.#merger.accept(digit, source, performance.now())) return;
    if (this.#play?.bargeIn === true) this.#finishPlay('interrupted');
    this.emit('digit', digit, source);
  }

  readonly #onMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
    try {
      this.#receive(msg, rinfo);
    } catch (e) {
      // A listener's exception must not become an uncaught exception on the socket.
      this.#log.error({ err: e instanceof Error ? e.message : String(e) }, 'rtp receive failed');
    }
  };

  #receive(msg: Buffer, rinfo: RemoteInfo): void {
    const m = this.#media;
    if (this.#closed || m === undefined) return;
    const now = performance.now();
    // Source rules first: they cost nothing, and a refused packet must not cost an HMAC either.
    if (this.#source.check(rinfo.address, rinfo.port, now) === 'refused') {
      // Once per session: enough to diagnose missing media ranges, too little to flood the log.
      if (this.#stats.refusedSource++ === 0) {
        this.#log.info({ from: rinfo.address, sdpAddress: m.remoteAddress, latched: this.#source.latched?.address }, 'rtp from a source the SDP does not name ignored (see security.mediaRanges)');
      }
      return;
    }
    const h = this.#rx;
    let len = msg.length;
    if (this.#rxSrtp !== undefined) {
      if (!parseRtpHeader(msg, len - this.#rxSrtp.tagLength, h, false)) {
        this.#stats.malformed++;
        return;
      }
      len = this.#rxSrtp.unprotect(msg, len, h.payloadOffset);
      if (len < 0) {
        this.#stats.unauthenticated++;
        return;
      }
    }
    if (!parseRtpHeader(msg, len, h)) {
      this.#stats.malformed++;
      return;
    }
    this.#stats.accepted++;
    const before = this.#source.latched;
    if (this.#source.accept(rinfo.address, rinfo.port, now)) {
      this.#log.debug({ relatch: before !== undefined }, 'rtp source latched');
    }
    // A new latch, or the latched source back after a quiet spell.
    const latched = this.#source.latched;
    if (latched !== undefined && this.#connected !== latched) this.#connectTo(latched);
    this.#timeoutFired = false;
    const te = m.telephoneEvent;
    if (te !== undefined) {
      if (h.payloadType === te.payloadType) {
        this.#rfc4733.inspect(h.ssrc, h.timestamp, msg, h.payloadOffset, h.payloadLength, this.#onRfc4733Digit);
        // The event payload names the key: zero it so no received datagram keeps card digits.
        msg.fill(0, h.payloadOffset, h.payloadOffset + h.payloadLength);
        return;
      }
    }
    if (this.#inband !== undefined && (h.payloadType === 0 || h.payloadType === 8 || h.payloadType === m.payloadType)) {
      const codec: G711Codec = h.payloadType === 8 ? 'PCMA' : h.payloadType === 0 ? 'PCMU' : m.codec;
      if (this.#pcm.length < h.payloadLength) this.#pcm = new Int16Array(h.payloadLength);
      decodeInto(codec, msg, h.payloadOffset, h.payloadLength, this.#pcm);
      this.#inband.process(this.#pcm, h.payloadLength, this.#onInbandDigit);
    }
  }

  /**
   * Connects the socket to the just-latched source: sends then skip dgram's per-packet address
   * handling and the kernel's route lookup (about 15 % cheaper, bench/support/udp-send-cost.ts).
   * Safe for symmetric RTP because a connected socket only drops what the latching rules would
   * ignore anyway: other sources while the latched one is alive. It is disconnected when another
   * source may take over (the latched one quiet for RELATCH_AFTER_MS: latchedQuiet, checked each tick) and when
   * the SDP moves the stream (latch dropped).
   */
  #connectTo(peer: RtpEndpoint): void {
    if (!this.#ctx.connectSockets || this.#connected === peer) return;
    this.#disconnect();
    try {
      // The socket's literal-address lookup makes this synchronous (port-pool.ts).
      this.#socket.connect(peer.port, peer.address);
      this.#socket.remoteAddress(); // throws when the connect did not take
      this.#connected = peer;
    } catch (e) {
      this.#log.debug({ err: e instanceof Error ? e.message : String(e) }, 'rtp socket connect failed; sending unconnected');
      this.#disconnect(true);
    }
  }

  #disconnect(force = false): void {
    if (this.#connected === undefined && !force) return;
    this.#connected = undefined;
    try {
      this.#socket.disconnect();
    } catch {
      // not connected (a failed connect) or closed
    }
  }

  readonly #onRfc4733Digit = (d: DtmfDigit): void => {
    this.#deliverDigit(d, 'rfc4733');
  };

  readonly #onInbandDigit = (d: DtmfDigit): void => {
    this.#deliverDigit(d, 'inband');
  };

  // ---- lifecycle -----------------------------------------------------------------------------

  /** Idempotent: stops sending, frees the port; a pending play() resolves 'ended'. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#finishPlay('ended');
    this.#ctx.pacer.remove(this);
    this.#socket.off('message', this.#onMessage);
    try {
      this.#socket.close();
    } catch {
      // already closed
    }
    this.#ctx.release(this);
    this.removeAllListeners();
    this.#log.debug('media session closed');
  }
}
