import type { DtmfDigit } from '../domain/dtmf.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { TypedEmitter } from '../util/typed-emitter.js';
import type { ClientInviteOptions, ClientSession } from '../telephony/embedded/sip/client-session.js';
import { contentType, headerValue, tagOf, type SipHeader, type SipMessage, type SipRequest, type SipResponse } from '../telephony/embedded/sip/message.js';
import { header } from '../telephony/embedded/sip/serializer.js';
import type { ServerSession, SessionEnd } from '../telephony/embedded/sip/session.js';
import type { RelayAnswer } from '../telephony/embedded/sip/usage.js';
import type { AnchorDtmfEvent, AnchorIds, DtmfSecurityMode, EdgeCall, EdgeCallEvents, EdgeLeg, MediaAnchor } from './types.js';
import { formatReason } from '../telephony/sip-reason.js';
import type { SrtpSuite } from '../config/media-options.js';
import { genesysSrtpRefusal, type LegProfiles } from './edge-media.js';
import type { HangupReason } from '../telephony/types.js';

/**
 * One relayed call: the caller's INVITE (a ServerSession), our INVITE to Genesys (a
 * ClientSession) and the one rtpengine call between them.
 *
 * rtpengine ids. The rtpengine call-id is the caller leg's Call-ID, and its two tags are the two
 * tags of the caller's dialog: the caller's From tag (the caller's side) and the To tag we answer
 * the caller with (our own, standing for the Genesys side). Genesys's Call-ID and tags never
 * reach rtpengine: they are only known once Genesys answers, after the offer was made. So:
 *   caller's offer (INVITE, re-INVITE)  offer(from-tag = caller tag), answer(to-tag = our tag)
 *   Genesys's offer (re-INVITE, UPDATE) offer(from-tag = our tag, to-tag = caller tag), answer(to-tag = caller tag)
 *   keys, prompts for the caller        blockDtmf / playMedia with the caller tag
 */

export interface RelayedCallDeps {
  anchor: MediaAnchor;
  log: Logger;
  /** Sends the INVITE toward Genesys (the user agent's invite()). */
  invite(opts: ClientInviteOptions): ClientSession;
  /** Builds that INVITE from the caller's, with the SDP rtpengine gave for the Genesys side. */
  genesysInvite(sdp: string): ClientInviteOptions;
  /** The allow-listed headers of a message, to copy to the other leg. */
  passHeaders(msg: SipMessage): SipHeader[];
  /** Each leg's media profile (edge-media.ts); plain RTP on both when unset. */
  profiles?: LegProfiles;
  /** The SDES suites Genesys may use (rtp.srtpSuites), for the check of its SDP. */
  suites?: readonly SrtpSuite[];
}

/** The 503 a call gets when rtpengine cannot anchor it. */
const MEDIA_RELAY_DOWN = 'media relay unavailable';

/**
 * The status the caller gets for Genesys's final refusal: the same, except a redirect (it would
 * send the caller around the edge) and an authentication challenge (it is for our leg, which the
 * caller cannot answer): 502 Bad Gateway for those.
 */
export function callerStatus(genesysStatus: number): number {
  if (genesysStatus >= 300 && genesysStatus < 400) return 502;
  if (genesysStatus === 401 || genesysStatus === 407) return 502;
  return genesysStatus;
}

/** A Reason header value from free text (no quotes or line breaks can get through). */
function sipReason(cause: number, text: string): HangupReason {
  return { protocol: 'SIP', cause, text };
}

/** The Reason header value (RFC 3326) for a SIP cause: the one writer both backends use. */
export function reasonHeader(cause: number, text: string): string {
  return formatReason(sipReason(cause, text));
}

export class RelayedCall extends TypedEmitter<EdgeCallEvents> implements EdgeCall {
  readonly sessionId: string;
  readonly anchor: AnchorIds;
  #state: EdgeCall['state'] = 'connecting';
  #conversationId: string | undefined;
  readonly #caller: ServerSession;
  readonly #deps: RelayedCallDeps;
  readonly #log: Logger;
  /** The caller's From tag (rtpengine's caller leg) and our tag toward the caller (the other leg). */
  readonly #callerTag: string;
  readonly #ourTag: string;
  #genesys: ClientSession | undefined;
  #anchored = false;
  #ended = false;
  /** Set before we reject or BYE the caller ourselves (its 'terminated' is then ours, not news). */
  #ownEnd = false;
  /** The SDP we last sent the caller: offered again for an offerless re-INVITE or our session refresh. */
  #callerSdp = '';
  readonly #profiles: LegProfiles;

  constructor(caller: ServerSession, sessionId: string, deps: RelayedCallDeps) {
    super();
    this.#caller = caller;
    this.sessionId = sessionId;
    this.#deps = deps;
    this.#callerTag = tagOf(headerValue(caller.invite, 'from')) ?? '';
    this.#ourTag = caller.localTag;
    this.anchor = { callId: caller.callId, fromTag: this.#callerTag, toTag: this.#ourTag };
    this.#log = deps.log.child({ edgeSession: sessionId, callId: caller.callId });
    this.#profiles = deps.profiles ?? { caller: {}, genesys: {}, genesysSrtpRequired: false };
  }

  get state(): EdgeCall['state'] {
    return this.#state;
  }

  get conversationId(): string | undefined {
    return this.#conversationId;
  }

  /** The Genesys leg, once its INVITE was sent (tests and diagnostics). */
  get genesys(): ClientSession | undefined {
    return this.#genesys;
  }

  /** Sets the call up: rtpengine offer, INVITE to Genesys, rtpengine answer, 200 to the caller. */
  async run(): Promise<void> {
    const caller = this.#caller;
    caller.on('terminated', (info) => this.#onCallerEnded(info));
    caller.relay = (req) => this.#relayFromCaller(req);
    // Offers with SDP are relayed; what stays with the caller's leg (an offerless re-INVITE, our
    // own session refresh) is served with the SDP it already has, and its answer is not news.
    caller.media = { reoffer: () => undefined, createOffer: () => this.#callerSdp, applyAnswer: () => true };
    const offer = caller.invite.body.toString('utf8');
    let toGenesys: string;
    try {
      toGenesys = await this.#deps.anchor.offer({ callId: this.anchor.callId, fromTag: this.#callerTag }, offer, this.#profiles.genesys);
      this.#anchored = true;
      if (this.#state === 'ended') {
        // hangup() came while rtpengine was making the call: it must not stay behind.
        await this.#deleteAnchor();
        return;
      }
    } catch (e) {
      this.#log.warn({ err: describeError(e) }, 'edge: rtpengine offer failed, call refused');
      this.#ownEnd = true;
      caller.reject(503, {
        reason: 'Media Relay Unavailable',
        headers: [header('reason', reasonHeader(503, MEDIA_RELAY_DOWN)), header('warning', `399 pay-ivr-edge "${MEDIA_RELAY_DOWN}"`), header('retry-after', '5')],
      });
      // rtpengine may have made the call after all (a late answer): it must not stay behind.
      this.#anchored = true;
      this.#finish('local', MEDIA_RELAY_DOWN);
      return;
    }
    if (this.#ended || caller.state !== 'offered') {
      this.#finish('caller', 'CANCEL');
      return;
    }
    const genesys = this.#deps.invite(this.#deps.genesysInvite(toGenesys));
    this.#genesys = genesys;
    genesys.relay = (req) => this.#relayFromGenesys(req);
    genesys.on('provisional', (res) => void this.#onProvisional(res));
    genesys.on('terminated', (info) => this.#onGenesysEnded(info));
    const outcome = await genesys.outcome;
    switch (outcome.kind) {
      case 'answered':
        await this.#onAnswered(outcome.response);
        return;
      case 'rejected': {
        const res = outcome.response;
        this.#log.info({ status: res.status }, 'edge: Genesys refused the call');
        const status = callerStatus(res.status);
        this.#ownEnd = true;
        caller.reject(status, { ...(status === res.status ? { reason: res.reason } : {}), headers: this.#deps.passHeaders(res) });
        this.#finish('genesys', `rejected-${res.status}`);
        return;
      }
      case 'timeout':
        this.#log.info('edge: Genesys did not answer the INVITE');
        this.#ownEnd = true;
        caller.reject(408, { headers: [header('reason', reasonHeader(408, 'no answer from Genesys'))] });
        this.#finish('genesys', 'timeout');
        return;
      case 'cancelled':
        this.#finish('caller', 'CANCEL');
        return;
    }
  }

  async blockCallerKeys(mode: DtmfSecurityMode): Promise<void> {
    await this.#deps.anchor.blockDtmf(this.anchor.callId, this.#callerTag, mode);
  }

  async unblockCallerKeys(): Promise<void> {
    await this.#deps.anchor.unblockDtmf(this.anchor.callId, this.#callerTag);
  }

  async playToCaller(file: string): Promise<void> {
    await this.#deps.anchor.playMedia(this.anchor.callId, this.#callerTag, file);
  }

  /** Ends both legs (BYE, or CANCEL/480 before the answer) and deletes the rtpengine call. */
  async hangup(reason = 'hangup'): Promise<void> {
    if (this.#ended) return;
    const value = reasonHeader(200, reason);
    this.#ownEnd = true;
    if (this.#caller.state === 'offered') this.#caller.reject(480, { headers: [header('reason', value)] });
    else void this.#caller.bye(sipReason(200, reason), { by: 'local', reason });
    this.#genesys?.cancel(value);
    await this.#finish('local', reason);
  }

  /** A key rtpengine saw: only the caller leg's are this call's digits. */
  onAnchorDtmf(ev: AnchorDtmfEvent): void {
    if (this.#ended || ev.sourceTag !== this.#callerTag) return;
    this.#safeEmit('digit', ev.digit satisfies DtmfDigit);
  }

  async #onProvisional(res: SipResponse): Promise<void> {
    if (res.status <= 100 || this.#caller.state !== 'offered') return;
    this.#noteConversation(res);
    let sdp: string | undefined;
    const notSrtp = hasSdp(res) ? this.#genesysNotSrtp(res.body.toString('utf8')) : undefined;
    if (notSrtp !== undefined) this.#log.warn({ status: res.status, why: notSrtp }, 'edge: early media from Genesys refused, relayed without SDP');
    else if (hasSdp(res)) {
      // Early media: rtpengine takes Genesys's SDP as the answer now (and again at the 2xx).
      try {
        sdp = await this.#deps.anchor.answer({ ...this.anchor, toTag: this.#ourTag }, res.body.toString('utf8'), this.#profiles.caller);
      } catch (e) {
        this.#log.warn({ err: describeError(e) }, 'edge: rtpengine answer for early media failed, relayed without SDP');
      }
    }
    this.#caller.progress(res.status, { sdp, reason: res.reason, headers: this.#deps.passHeaders(res) });
  }

  async #onAnswered(res: SipResponse): Promise<void> {
    const caller = this.#caller;
    const genesys = this.#genesys as ClientSession;
    this.#noteConversation(res);
    if (this.#ended || caller.state !== 'offered') {
      void genesys.bye(reasonHeader(487, 'caller went away'));
      this.#finish('caller', 'CANCEL');
      return;
    }
    const notSrtp = hasSdp(res) ? this.#genesysNotSrtp(res.body.toString('utf8')) : undefined;
    if (notSrtp !== undefined) {
      // The Genesys leg would carry audio in the clear: neither leg gets media, the caller a 502.
      this.#log.warn({ why: notSrtp }, 'edge: Genesys answered without SRTP, call ended');
      void genesys.bye(reasonHeader(488, 'SRTP required'));
      this.#ownEnd = true;
      caller.reject(502, { reason: 'Bad Gateway', headers: [header('reason', reasonHeader(502, notSrtp)), header('warning', `302 pay-ivr-edge "${notSrtp}"`)] });
      this.#finish('genesys', 'not-srtp');
      return;
    }
    let toCaller: string;
    try {
      if (!hasSdp(res)) throw new Error('no SDP answer in the 2xx');
      toCaller = await this.#deps.anchor.answer({ ...this.anchor, toTag: this.#ourTag }, res.body.toString('utf8'), this.#profiles.caller);
    } catch (e) {
      this.#log.warn({ err: describeError(e) }, 'edge: rtpengine answer failed, call ended');
      void genesys.bye(reasonHeader(503, MEDIA_RELAY_DOWN));
      this.#ownEnd = true;
      caller.reject(503, { reason: 'Media Relay Unavailable', headers: [header('reason', reasonHeader(503, MEDIA_RELAY_DOWN)), header('warning', `399 pay-ivr-edge "${MEDIA_RELAY_DOWN}"`)] });
      this.#finish('local', MEDIA_RELAY_DOWN);
      return;
    }
    if (this.#ended || caller.state !== 'offered') {
      void genesys.bye(reasonHeader(487, 'caller went away'));
      this.#finish('caller', 'CANCEL');
      return;
    }
    this.#callerSdp = toCaller;
    const acked = await caller.accept(toCaller, { lateOffer: false, headers: this.#deps.passHeaders(res) });
    if (acked === 'ack') {
      if (!this.#ended) this.#state = 'connected';
      return;
    }
    // No ACK from the caller (or it went away meanwhile): the Genesys leg goes too.
    void genesys.bye(reasonHeader(408, 'no ACK from the caller'));
    this.#finish('caller', acked === 'no-ack' ? 'no-ack' : 'ended');
  }

  /** A re-INVITE/UPDATE offer from the caller: rtpengine offer, the same request to Genesys, rtpengine answer. */
  async #relayFromCaller(req: SipRequest): Promise<RelayAnswer> {
    const genesys = this.#genesys;
    if (genesys === undefined || genesys.state !== 'confirmed') return { status: 491 };
    const ids = { callId: this.anchor.callId, fromTag: this.#callerTag, toTag: this.#ourTag };
    let sdp: string;
    try {
      sdp = await this.#deps.anchor.offer(ids, req.body.toString('utf8'), this.#profiles.genesys);
    } catch (e) {
      this.#log.warn({ err: describeError(e) }, 'edge: rtpengine re-offer failed, offer refused, call kept');
      return mediaRelayDown();
    }
    const r = await genesys.offer(req.method === 'UPDATE' ? 'UPDATE' : 'INVITE', sdp, this.#deps.passHeaders(req));
    if (r.kind === 'response' && r.response.status < 300 && hasSdp(r.response)) {
      const why = this.#genesysNotSrtp(r.response.body.toString('utf8'));
      if (why !== undefined) {
        // Genesys took the offer in the clear: the leg is out of policy, so the call ends.
        this.#log.warn({ why }, 'edge: Genesys answered a re-offer without SRTP, call ended');
        // After the 488 has gone to the caller (the session answers once this promise settles).
        setImmediate(() => void this.hangup('SRTP required toward Genesys'));
        return { status: 488, headers: [header('warning', `302 pay-ivr-edge "${why}"`)] };
      }
    }
    const ans = await this.#relayedAnswer(r, (answer) => this.#deps.anchor.answer(ids, answer, this.#profiles.caller));
    if (ans.sdp !== undefined) this.#callerSdp = ans.sdp;
    return ans;
  }

  /** A re-INVITE/UPDATE offer from Genesys: rtpengine offer the other way, the same request to the caller. */
  async #relayFromGenesys(req: SipRequest): Promise<RelayAnswer> {
    this.#noteConversation(req);
    const caller = this.#caller;
    if (caller.state !== 'confirmed') return { status: 491 };
    const ids = { callId: this.anchor.callId, fromTag: this.#ourTag, toTag: this.#callerTag };
    const why = this.#genesysNotSrtp(req.body.toString('utf8'));
    if (why !== undefined) {
      this.#log.warn({ why }, 'edge: re-offer from Genesys without SRTP refused, call kept');
      return { status: 488, headers: [header('warning', `302 pay-ivr-edge "${why}"`)] };
    }
    let sdp: string;
    try {
      sdp = await this.#deps.anchor.offer(ids, req.body.toString('utf8'), this.#profiles.caller);
    } catch (e) {
      this.#log.warn({ err: describeError(e) }, 'edge: rtpengine re-offer failed, offer refused, call kept');
      return mediaRelayDown();
    }
    const r = await caller.offer(req.method === 'UPDATE' ? 'UPDATE' : 'INVITE', sdp, this.#deps.passHeaders(req));
    if (r.kind === 'response' && r.response.status < 300) this.#callerSdp = sdp;
    return this.#relayedAnswer(r, (answer) => this.#deps.anchor.answer(ids, answer, this.#profiles.genesys));
  }

  async #relayedAnswer(
    r: { kind: 'response'; response: SipResponse } | { kind: 'timeout' } | { kind: 'ended' },
    answer: (sdp: string) => Promise<string>,
  ): Promise<RelayAnswer> {
    if (r.kind === 'timeout') return { status: 408 };
    if (r.kind === 'ended') return { status: 481 };
    const res = r.response;
    this.#noteConversation(res);
    if (res.status >= 300) return { status: res.status, reason: res.reason, headers: this.#deps.passHeaders(res) };
    if (!hasSdp(res)) return { status: 500, reason: 'No SDP Answer' };
    try {
      return { status: 200, sdp: await answer(res.body.toString('utf8')), headers: this.#deps.passHeaders(res) };
    } catch (e) {
      this.#log.warn({ err: describeError(e) }, 'edge: rtpengine re-answer failed');
      return mediaRelayDown();
    }
  }

  #onCallerEnded(info: SessionEnd): void {
    // Our own reject/BYE: whoever did it finishes. Other local ends (the caller's session timer
    // expired, shutdown) end the Genesys leg like a BYE from the caller would.
    if (this.#ended || this.#ownEnd) return;
    const genesys = this.#genesys;
    if (info.reason === 'CANCEL') {
      genesys?.cancel(reasonHeader(487, 'caller cancelled'));
      // Before the INVITE to Genesys, run() finishes once the offer settles.
      if (genesys !== undefined) this.#finish('caller', 'CANCEL');
      else this.#ended = true;
      return;
    }
    if (genesys !== undefined) void genesys.bye(info.by === 'remote' ? undefined : reasonHeader(408, info.reason));
    this.#finish('caller', info.reason);
  }

  #onGenesysEnded(info: SessionEnd): void {
    // Rejections and timeouts of the INVITE are run()'s; this is a BYE from Genesys.
    if (this.#ended || info.reason !== 'BYE') return;
    this.#ownEnd = true;
    if (this.#caller.state === 'offered') this.#caller.reject(480);
    else void this.#caller.bye();
    this.#finish('genesys', 'BYE');
  }

  /** Why an SDP from Genesys is refused under `edge.genesys.srtp: required`; undefined when fine (or not required). */
  #genesysNotSrtp(sdp: string): string | undefined {
    return this.#profiles.genesysSrtpRequired ? genesysSrtpRefusal(sdp, this.#deps.suites ?? []) : undefined;
  }

  #noteConversation(msg: SipMessage): void {
    const cnv = headerValue(msg, 'x-inin-cnv');
    if (cnv !== undefined && /^[A-Za-z0-9-]{1,64}$/.test(cnv)) this.#conversationId = cnv;
  }

  /** Ends the call once: the rtpengine call is deleted, 'ended' emitted. */
  #finish(by: EdgeLeg | 'local', reason: string): Promise<void> {
    if (this.#state === 'ended') return Promise.resolve();
    this.#ended = true;
    this.#state = 'ended';
    this.#safeEmit('ended', { by, reason });
    this.removeAllListeners();
    return this.#anchored ? this.#deleteAnchor() : Promise.resolve();
  }

  #deleteAnchor(): Promise<void> {
    return this.#deps.anchor.delete(this.anchor.callId).catch((e: unknown) => this.#log.warn({ err: describeError(e) }, 'edge: rtpengine delete failed'));
  }

  #safeEmit<K extends keyof EdgeCallEvents & string>(event: K, ...args: EdgeCallEvents[K]): void {
    try {
      this.emit(event, ...args);
    } catch (e) {
      this.#log.error({ err: describeError(e) }, 'edge: call listener failed');
    }
  }
}

function hasSdp(msg: SipMessage): boolean {
  return msg.body.length > 0 && contentType(msg) === 'application/sdp';
}

function mediaRelayDown(): RelayAnswer {
  return { status: 503, reason: 'Media Relay Unavailable', headers: [header('warning', `399 pay-ivr-edge "${MEDIA_RELAY_DOWN}"`), header('retry-after', '5')] };
}
