/**
 * The `ret=` field of the context picks a hand-back target, but only among the targets the
 * profile allows (handBack.returnTargets): a number matching the configured pattern, a SIP URI
 * listed as is, or `sip:user@host` on a listed host. The Refer-To is then rebuilt from the parsed
 * parts, so nothing else of the context (URI parameters such as maddr/method/transport, headers,
 * escapes, brackets, spaces, non-ASCII) can ever reach it.
 */

import { numberPattern } from '../net/sip-target.js';
import { toSipTarget } from './sip-target.js';

/** What `ret=` may pick (a profile's handBack.returnTargets). */
interface ReturnTargetRules {
  /** Regular expression a number must match entirely (anchored here), e.g. "\\+33[0-9]{9}". */
  numbers?: string | undefined;
  /** Hosts (optionally "host:port") on which `sip:user@host` is accepted. */
  hosts: readonly string[];
  /** SIP URIs accepted exactly as written (the configured string is what is used). */
  uris: readonly string[];
}

/** A Refer-To target built by pay-ivr from allowed parts (never a string taken from the context). */
export type AllowedReturnTarget = string & { readonly __allowedReturnTarget: true };

type ReturnTargetDecision = { ok: true; target: AllowedReturnTarget } | { ok: false; why: 'not-a-target' | 'not-allowed' };

/** "+33140000000" or "tel:+33140000000": digits only, no visual separators, no parameters. */
const NUMBER = /^(?:tel:)?(\+?[0-9]{2,32})$/i;
/** `sip:user@host[:port]`: unreserved user characters, a DNS name or IPv4, nothing after. */
const SIP = /^sip:([A-Za-z0-9+._~-]{1,64})@([A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(?::([0-9]{1,5}))?$/i;

/** RFC 3261 section 25.1 `user`: unreserved / user-unreserved kept, anything else %HH-escaped. */
export function escapeSipUser(user: string): string {
  let out = '';
  for (const byte of Buffer.from(user, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-_.!~*'()&=+$,;?/]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * Checks a `ret=` value against the allowed targets. `returnHost` is the host a number is sent to.
 * Listed URIs are compared exactly and the configured string is used; a number or a
 * `sip:user@host` is rebuilt from its parts. Never throws for a value from the context.
 */
export function resolveReturnTarget(value: string, rules: ReturnTargetRules, returnHost: string): ReturnTargetDecision {
  // The configured string is used (checked at start), not the context's copy of it.
  const listed = rules.uris.find((u) => u === value);
  if (listed !== undefined) {
    try {
      return { ok: true, target: toSipTarget(listed, returnHost) as AllowedReturnTarget };
    } catch {
      return { ok: false, why: 'not-allowed' };
    }
  }
  const num = NUMBER.exec(value);
  if (num !== null) {
    const digits = num[1] ?? '';
    if (rules.numbers === undefined || !numberPattern(rules.numbers).test(digits)) return { ok: false, why: 'not-allowed' };
    return { ok: true, target: `sip:${escapeSipUser(digits)}@${returnHost}` as AllowedReturnTarget };
  }
  const sip = SIP.exec(value);
  if (sip !== null) {
    const host = (sip[2] ?? '').toLowerCase();
    const hostPort = sip[3] === undefined ? host : `${host}:${Number(sip[3])}`;
    if (sip[3] !== undefined && (Number(sip[3]) < 1 || Number(sip[3]) > 65535)) return { ok: false, why: 'not-a-target' };
    if (!rules.hosts.some((h) => h.toLowerCase() === hostPort)) return { ok: false, why: 'not-allowed' };
    return { ok: true, target: `sip:${escapeSipUser(sip[1] ?? '')}@${hostPort}` as AllowedReturnTarget };
  }
  return { ok: false, why: 'not-a-target' };
}
