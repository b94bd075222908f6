import { PayIvrError } from '../errors.js';
import { sipTargetOf } from '../net/sip-target.js';

/**
 * Normalises a hand-back target to a SIP URI for a Refer-To (syntax: `src/net/sip-target.ts`).
 * Throws ERR_REFER_FAILED when the target is unusable.
 */
export function toSipTarget(target: string, host?: string): string {
  const uri = sipTargetOf(target, host);
  // Targets come from the configuration only (a context ret= goes through resolveReturnTarget).
  if (uri === undefined) throw new PayIvrError('ERR_REFER_FAILED', `invalid hand-back target "${target.slice(0, 80)}"`);
  return uri;
}
