import type { TypedEmitter } from '../../util/typed-emitter.js';
import type { DtmfSource, PlayOptions, PlayResult } from '../types.js';
import type { DtmfDigit } from '../../domain/dtmf.js';

/**
 * What the backend needs from the embedded media engine (media/). Kept as an interface so the
 * SIP half can be tested with a stand-in and so the engine can change behind it.
 */

export interface MediaSessionEvents extends Record<string, unknown[]> {
  digit: [digit: DtmfDigit, source: DtmfSource];
  'rtp-timeout': [];
}

export interface MediaSessionLike extends TypedEmitter<MediaSessionEvents> {
  readonly localPort: number;
  /** Our answer to an offer; undefined when nothing usable is offered (-> 488). */
  answerOffer(offerSdp: string): string | undefined;
  /** Late offer: our offer in the 200, the answer comes in the ACK. */
  createOffer(): string;
  applyAnswer(answerSdp: string): boolean;
  /** The ACK confirmed the dialog: RTP may be sent from now on (nothing leaves before). */
  confirm(): void;
  /** New offer in a re-INVITE/UPDATE (hold, unhold, address change). */
  updateOffer(offerSdp: string): string | undefined;
  play(fragments: readonly string[], options: PlayOptions): Promise<PlayResult>;
  stopPlay(): void;
  /**
   * Keys are also detected as tones in the audio, even with telephone-event negotiated
   * (conference legs); a key reported both ways counts once. Stays on for the session.
   */
  listenForInbandKeys(): void;
  /** Digits that arrived by SIP INFO, merged into the same digit stream. */
  injectDigit(digit: DtmfDigit, source: DtmfSource): void;
  close(): void;
}

export interface MediaEngineLike {
  start(): Promise<void>;
  stop(): Promise<void>;
  createSession(): MediaSessionLike;
  readonly sessions: number;
  hasPrompt(language: string, id: string): boolean;
}
