import { randomBytes } from 'node:crypto';
import type { Logger } from '../../log.js';
import { PayIvrError, describeError } from '../../errors.js';
import { TypedEmitter } from '../../util/typed-emitter.js';
import type {
  CallEndInfo,
  CallEvents,
  HangupReason,
  InboundCall,
  PlayOptions,
  PlayResult,
  ReferResult,
  RemoteEndpoint,
  StoredDialog,
} from '../types.js';
import type { MediaSessionLike } from './media-port.js';
import { headerValue, headerValues, parseNameAddr, parseUri } from './sip/message.js';
import type { ServerSession, SessionEnd } from './sip/session.js';
import { dialogState } from './sip/dialog.js';
import { unansweredStatus } from '../sip-reason.js';

/**
 * The call port over one SIP session and one media session. Every path that ends the dialog
 * (BYE either way, CANCEL, no ACK, RTP timeout, session expiry, shutdown) funnels into the
 * session's 'terminated' event, so 'ended' is emitted exactly once.
 */

const DEFAULT_REFER_TIMEOUT_MS = 15_000;

export class EmbeddedCall extends TypedEmitter<CallEvents> implements InboundCall {
  readonly id: string;
  readonly callId: string;
  readonly fromUri: string;
  readonly toUri: string;
  readonly requestUri: string;
  readonly calledUser: string;
  readonly remote: RemoteEndpoint;
  #state: 'offered' | 'answered' | 'ended' = 'offered';
  readonly #session: ServerSession;
  readonly #media: MediaSessionLike;
  /** Our SDP answer (computed when the INVITE was checked), or undefined for a late offer. */
  readonly #answerSdp: string | undefined;
  readonly #log: Logger;
  readonly #ackGraceMs: number;
  readonly #ended: Promise<void>;
  #markEnded!: () => void;
  #endInfo: CallEndInfo | undefined;
  #offerTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(opts: {
    session: ServerSession;
    media: MediaSessionLike;
    answerSdp: string | undefined;
    remote: RemoteEndpoint;
    logger: Logger;
    ackGraceMs: number;
    /** An INVITE the app neither answers nor rejects within this long gets 480. */
    offerTimeoutMs: number;
  }) {
    super();
    this.id = `emb-${randomBytes(6).toString('hex')}`;
    this.#session = opts.session;
    this.#media = opts.media;
    this.#answerSdp = opts.answerSdp;
    this.#log = opts.logger;
    this.#ackGraceMs = opts.ackGraceMs;
    const invite = opts.session.invite;
    this.callId = opts.session.callId;
    this.fromUri = parseNameAddr(headerValue(invite, 'from') ?? '')?.uri ?? '';
    this.toUri = parseNameAddr(headerValue(invite, 'to') ?? '')?.uri ?? '';
    this.requestUri = invite.uri;
    this.calledUser = calledUserOf(invite.uri);
    this.remote = opts.remote;
    this.#ended = new Promise<void>((resolve) => (this.#markEnded = resolve));
    this.#offerTimer = setTimeout(() => {
      if (this.#state !== 'offered') return;
      this.#log.warn({ callId: this.callId }, 'call neither answered nor rejected in time');
      this.#session.reject(480, { reason: 'Not Answered In Time' });
    }, opts.offerTimeoutMs);

    opts.session.media = {
      reoffer: (offer) => this.#media.updateOffer(offer),
      createOffer: () => this.#media.createOffer(),
      applyAnswer: (answer) => this.#media.applyAnswer(answer),
    };
    // RTP only once the ACK proved the peer receives what we send (media/session.ts).
    opts.session.on('confirmed', () => this.#guard(() => this.#media.confirm()));
    opts.session.on('dtmf', (digit) => this.#guard(() => this.#media.injectDigit(digit, 'sip-info')));
    opts.session.on('terminated', (info) => this.#onTerminated(info));
    this.#media.on('digit', (digit, source) => {
      if (this.#state !== 'ended') this.#safeEmit('digit', digit, source);
    });
    this.#media.on('rtp-timeout', () => {
      this.#log.info({ callId: this.callId }, 'no RTP from the caller, ending the call');
      void this.#session.bye({ protocol: 'SIP', cause: 408, text: 'no RTP received' }, { by: 'error', reason: 'rtp-timeout' });
    });
  }

  listenForInbandKeys(): void {
    this.#guard(() => this.#media.listenForInbandKeys());
  }

  get state(): 'offered' | 'answered' | 'ended' {
    return this.#state;
  }

  /** How the call ended, once it has. */
  get endInfo(): CallEndInfo | undefined {
    return this.#endInfo;
  }

  header(name: string): string | undefined {
    return headerValue(this.#session.invite, name);
  }

  headers(name: string): string[] {
    return headerValues(this.#session.invite, name);
  }

  async reject(status: number, reason?: string): Promise<void> {
    if (this.#state !== 'offered') return;
    const s = Number.isInteger(status) && status >= 300 && status <= 699 ? status : 500;
    this.#session.reject(s, reason !== undefined ? { reason } : {});
  }

  async answer(): Promise<void> {
    if (this.#state === 'ended') throw new PayIvrError('ERR_CALL_ENDED', 'the call ended before it was answered');
    if (this.#state === 'answered') return;
    const late = this.#answerSdp === undefined;
    let sdp: string;
    try {
      sdp = late ? this.#media.createOffer() : (this.#answerSdp as string);
    } catch (e) {
      this.#session.reject(500);
      throw new PayIvrError('ERR_INTERNAL', 'cannot create the SDP offer', { cause: e });
    }
    this.#state = 'answered';
    clearTimeout(this.#offerTimer);
    const accepted = this.#session.accept(sdp, { lateOffer: late });
    // Do not block the dialogue on a slow ACK: the 200 is out and media flows.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<'grace'>((r) => (timer = setTimeout(() => r('grace'), this.#ackGraceMs)));
    const first = await Promise.race([accepted, grace]);
    clearTimeout(timer);
    if (first === 'ended' || first === 'no-ack' || this.state !== 'answered') {
      throw new PayIvrError('ERR_CALL_ENDED', 'the call ended before it was confirmed');
    }
  }

  async play(fragments: readonly string[], options: PlayOptions): Promise<PlayResult> {
    if (this.#state === 'ended') return 'ended';
    const ended = this.#ended.then(() => 'ended' as const);
    try {
      return await Promise.race([this.#media.play(fragments, options), ended]);
    } catch (e) {
      if (this.state === 'ended') return 'ended';
      throw e;
    }
  }

  stopPlay(): void {
    if (this.#state !== 'ended') this.#guard(() => this.#media.stopPlay());
  }

  async refer(referTo: string, options?: { timeoutMs?: number }): Promise<ReferResult> {
    if (this.#state !== 'answered') return { ok: false, referStatus: 481, detail: 'no dialog to send REFER in' };
    try {
      return await this.#session.refer(referTo, options?.timeoutMs ?? DEFAULT_REFER_TIMEOUT_MS);
    } catch (e) {
      return { ok: false, referStatus: 500, detail: describeError(e) };
    }
  }

  async hangup(reason?: HangupReason): Promise<void> {
    if (this.#state === 'ended') return;
    if (this.#state === 'offered') {
      this.#session.reject(unansweredStatus(reason));
      return;
    }
    await this.#session.bye(reason, { by: 'local', reason: 'hangup' });
  }

  /** The answered dialog's state (payment journal: a restarted node ends the call with it). */
  dialogState(): StoredDialog | undefined {
    const d = this.#session.dialog;
    return d === undefined || this.#state === 'ended' ? undefined : dialogState(d);
  }

  /** Ends the call without signalling (the backend is closing its sockets). */
  abort(info: SessionEnd): void {
    this.#session.abort(info);
  }

  #onTerminated(info: SessionEnd): void {
    if (this.#state === 'ended') return;
    this.#state = 'ended';
    clearTimeout(this.#offerTimer);
    this.#endInfo = { by: info.by, reason: info.reason };
    this.#guard(() => this.#media.close());
    this.#markEnded();
    this.#safeEmit('ended', this.#endInfo);
    this.removeAllListeners();
  }

  #guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.#log.warn({ err: describeError(e), callId: this.callId }, 'media operation failed');
    }
  }

  #safeEmit<K extends keyof CallEvents & string>(event: K, ...args: CallEvents[K]): void {
    try {
      this.emit(event, ...args);
    } catch (e) {
      this.#log.error({ err: describeError(e), callId: this.callId }, 'call listener failed');
    }
  }
}

/** User part of the Request-URI, URL-decoded (tel: URIs give the number). */
export function calledUserOf(uri: string): string {
  const u = parseUri(uri);
  let user = u?.user ?? '';
  if (u !== undefined && u.scheme === 'tel') user = (user.split(';')[0] ?? '').trim();
  try {
    return decodeURIComponent(user);
  } catch {
    return user;
  }
}
