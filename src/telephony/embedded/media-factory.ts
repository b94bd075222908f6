import { availableParallelism } from 'node:os';
import type { Config } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import { MediaRanges } from '../media-ranges.js';
import { MediaEngine, type MediaEngineOptions } from './media/engine.js';
import { MediaWorkerPool } from './media-workers/pool.js';
import type { MediaEngineLike } from './media-port.js';

/** Media worker threads for this config: 'auto' = one per core up to rtp.maxWorkers; 0 and 1 mean none. */
export function mediaWorkerCount(rtp: Config['rtp'], cores: number = availableParallelism()): number {
  const n = rtp.workers === 'auto' ? Math.min(cores, rtp.maxWorkers) : rtp.workers;
  return n <= 1 ? 0 : n;
}

/** What the engine is built from: the same whether it runs in-process or in workers. */
function mediaEngineOptions(config: Config, logger: Logger): MediaEngineOptions {
  const { rtp, sip } = config;
  return {
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
  };
}

/**
 * The media engine the backend uses unless one is injected: media/ (RTP, G.711, RFC 4733), in
 * media worker threads when rtp.workers asks for more than one, else on the main thread.
 */
export function createDefaultMedia(config: Config, logger: Logger): MediaEngineLike {
  const opts = mediaEngineOptions(config, logger);
  const workers = mediaWorkerCount(config.rtp);
  // Workers rebuild the ranges from their entries (a class instance does not cross threads).
  return workers > 0 ? new MediaWorkerPool({ ...opts, mediaRanges: config.security.mediaRanges, workers, priority: config.rtp.workerPriority }) : new MediaEngine(opts);
}
