/**
 * A test RTP endpoint (the far end of a call): binds a UDP port on 127.0.0.1, sends G.711
 * silence every 20 ms to a target, can send RFC 4733 digits and in-band DTMF tones, and records
 * every RTP packet it receives so a test can check gaps, sequence/timestamp continuity and the
 * audio itself (G.711 is bit-exact, so the received bytes equal the encoded prompt files).
 *
 * Used by the media tests, the SIP tests and end-to-end tests. Test code: a timer per peer is fine.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { DtmfDigit } from '../../src/domain/dtmf.js';
import { encode, type G711Codec } from '../../src/telephony/embedded/media/g711.js';
import { promptFromWav } from '../../src/telephony/embedded/media/prompt-library.js';
import type { SrtpSuite } from '../../src/config/media-options.js';
import { SrtpContext } from '../../src/telephony/embedded/media/srtp.js';

export interface ReceivedRtp {
  /** performance.now() at arrival (ms). */
  at: number;
  from: { address: string; port: number };
  version: number;
  padding: boolean;
  extension: boolean;
  csrcCount: number;
  marker: boolean;
  payloadType: number;
  sequence: number;
  timestamp: number;
  ssrc: number;
  /** Copy of the payload (decrypted when SRTP). */
  payload: Buffer;
  /** Size of the datagram as received. */
  size: number;
}

export interface RtpPeerSrtp {
  suite: SrtpSuite;
  /** Our master key+salt (30 bytes): what we encrypt with, advertised in our SDP. */
  txKey: Buffer;
  /** The far end's master key+salt from its SDP. */
  rxKey: Buffer;
}

export interface RtpPeerOptions {
  /** Local port (tests use their own range); 0 = any. */
  port?: number;
  /** Local address: 127.0.0.1, or another loopback address (127.0.0.2...) to act as a second host. */
  host?: string;
  codec?: G711Codec;
  /** Audio payload type; default the static one of the codec. */
  payloadType?: number;
  /** telephone-event payload type. */
  telephoneEventPt?: number;
  ssrc?: number;
  srtp?: RtpPeerSrtp;
}

export interface SendDigitOptions {
  durationMs?: number;
  /** Number of end packets (RFC 4733 recommends 3). */
  endPackets?: number;
  /** End packets reuse one sequence number (the SIPp pcap pattern) instead of counting up. */
  endSameSequence?: boolean;
  /** Drop the first N packets of the event (lost start packet). */
  dropFirst?: number;
  /** Override the event timestamp (e.g. reuse the previous event's: a retransmission). */
  timestamp?: number;
  volume?: number;
  payloadType?: number;
}

export interface ToneOptions {
  /** Peak amplitude of each of the two tones (16-bit linear). */
  amplitude?: number;
  /** Add white noise at this signal-to-noise ratio. */
  snrDb?: number;
}

const ROWS = [697, 770, 852, 941];
const COLS = [1209, 1336, 1477, 1633];
const KEYPAD = '123A456B789C*0#D';
const EVENT_ORDER = '0123456789*#ABCD';

export function dtmfEventCode(d: DtmfDigit): number {
  return EVENT_ORDER.indexOf(d);
}

/** Deterministic pseudo-random generator for reproducible noise. */
export function prng(seed = 12345): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return ((x >>> 0) + 1) / 0x100000001;
  };
}

/** A DTMF tone pair as 8 kHz linear samples, optionally with white noise. */
export function dtmfPcm(digit: DtmfDigit, durationMs: number, opts: ToneOptions = {}, rand: () => number = prng()): Int16Array {
  const k = KEYPAD.indexOf(digit);
  const fr = ROWS[k >> 2] as number;
  const fc = COLS[k & 3] as number;
  const amp = opts.amplitude ?? 6000;
  const n = Math.round(durationMs * 8);
  // Two tones of peak `amp` carry amp^2 of power in total.
  const noiseRms = opts.snrDb === undefined ? 0 : amp / 10 ** (opts.snrDb / 20);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) {
    let v = amp * Math.sin((2 * Math.PI * fr * i) / 8000) + amp * Math.sin((2 * Math.PI * fc * i) / 8000);
    if (noiseRms > 0) v += noiseRms * Math.sqrt(-2 * Math.log(rand())) * Math.cos(2 * Math.PI * rand());
    out[i] = Math.max(-32768, Math.min(32767, Math.round(v)));
  }
  return out;
}

interface Job {
  /** Packets to send at the next tick, or undefined when the job is over. */
  next(): Buffer[] | undefined;
  resolve(): void;
}

export class RtpPeer {
  readonly address: string;
  readonly received: ReceivedRtp[] = [];
  readonly codec: G711Codec;
  readonly payloadType: number;
  readonly telephoneEventPt: number;
  readonly ssrc: number;
  seq = 1000;
  ts = 50_000;
  /** Packets sent (any kind). */
  sent = 0;
  readonly #sock: Socket;
  #srtpTx: SrtpContext | undefined;
  #srtpRx: SrtpContext | undefined;
  #target: { address: string; port: number } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #jobs: Job[] = [];
  #silence: Buffer;
  #port = 0;

  private constructor(sock: Socket, opts: RtpPeerOptions) {
    this.#sock = sock;
    this.address = opts.host ?? '127.0.0.1';
    this.codec = opts.codec ?? 'PCMU';
    this.payloadType = opts.payloadType ?? (this.codec === 'PCMU' ? 0 : 8);
    this.telephoneEventPt = opts.telephoneEventPt ?? 101;
    this.ssrc = opts.ssrc ?? 0x1234abcd;
    this.#silence = Buffer.alloc(160, this.codec === 'PCMU' ? 0xff : 0xd5);
    this.#srtpTx = opts.srtp === undefined ? undefined : new SrtpContext(opts.srtp.suite, opts.srtp.txKey);
    this.#srtpRx = opts.srtp === undefined ? undefined : new SrtpContext(opts.srtp.suite, opts.srtp.rxKey);
    sock.on('message', (m, r) => this.#onMessage(m, r));
  }

  static async open(opts: RtpPeerOptions = {}): Promise<RtpPeer> {
    const sock = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
        sock.off('error', reject);
        resolve();
      });
    });
    const p = new RtpPeer(sock, opts);
    p.#port = sock.address().port;
    return p;
  }

  get port(): number {
    return this.#port;
  }

  /** Turns SRTP on once both keys are known (ours is in our offer, theirs in the answer). */
  setSrtp(srtp: RtpPeerSrtp): void {
    this.#srtpTx = new SrtpContext(srtp.suite, srtp.txKey);
    this.#srtpRx = new SrtpContext(srtp.suite, srtp.rxKey);
  }

  /** Where RTP goes (the SDP address of the session under test). */
  setTarget(address: string, port: number): void {
    this.#target = { address, port };
  }

  /** Starts the 20 ms clock: silence, or the queued digits/tones. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.#tick(), 20);
  }

  /** Stops sending (queued jobs stay queued). */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  get sending(): boolean {
    return this.#timer !== undefined;
  }

  close(): void {
    this.stop();
    for (const j of this.#jobs) j.resolve();
    this.#jobs = [];
    this.#sock.removeAllListeners('message');
    try {
      this.#sock.close();
    } catch {
      // closed
    }
  }

  /** Sends one datagram as is (raw RTP, replayed pcap packets, garbage). */
  sendRaw(buf: Buffer, target = this.#target): void {
    if (target === undefined) throw new Error('RtpPeer: no target');
    this.#sock.send(buf, target.port, target.address);
    this.sent++;
  }

  /** Builds an RTP packet with our SSRC (SRTP-protected when configured). */
  packet(payloadType: number, marker: boolean, seq: number, ts: number, payload: Buffer): Buffer {
    const b = Buffer.alloc(12 + payload.length + (this.#srtpTx?.tagLength ?? 0));
    b[0] = 0x80;
    b[1] = (marker ? 0x80 : 0) | payloadType;
    b.writeUInt16BE(seq & 0xffff, 2);
    b.writeUInt32BE(ts >>> 0, 4);
    b.writeUInt32BE(this.ssrc >>> 0, 8);
    payload.copy(b, 12);
    if (this.#srtpTx !== undefined) {
      this.#srtpTx.protect(b, 12 + payload.length, 12, b);
      return b;
    }
    return b.subarray(0, 12 + payload.length);
  }

  #tick(): void {
    if (this.#target === undefined) return;
    const job = this.#jobs[0];
    if (job !== undefined) {
      const pkts = job.next();
      if (pkts !== undefined) {
        for (const p of pkts) this.sendRaw(p);
        return;
      }
      this.#jobs.shift();
      job.resolve();
    }
    this.sendRaw(this.packet(this.payloadType, false, this.seq, this.ts, this.#silence));
    this.seq = (this.seq + 1) & 0xffff;
    this.ts = (this.ts + 160) >>> 0;
  }

  #enqueue(make: () => Job['next']): Promise<void> {
    return new Promise((resolve) => {
      let next: Job['next'] | undefined;
      this.#jobs.push({
        next: () => {
          next ??= make();
          return next();
        },
        resolve,
      });
      if (this.#timer === undefined) this.start();
    });
  }

  /**
   * Sends one key press as RFC 4733 events on the 20 ms clock: a start packet (marker bit),
   * continuation packets every 20 ms, then `endPackets` end packets; audio resumes after it with
   * timestamps that account for the event.
   */
  sendDigit(digit: DtmfDigit, opts: SendDigitOptions = {}): Promise<void> {
    return this.#enqueue(() => {
      const pt = opts.payloadType ?? this.telephoneEventPt;
      const eventTs = opts.timestamp ?? this.ts;
      const total = Math.max(1, Math.round((opts.durationMs ?? 100) / 20));
      const endPackets = opts.endPackets ?? 3;
      const code = dtmfEventCode(digit);
      let i = 0;
      let dropped = 0;
      return () => {
        if (i >= total + endPackets) {
          this.ts = (eventTs + total * 160) >>> 0;
          return undefined;
        }
        const end = i >= total;
        const duration = Math.min(i + 1, total) * 160;
        const payload = Buffer.from([code, (end ? 0x80 : 0) | ((opts.volume ?? 10) & 0x3f), duration >> 8, duration & 0xff]);
        const pkt = this.packet(pt, i === 0, this.seq, eventTs, payload);
        const lastEnd = i === total + endPackets - 1;
        if (!end || opts.endSameSequence !== true || lastEnd) this.seq = (this.seq + 1) & 0xffff;
        i++;
        if (dropped < (opts.dropFirst ?? 0)) {
          dropped++;
          return [];
        }
        return [pkt];
      };
    });
  }

  /** Sends linear audio (encoded with our codec) on the 20 ms clock instead of silence. */
  sendAudio(pcm: Int16Array): Promise<void> {
    const bytes = encode(this.codec, pcm);
    return this.#enqueue(() => {
      let off = 0;
      return () => {
        if (off >= bytes.length) return undefined;
        const chunk = Buffer.alloc(160, this.#silence[0]);
        bytes.copy(chunk, 0, off, Math.min(off + 160, bytes.length));
        off += 160;
        const pkt = this.packet(this.payloadType, false, this.seq, this.ts, chunk);
        this.seq = (this.seq + 1) & 0xffff;
        this.ts = (this.ts + 160) >>> 0;
        return [pkt];
      };
    });
  }

  /** An in-band DTMF key press: tone then silence of the same length. */
  sendTone(digit: DtmfDigit, durationMs = 80, opts: ToneOptions = {}): Promise<void> {
    const tone = dtmfPcm(digit, durationMs, opts);
    const withGap = new Int16Array(tone.length * 2);
    withGap.set(tone);
    return this.sendAudio(withGap);
  }

  #onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    if (msg.length < 12 || msg[0]! >> 6 !== 2) return;
    let len = msg.length;
    const cc = msg[0]! & 0x0f;
    let off = 12 + cc * 4;
    const ext = (msg[0]! & 0x10) !== 0;
    if (ext) off += 4 + msg.readUInt16BE(off + 2) * 4;
    if (this.#srtpRx !== undefined) {
      len = this.#srtpRx.unprotect(msg, len, off);
      if (len < 0) return;
    }
    const padding = (msg[0]! & 0x20) !== 0;
    const end = padding ? len - msg[len - 1]! : len;
    this.received.push({
      at: performance.now(),
      from: { address: rinfo.address, port: rinfo.port },
      version: msg[0]! >> 6,
      padding,
      extension: ext,
      csrcCount: cc,
      marker: (msg[1]! & 0x80) !== 0,
      payloadType: msg[1]! & 0x7f,
      sequence: msg.readUInt16BE(2),
      timestamp: msg.readUInt32BE(4),
      ssrc: msg.readUInt32BE(8),
      payload: Buffer.from(msg.subarray(off, end)),
      size: msg.length,
    });
  }

  /** Payloads received so far, concatenated in arrival order (optionally from one index on). */
  audio(fromIndex = 0): Buffer {
    return Buffer.concat(this.received.slice(fromIndex).map((p) => p.payload));
  }

  /** Resolves once `predicate` holds (checked every 10 ms); rejects after `timeoutMs`. */
  async waitFor(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
    const t0 = Date.now();
    while (!predicate()) {
      if (Date.now() - t0 > timeoutMs) throw new Error(`RtpPeer: timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  waitForPackets(n: number, timeoutMs = 5000): Promise<void> {
    return this.waitFor(() => this.received.length >= n, timeoutMs, `${n} packets`);
  }
}

export interface PromptRef {
  language: string;
  id: string;
}

/** The G.711 bytes a prompt file must produce on the wire. */
export function encodedPrompt(promptsDir: string, ref: PromptRef, codec: G711Codec): Buffer {
  const file = join(promptsDir, ref.language, `${ref.id}.wav`);
  return promptFromWav(readFileSync(file), `${ref.language}/${ref.id}.wav`)[codec];
}

/**
 * Finds the fragments, in order and back to back, in received audio. Returns the byte offset of
 * each fragment; throws (naming only the position of the fragment, never its id) when absent.
 */
export function expectPromptSequence(received: Buffer, fragments: readonly PromptRef[], promptsDir: string, codec: G711Codec): number[] {
  const encoded = fragments.map((f) => encodedPrompt(promptsDir, f, codec));
  const whole = Buffer.concat(encoded);
  const start = received.indexOf(whole);
  if (start < 0) {
    // Locate the first fragment that breaks the chain, for a useful failure message.
    let at = 0;
    for (let i = 0; i < encoded.length; i++) {
      const pos = received.indexOf(encoded[i] as Buffer, at);
      if (pos < 0) throw new Error(`prompt sequence: fragment #${i + 1} of ${encoded.length} not found in ${received.length} received bytes`);
      if (i > 0 && pos !== at) throw new Error(`prompt sequence: fragment #${i + 1} not right after fragment #${i}`);
      at = pos + (encoded[i] as Buffer).length;
    }
    throw new Error('prompt sequence not found');
  }
  const offsets: number[] = [];
  let at = start;
  for (const e of encoded) {
    offsets.push(at);
    at += e.length;
  }
  return offsets;
}

/** RTP packets (UDP payloads) of a classic little/big-endian pcap with Ethernet/IPv4/UDP frames. */
export function readPcapRtp(file: string): Buffer[] {
  const b = readFileSync(file);
  const magic = b.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const u32 = (o: number): number => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const linkType = u32(20);
  const out: Buffer[] = [];
  let off = 24;
  while (off + 16 <= b.length) {
    const incl = u32(off + 8);
    const frame = b.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    let ip = 0;
    if (linkType === 1) ip = frame.readUInt16BE(12) === 0x0800 ? 14 : -1;
    else if (linkType === 113) ip = 16; // Linux cooked capture
    else if (linkType === 101) ip = 0; // raw IP
    if (ip < 0 || (frame[ip]! >> 4) !== 4 || frame[ip + 9] !== 17) continue;
    const udp = ip + (frame[ip]! & 0x0f) * 4;
    const udpLen = frame.readUInt16BE(udp + 4);
    out.push(Buffer.from(frame.subarray(udp + 8, udp + udpLen)));
  }
  return out;
}
