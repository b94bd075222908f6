import type { SrtpPolicy, SrtpSuite } from '../config/media-options.js';
import { audioStreamsToCheck, cryptoValuesBySection, sdpStreams } from '../telephony/sdp-reader.js';
import { isSecureProfile, profileAllowed } from '../telephony/srtp-policy.js';
import type { MediaProfileOptions } from './types.js';

/**
 * The media profile of each leg of a relayed call. The caller's leg keeps the profile the caller
 * offered (the product's SRTP policy, `rtp.srtp`, decided first whether it may); the Genesys leg
 * has the one `edge.genesys.srtp` sets. rtpengine writes each leg's SDP in its leg's profile, on
 * the first offer and on every re-offer either way, so a leg never changes profile mid-call.
 */

export interface LegProfiles {
  caller: MediaProfileOptions;
  genesys: MediaProfileOptions;
  /** True when Genesys must answer (and re-offer) SRTP: a plain RTP SDP from it is refused. */
  genesysSrtpRequired: boolean;
}

/**
 * The caller's profile from its offer: RTP/SAVP when the first audio stream the policy allows is
 * SRTP (SDES), else RTP/AVP. Only called once `srtpRefusal` let the offer through.
 */
export function callerProfile(offerSdp: string, policy: SrtpPolicy): 'RTP/AVP' | 'RTP/SAVP' {
  const first = audioStreamsToCheck(offerSdp).find((x) => x.protocol !== undefined && profileAllowed(x.protocol, policy));
  return first?.protocol !== undefined && isSecureProfile(first.protocol) ? 'RTP/SAVP' : 'RTP/AVP';
}

export function legProfiles(callerOffer: string, policy: SrtpPolicy, genesysSrtp: 'off' | 'required', suites: readonly SrtpSuite[]): LegProfiles {
  const profile = (p: 'RTP/AVP' | 'RTP/SAVP'): MediaProfileOptions => (p === 'RTP/SAVP' ? { transportProtocol: p, sdesSuites: suites } : { transportProtocol: p });
  return {
    caller: profile(callerProfile(callerOffer, policy)),
    genesys: profile(genesysSrtp === 'required' ? 'RTP/SAVP' : 'RTP/AVP'),
    genesysSrtpRequired: genesysSrtp === 'required',
  };
}

/**
 * Why an SDP from Genesys (answer or re-offer) is not SRTP as `edge.genesys.srtp: required` wants,
 * or undefined when an active audio stream is RTP/SAVP(F) with an a=crypto line of an allowed suite.
 */
export function genesysSrtpRefusal(sdp: string, suites: readonly SrtpSuite[]): string | undefined {
  return sdesKeyed(sdp, suites) ? undefined : 'Genesys media is not SRTP (RTP/SAVP, SDES with an allowed suite) and edge.genesys.srtp is required';
}

/** True when an active audio stream is RTP/SAVP(F) with an a=crypto line of an allowed suite. */
export function sdesKeyed(sdp: string, suites: readonly SrtpSuite[]): boolean {
  const streams = sdpStreams(sdp);
  const crypto = cryptoValuesBySection(sdp);
  return streams.some(
    (x, i) =>
      x.type === 'audio' &&
      x.port !== 0 &&
      x.protocol !== undefined &&
      isSecureProfile(x.protocol) &&
      (crypto[i] ?? []).some((v) => suites.some((s) => v.split(/\s+/)[1] === s)),
  );
}
