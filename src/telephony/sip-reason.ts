import type { HangupReason } from './types.js';

/**
 * The Reason header (RFC 3326) both backends put on a BYE, and the final status an INVITE not
 * yet answered gets in its place.
 */

/**
 * `SIP;cause=200;text="Call transferred"`. The text becomes one quoted string: quotes,
 * backslashes and control characters (CR/LF would end the header) become spaces, at most 120
 * characters; the cause is a whole number.
 */
export function formatReason(reason: HangupReason): string {
  // eslint-disable-next-line no-control-regex -- control characters are what is removed
  const text = reason.text.replace(/[\x00-\x1f\x7f"\\]/g, ' ').slice(0, 120);
  return `${reason.protocol};cause=${Math.trunc(reason.cause)};text="${text}"`;
}

/**
 * A hang-up before the INVITE was answered is a final response instead of a BYE: the Reason's
 * SIP cause when it is a failure status (4xx-6xx), else 480 Temporarily Unavailable.
 */
export function unansweredStatus(reason: HangupReason | undefined): number {
  return reason !== undefined && reason.protocol === 'SIP' && reason.cause >= 400 && reason.cause <= 699 ? Math.trunc(reason.cause) : 480;
}
