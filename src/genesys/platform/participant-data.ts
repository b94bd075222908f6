import type { PaymentResult } from '../../domain/outcome.js';
import { participantAttributes } from './attributes.js';
import { createParticipantDataWriter } from './client.js';
import type { WriteBackDepsFactory } from './write-back-runtime.js';

/**
 * The write-back's production parts: the Platform API writer on the official SDK and the
 * result -> attributes mapping, for `genesys.platform.enabled` (the CLI loads this module only then).
 */
export const participantDataDeps: WriteBackDepsFactory = (config, logger, node) => ({
  writer: createParticipantDataWriter(config.genesys.platform, logger, process.env),
  attributesOf: (r: PaymentResult) => participantAttributes(r, config.genesys.platform, node),
});
