import { PayIvrError } from '../errors.js';

/** Hand-back targets from the configuration, as SIP URIs for a Refer-To. */

/** Printable ASCII without spaces, quotes or angle brackets (0x21-0x7E minus " < >). */
const SIP_URI = /^sips?:[!#-;=?-~]+$/i;
const TEL_URI = /^tel:(\+?[0-9][0-9().-]*)((?:;[^\s<>"?;]+)*)$/i;
const BARE_NUMBER = /^\+?[0-9]{2,32}$/;
const HOST = /^[A-Za-z0-9.:[\]-]+$/;

function invalidTarget(target: string): PayIvrError {
  // Targets come from the configuration only (a context ret= goes through resolveReturnTarget).
  return new PayIvrError('ERR_REFER_FAILED', `invalid hand-back target "${target.slice(0, 80)}"`);
}

/**
 * Normalises a hand-back target to a SIP URI (no angle brackets): sip:/sips: URIs are kept,
 * "tel:+331..." and bare "+331..." become "sip:+331...@host" (a tel URI cannot carry the UUI
 * header). Throws ERR_REFER_FAILED when the target is unusable.
 */
export function toSipTarget(target: string, host?: string): string {
  let t = target.trim();
  if (t.startsWith('<') && t.endsWith('>')) t = t.slice(1, -1).trim();
  if (SIP_URI.test(t)) return t;
  let user: string | undefined;
  const tel = TEL_URI.exec(t);
  if (tel !== null) user = (tel[1] ?? '').replace(/[().-]/g, '');
  else if (BARE_NUMBER.test(t)) user = t;
  if (user === undefined || user === '' || host === undefined || !HOST.test(host)) throw invalidTarget(target);
  return `sip:${user}@${host}`;
}

