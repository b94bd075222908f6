import type { SrtpSuite } from '../config/media-options.js';
import type { DtmfDigit } from '../domain/dtmf.js';
import type { TypedEmitter } from '../util/typed-emitter.js';

/**
 * The edge role (Agent Assist): pay-ivr as a SIP B2BUA between the carrier side (the caller) and
 * Genesys BYOC, with every call's media anchored on rtpengine. These are the contracts between
 * its three parts, so each can be built and tested on its own:
 *
 *   MediaAnchor   rtpengine over the ng protocol (offer, answer, delete, DTMF block, play)
 *   EdgeCall      one relayed call as the B2BUA sees it (two legs, one rtpengine call)
 *   CaptureHost   what an assisted capture needs from the edge: find a call, block/unblock the
 *                 caller's keys toward Genesys, hear each key, play a prompt to the caller alone
 */

/** What rtpengine puts in place of a blocked key toward the other leg. */
export type DtmfSecurityMode = 'silence' | 'tone' | 'zero' | 'random';

/** The caller side (carrier/SBC) and the Genesys side of a relayed call. */
export type EdgeLeg = 'caller' | 'genesys';

/** Identifies one rtpengine call and its two legs (SIP Call-ID and the two dialogs' tags). */
export interface AnchorIds {
  callId: string;
  /** The tag of the leg that sent the offer (From tag of the INVITE). */
  fromTag: string;
  /** The tag of the answering leg (To tag of the answer). */
  toTag?: string;
}

/** One key press that rtpengine reported (RFC 4733 event, or an in-band tone it decoded). */
export interface AnchorDtmfEvent {
  callId: string;
  /** The tag of the leg the key came from. */
  sourceTag: string;
  digit: DtmfDigit;
  /** Event duration in RTP timestamp units when reported. */
  duration?: number;
}

export interface MediaAnchorEvents extends Record<string, unknown[]> {
  dtmf: [event: AnchorDtmfEvent];
  /** The ng control channel answered again after failing (true) or stopped answering (false). */
  reachable: [up: boolean];
}

/** The media profile of the SDP rtpengine writes for one leg. */
export interface MediaProfileOptions {
  /** RTP/AVP (default) or RTP/SAVP with SDES keys rtpengine makes. */
  transportProtocol?: 'RTP/AVP' | 'RTP/SAVP';
  /** The SDES suites rtpengine may offer or accept (rtp.srtpSuites); all it knows when unset. */
  sdesSuites?: readonly SrtpSuite[];
}

/**
 * rtpengine, driven over the ng protocol. Every method rejects with a coded error when rtpengine
 * does not answer in time or answers `error`; SDP strings are never logged with card data (they
 * carry none).
 */
export interface MediaAnchor extends TypedEmitter<MediaAnchorEvents> {
  /** Offer from the leg `ids.fromTag`; resolves with the SDP to send to the other leg (in `opts.transportProtocol`). */
  offer(ids: AnchorIds, sdp: string, opts?: MediaProfileOptions): Promise<string>;
  /** Answer from the leg `ids.toTag`; resolves with the SDP to send back to the offerer (in `opts.transportProtocol`). */
  answer(ids: AnchorIds & { toTag: string }, sdp: string, opts?: MediaProfileOptions): Promise<string>;
  /** Ends the rtpengine call (idempotent: an unknown call is not an error). */
  delete(callId: string): Promise<void>;
  /** Stops keys from the leg `fromTag` reaching the other leg; they are still reported as 'dtmf'. */
  blockDtmf(callId: string, fromTag: string, mode: DtmfSecurityMode): Promise<void>;
  unblockDtmf(callId: string, fromTag: string): Promise<void>;
  /** Plays a WAV file to the leg `toTag` only (the other leg does not hear it). */
  playMedia(callId: string, toTag: string, file: string): Promise<void>;
  stopMedia(callId: string, toTag: string): Promise<void>;
  /** True while the ng control channel answers. */
  readonly reachable: boolean;
  close(): Promise<void>;
}

export interface EdgeCallEvents extends Record<string, unknown[]> {
  /** A key from the caller leg, as rtpengine reported it (whether blocked or not). */
  digit: [digit: DtmfDigit];
  ended: [info: { by: EdgeLeg | 'local'; reason: string }];
}

/** One relayed call. */
export interface EdgeCall extends TypedEmitter<EdgeCallEvents> {
  /** The edge session id sent to Genesys in the configured header (random, unguessable). */
  readonly sessionId: string;
  readonly state: 'connecting' | 'connected' | 'ended';
  /** The rtpengine call and the tag of the caller leg. */
  readonly anchor: AnchorIds;
  /** The conversation id once Genesys sent one (x-inin-cnv in a response or re-INVITE), if any. */
  readonly conversationId: string | undefined;
  blockCallerKeys(mode: DtmfSecurityMode): Promise<void>;
  unblockCallerKeys(): Promise<void>;
  /** Plays a prompt file to the caller only. */
  playToCaller(file: string): Promise<void>;
  /** Ends both legs (BYE/CANCEL) and deletes the rtpengine call. Idempotent. */
  hangup(reason?: string): Promise<void>;
}

/** What the assist capture service needs from the edge. */
export interface CaptureHost {
  /** The call with this edge session id: a live call, 'ended' for one that ended recently, or undefined. */
  find(sessionId: string): EdgeCall | 'ended' | undefined;
}
