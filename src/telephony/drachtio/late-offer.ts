import type { SrtpPolicy } from '../../config/media-options.js';
import { sdpMediaAddresses, type MediaRanges } from '../media-ranges.js';
import { audioStreamsToCheck } from '../sdp-reader.js';
import { srtpRefusal } from '../srtp-policy.js';

/**
 * Why the SDP answer a caller put in its ACK (late offer: the INVITE had none, our 200 OK carried
 * FreeSWITCH's offer) cannot be used, or undefined when it can. The rules an offer meets on
 * arrival apply to it too: one shared SRTP policy (srtp-policy.ts) and one media-range rule
 * (media-ranges.ts); codecs and keys are FreeSWITCH's business (it refuses the re-INVITE).
 */
export function lateAnswerRefusal(answer: string, policy: SrtpPolicy, ranges: MediaRanges): string | undefined {
  if (answer.trim() === '') return 'no SDP answer in the ACK';
  if (audioStreamsToCheck(answer).length === 0) return 'no active audio stream in the answer';
  const srtp = srtpRefusal(answer, policy);
  if (srtp !== undefined) return srtp;
  if (sdpMediaAddresses(answer).some((a) => !ranges.sdpAddressAllowed(a))) return 'media address not an IP inside security.mediaRanges';
  return undefined;
}
