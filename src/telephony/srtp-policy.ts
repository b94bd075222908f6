/**
 * The SRTP policy (config `rtp.srtp`), one rule for both backends: 'required' refuses plain
 * RTP/AVP offers, 'off' refuses RTP/SAVP ones, 'optional' takes either. Only SDES-keyed SRTP
 * (RTP/SAVP, RTP/SAVPF with a=crypto) counts as secure; DTLS-SRTP (UDP/TLS/RTP/SAVP) is not
 * offered by Genesys BYOC and is refused. Pure text functions: no SDP library needed.
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
 * the log line), or undefined when at least one active audio stream has an allowed profile. Says
 * nothing about codecs or keys: those are the media answerer's business.
 */
export function srtpRefusal(offerSdp: string, policy: SrtpPolicy): string | undefined {
  const profiles = [...offerSdp.matchAll(/^m=audio[ \t]+(\d+)(?:\/\d+)?[ \t]+(\S+)/gm)].filter((m) => m[1] !== '0').map((m) => m[2] as string);
  if (profiles.length === 0 || profiles.some((p) => profileAllowed(p, policy))) return undefined;
  if (policy === 'required' && profiles.some(isPlainProfile)) return 'SRTP required: offer RTP/SAVP with an SDES a=crypto line';
  if (policy === 'off' && profiles.some(isSecureProfile)) return 'SRTP disabled here: offer RTP/AVP';
  return `transport profile ${(profiles[0] ?? '').slice(0, 32)} not supported`;
}
