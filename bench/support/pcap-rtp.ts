/**
 * The RTP packets of a classic pcap file (libpcap format, not pcapng), for replaying them: each
 * UDP payload that looks like RTP (version 2, not an RTCP packet type), as a view into the file's
 * one Buffer (no copies), with its time offset from the first RTP packet.
 *
 * Link types: Ethernet (1, with 802.1Q tags), BSD loopback (0), raw IP (101) and Linux cooked
 * capture (113); IPv4 (unfragmented) and IPv6 (UDP as the first next header).
 */
import { readFileSync } from 'node:fs';

export interface PcapRtp {
  /** The RTP packets (UDP payloads), in file order. */
  packets: Buffer[];
  /** Each packet's capture time minus the first RTP packet's, ms. */
  offsetsMs: Float64Array;
  /** The last packet's offset, ms. */
  durationMs: number;
}

const LINKTYPE_NULL = 0;
const LINKTYPE_ETHERNET = 1;
const LINKTYPE_RAW = 101;
const LINKTYPE_LINUX_SLL = 113;

export function readPcapRtp(file: string): PcapRtp {
  const buf = readFileSync(file);
  if (buf.length < 24) throw new Error(`${file}: not a pcap file (too short)`);
  const magic = buf.readUInt32LE(0);
  let le: boolean;
  let nano: boolean;
  if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) [le, nano] = [true, magic === 0xa1b23c4d];
  else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) [le, nano] = [false, magic === 0x4d3cb2a1];
  else throw new Error(`${file}: not a classic pcap file (magic ${magic.toString(16)}; pcapng is not read)`);
  const u32 = (off: number): number => (le ? buf.readUInt32LE(off) : buf.readUInt32BE(off));
  const linkType = u32(20) & 0x0fffffff;

  const packets: Buffer[] = [];
  const offsets: number[] = [];
  let first: number | undefined;
  for (let off = 24; off + 16 <= buf.length; ) {
    const tMs = u32(off) * 1000 + u32(off + 4) / (nano ? 1e6 : 1e3);
    const incl = u32(off + 8);
    const start = off + 16;
    off = start + incl;
    if (off > buf.length) break; // truncated last record
    const udp = udpPayload(buf, start, start + incl, linkType);
    if (udp === undefined || !looksLikeRtp(udp)) continue;
    first ??= tMs;
    packets.push(udp);
    offsets.push(tMs - first);
  }
  if (packets.length === 0) throw new Error(`${file}: no RTP packets (link type ${linkType})`);
  return { packets, offsetsMs: Float64Array.from(offsets), durationMs: offsets[offsets.length - 1] as number };
}

/** The UDP payload of one frame, or undefined for anything else. */
function udpPayload(buf: Buffer, from: number, to: number, linkType: number): Buffer | undefined {
  let ip: number;
  let etherType: number;
  if (linkType === LINKTYPE_ETHERNET) {
    ip = from + 14;
    etherType = buf.readUInt16BE(from + 12);
    while (etherType === 0x8100 && ip + 4 <= to) {
      etherType = buf.readUInt16BE(ip + 2);
      ip += 4;
    }
  } else if (linkType === LINKTYPE_LINUX_SLL) {
    ip = from + 16;
    etherType = buf.readUInt16BE(from + 14);
  } else if (linkType === LINKTYPE_NULL || linkType === LINKTYPE_RAW) {
    ip = from + (linkType === LINKTYPE_NULL ? 4 : 0);
    const version = ip < to ? (buf[ip] as number) >> 4 : 0;
    etherType = version === 4 ? 0x0800 : version === 6 ? 0x86dd : 0;
  } else {
    throw new Error(`pcap link type ${linkType} is not read (Ethernet, loopback, raw IP, Linux cooked)`);
  }
  let udp: number;
  if (etherType === 0x0800 && ip + 20 <= to) {
    const ihl = ((buf[ip] as number) & 0x0f) * 4;
    const fragment = buf.readUInt16BE(ip + 6) & 0x3fff; // more-fragments flag or an offset
    if (buf[ip + 9] !== 17 || fragment !== 0) return undefined;
    udp = ip + ihl;
  } else if (etherType === 0x86dd && ip + 40 <= to) {
    if (buf[ip + 6] !== 17) return undefined;
    udp = ip + 40;
  } else {
    return undefined;
  }
  if (udp + 8 > to) return undefined;
  const end = Math.min(to, udp + buf.readUInt16BE(udp + 4));
  return end > udp + 8 ? buf.subarray(udp + 8, end) : undefined;
}

/** RTP version 2, a whole header, and not an RTCP packet type (200-223 read as marker + 72-95). */
function looksLikeRtp(p: Buffer): boolean {
  if (p.length < 12 || (p[0] as number) >> 6 !== 2) return false;
  const pt = (p[1] as number) & 0x7f;
  return pt < 72 || pt > 95;
}
