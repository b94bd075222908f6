import { createCipheriv, createHmac, randomBytes, timingSafeEqual, type Cipher } from 'node:crypto';
import { inspect } from 'node:util';
import type { SrtpSuite } from '../../../config/media-options.js';

/**
 * SRTP (RFC 3711) for the SDES suites Genesys BYOC uses: AES-128 counter mode, HMAC-SHA1
 * authentication (80- or 32-bit tag), key derivation rate 0; a far end's MKI is checked and
 * stripped (one master key per direction). RTP only: pay-ivr neither sends nor reads RTCP, so
 * there is no SRTCP to protect. The suite list is a config option list (`config/media-options.ts`).
 */
const SRTP_MASTER_KEY_LEN = 16;
const SRTP_MASTER_SALT_LEN = 14;

function srtpTagLength(suite: SrtpSuite): number {
  return suite === 'AES_CM_128_HMAC_SHA1_80' ? 10 : 4;
}

/** The Master Key Identifier a far end puts in each packet (RFC 3711 §3.1, RFC 4568 §6.1). */
interface SrtpMki {
  /** The MKI field as sent: the value big-endian in `length` bytes. */
  readonly bytes: Buffer;
}

/**
 * An SDES master key and salt (the a=crypto inline key: 16 + 14 bytes) and the MKI that goes
 * with it. The key is a secret: it serialises as "[SDES key]" so a log line or an error that
 * carries one (directly or inside negotiated-media objects) never prints it.
 */
export class SdesKey {
  readonly #material: Buffer;
  readonly mki: SrtpMki | undefined;

  constructor(material: Buffer, mki?: SrtpMki) {
    if (material.length !== SRTP_MASTER_KEY_LEN + SRTP_MASTER_SALT_LEN) throw new RangeError('SRTP master key+salt must be 30 bytes');
    this.#material = material;
    this.mki = mki;
  }

  static random(): SdesKey {
    return new SdesKey(randomBytes(SRTP_MASTER_KEY_LEN + SRTP_MASTER_SALT_LEN));
  }

  /** The 30 bytes (master key then salt). Only the SDP writer and SrtpContext read them. */
  get material(): Buffer {
    return this.#material;
  }

  /** Same key and MKI (a re-offer that keeps its key keeps the receive context). */
  equals(other: SdesKey | Buffer): boolean {
    if (Buffer.isBuffer(other)) return this.mki === undefined && this.#material.equals(other);
    const a = this.mki?.bytes;
    const b = other.mki?.bytes;
    return this.#material.equals(other.#material) && (a === undefined ? b === undefined : b !== undefined && a.equals(b));
  }

  toJSON(): string {
    return '[SDES key]';
  }

  toString(): string {
    return '[SDES key]';
  }

  [inspect.custom](): string {
    return '[SDES key]';
  }
}

interface SrtpSessionKeys {
  cipherKey: Buffer;
  authKey: Buffer;
  salt: Buffer;
}

function newEcb(key: Buffer): Cipher {
  const c = createCipheriv('aes-128-ecb', key, null);
  c.setAutoPadding(false);
  return c;
}

/**
 * AES-CM keystream (RFC 3711 §4.1.1): AES_k(IV), AES_k(IV + 1), ... where the 16-bit block
 * counter sits in the last two bytes of the IV.
 */
export function aesCmKeystream(key: Buffer, iv: Buffer, length: number): Buffer {
  return keystreamWith(newEcb(key), iv, length, Buffer.alloc(Math.ceil(length / 16) * 16));
}

function keystreamWith(ecb: Cipher, iv: Buffer, length: number, counters: Buffer): Buffer {
  const blocks = Math.ceil(length / 16);
  const base = (((iv[14] as number) << 8) | (iv[15] as number)) >>> 0;
  for (let j = 0; j < blocks; j++) {
    const o = j * 16;
    // Byte loop rather than Buffer.copy: a native call per 16-byte block costs more than it moves.
    for (let k = 0; k < 14; k++) counters[o + k] = iv[k] as number;
    const ctr = base + j;
    counters[o + 14] = (ctr >> 8) & 0xff;
    counters[o + 15] = ctr & 0xff;
  }
  return ecb.update(counters.subarray(0, blocks * 16));
}

/** Session key derivation (RFC 3711 §4.3) with key derivation rate 0, for the SRTP labels 0-2. */
export function deriveSrtpKeys(masterKey: Buffer, masterSalt: Buffer): SrtpSessionKeys {
  const ecb = newEcb(masterKey);
  const prf = (label: number, len: number): Buffer => {
    // x = key_id XOR master_salt, key_id = label || r (48 bits, 0 when kdr = 0): the label lands on byte 7.
    const iv = Buffer.alloc(16);
    masterSalt.copy(iv, 0, 0, 14);
    iv[7] = (iv[7] as number) ^ label;
    return keystreamWith(ecb, iv, len, Buffer.alloc(Math.ceil(len / 16) * 16)).subarray(0, len);
  };
  return { cipherKey: prf(0x00, 16), authKey: prf(0x01, 20), salt: prf(0x02, 14) };
}

const REPLAY_WINDOW = 128;
/** Receive states kept (one per SSRC seen with a valid tag); the oldest is dropped beyond this. */
const MAX_RX_STREAMS = 4;

/** Receiver state of one SSRC: rollover counter, highest index, replay window. */
interface RxStream {
  roc: number;
  highSeq: number;
  highIndex: number;
  readonly seen: Float64Array;
}

/**
 * One direction of an SRTP session (one master key). The sender and receiver track the
 * rollover counter (ROC) of the 16-bit sequence number; the receiver estimates it per RFC 3711
 * §3.3.1, authenticates before decrypting and drops replays within a 128-packet window.
 *
 * A packet that fails authentication changes nothing: receiver state is kept per SSRC and only
 * an authenticated packet creates or advances it. (A forged packet with a new SSRC used to reset
 * the one replay window, which let recorded packets of the real stream be replayed.)
 */
export class SrtpContext {
  readonly suite: SrtpSuite;
  readonly #keys: SrtpSessionKeys;
  readonly #ecb: Cipher;
  readonly #tagLen: number;
  /** The MKI the far end writes before the tag (receive side) / we write (send side), if any. */
  readonly #mki: Buffer | undefined;
  readonly #iv = Buffer.alloc(16);
  readonly #roc4 = Buffer.alloc(4);
  #counters = Buffer.alloc(16 * 12);
  // Sender state.
  #txSsrc = -1;
  #txRoc = 0;
  #txLastSeq = -1;
  // Receiver state, per SSRC (insertion order = age).
  readonly #rx = new Map<number, RxStream>();

  /** `key` is the inline key of a=crypto (16-byte master key then 14-byte salt), with its MKI if it has one. */
  constructor(suite: SrtpSuite, key: SdesKey | Buffer) {
    const keyAndSalt = Buffer.isBuffer(key) ? key : key.material;
    if (keyAndSalt.length !== SRTP_MASTER_KEY_LEN + SRTP_MASTER_SALT_LEN) throw new RangeError('SRTP master key+salt must be 30 bytes');
    this.suite = suite;
    this.#keys = deriveSrtpKeys(keyAndSalt.subarray(0, 16), keyAndSalt.subarray(16, 30));
    this.#ecb = newEcb(this.#keys.cipherKey);
    this.#tagLen = srtpTagLength(suite);
    this.#mki = Buffer.isBuffer(key) ? undefined : key.mki?.bytes;
  }

  /** Bytes SRTP adds after the RTP packet: the MKI (if any) and the authentication tag. */
  get tagLength(): number {
    return this.#tagLen + (this.#mki?.length ?? 0);
  }

  #xorPayload(buf: Buffer, from: number, to: number, ssrc: number, index: number): void {
    const iv = this.#iv;
    this.#keys.salt.copy(iv, 0, 0, 14);
    iv[14] = 0;
    iv[15] = 0;
    iv[4] = (iv[4] as number) ^ ((ssrc >>> 24) & 0xff);
    iv[5] = (iv[5] as number) ^ ((ssrc >>> 16) & 0xff);
    iv[6] = (iv[6] as number) ^ ((ssrc >>> 8) & 0xff);
    iv[7] = (iv[7] as number) ^ (ssrc & 0xff);
    // 48-bit packet index i * 2^16 occupies bytes 8..13.
    const hi = Math.floor(index / 0x100000000);
    const lo = index >>> 0;
    iv[8] = (iv[8] as number) ^ ((hi >>> 8) & 0xff);
    iv[9] = (iv[9] as number) ^ (hi & 0xff);
    iv[10] = (iv[10] as number) ^ ((lo >>> 24) & 0xff);
    iv[11] = (iv[11] as number) ^ ((lo >>> 16) & 0xff);
    iv[12] = (iv[12] as number) ^ ((lo >>> 8) & 0xff);
    iv[13] = (iv[13] as number) ^ (lo & 0xff);
    const len = to - from;
    const need = Math.ceil(len / 16) * 16;
    if (this.#counters.length < need) this.#counters = Buffer.alloc(need);
    const ks = keystreamWith(this.#ecb, iv, len, this.#counters);
    for (let i = 0; i < len; i++) buf[from + i] = (buf[from + i] as number) ^ (ks[i] as number);
  }

  #tag(buf: Buffer, length: number, roc: number): Buffer {
    this.#roc4.writeUInt32BE(roc >>> 0, 0);
    return createHmac('sha1', this.#keys.authKey).update(buf.subarray(0, length)).update(this.#roc4).digest();
  }

  /**
   * Encrypts the RTP packet `src[0..length)` (header of `headerLength` bytes) into `out`, which
   * must hold length + tagLength bytes; returns the SRTP length. `src` may be `out`. The MKI is
   * not authenticated (RFC 3711 §3.1): it goes between the payload and the tag.
   */
  protect(src: Buffer, length: number, headerLength: number, out: Buffer): number {
    const seq = src.readUInt16BE(2);
    const ssrc = src.readUInt32BE(8);
    if (ssrc !== this.#txSsrc) {
      this.#txSsrc = ssrc;
      this.#txRoc = 0;
      this.#txLastSeq = -1;
    } else if (this.#txLastSeq >= 0 && seq < this.#txLastSeq && this.#txLastSeq - seq > 0x8000) {
      this.#txRoc = (this.#txRoc + 1) >>> 0;
    }
    this.#txLastSeq = seq;
    if (out !== src) src.copy(out, 0, 0, length);
    this.#xorPayload(out, headerLength, length, ssrc, this.#txRoc * 0x10000 + seq);
    const tag = this.#tag(out, length, this.#txRoc);
    const mkiLen = this.#mki?.length ?? 0;
    if (this.#mki !== undefined) this.#mki.copy(out, length);
    tag.copy(out, length + mkiLen, 0, this.#tagLen);
    return length + mkiLen + this.#tagLen;
  }

  /**
   * Authenticates, checks for replay and decrypts `buf[0..length)` in place. Returns the RTP
   * length (MKI and tag removed) or -1 when the packet must be dropped (also when its MKI is not
   * the one the far end announced).
   */
  unprotect(buf: Buffer, length: number, headerLength: number): number {
    const mkiLen = this.#mki?.length ?? 0;
    const rtpLen = length - this.#tagLen - mkiLen;
    if (rtpLen < headerLength) return -1;
    if (this.#mki !== undefined && this.#mki.compare(buf, rtpLen, rtpLen + mkiLen) !== 0) return -1;
    const seq = buf.readUInt16BE(2);
    const ssrc = buf.readUInt32BE(8);
    const st = this.#rx.get(ssrc);
    // ROC estimate (RFC 3711 §3.3.1): the guess v that puts this packet closest to the highest seen.
    let v = st?.roc ?? 0;
    if (st !== undefined) {
      if (st.highSeq < 0x8000) {
        if (seq - st.highSeq > 0x8000) v = st.roc - 1;
      } else if (st.highSeq - 0x8000 > seq) {
        v = st.roc + 1;
      }
    }
    if (v < 0) return -1;
    const index = v * 0x10000 + seq;
    if (st !== undefined) {
      if (index <= st.highIndex - REPLAY_WINDOW) return -1;
      if (st.seen[index % REPLAY_WINDOW] === index) return -1;
    }
    const expected = this.#tag(buf, rtpLen, v);
    if (!timingSafeEqual(expected.subarray(0, this.#tagLen), buf.subarray(rtpLen + mkiLen, length))) return -1;
    // Authenticated: only now may the receiver state move.
    const s = st ?? this.#newRxStream(ssrc, seq, index);
    s.seen[index % REPLAY_WINDOW] = index;
    if (index > s.highIndex) {
      s.highIndex = index;
      s.highSeq = seq;
      s.roc = v;
    }
    this.#xorPayload(buf, headerLength, rtpLen, ssrc, index);
    return rtpLen;
  }

  #newRxStream(ssrc: number, seq: number, index: number): RxStream {
    if (this.#rx.size >= MAX_RX_STREAMS) {
      const oldest = this.#rx.keys().next().value;
      if (oldest !== undefined) this.#rx.delete(oldest);
    }
    const s: RxStream = { roc: 0, highSeq: seq, highIndex: index, seen: new Float64Array(REPLAY_WINDOW).fill(-1) };
    this.#rx.set(ssrc, s);
    return s;
  }
}
