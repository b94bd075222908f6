/**
 * SIP header names as one spelling: lower case, compact forms expanded. Shared by the SIP stack and
 * the config schema (which checks the header names an operator lists).
 */

/** RFC 3261 7.3.3 and later RFCs' compact forms. */
const COMPACT_FORMS: Readonly<Record<string, string>> = {
  i: 'call-id',
  m: 'contact',
  f: 'from',
  t: 'to',
  v: 'via',
  l: 'content-length',
  c: 'content-type',
  k: 'supported',
  s: 'subject',
  e: 'content-encoding',
  o: 'event',
  r: 'refer-to',
  b: 'referred-by',
  x: 'session-expires',
  u: 'allow-events',
  y: 'identity',
  a: 'accept-contact',
  j: 'reject-contact',
  d: 'request-disposition',
};

/** The header's lower-case full name ("v" and "Via" are both "via"). */
export function normalizeHeaderName(name: string): string {
  const lower = name.trim().toLowerCase();
  return COMPACT_FORMS[lower] ?? lower;
}
