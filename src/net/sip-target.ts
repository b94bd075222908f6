/**
 * The syntax of the SIP targets an operator configures (hand-back targets, return-target hosts
 * and number patterns), shared by the config schema (checked at start) and the hand-back (used at
 * run time), so what was accepted at start is what the REFER is built from.
 */

/** Printable ASCII without spaces, quotes or angle brackets (0x21-0x7E minus " < >). */
const SIP_URI = /^sips?:[!#-;=?-~]+$/i;
const TEL_URI = /^tel:(\+?[0-9][0-9().-]*)((?:;[^\s<>"?;]+)*)$/i;
const BARE_NUMBER = /^\+?[0-9]{2,32}$/;
const HOST = /^[A-Za-z0-9.:[\]-]+$/;

/** A host name or IPv4 address, optionally with ":port" (handBack.returnTargets.hosts). */
export const HOST_PORT = /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::[0-9]{1,5})?$/;

/**
 * A hand-back target as a SIP URI (no angle brackets): sip:/sips: URIs are kept, "tel:+331..."
 * and bare "+331..." become "sip:+331...@host" (a tel URI cannot carry the UUI header).
 * Undefined when the target is unusable.
 */
export function sipTargetOf(target: string, host?: string): string | undefined {
  let t = target.trim();
  if (t.startsWith('<') && t.endsWith('>')) t = t.slice(1, -1).trim();
  if (SIP_URI.test(t)) return t;
  let user: string | undefined;
  const tel = TEL_URI.exec(t);
  if (tel !== null) user = (tel[1] ?? '').replace(/[().-]/g, '');
  else if (BARE_NUMBER.test(t)) user = t;
  if (user === undefined || user === '' || host === undefined || !HOST.test(host)) return undefined;
  return `sip:${user}@${host}`;
}

const compiled = new Map<string, RegExp>();

/** A configured return-number pattern, anchored to match a whole number; throws when it does not compile. */
export function numberPattern(source: string): RegExp {
  let re = compiled.get(source);
  if (re === undefined) {
    re = new RegExp(`^(?:${source})$`);
    compiled.set(source, re);
  }
  return re;
}

/** Whether a configured number pattern compiles (config validation). */
export function isValidNumberPattern(source: string): boolean {
  try {
    numberPattern(source);
    return true;
  } catch {
    return false;
  }
}
