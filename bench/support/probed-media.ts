/**
 * The media engine of the bench servers (load-server.ts, product-server.ts): the engine
 * createDefaultMedia would build from the config, in media worker threads with the bench's timing
 * probe (media-probe.ts) preloaded in each, or on the main thread; tuning adds engine options the
 * bench sets itself (pacer slots, connected sockets, precise wake-up).
 */
import type { Config } from '../../src/config/schema.js';
import type { Logger } from '../../src/log.js';
import { MediaEngine, type MediaEngineOptions } from '../../src/telephony/embedded/media/engine.js';
import type { MediaEngineLike } from '../../src/telephony/embedded/media-port.js';

/** workers: media worker threads (0 = the engine on the main thread). */
export async function createProbedMedia(config: Config, logger: Logger, workers: number, tuning: Partial<MediaEngineOptions> = {}): Promise<MediaEngineLike> {
  const opts: Omit<MediaEngineOptions, 'mediaRanges'> = {
    host: config.rtp.host,
    portMin: config.rtp.portMin,
    portMax: config.rtp.portMax,
    promptsDir: config.promptsDir,
    noRtpTimeoutMs: config.rtp.noRtpTimeoutMs,
    logger,
    srtp: config.rtp.srtp,
    comfortNoiseDbov: config.rtp.comfortNoiseDbov,
    ...tuning,
  };
  if (workers < 1) return new MediaEngine(opts);
  // Loaded only here, so the bench servers also run against a tree from before media workers existed.
  const { MediaWorkerPool } = await import('../../src/telephony/embedded/media-workers/pool.js');
  // rtp.workerPriority: read loosely, for the same reason.
  const priority = (config.rtp as { workerPriority?: 'normal' | 'high' | 'realtime' }).workerPriority;
  return new MediaWorkerPool({ ...opts, workers, ...(priority !== undefined ? { priority } : {}), preload: new URL('./media-probe.ts', import.meta.url).href });
}
