import type { Config } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import { PayIvrError } from '../../errors.js';
import type { MediaEngineLike } from './media-port.js';

/** The media engine the backend uses unless one is injected: media/ (RTP, G.711, RFC 4733). */
export function createDefaultMedia(_config: Config, _logger: Logger): MediaEngineLike {
  throw new PayIvrError('ERR_BACKEND_UNAVAILABLE', 'the embedded media engine is not built yet');
}
