import { isIPv6 } from 'node:net';
import * as sdpTransform from 'sdp-transform';
import type { MediaDescription, SessionDescription } from 'sdp-transform';
import { cryptoValuesBySection, connectionAddress, parseSdp, portOf } from '../../sdp-reader.js';
import type { SrtpPolicy } from '../../../config/media-options.js';
import { isSecureProfile, profileAllowed } from '../../srtp-policy.js';
import type { G711Codec } from './g711.js';
import { formatCryptoAttribute, parseCryptoAttribute } from './sdes.js';
import { SRTP_SUITES, type SrtpSuite } from '../../../config/media-options.js';
import { SdesKey } from './srtp.js';

/**
 * SDP offer/answer (RFC 3264) for one audio stream: G.711 (PCMU/PCMA) at 20 ms, RFC 4733
 * telephone-event at whatever payload type the far end uses, optional SDES-SRTP (RFC 4568).
 * Pure functions: the media session keeps the state.
 */

type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

export interface LocalSdpParams {
  /** Address written in o= and c= (advertised address). */
  address: string;
  port: number;
  sessionId: string;
  sessionVersion: number;
  srtp: SrtpPolicy;
  /** SDES suites we accept, in no particular order (the offerer's order decides); default both. */
  srtpSuites?: readonly SrtpSuite[] | undefined;
  /** Our SDES master key and salt (30 bytes), used when the stream is SRTP. */
  localKey: Buffer | SdesKey;
}

interface NegotiatedSrtp {
  suite: SrtpSuite;
  /** Crypto attribute tag of the accepted line. */
  tag: number;
  /** The far end's master key and salt (and MKI): decrypts what it sends. Never logged. */
  remoteKey: SdesKey;
}

export interface NegotiatedMedia {
  codec: G711Codec;
  payloadType: number;
  telephoneEvent: { payloadType: number; fmtp: string } | undefined;
  /** Where the far end wants RTP; undefined when the SDP holds none or the old hold 0.0.0.0. */
  remoteAddress: string | undefined;
  remotePort: number;
  /** The far end's direction as its SDP states it. */
  remoteDirection: Direction;
  /** Ours: the mirror of the far end's (RFC 3264 §6.1). */
  localDirection: Direction;
  srtp: NegotiatedSrtp | undefined;
}

/** What a late offer of ours promised, needed to read the answer. */
export interface OfferState {
  protocol: string;
  crypto: { tag: number; suite: SrtpSuite } | undefined;
}

const STATIC_PT: Readonly<Record<number, string>> = { 0: 'PCMU', 8: 'PCMA' };
const DEFAULT_TE_PT = 101;
const DEFAULT_TE_FMTP = '0-16';

const DIRECTIONS: readonly string[] = ['sendrecv', 'sendonly', 'recvonly', 'inactive'];

function mirrorDirection(d: Direction): Direction {
  if (d === 'sendonly') return 'recvonly';
  if (d === 'recvonly') return 'sendonly';
  return d;
}

function payloadList(m: MediaDescription): number[] {
  return String(m.payloads ?? '')
    .trim()
    .split(/\s+/)
    .filter((p) => /^\d+$/.test(p))
    .map(Number);
}

function codecOf(m: MediaDescription, pt: number): { name: string; rate: number } | undefined {
  const r = m.rtp.find((x) => x.payload === pt);
  if (r !== undefined) return { name: r.codec.toUpperCase(), rate: r.rate ?? 8000 };
  const s = STATIC_PT[pt];
  return s === undefined ? undefined : { name: s, rate: 8000 };
}

function directionOf(m: MediaDescription, s: SessionDescription): Direction {
  const d = m.direction ?? s.direction;
  return d !== undefined && DIRECTIONS.includes(d) ? d : 'sendrecv';
}

const isSecure = isSecureProfile;

/** The first a=crypto line we can honour, in the offerer's order (sdes.ts says what that means). */
function pickCrypto(values: readonly string[], suites: readonly SrtpSuite[] | undefined): (NegotiatedSrtp & { echoParams: string[] }) | undefined {
  for (const v of values) {
    const r = parseCryptoAttribute(v, suites ?? SRTP_SUITES);
    if (r.ok) return { suite: r.crypto.suite, tag: r.crypto.tag, remoteKey: r.crypto.key, echoParams: r.crypto.echoParams };
  }
  return undefined;
}

function localKeyOf(local: LocalSdpParams): SdesKey {
  return Buffer.isBuffer(local.localKey) ? new SdesKey(local.localKey) : local.localKey;
}

interface AudioChoice {
  codec: G711Codec;
  payloadType: number;
  telephoneEvent: { payloadType: number; fmtp: string } | undefined;
}

/** First G.711 codec in the far end's order, and its 8 kHz telephone-event if any. */
function chooseAudio(m: MediaDescription): AudioChoice | undefined {
  let chosen: { codec: G711Codec; payloadType: number } | undefined;
  let te: { payloadType: number; fmtp: string } | undefined;
  for (const pt of payloadList(m)) {
    const c = codecOf(m, pt);
    if (c === undefined || c.rate !== 8000) continue;
    if (chosen === undefined && (c.name === 'PCMU' || c.name === 'PCMA')) chosen = { codec: c.name, payloadType: pt };
    if (te === undefined && c.name === 'TELEPHONE-EVENT') {
      te = { payloadType: pt, fmtp: m.fmtp.find((f) => f.payload === pt)?.config ?? DEFAULT_TE_FMTP };
    }
  }
  return chosen === undefined ? undefined : { ...chosen, telephoneEvent: te };
}

function sessionSkeleton(local: LocalSdpParams): SessionDescription {
  const ipVer = isIPv6(local.address) ? 6 : 4;
  return {
    version: 0,
    origin: { username: 'pay-ivr', sessionId: local.sessionId, sessionVersion: local.sessionVersion, netType: 'IN', ipVer, address: local.address },
    name: 'pay-ivr',
    connection: { version: ipVer, ip: local.address },
    timing: { start: 0, stop: 0 },
    media: [],
  };
}

function audioMedia(local: LocalSdpParams, protocol: string, choice: AudioChoice[], te: { payloadType: number; fmtp: string } | undefined, direction: Direction, crypto: { tag: number; suite: SrtpSuite; echoParams?: string[] } | undefined): MediaDescription {
  const rtp: MediaDescription['rtp'] = choice.map((c) => ({ payload: c.payloadType, codec: c.codec, rate: 8000 }));
  const fmtp: MediaDescription['fmtp'] = [];
  const pts = choice.map((c) => c.payloadType);
  if (te !== undefined) {
    rtp.push({ payload: te.payloadType, codec: 'telephone-event', rate: 8000 });
    fmtp.push({ payload: te.payloadType, config: te.fmtp });
    pts.push(te.payloadType);
  }
  const m: MediaDescription = { type: 'audio', port: local.port, protocol, payloads: pts.join(' '), rtp, fmtp, ptime: 20, direction };
  if (crypto !== undefined) {
    const [, , config = '', ...session] = formatCryptoAttribute(crypto.tag, crypto.suite, localKeyOf(local), crypto.echoParams).split(' ');
    m.crypto = [{ id: crypto.tag, suite: crypto.suite, config, ...(session.length > 0 ? { sessionConfig: session.join(' ') } : {}) }];
  }
  return m;
}

function rejectedMedia(m: MediaDescription): MediaDescription {
  const first = payloadList(m)[0];
  return { type: m.type, port: 0, protocol: m.protocol, payloads: first === undefined ? String(m.payloads ?? '0') : String(first), rtp: [], fmtp: [] };
}

/**
 * Answers an offer. Returns undefined when no audio stream is acceptable (the caller sends 488).
 * Every m-line of the offer gets a line in the answer (RFC 3264 §6); one audio line is accepted,
 * the others get port 0: the first SRTP one we can key, else the first plain one (an offer of the
 * same audio as RTP/SAVP and RTP/AVP, "best effort SRTP", is answered encrypted).
 */
export function answerOffer(offerSdp: string, local: LocalSdpParams): { sdp: string; media: NegotiatedMedia } | undefined {
  const offer = parseSdp(offerSdp);
  if (offer === undefined) return undefined;
  const cryptos = cryptoValuesBySection(offerSdp);
  const usable = offer.media.map((m, i) => {
    const port = portOf(m);
    if (m.type !== 'audio' || port === undefined || port === 0 || !profileAllowed(m.protocol, local.srtp)) return undefined;
    const choice = chooseAudio(m);
    const picked = isSecure(m.protocol) ? pickCrypto(cryptos[i] ?? [], local.srtpSuites) : undefined;
    if (choice === undefined || (isSecure(m.protocol) && picked === undefined)) return undefined;
    return { m, port, choice, picked };
  });
  const secureIndex = usable.findIndex((u) => u?.picked !== undefined);
  const chosen = usable[secureIndex >= 0 ? secureIndex : usable.findIndex((u) => u !== undefined)];
  if (chosen === undefined) return undefined;
  const { m, port, choice, picked } = chosen;
  const remoteDirection = directionOf(m, offer);
  const localDirection = mirrorDirection(remoteDirection);
  const media: NegotiatedMedia = {
    codec: choice.codec,
    payloadType: choice.payloadType,
    telephoneEvent: choice.telephoneEvent,
    remoteAddress: connectionAddress(m, offer),
    remotePort: port,
    remoteDirection,
    localDirection,
    srtp: picked === undefined ? undefined : { suite: picked.suite, tag: picked.tag, remoteKey: picked.remoteKey },
  };
  const answer = sessionSkeleton(local);
  for (const x of offer.media) {
    answer.media.push(x === m ? audioMedia(local, m.protocol, [choice], choice.telephoneEvent, localDirection, picked) : rejectedMedia(x));
  }
  return { sdp: sdpTransform.write(answer), media };
}

/** Our offer for a late-offer INVITE (or an offerless re-INVITE): PCMU, PCMA, telephone-event 101. */
export function createOffer(local: LocalSdpParams): { sdp: string; state: OfferState } {
  const secure = local.srtp === 'required';
  const protocol = secure ? 'RTP/SAVP' : 'RTP/AVP';
  const s = sessionSkeleton(local);
  const codecs: AudioChoice[] = [
    { codec: 'PCMU', payloadType: 0, telephoneEvent: undefined },
    { codec: 'PCMA', payloadType: 8, telephoneEvent: undefined },
  ];
  const crypto = secure ? { tag: 1, suite: local.srtpSuites?.[0] ?? 'AES_CM_128_HMAC_SHA1_80' } : undefined;
  s.media.push(audioMedia(local, protocol, codecs, { payloadType: DEFAULT_TE_PT, fmtp: DEFAULT_TE_FMTP }, 'sendrecv', crypto));
  return { sdp: sdpTransform.write(s), state: { protocol, crypto } };
}

/** Reads the answer to our offer; undefined when it is unusable. */
export function applyAnswer(answerSdp: string, offered: OfferState): NegotiatedMedia | undefined {
  const ans = parseSdp(answerSdp);
  if (ans === undefined) return undefined;
  const index = ans.media.findIndex((x) => x.type === 'audio' && (portOf(x) ?? 0) !== 0);
  const m = ans.media[index];
  const port = m === undefined ? undefined : portOf(m);
  if (m === undefined || port === undefined || m.protocol !== offered.protocol) return undefined;
  const choice = chooseAudio(m);
  if (choice === undefined) return undefined;
  let srtp: NegotiatedSrtp | undefined;
  if (isSecure(offered.protocol)) {
    const picked = offered.crypto === undefined ? undefined : pickCrypto(cryptoValuesBySection(answerSdp)[index] ?? [], [offered.crypto.suite]);
    if (picked === undefined || picked.tag !== offered.crypto?.tag) return undefined;
    srtp = { suite: picked.suite, tag: picked.tag, remoteKey: picked.remoteKey };
  }
  const remoteDirection = directionOf(m, ans);
  return {
    codec: choice.codec,
    payloadType: choice.payloadType,
    telephoneEvent: choice.telephoneEvent,
    remoteAddress: connectionAddress(m, ans),
    remotePort: port,
    remoteDirection,
    localDirection: mirrorDirection(remoteDirection),
    srtp,
  };
}
