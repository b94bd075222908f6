import { audioStreamsToCheck, sdpStreams } from './sdp-reader.js';

/**
 * The SRTP policy (config `rtp.srtp`), one rule for both backends: 'required' refuses plain
 * RTP/AVP offers, 'off' refuses RTP/SAVP ones, 'optional' takes either. Only SDES-keyed SRTP
 * (RTP/SAVP, RTP/SAVPF with a=crypto) counts as secure; DTLS-SRTP (UDP/TLS/RTP/SAVP) is not
 * offered by Genesys BYOC and is refused. The SDP is read by sdp-reader.ts, like every other rule.
 */
import type { SrtpPolicy } from '../config/media-options.js';

export function isSecureProfile(protocol: string): boolean {
  return protocol === 'RTP/SAVP' || protocol === 'RTP/SAVPF';
}

function isPlainProfile(protocol: string): boolean {
  return protocol === 'RTP/AVP' || protocol === 'RTP/AVPF';
}

/** May an audio stream with this transport profile be accepted under the policy? */
export function profileAllowed(protocol: string, policy: SrtpPolicy): boolean {
  if (isPlainProfile(protocol)) return policy !== 'required';
  if (isSecureProfile(protocol)) return policy !== 'off';
  return false;
}

/**
 * Why the SRTP policy refuses every audio stream of an offer (the text of a 488's Warning and of
 * the log line), or undefined when at least one active audio stream has an allowed profile. An
 * m= line that cannot be read has no profile that could be allowed. Says nothing about codecs or
 * keys: those are the media answerer's business.
 */
export function srtpRefusal(offerSdp: string, policy: SrtpPolicy): string | undefined {
  const streams = audioStreamsToCheck(offerSdp);
  const profiles = streams.flatMap((x) => (x.protocol === undefined ? [] : [x.protocol]));
  if (streams.length === 0 || profiles.some((p) => profileAllowed(p, policy))) return undefined;
  if (policy === 'required' && profiles.some(isPlainProfile)) return 'SRTP required: offer RTP/SAVP with an SDES a=crypto line';
  if (policy === 'off' && profiles.some(isSecureProfile)) return 'SRTP disabled here: offer RTP/AVP';
  const first = streams[0]?.protocol;
  return first === undefined ? 'm= line not readable' : `transport profile ${first.slice(0, 32)} not supported`;
}

/** True when an audio m= line of the offer (rejected ones too) names an SRTP profile: FreeSWITCH must then answer first, with its key. */
export function offersSrtp(offerSdp: string): boolean {
  return sdpStreams(offerSdp).some((x) => x.type === 'audio' && (x.protocol ?? '').includes('SAVP'));
}
