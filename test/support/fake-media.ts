import { TypedEmitter } from '../../src/util/typed-emitter.js';
import type { DtmfSource, PlayOptions, PlayResult } from '../../src/telephony/types.js';
import type { DtmfDigit } from '../../src/domain/dtmf.js';
import type { MediaEngineLike, MediaSessionEvents, MediaSessionLike } from '../../src/telephony/embedded/media-port.js';

/**
 * A stand-in for the media engine in SIP-layer tests: it answers PCMU/PCMA offers with a
 * fixed SDP, records what it was asked to do and sends no RTP.
 */

function sdp(port: number): string {
  return ['v=0', 'o=pay-ivr 1 1 IN IP4 127.0.0.1', 's=pay-ivr', 'c=IN IP4 127.0.0.1', 't=0 0', `m=audio ${port} RTP/AVP 0 101`, 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:101 telephone-event/8000', 'a=fmtp:101 0-16', 'a=sendrecv', ''].join('\r\n');
}

function usable(offer: string): boolean {
  const m = /^m=audio \d+ [A-Z/]+ ([\d ]+)$/m.exec(offer);
  return m !== null && (m[1] as string).split(' ').some((p) => p === '0' || p === '8');
}

export class FakeMediaSession extends TypedEmitter<MediaSessionEvents> implements MediaSessionLike {
  readonly localPort: number;
  closed = false;
  readonly offers: string[] = [];
  readonly answers: string[] = [];
  readonly plays: string[][] = [];
  #stop: ((r: PlayResult) => void) | undefined;

  constructor(port: number) {
    super();
    this.localPort = port;
  }
  answerOffer(offerSdp: string): string | undefined {
    this.offers.push(offerSdp);
    return usable(offerSdp) ? sdp(this.localPort) : undefined;
  }
  createOffer(): string {
    return sdp(this.localPort);
  }
  applyAnswer(answerSdp: string): boolean {
    this.answers.push(answerSdp);
    return usable(answerSdp);
  }
  /** True once the call confirmed the dialog (the ACK arrived). */
  confirmed = false;
  confirm(): void {
    this.confirmed = true;
  }
  updateOffer(offerSdp: string): string | undefined {
    this.offers.push(offerSdp);
    return usable(offerSdp) ? sdp(this.localPort) : undefined;
  }
  play(fragments: readonly string[], _options: PlayOptions): Promise<PlayResult> {
    this.plays.push([...fragments]);
    this.#stop?.('stopped');
    return new Promise<PlayResult>((resolve) => {
      const t = setTimeout(() => resolve('done'), 200);
      this.#stop = (r) => {
        clearTimeout(t);
        resolve(r);
      };
    });
  }
  stopPlay(): void {
    this.#stop?.('stopped');
    this.#stop = undefined;
  }
  /** True once the call asked for in-band keys too (conference legs). */
  inbandKeys = false;
  listenForInbandKeys(): void {
    this.inbandKeys = true;
  }
  injectDigit(digit: DtmfDigit, source: DtmfSource): void {
    this.emit('digit', digit, source);
  }
  timeout(): void {
    this.emit('rtp-timeout');
  }
  close(): void {
    this.closed = true;
    this.#stop?.('ended');
  }
}

export class FakeMedia implements MediaEngineLike {
  readonly created: FakeMediaSession[] = [];
  #next = 31000;
  started = false;
  async start(): Promise<void> {
    this.started = true;
  }
  async stop(): Promise<void> {
    this.started = false;
  }
  createSession(): FakeMediaSession {
    const s = new FakeMediaSession(this.#next);
    this.#next += 2;
    this.created.push(s);
    return s;
  }
  get sessions(): number {
    return this.created.filter((s) => !s.closed).length;
  }
  hasPrompt(): boolean {
    return true;
  }
}
