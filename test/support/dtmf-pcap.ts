import { writeFileSync } from 'node:fs';

/**
 * Writes a pcap that SIPp's `play_pcap_audio` replays as one continuous RTP stream: G.711 silence
 * every 20 ms and RFC 4733 telephone-events for each digit, with one SSRC, continuous sequence
 * numbers and timestamps. (The pcaps SIPp ships all carry the same SSRC, sequence and timestamp,
 * so replaying them back to back looks like retransmissions to a correct RFC 4733 receiver.)
 */

export type DtmfStep =
  /** Keys pressed one after another. */
  | { keys: string; toneMs?: number; gapMs?: number }
  /** Silence. */
  | { pauseMs: number };

export interface DtmfPcapOptions {
  /** telephone-event payload type (the offer's; 101 in our scenarios). */
  eventPt?: number;
  /** Audio payload type for the silence packets (0 = PCMU). */
  audioPt?: 0 | 8;
  ssrc?: number;
  initialSeq?: number;
  initialTs?: number;
  /** Silence before the first step. */
  leadMs?: number;
  /** Silence after the last step. */
  tailMs?: number;
  /**
   * G.711 bytes (of `audioPt`'s law) sent, looped, where the stream would carry silence: a
   * caller or an agent talking between the keys. Default: digital silence.
   */
  audio?: Buffer;
}

/**
 * Silence before a call's first key. Every menu takes barge-in, the amount announcement and the
 * welcome before it included, so the first key only has to wait for the media to flow (the pcap
 * starts after SIPp's ACK and already leads with 400 ms of silence).
 */
export const FIRST_KEY_PAUSE_MS = 1_000;

const EVENT_CODES: Record<string, number> = { '*': 10, '#': 11, A: 12, B: 13, C: 14, D: 15 };
const FRAME_MS = 20;
const SAMPLES_PER_FRAME = 160;

function eventCode(key: string): number {
  if (key >= '0' && key <= '9') return key.charCodeAt(0) - 48;
  const c = EVENT_CODES[key.toUpperCase()];
  if (c === undefined) throw new Error(`not a DTMF key: ${JSON.stringify(key)}`);
  return c;
}

export interface Packet {
  timeUs: number;
  rtp: Buffer;
}

export function buildDtmfRtp(steps: readonly DtmfStep[], opts: DtmfPcapOptions = {}): Packet[] {
  const eventPt = opts.eventPt ?? 101;
  const audioPt = opts.audioPt ?? 0;
  const silenceByte = audioPt === 0 ? 0xff : 0xd5;
  const ssrc = opts.ssrc ?? 0x5a17c0de;
  let seq = opts.initialSeq ?? 1000;
  let ts = opts.initialTs ?? 16000;
  let timeUs = 0;
  let marker = true;
  const packets: Packet[] = [];
  const audio = opts.audio !== undefined && opts.audio.length >= SAMPLES_PER_FRAME ? opts.audio : undefined;
  let audioAt = 0;
  const frame = (): Buffer => {
    if (audio === undefined) return Buffer.alloc(SAMPLES_PER_FRAME, silenceByte);
    if (audioAt + SAMPLES_PER_FRAME > audio.length) audioAt = 0;
    const f = Buffer.from(audio.subarray(audioAt, audioAt + SAMPLES_PER_FRAME));
    audioAt += SAMPLES_PER_FRAME;
    return f;
  };

  const header = (pt: number, m: boolean, stamp: number): Buffer => {
    const h = Buffer.alloc(12);
    h[0] = 0x80;
    h[1] = (m ? 0x80 : 0) | pt;
    h.writeUInt16BE(seq & 0xffff, 2);
    h.writeUInt32BE(stamp >>> 0, 4);
    h.writeUInt32BE(ssrc >>> 0, 8);
    return h;
  };
  const silence = (ms: number): void => {
    for (let t = 0; t < ms; t += FRAME_MS) {
      packets.push({ timeUs, rtp: Buffer.concat([header(audioPt, marker, ts), frame()]) });
      marker = false;
      seq++;
      ts += SAMPLES_PER_FRAME;
      timeUs += FRAME_MS * 1000;
    }
  };
  const tone = (key: string, ms: number): void => {
    const code = eventCode(key);
    const start = ts;
    const frames = Math.max(2, Math.round(ms / FRAME_MS));
    for (let i = 1; i <= frames; i++) {
      const end = i === frames;
      const body = Buffer.alloc(4);
      body[0] = code;
      body[1] = (end ? 0x80 : 0) | 10; // E bit, volume -10 dBm0
      body.writeUInt16BE(i * SAMPLES_PER_FRAME, 2);
      // RFC 4733 2.5.1.4: the end packet is sent three times, same timestamp and duration.
      const copies = end ? 3 : 1;
      for (let c = 0; c < copies; c++) {
        packets.push({ timeUs: timeUs + c * 1000, rtp: Buffer.concat([header(eventPt, i === 1, start), body]) });
        seq++;
      }
      timeUs += FRAME_MS * 1000;
    }
    ts = start + frames * SAMPLES_PER_FRAME;
  };

  silence(opts.leadMs ?? 400);
  for (const s of steps) {
    if ('pauseMs' in s) {
      silence(s.pauseMs);
      continue;
    }
    for (const k of s.keys) {
      tone(k, s.toneMs ?? 100);
      silence(s.gapMs ?? 100);
    }
  }
  silence(opts.tailMs ?? 400);
  return packets;
}

/** Ethernet/IPv4/UDP framing around each RTP packet (pcap link type 1), as SIPp's pcap reader expects. */
export function writeDtmfPcap(path: string, steps: readonly DtmfStep[], opts: DtmfPcapOptions = {}): { packets: number; durationMs: number } {
  return writeRtpPcap(path, buildDtmfRtp(steps, opts));
}

/** Writes RTP packets (one stream, already sequenced and timed) as a pcap SIPp's `play_pcap_audio` replays. */
export function writeRtpPcap(path: string, packets: readonly Packet[]): { packets: number; durationMs: number } {
  const global = Buffer.alloc(24);
  global.writeUInt32LE(0xa1b2c3d4, 0);
  global.writeUInt16LE(2, 4);
  global.writeUInt16LE(4, 6);
  global.writeUInt32LE(65535, 16);
  global.writeUInt32LE(1, 20);
  const chunks: Buffer[] = [global];
  const baseSec = 1_700_000_000;
  for (const p of packets) {
    const udpLen = 8 + p.rtp.length;
    const ipLen = 20 + udpLen;
    const frame = Buffer.alloc(14 + ipLen);
    frame.writeUInt16BE(0x0800, 12);
    const ip = 14;
    frame[ip] = 0x45;
    frame.writeUInt16BE(ipLen, ip + 2);
    frame[ip + 8] = 64;
    frame[ip + 9] = 17;
    frame.set([127, 0, 0, 1], ip + 12);
    frame.set([127, 0, 0, 1], ip + 16);
    let sum = 0;
    for (let i = 0; i < 20; i += 2) sum += frame.readUInt16BE(ip + i);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    frame.writeUInt16BE(~sum & 0xffff, ip + 10);
    const udp = ip + 20;
    frame.writeUInt16BE(40000, udp);
    frame.writeUInt16BE(40002, udp + 2);
    frame.writeUInt16BE(udpLen, udp + 4);
    p.rtp.copy(frame, udp + 8);
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(baseSec + Math.floor(p.timeUs / 1e6), 0);
    rec.writeUInt32LE(p.timeUs % 1e6, 4);
    rec.writeUInt32LE(frame.length, 8);
    rec.writeUInt32LE(frame.length, 12);
    chunks.push(rec, frame);
  }
  writeFileSync(path, Buffer.concat(chunks));
  const last = packets[packets.length - 1];
  return { packets: packets.length, durationMs: last ? Math.round(last.timeUs / 1000) + FRAME_MS : 0 };
}

/** When the last key of `steps` has been sent, in ms from the start of the stream (the tail of silence left out). */
export function keysEndMs(steps: readonly DtmfStep[], opts: DtmfPcapOptions = {}): number {
  const packets = buildDtmfRtp(steps, { ...opts, tailMs: 0 });
  const last = packets[packets.length - 1];
  return last === undefined ? 0 : Math.round(last.timeUs / 1000) + FRAME_MS;
}
