import type { DtmfDigit } from '../domain/dtmf.js';

/**
 * DTMF carried in SIP INFO bodies: `application/dtmf-relay` (`Signal=5\r\nDuration=160`) and
 * `application/dtmf` (the digit or its RFC 4733 event code). The body is never logged.
 */

const EVENT_CODES: readonly DtmfDigit[] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D'];

function toDigit(raw: string): DtmfDigit | undefined {
  const v = raw.trim().toUpperCase();
  if (v.length === 1 && (EVENT_CODES as readonly string[]).includes(v)) return v as DtmfDigit;
  if (/^\d{1,2}$/.test(v)) return EVENT_CODES[Number(v)];
  return undefined;
}

export const DTMF_INFO_TYPES = ['application/dtmf-relay', 'application/dtmf'] as const;

const isSpace = (c: number | undefined): boolean => c === 0x20 || c === 0x09;

/** Bytes [start, end) without leading/trailing blanks, as text (a digit or event code: 1-2 characters). */
function token(body: Buffer, start: number, end: number): string {
  while (start < end && isSpace(body[start])) start++;
  while (end > start && isSpace(body[end - 1])) end--;
  return end - start > 2 ? '' : body.toString('latin1', start, end);
}

/**
 * The digit of an INFO body. The body is read byte by byte and never turned into text as a whole:
 * the call layer zeroes it after this (a card number arrives one INFO per digit, and nothing should
 * keep even those).
 */
export function parseDtmfInfo(type: string, body: Buffer): DtmfDigit | undefined {
  if (body.length > 256) return undefined;
  if (type === 'application/dtmf') {
    let end = body.length;
    while (end > 0 && (body[end - 1] === 0x0d || body[end - 1] === 0x0a)) end--;
    return toDigit(token(body, 0, end));
  }
  if (type !== 'application/dtmf-relay') return undefined;
  const SIGNAL = 'signal';
  let line = 0;
  while (line < body.length) {
    let eol = body.indexOf(0x0a, line);
    if (eol < 0) eol = body.length;
    const end = eol > line && body[eol - 1] === 0x0d ? eol - 1 : eol;
    let i = line;
    while (i < end && isSpace(body[i])) i++;
    let k = 0;
    while (k < SIGNAL.length && i + k < end && ((body[i + k] as number) | 0x20) === SIGNAL.charCodeAt(k)) k++;
    if (k === SIGNAL.length) {
      let j = i + k;
      while (j < end && isSpace(body[j])) j++;
      if (body[j] === 0x3d) return toDigit(token(body, j + 1, end));
    }
    line = eol + 1;
  }
  return undefined;
}

/** How an in-dialog INFO is answered, and the key it carries when it is a key press. */
export interface DtmfInfoReply {
  readonly status: 200 | 400 | 415;
  readonly reason?: string;
  /** The Accept header of a 415. */
  readonly accept?: string;
  readonly digit?: DtmfDigit;
}

/**
 * The one rule for an in-dialog INFO, both backends: no body → 200 (a keep-alive); a type other
 * than the two DTMF ones → 415 with Accept; a DTMF body that names no key → 400; else 200 and the
 * key. `contentType` is the Content-Type header as received (parameters are ignored). The body is
 * zero-filled before this returns: a card number arrives one INFO per digit.
 */
export function judgeDtmfInfo(contentType: string | undefined, body: Buffer): DtmfInfoReply {
  if (body.length === 0) return { status: 200 };
  const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (!(DTMF_INFO_TYPES as readonly string[]).includes(type)) {
    body.fill(0);
    return { status: 415, accept: DTMF_INFO_TYPES.join(', ') };
  }
  const digit = parseDtmfInfo(type, body);
  body.fill(0);
  return digit === undefined ? { status: 400, reason: 'Bad DTMF Body' } : { status: 200, digit };
}
