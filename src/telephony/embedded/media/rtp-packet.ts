/** RTP fixed header (RFC 3550 §5.1) read and write helpers. */

export const RTP_HEADER_SIZE = 12;

/** A parsed header; parseRtpHeader fills a caller-owned instance so the receive path allocates nothing. */
interface RtpHeader {
  marker: boolean;
  payloadType: number;
  sequence: number;
  timestamp: number;
  ssrc: number;
  /** Offset of the payload (after CSRCs and header extension). */
  payloadOffset: number;
  /** Payload length (padding removed). */
  payloadLength: number;
}

export function newRtpHeader(): RtpHeader {
  return { marker: false, payloadType: 0, sequence: 0, timestamp: 0, ssrc: 0, payloadOffset: 0, payloadLength: 0 };
}

/**
 * Validates and parses an RTP packet of `length` bytes. Returns false for anything that is not
 * RTP version 2 with a consistent length (RTCP on a muxed port is rejected by its payload type range).
 * `readPadding` is false for an SRTP packet not yet decrypted: its padding count is encrypted.
 */
export function parseRtpHeader(buf: Uint8Array, length: number, out: RtpHeader, readPadding = true): boolean {
  if (length < RTP_HEADER_SIZE) return false;
  const b0 = buf[0] as number;
  if (b0 >> 6 !== 2) return false;
  const b1 = buf[1] as number;
  const pt = b1 & 0x7f;
  if (pt >= 72 && pt <= 95) return false; // RTCP packet types 200-223 seen with the marker bit
  let off = RTP_HEADER_SIZE + (b0 & 0x0f) * 4;
  if (b0 & 0x10) {
    if (off + 4 > length) return false;
    const extWords = ((buf[off + 2] as number) << 8) | (buf[off + 3] as number);
    off += 4 + extWords * 4;
  }
  let end = length;
  if (readPadding && b0 & 0x20) {
    const pad = buf[length - 1] as number;
    if (pad === 0) return false;
    end -= pad;
  }
  if (off > end) return false;
  out.marker = (b1 & 0x80) !== 0;
  out.payloadType = pt;
  out.sequence = ((buf[2] as number) << 8) | (buf[3] as number);
  out.timestamp = (((buf[4] as number) << 24) | ((buf[5] as number) << 16) | ((buf[6] as number) << 8) | (buf[7] as number)) >>> 0;
  out.ssrc = (((buf[8] as number) << 24) | ((buf[9] as number) << 16) | ((buf[10] as number) << 8) | (buf[11] as number)) >>> 0;
  out.payloadOffset = off;
  out.payloadLength = end - off;
  return true;
}

/** Writes a 12-byte header (no CSRC, no extension, no padding) at the start of `buf`. */
export function writeRtpHeader(buf: Buffer, marker: boolean, payloadType: number, sequence: number, timestamp: number, ssrc: number): void {
  buf[0] = 0x80;
  buf[1] = (marker ? 0x80 : 0) | (payloadType & 0x7f);
  buf.writeUInt16BE(sequence & 0xffff, 2);
  buf.writeUInt32BE(timestamp >>> 0, 4);
  buf.writeUInt32BE(ssrc >>> 0, 8);
}

/** True when 32-bit timestamp `a` is later than `b` (serial number arithmetic, RFC 1982). */
export function tsAfter(a: number, b: number): boolean {
  const d = (a - b) >>> 0;
  return d !== 0 && d < 0x80000000;
}
