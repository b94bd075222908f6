import { isIP } from 'node:net';
import { z } from 'zod';
import type { DtmfDigit } from '../domain/dtmf.js';

/**
 * One DTMF event datagram of rtpengine's `--dtmf-log-dest` output (10.5: a JSON object with
 * exactly these keys, one per datagram). Anything else is dropped whole: the datagram carries a
 * key press, so a half-understood one must not become a digit. Callers never log what this
 * returns or what it was given (the event is a card digit during a capture).
 */

/** RFC 4733 event codes 0-15, in order. */
const EVENT_DIGITS: readonly DtmfDigit[] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D'];

/** rtpengine writes about 200 bytes plus the tags; anything much larger is not from it. */
export const MAX_DTMF_DATAGRAM_BYTES = 2048;

const token = z.string().min(1).max(256);
const uint = (max: number) => z.number().int().min(0).max(max);

const datagramSchema = z.strictObject({
  callid: token,
  source_tag: token,
  tags: z.array(token).max(16),
  type: z.literal('DTMF'),
  /** Unix seconds. */
  timestamp: uint(2 ** 40),
  source_ip: z.string().max(64).refine((s) => isIP(s) !== 0),
  event: uint(15),
  /** Milliseconds (rtpengine converts the RTP duration with the clock rate). */
  duration: uint(600_000),
  /** -dBm0, 0-63. */
  volume: uint(63),
});

export interface RtpengineDtmfRecord {
  callId: string;
  sourceTag: string;
  digit: DtmfDigit;
  durationMs: number;
}

/** The key press a datagram reports, or undefined when it is not exactly rtpengine's format. */
export function parseDtmfDatagram(msg: Buffer): RtpengineDtmfRecord | undefined {
  if (msg.length === 0 || msg.length > MAX_DTMF_DATAGRAM_BYTES) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(msg.toString('utf8'));
  } catch {
    return undefined;
  }
  const r = datagramSchema.safeParse(json);
  if (!r.success) return undefined;
  const d = r.data;
  // The source tag is one of the call's tags in every datagram rtpengine writes.
  if (!d.tags.includes(d.source_tag)) return undefined;
  return { callId: d.callid, sourceTag: d.source_tag, digit: EVENT_DIGITS[d.event] as DtmfDigit, durationMs: d.duration };
}
