/**
 * ITU-T G.711 A-law and mu-law, bit-exact with the ITU-T G.191 reference algorithms
 * (16-bit linear in; A-law uses the 13 most significant bits, mu-law the 14 most significant).
 *
 * Encoding goes through 64 Ki lookup tables built once at load, so encoding a prompt or a
 * received packet is one table read per sample. Decoding is a 256-entry table.
 */

export type G711Codec = 'PCMU' | 'PCMA';

/** The code of digital silence (linear 0) in each law, used to fill idle frames. */
export const G711_SILENCE: Readonly<Record<G711Codec, number>> = { PCMU: 0xff, PCMA: 0xd5 };

function alawCompress(lin: number): number {
  // One's complement of negative samples, then 12-bit magnitude (G.191 alaw_compress).
  let ix = lin < 0 ? ~lin >> 4 : lin >> 4;
  if (ix > 15) {
    let iexp = 1;
    while (ix > 16 + 15) {
      ix >>= 1;
      iexp++;
    }
    ix -= 16;
    ix += iexp << 4;
  }
  if (lin >= 0) ix |= 0x80;
  return ix ^ 0x55;
}

function alawExpand(code: number): number {
  const ix = (code ^ 0x55) & 0x7f;
  const iexp = ix >> 4;
  let mant = ix & 0x0f;
  if (iexp > 0) mant += 16;
  mant = (mant << 4) + 0x08;
  if (iexp > 1) mant <<= iexp - 1;
  return code > 127 ? mant : -mant;
}

function ulawCompress(lin: number): number {
  // 14-bit magnitude plus 33, the offset between the A-law and mu-law thresholds (G.191 ulaw_compress).
  let absno = lin < 0 ? (~lin >> 2) + 33 : (lin >> 2) + 33;
  if (absno > 0x1fff) absno = 0x1fff;
  let i = absno >> 6;
  let segno = 1;
  while (i !== 0) {
    segno++;
    i >>= 1;
  }
  const high = 0x08 - segno;
  const low = 0x0f - ((absno >> segno) & 0x0f);
  let code = (high << 4) | low;
  if (lin >= 0) code |= 0x80;
  return code;
}

function ulawExpand(code: number): number {
  const sign = code < 0x80 ? -1 : 1;
  const inv = ~code;
  const exponent = (inv >> 4) & 0x07;
  const mantissa = inv & 0x0f;
  const step = 4 << (exponent + 1);
  return sign * ((0x80 << exponent) + step * mantissa + step / 2 - 4 * 33);
}

function buildEncodeTable(compress: (lin: number) => number): Uint8Array {
  const t = new Uint8Array(65536);
  for (let u = 0; u < 65536; u++) t[u] = compress(u >= 32768 ? u - 65536 : u);
  return t;
}

function buildDecodeTable(expand: (code: number) => number): Int16Array {
  const t = new Int16Array(256);
  for (let c = 0; c < 256; c++) t[c] = expand(c);
  return t;
}

const ULAW_ENCODE = buildEncodeTable(ulawCompress);
const ALAW_ENCODE = buildEncodeTable(alawCompress);
export const ULAW_DECODE: Readonly<Int16Array> = buildDecodeTable(ulawExpand);
export const ALAW_DECODE: Readonly<Int16Array> = buildDecodeTable(alawExpand);

export function encodeSample(codec: G711Codec, linear: number): number {
  const t = codec === 'PCMU' ? ULAW_ENCODE : ALAW_ENCODE;
  return t[linear & 0xffff] as number;
}

/** Encodes 16-bit linear samples; writes into `out` when given (no allocation). */
export function encode(codec: G711Codec, pcm: Int16Array, out: Buffer = Buffer.allocUnsafe(pcm.length)): Buffer {
  const t = codec === 'PCMU' ? ULAW_ENCODE : ALAW_ENCODE;
  const n = Math.min(pcm.length, out.length);
  for (let i = 0; i < n; i++) out[i] = t[(pcm[i] as number) & 0xffff] as number;
  return out;
}

/** Decodes G.711 bytes (`length` of them from `offset`) into `out` (no allocation). */
export function decodeInto(codec: G711Codec, src: Uint8Array, offset: number, length: number, out: Int16Array): void {
  const t = codec === 'PCMU' ? ULAW_DECODE : ALAW_DECODE;
  for (let i = 0; i < length; i++) out[i] = t[src[offset + i] as number] as number;
}

export function decode(codec: G711Codec, src: Uint8Array): Int16Array {
  const out = new Int16Array(src.length);
  decodeInto(codec, src, 0, src.length, out);
  return out;
}

/** Converts between the two laws through linear (used when a prompt file is already G.711). */
export function transcode(from: G711Codec, to: G711Codec, src: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(src.length);
  if (from === to) {
    out.set(src);
    return out;
  }
  const dec = from === 'PCMU' ? ULAW_DECODE : ALAW_DECODE;
  const enc = to === 'PCMU' ? ULAW_ENCODE : ALAW_ENCODE;
  for (let i = 0; i < src.length; i++) out[i] = enc[(dec[src[i] as number] as number) & 0xffff] as number;
  return out;
}
