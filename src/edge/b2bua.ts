import { randomBytes } from 'node:crypto';
import type { EdgeConfig } from '../config/schema.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { TypedEmitter } from '../util/typed-emitter.js';
import { contentType } from '../telephony/embedded/sip/message.js';
import { header } from '../telephony/embedded/sip/serializer.js';
import type { ServerSession } from '../telephony/embedded/sip/session.js';
import type { UserAgent } from '../telephony/embedded/sip/user-agent.js';
import { RelayedCall } from './edge-call.js';
import { genesysInvite, maxForwards, passedHeaders, type GenesysTarget } from './edge-invite.js';
import { EdgeCallRegistry } from './edge-registry.js';
import { legProfiles, sdesKeyed } from './edge-media.js';
import { SRTP_SUITES, type SrtpPolicy, type SrtpSuite } from '../config/media-options.js';
import { srtpRefusal } from '../telephony/srtp-policy.js';
import type { AnchorDtmfEvent, MediaAnchor } from './types.js';

/**
 * The edge B2BUA: every INVITE the user agent admitted (allow-list, rate, capacity, secret,
 * digest: the caller side's checks) becomes a RelayedCall toward the Genesys trunk, with its
 * media anchored on rtpengine. It keeps the calls by session id for the capture service.
 */

export interface B2buaOptions {
  ua: Pick<UserAgent, 'invite' | 'localFor'>;
  anchor: MediaAnchor;
  edge: EdgeConfig;
  logger: Logger;
  /** The product's SRTP policy for the caller's offer (rtp.srtp) and the SDES suites allowed (rtp.srtpSuites). */
  srtp?: { policy: SrtpPolicy; suites: readonly SrtpSuite[] };
}

/** Session ids: 128 random bits, URL-safe (an Architect flow passes them on in URLs). */
export function newSessionId(): string {
  return randomBytes(16).toString('base64url');
}

interface B2buaEvents extends Record<string, unknown[]> {
  /** A new relayed call, before its set-up starts (listeners see every state and event). */
  call: [call: RelayedCall];
}

export class B2bua extends TypedEmitter<B2buaEvents> {
  readonly calls: EdgeCallRegistry<RelayedCall>;
  readonly #opts: B2buaOptions;
  readonly #genesys: GenesysTarget;
  readonly #log: Logger;
  readonly #onDtmf = (ev: AnchorDtmfEvent): void => this.calls.byAnchorCallId(ev.callId)?.onAnchorDtmf(ev);

  constructor(opts: B2buaOptions) {
    const genesys = opts.edge.genesys;
    if (genesys === undefined) throw new Error('edge.genesys is required'); // the config schema says so first
    super();
    this.#opts = opts;
    this.#genesys = genesys;
    this.#log = opts.logger;
    this.calls = new EdgeCallRegistry({ keepEndedMs: opts.edge.endedCallsKeptSeconds * 1000, keepEndedCount: opts.edge.endedCallsKept });
    // One listener for all calls: rtpengine's key events go to their call by call-id.
    opts.anchor.on('dtmf', this.#onDtmf);
  }

  get activeCalls(): number {
    return this.calls.size;
  }

  /** A new INVITE from the caller side (already admitted). */
  handle(session: ServerSession): void {
    const invite = session.invite;
    if (maxForwards(invite) === 0) {
      session.reject(483);
      return;
    }
    if (invite.body.length === 0 || contentType(invite) !== 'application/sdp') {
      // rtpengine anchors an offer; an offerless INVITE would need the answer from Genesys first.
      session.reject(488, { headers: [header('warning', '399 pay-ivr-edge "an SDP offer in the INVITE is required"')] });
      return;
    }
    const { edge, anchor, ua } = this.#opts;
    const srtp = this.#opts.srtp ?? { policy: 'optional', suites: SRTP_SUITES };
    const offer = invite.body.toString('utf8');
    // The same rule and the same 488 as the payment IVR's (telephony/srtp-policy.ts).
    const why = srtpRefusal(offer, srtp.policy);
    if (why !== undefined) {
      this.#log.info({ callId: session.callId, why }, 'edge: INVITE refused, SDP offer not acceptable');
      session.reject(488, { headers: [header('warning', `302 pay-ivr-edge "${why}"`)] });
      return;
    }
    const profiles = legProfiles(offer, srtp.policy, this.#genesys.srtp, srtp.suites);
    if (profiles.caller.transportProtocol === 'RTP/SAVP' && !sdesKeyed(offer, srtp.suites)) {
      // What the payment node's media engine does with SRTP it has no allowed key for.
      this.#log.info({ callId: session.callId }, 'edge: INVITE refused, no a=crypto line with an allowed suite');
      session.reject(488, { headers: [header('warning', '304 pay-ivr-edge "no common media: no a=crypto line with an allowed suite"')] });
      return;
    }
    const sessionId = newSessionId();
    const call = new RelayedCall(session, sessionId, {
      anchor,
      log: this.#log,
      invite: (o) => ua.invite(o),
      genesysInvite: (sdp) =>
        genesysInvite(invite, { genesys: this.#genesys, passHeaders: edge.passHeaders, sessionHeader: edge.sessionHeader, sessionId, sdp, local: ua.localFor(this.#genesys.transport) }),
      passHeaders: (msg) => passedHeaders(msg, edge.passHeaders, edge.sessionHeader),
      profiles,
      suites: srtp.suites,
    });
    this.calls.add(call);
    this.#log.info({ edgeSession: sessionId, callId: session.callId }, 'edge: call from the carrier side');
    try {
      this.emit('call', call);
    } catch (e) {
      this.#log.error({ err: describeError(e), edgeSession: sessionId }, 'edge: call listener failed');
    }
    call.run().catch((e: unknown) => {
      this.#log.error({ err: describeError(e), edgeSession: sessionId }, 'edge: call set-up failed');
      void call.hangup('internal error');
    });
  }

  /** Ends every call (shutdown): BYE/CANCEL both legs, rtpengine calls deleted. */
  async hangupAll(reason: string): Promise<void> {
    await Promise.allSettled(this.calls.live().map((c) => c.hangup(reason)));
  }

  close(): void {
    this.#opts.anchor.off('dtmf', this.#onDtmf);
  }
}
