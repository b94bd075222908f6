import type { Config } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import { MediaRanges } from '../media-ranges.js';
import { MediaEngine } from './media/engine.js';
import type { MediaEngineLike } from './media-port.js';

/** The media engine the backend uses unless one is injected: media/ (RTP, G.711, RFC 4733). */
export function createDefaultMedia(config: Config, logger: Logger): MediaEngineLike {
  const { rtp, sip } = config;
  return new MediaEngine({
    host: rtp.host,
    ...(sip.publicAddress !== undefined ? { advertisedAddress: sip.publicAddress } : {}),
    portMin: rtp.portMin,
    portMax: rtp.portMax,
    promptsDir: config.promptsDir,
    noRtpTimeoutMs: rtp.noRtpTimeoutMs,
    logger,
    srtp: rtp.srtp,
    srtpSuites: rtp.srtpSuites,
    mediaRanges: new MediaRanges(config.security.mediaRanges),
    comfortNoiseDbov: rtp.comfortNoiseDbov,
  });
}
