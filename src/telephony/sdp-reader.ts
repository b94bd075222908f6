import * as sdpTransform from 'sdp-transform';
import type { MediaDescription, SessionDescription } from 'sdp-transform';

/**
 * Reading SDP (RFC 4566) for pay-ivr's rules, with sdp-transform: one reading for both backends
 * and every rule (SRTP policy, media addresses, the re-INVITE origin, the embedded answerer), so
 * no two places can disagree about what an offer says.
 *
 * sdp-transform reads an m= line only in its strict form (`<media> <port> <proto> <fmt>...`, one
 * space apart). A line it cannot read (port/count, tabs, two spaces) still opens a section, and
 * here it is a stream whose type, port and profile are unknown: the rules refuse or check it
 * rather than skip it, since FreeSWITCH's parser may well read it.
 */

/** One m= section as the rules see it. */
export interface SdpStream {
  /** False when sdp-transform could not read the m= line (type, port or profile unknown). */
  readonly readable: boolean;
  /** 'audio', 'video', ...; undefined when not readable. */
  readonly type: string | undefined;
  /** 0 (a rejected or disabled stream) to 65535; undefined when not readable. */
  readonly port: number | undefined;
  /** Transport profile (RTP/AVP, RTP/SAVP, ...); undefined when not readable. */
  readonly protocol: string | undefined;
  /** The c= address in effect (the section's own, else the session's); undefined: none, or hold (0.0.0.0, ::). */
  readonly address: string | undefined;
}

/** The parse, or undefined when it is not a session description at all. */
export function parseSdp(text: string): SessionDescription | undefined {
  try {
    const s = sdpTransform.parse(text);
    return Array.isArray(s.media) ? s : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The port of an m= line: sdp-transform gives a number only when the digits are a canonical
 * integer ("04000" and "" stay strings); out of 0..65535 is no port at all.
 */
export function portOf(m: MediaDescription): number | undefined {
  const p: unknown = m.port;
  const n = typeof p === 'number' ? p : typeof p === 'string' && /^\d{1,5}$/.test(p) ? Number(p) : Number.NaN;
  return Number.isInteger(n) && n >= 0 && n <= 65535 ? n : undefined;
}

/** The c= address in effect for a section, without a multicast TTL; undefined for none and for hold (0.0.0.0, ::). */
export function connectionAddress(m: MediaDescription, s: SessionDescription): string | undefined {
  const ip: unknown = m.connection?.ip ?? s.connection?.ip;
  if (ip === undefined) return undefined;
  const addr = String(ip).split('/')[0] ?? '';
  return addr === '0.0.0.0' || addr === '::' ? undefined : addr;
}

function streamOf(m: MediaDescription, s: SessionDescription): SdpStream {
  const type = typeof m.type === 'string' && m.type !== '' ? m.type : undefined;
  const port = portOf(m);
  const protocol = typeof m.protocol === 'string' && m.protocol !== '' ? m.protocol : undefined;
  const address = connectionAddress(m, s);
  if (type === undefined || port === undefined || protocol === undefined) return { readable: false, type: undefined, port: undefined, protocol: undefined, address };
  return { readable: true, type, port, protocol, address };
}

/** Every m= section of an SDP, in order; none when it has none. */
export function sdpStreams(text: string): SdpStream[] {
  const s = parseSdp(text);
  return s === undefined ? [] : s.media.map((m) => streamOf(m, s));
}

/**
 * The sections an audio rule must look at: audio streams not rejected (port 0), and the sections
 * whose m= line could not be read (they may be audio to another parser).
 */
export function audioStreamsToCheck(text: string): SdpStream[] {
  return sdpStreams(text).filter((x) => !x.readable || (x.type === 'audio' && x.port !== 0));
}

/**
 * The raw a=crypto values of each m= section, in section order. sdp-transform's parse keeps only
 * the first session parameter of a crypto line, and an unread UNENCRYPTED_SRTP must not pass, so
 * the values come from the text, split into lines and sections exactly as sdp-transform does.
 */
export function cryptoValuesBySection(text: string): string[][] {
  const sections: string[][] = [];
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (!/^[a-z]=/.test(line)) continue;
    if (line.startsWith('m=')) sections.push([]);
    else if (line.startsWith('a=crypto:')) sections[sections.length - 1]?.push(line.slice('a=crypto:'.length));
  }
  return sections;
}

/** Session id and version of the o= line ("12/34"), to tell a refresh from a change; undefined without a readable o= line. */
export function sdpOrigin(text: string | undefined): string | undefined {
  if (!text) return undefined;
  const o = parseSdp(text)?.origin;
  if (o === undefined || o.sessionId === '' || String(o.sessionVersion) === '') return undefined;
  return `${o.sessionId}/${o.sessionVersion}`;
}

/**
 * Whether an SDP answer keeps RFC 4733 telephone-event on its active audio stream: keys then come
 * as events, and in-band detection stays off (both backends: the embedded engine's negotiation,
 * the drachtio backend's FreeSWITCH answer). An answer that cannot be read counts as without.
 */
export function answerHasTelephoneEvent(text: string | undefined): boolean {
  const s = text === undefined ? undefined : parseSdp(text);
  const audio = s?.media.find((m) => m.type === 'audio' && portOf(m) !== 0);
  return audio?.rtp.some((r) => r.codec.toLowerCase() === 'telephone-event') === true;
}
