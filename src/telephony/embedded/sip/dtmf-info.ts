import type { DtmfDigit } from '../../../domain/dtmf.js';

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

export function parseDtmfInfo(type: string, body: Buffer): DtmfDigit | undefined {
  if (body.length > 256) return undefined;
  const text = body.toString('utf8');
  if (type === 'application/dtmf') return toDigit(text);
  if (type !== 'application/dtmf-relay') return undefined;
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*signal\s*=\s*(\S+)\s*$/i.exec(line);
    if (m !== null) return toDigit(m[1] as string);
  }
  return undefined;
}
