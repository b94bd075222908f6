import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSocket } from 'node:dgram';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import * as sdpTransform from 'sdp-transform';
import { encode } from '../src/telephony/embedded/media/g711.js';
import { isPayIvrError } from '../src/errors.js';
import { silentLogger } from '../src/log.js';
import type { DtmfSource } from '../src/telephony/types.js';
import type { DtmfDigit } from '../src/domain/dtmf.js';
import { MediaEngine, type MediaEngineOptions, type MediaSession } from '../src/telephony/embedded/media/engine.js';
import { writeWavPcm16 } from '../src/telephony/embedded/media/wav.js';
import { dtmfEventCode, dtmfPcm, encodedPrompt, expectPromptSequence, readPcapRtp, RtpPeer, type ReceivedRtp, type RtpPeerOptions } from './support/rtp-peer.js';

// Ports: engines 32100-32399, peers 32500-32899.
const REAL_PROMPTS = join(import.meta.dirname, '..', 'prompts');
let dir: string;
let nextPeerPort = 32500;
const peers: RtpPeer[] = [];
const sessions: MediaSession[] = [];

function ramp(n: number, seed: number): Int16Array {
  return Int16Array.from({ length: n }, (_, i) => Math.round(9000 * Math.sin((i * (seed + 1)) / 7) + ((i * seed) % 700)));
}

async function peer(opts: RtpPeerOptions = {}): Promise<RtpPeer> {
  const p = await RtpPeer.open({ port: nextPeerPort++, ...opts });
  peers.push(p);
  return p;
}

interface OfferOpts {
  codecs?: string; // payload list, e.g. '0 101'
  te?: number | undefined;
  direction?: string;
  port?: number;
  ip?: string;
  crypto?: string;
}

function offerFor(p: RtpPeer, o: OfferOpts = {}): string {
  const te = 'te' in o ? o.te : 101;
  const codecs = o.codecs ?? `${p.payloadType}${te === undefined ? '' : ` ${te}`}`;
  return [
    'v=0',
    'o=peer 1 1 IN IP4 127.0.0.1',
    's=-',
    `c=IN IP4 ${o.ip ?? '127.0.0.1'}`,
    't=0 0',
    `m=audio ${o.port ?? p.port} ${o.crypto === undefined ? 'RTP/AVP' : 'RTP/SAVP'} ${codecs}`,
    ...(te === undefined ? [] : [`a=rtpmap:${te} telephone-event/8000`, `a=fmtp:${te} 0-16`]),
    ...(o.crypto === undefined ? [] : [`a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${o.crypto}`]),
    `a=${o.direction ?? 'sendrecv'}`,
    '',
  ].join('\r\n');
}

function track(s: MediaSession): MediaSession {
  sessions.push(s);
  return s;
}

/** Negotiates `s` with `p`, confirms the dialog (the ACK) and starts the peer's 20 ms clock. */
function connect(s: MediaSession, p: RtpPeer, o: OfferOpts = {}): sdpTransform.SessionDescription {
  const answer = s.answerOffer(offerFor(p, o));
  if (answer === undefined) throw new Error('offer refused');
  s.confirm();
  const parsed = sdpTransform.parse(answer);
  p.setTarget('127.0.0.1', parsed.media[0]!.port);
  p.start();
  return parsed;
}

function nextDigit(s: MediaSession, timeoutMs = 5000): Promise<[DtmfDigit, DtmfSource]> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no digit')), timeoutMs);
    s.once('digit', (d, src) => {
      clearTimeout(t);
      resolve([d, src]);
    });
  });
}

function collectDigits(s: MediaSession): Array<[DtmfDigit, DtmfSource]> {
  const out: Array<[DtmfDigit, DtmfSource]> = [];
  s.on('digit', (d, src) => out.push([d, src]));
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * One packet per frame, one SSRC, version 2: the sequence advances by one and the timestamp by one
 * frame. The pacer skips frames (a larger whole-frame timestamp step) only after a stall of the
 * process longer than 100 ms, which a loaded machine can cause; that is allowed, anything else is not.
 */
function expectContinuous(pkts: ReceivedRtp[], ptime = 160): void {
  expect(pkts.length).toBeGreaterThan(1);
  const first = pkts[0]!;
  let skips = 0;
  for (let i = 1; i < pkts.length; i++) {
    const p = pkts[i]!;
    const prev = pkts[i - 1]!;
    expect(p.version).toBe(2);
    expect(p.ssrc).toBe(first.ssrc);
    expect(p.sequence).toBe((prev.sequence + 1) & 0xffff);
    const step = (p.timestamp - prev.timestamp) >>> 0;
    expect(step > 0 && step % ptime === 0, `timestamp step ${step}`).toBe(true);
    if (step !== ptime) skips++;
    expect(p.payload.length).toBe(160);
    expect(p.csrcCount).toBe(0);
    expect(p.extension).toBe(false);
    expect(p.padding).toBe(false);
  }
  // At most one stall in a short capture; a steady wrong step would fail here.
  expect(skips).toBeLessThanOrEqual(1);
}

function baseOptions(over: Partial<MediaEngineOptions> = {}): MediaEngineOptions {
  return { host: '127.0.0.1', portMin: 32100, portMax: 32199, promptsDir: dir, noRtpTimeoutMs: 60_000, logger: silentLogger, ...over };
}

let engine: MediaEngine;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'media-session-'));
  mkdirSync(join(dir, 'en-US'));
  mkdirSync(join(dir, 'fr-FR'));
  // Lengths that are not multiples of 160, so fragments straddle packets.
  writeFileSync(join(dir, 'en-US', 'a.wav'), writeWavPcm16(ramp(400, 1)));
  writeFileSync(join(dir, 'en-US', 'b.wav'), writeWavPcm16(ramp(333, 2)));
  writeFileSync(join(dir, 'en-US', 'long.wav'), writeWavPcm16(ramp(16000, 3)));
  for (const f of ['enter-card-number', 'n-4', 'n-2', 'thank-you']) copyFileSync(join(REAL_PROMPTS, 'en-US', `${f}.wav`), join(dir, 'en-US', `${f}.wav`));
  copyFileSync(join(REAL_PROMPTS, 'fr-FR', 'thank-you.wav'), join(dir, 'fr-FR', 'thank-you.wav'));
  engine = new MediaEngine(baseOptions());
  await engine.start();
});

afterEach(() => {
  for (const s of sessions.splice(0)) s.close();
  for (const p of peers.splice(0)) p.close();
});

afterAll(async () => {
  await engine.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('RTP sending', () => {
  it('sends continuous G.711 silence with a correct header while nothing plays', async () => {
    const p = await peer();
    const s = track(engine.createSession());
    connect(s, p);
    await p.waitForPackets(25);
    const pkts = p.received.slice(0, 25);
    expectContinuous(pkts);
    expect(pkts.every((x) => x.payloadType === 0)).toBe(true);
    expect(pkts.every((x) => x.payload.every((b) => b === 0xff))).toBe(true);
    expect(pkts[0]!.marker).toBe(true);
    expect(pkts.slice(1).some((x) => x.marker)).toBe(false);
    expect(pkts.every((x) => x.from.port === s.localPort)).toBe(true);
  });

  it('PCMA: payload type 8, A-law silence 0xD5', async () => {
    const p = await peer({ codec: 'PCMA' });
    const s = track(engine.createSession());
    connect(s, p, { codecs: '8 0 101' });
    await p.waitForPackets(10);
    expect(p.received.every((x) => x.payloadType === 8 && x.payload.every((b) => b === 0xd5))).toBe(true);
  });

  it('random SSRC and sequence start per session', async () => {
    const p1 = await peer();
    const p2 = await peer();
    const s1 = track(engine.createSession());
    const s2 = track(engine.createSession());
    connect(s1, p1);
    connect(s2, p2);
    await p1.waitForPackets(2);
    await p2.waitForPackets(2);
    expect(p1.received[0]!.ssrc).not.toBe(p2.received[0]!.ssrc);
    expect(s1.localPort).not.toBe(s2.localPort);
    expect(s1.localPort % 2 + (s2.localPort % 2)).toBe(0);
  });

  it('comfort noise instead of digital silence when configured', async () => {
    const e = new MediaEngine(baseOptions({ portMin: 32200, portMax: 32219, comfortNoiseDbov: 60 }));
    await e.start();
    try {
      const p = await peer();
      const s = e.createSession();
      connect(s, p);
      await p.waitForPackets(10);
      const bytes = p.audio();
      expect(new Set(bytes).size).toBeGreaterThan(3);
      expect(bytes.every((b) => b === 0xff)).toBe(false);
    } finally {
      await e.stop();
    }
  });
});

describe('playback', () => {
  it('plays fragments back to back, bit-exact, with a marker at the start and seq/ts continuity', async () => {
    const p = await peer();
    const s = track(engine.createSession());
    connect(s, p);
    await p.waitForPackets(5);
    const result = await s.play(['a', 'b', 'a'], { language: 'en-US', bargeIn: false });
    expect(result).toBe('done');
    await p.waitFor(() => p.received.length > 0 && p.received.at(-1)!.payload[159] === 0xff, 2000, 'silence after the prompt');
    const pkts = p.received;
    expectContinuous(pkts);
    const frags = [
      { language: 'en-US', id: 'a' },
      { language: 'en-US', id: 'b' },
      { language: 'en-US', id: 'a' },
    ];
    const offsets = expectPromptSequence(p.audio(), frags, dir, 'PCMU');
    expect(offsets[0]! % 160).toBe(0); // playback starts on a packet boundary
    const startPacket = offsets[0]! / 160;
    expect(pkts[startPacket]!.marker).toBe(true);
    // 1133 samples: 7 full packets and 13 samples, the rest of that packet is silence
    const lastPacket = pkts[startPacket + 7]!;
    expect(lastPacket.payload.subarray(13).every((b) => b === 0xff)).toBe(true);
  });

  it('plays a real prompt pack file bit-exact (PCMA too)', async () => {
    const p = await peer({ codec: 'PCMA' });
    const s = track(engine.createSession());
    connect(s, p, { codecs: '8 101' });
    expect(await s.play(['n-4', 'n-2'], { language: 'en-US', bargeIn: false })).toBe('done');
    await sleep(60);
    expectPromptSequence(
      p.audio(),
      [
        { language: 'en-US', id: 'n-4' },
        { language: 'en-US', id: 'n-2' },
      ],
      dir,
      'PCMA',
    );
    expect(encodedPrompt(dir, { language: 'en-US', id: 'n-4' }, 'PCMA').length).toBeGreaterThan(1000);
  });

  it('language selects the pack', async () => {
    const p = await peer();
    const s = track(engine.createSession());
    connect(s, p);
    expect(await s.play(['thank-you'], { language: 'fr-FR', bargeIn: false })).toBe('done');
    await sleep(60);
    expectPromptSequence(p.audio(), [{ language: 'fr-FR', id: 'thank-you' }], dir, 'PCMU');
    expect(() => expectPromptSequence(p.audio(), [{ language: 'en-US', id: 'thank-you' }], dir, 'PCMU')).toThrow();
  });

  it('missing fragment: rejects before starting, naming only the language and a count', async () => {
    const s = track(engine.createSession());
    const current = s.play(['long'], { language: 'en-US', bargeIn: false });
    try {
      await s.play(['a', '4111111111111111', 'b'], { language: 'en-US', bargeIn: false });
      expect.unreachable();
    } catch (e) {
      expect(isPayIvrError(e, 'ERR_PROMPT_MISSING')).toBe(true);
      const msg = (e as Error).message + JSON.stringify((e as { details?: unknown }).details);
      expect(msg).toContain('en-US');
      expect(msg).toContain('1 of 3');
      expect(msg).not.toContain('4111');
    }
    await expect(s.play(['a'], { language: 'xx-XX', bargeIn: false })).rejects.toThrow(/1 of 1/);
    expect(s.playing).toBe(true); // the current playback went on
    s.stopPlay();
    expect(await current).toBe('stopped');
  });

  it('a new play() stops the previous one', async () => {
    const s = track(engine.createSession());
    const first = s.play(['long'], { language: 'en-US', bargeIn: false });
    const second = s.play(['a'], { language: 'en-US', bargeIn: false });
    expect(await first).toBe('stopped');
    expect(await second).toBe('done');
  });

  it('loop repeats until stopPlay()', async () => {
    const p = await peer();
    const s = track(engine.createSession());
    connect(s, p);
    const playing = s.play(['a', 'b'], { language: 'en-US', bargeIn: false, loop: true });
    const ab = [
      { language: 'en-US', id: 'a' },
      { language: 'en-US', id: 'b' },
    ];
    await p.waitFor(() => {
      try {
        expectPromptSequence(p.audio(), [...ab, ...ab, ...ab], dir, 'PCMU');
        return true;
      } catch {
        return false;
      }
    }, 5000, 'three loops');
    s.stopPlay();
    expect(await playing).toBe('stopped');
    s.stopPlay(); // no-op
  });

  it('close() resolves a pending play with ended; play after close is ended; close is idempotent', async () => {
    const s = engine.createSession();
    const before = engine.sessions;
    const playing = s.play(['long'], { language: 'en-US', bargeIn: true });
    s.close();
    s.close();
    expect(await playing).toBe('ended');
    expect(await s.play(['a'], { language: 'en-US', bargeIn: false })).toBe('ended');
    expect(engine.sessions).toBe(before - 1);
    expect(s.answerOffer(offerFor(await peer()))).toBeUndefined();
  });
});

describe('DTMF', () => {
  it("RFC 4733: '44' gives two digits, retransmitted end packets none extra", async () => {
    const p = await peer();
    const s = track(engine.createSession());
    const digits = collectDigits(s);
    connect(s, p);
    await p.sendDigit('4', { endPackets: 3 });
    await p.sendDigit('4', { endPackets: 5 });
    await p.sendDigit('#', { endPackets: 3, endSameSequence: true });
    await p.waitFor(() => digits.length >= 3, 3000, 'digits');
    await sleep(100);
    expect(digits).toEqual([
      ['4', 'rfc4733'],
      ['4', 'rfc4733'],
      ['#', 'rfc4733'],
    ]);
  });

  it('telephone-event at payload type 96; lost start packets; an explicit retransmission', async () => {
    const p = await peer({ telephoneEventPt: 96 });
    const s = track(engine.createSession());
    const digits = collectDigits(s);
    connect(s, p, { te: 96 });
    await p.sendDigit('1');
    await p.sendDigit('2', { dropFirst: 3 });
    const ts = p.ts;
    await p.sendDigit('3');
    await p.sendDigit('3', { timestamp: ts }); // same event again: a retransmission
    await p.sendDigit('D', { dropFirst: 5, durationMs: 100 }); // only end packets arrive
    await p.waitFor(() => digits.length >= 4, 3000, 'digits');
    await sleep(100);
    expect(digits.map((d) => d[0]).join('')).toBe('123D');
  });

  it("SIPp's pcap replayed twice is one digit; different pcaps are different digits", async () => {
    const p = await peer();
    const s = track(engine.createSession());
    const digits = collectDigits(s);
    connect(s, p);
    p.stop();
    const pcap = (d: string): Buffer[] => readPcapRtp(`/usr/share/sip-tester/dtmf_2833_${d}.pcap`);
    for (const pkt of [...pcap('5'), ...pcap('5'), ...pcap('9')]) {
      p.sendRaw(pkt);
      await sleep(2);
    }
    await p.waitFor(() => digits.length >= 2, 3000, 'digits');
    await sleep(100);
    expect(digits.map((d) => d[0]).join('')).toBe('59');
  });

  it('in-band tones are detected only when telephone-event was not negotiated', async () => {
    const p = await peer();
    const s = track(engine.createSession());
    const digits = collectDigits(s);
    connect(s, p, { te: undefined });
    expect(s.telephoneEvent).toBe(false);
    await p.sendTone('7', 80, { snrDb: 20 });
    await p.sendTone('#', 80, { snrDb: 20 });
    await p.waitFor(() => digits.length >= 2, 3000, 'digits');
    expect(digits).toEqual([
      ['7', 'inband'],
      ['#', 'inband'],
    ]);

    const p2 = await peer();
    const s2 = track(engine.createSession());
    const digits2 = collectDigits(s2);
    connect(s2, p2);
    await p2.sendTone('7', 80);
    await p2.sendDigit('8');
    await p2.waitFor(() => digits2.length >= 1, 3000, 'digit');
    await sleep(100);
    expect(digits2).toEqual([['8', 'rfc4733']]);
  });

  it('a conference leg (listenForInbandKeys): tones are keys even with telephone-event, and a key sent both ways counts once', async () => {
    const p = await peer();
    const s = track(engine.createSession());
    const digits = collectDigits(s);
    s.listenForInbandKeys();
    connect(s, p);
    expect(s.telephoneEvent).toBe(true);
    // Tones only (Genesys's mix), then RFC 4733 only, then both for the same press (an endpoint
    // that sends events and leaves the tone in the audio), then the same key again both ways.
    await p.sendTone('7', 100);
    await p.sendDigit('8');
    await sleep(200);
    p.stop();
    const both = async (digit: DtmfDigit): Promise<void> => {
      const tone = encode(p.codec, dtmfPcm(digit, 100, { amplitude: 6000 }));
      const eventTs = p.ts;
      const code = dtmfEventCode(digit);
      for (let i = 0; i < 5 + 3 + 6; i++) {
        const audio = i < 5 ? tone.subarray(i * 160, (i + 1) * 160) : Buffer.alloc(160, 0xff);
        p.sendRaw(p.packet(p.payloadType, false, p.seq, p.ts, Buffer.from(audio)));
        p.seq = (p.seq + 1) & 0xffff;
        p.ts = (p.ts + 160) >>> 0;
        if (i < 5 + 3) {
          const duration = Math.min(i + 1, 5) * 160;
          p.sendRaw(p.packet(p.telephoneEventPt, i === 0, p.seq, eventTs, Buffer.from([code, (i >= 5 ? 0x80 : 0) | 10, duration >> 8, duration & 0xff])));
          p.seq = (p.seq + 1) & 0xffff;
        }
        await sleep(20);
      }
    };
    await both('4');
    await both('4');
    await both('#');
    await sleep(300);
    expect(digits.map((d) => d[0]).join('')).toBe('7844#');
    expect(digits.slice(0, 2)).toEqual([
      ['7', 'inband'],
      ['8', 'rfc4733'],
    ]);
  });

  it('SIP INFO digits come out of the same event', async () => {
    const s = track(engine.createSession());
    const got = nextDigit(s);
    s.injectDigit('*', 'sip-info');
    expect(await got).toEqual(['*', 'sip-info']);
  });

  it('barge-in: the first digit stops playback (interrupted) and is still delivered', async () => {
    const p = await peer();
    const s = track(engine.createSession());
    connect(s, p);
    const playing = s.play(['long'], { language: 'en-US', bargeIn: true });
    const digit = nextDigit(s);
    await sleep(100);
    await p.sendDigit('9');
    expect(await playing).toBe('interrupted');
    expect(await digit).toEqual(['9', 'rfc4733']);
    // the prompt audio stops: the stream goes back to silence
    await p.waitFor(() => p.received.at(-1)!.payload.every((b) => b === 0xff), 2000, 'silence');
  });

  it('without barge-in a digit does not stop the prompt', async () => {
    const s = track(engine.createSession());
    const digits = collectDigits(s);
    const playing = s.play(['a', 'b'], { language: 'en-US', bargeIn: false });
    s.injectDigit('1', 'sip-info');
    expect(s.playing).toBe(true);
    expect(await playing).toBe('done');
    expect(digits).toEqual([['1', 'sip-info']]);
  });
});

describe('symmetric RTP (latching)', () => {
  it('sends to the SDP address until RTP arrives, then to where it comes from', async () => {
    const sdpTarget = await peer();
    const real = await peer();
    const stranger = await peer();
    const s = track(engine.createSession());
    // The SDP names sdpTarget's port (e.g. a private address behind NAT); RTP really comes from `real`.
    const answer = s.answerOffer(offerFor(sdpTarget));
    const port = sdpTransform.parse(answer!).media[0]!.port;
    await sleep(100);
    expect(sdpTarget.received.length).toBe(0); // nothing before the ACK
    expect(s.remote).toBeUndefined();
    s.confirm();
    await sdpTarget.waitForPackets(3);
    expect(real.received.length).toBe(0);
    real.setTarget('127.0.0.1', port);
    real.start();
    await real.waitForPackets(5);
    const atSwitch = sdpTarget.received.length;
    await sleep(100);
    expect(sdpTarget.received.length - atSwitch).toBeLessThanOrEqual(1);
    // another source cannot steal the stream while the latched one is alive
    stranger.setTarget('127.0.0.1', port);
    stranger.start();
    await sleep(200);
    expect(stranger.received.length).toBe(0);
    expect(s.remote).toEqual({ address: '127.0.0.1', port: real.port });
    expect(s.connected).toBe(true); // the socket is connect()ed to the latched source
    expectContinuous(real.received);
  });

  it('when the latched source goes quiet, the socket is disconnected and another port of its address takes over (NAT rebinding)', async () => {
    const first = await peer();
    const second = await peer();
    const s = track(engine.createSession());
    const port = sdpTransform.parse(s.answerOffer(offerFor(first))!).media[0]!.port;
    s.confirm();
    expect(s.connected).toBe(false); // nothing latched yet: every source must get through
    first.setTarget('127.0.0.1', port);
    first.start();
    await first.waitFor(() => s.connected, 3000, 'connect to the latched source');
    second.setTarget('127.0.0.1', port);
    second.start();
    await sleep(100);
    expect(s.remote?.port).toBe(first.port);
    first.stop();
    await second.waitFor(() => s.remote?.port === second.port, 6000, 'relatch to the second source');
    await second.waitFor(() => s.connected, 3000, 'connect to the new source');
    const before = second.received.length;
    await second.waitForPackets(before + 3);
    expectContinuous(second.received);
  });

  it('a re-offer with a new address drops the latch', async () => {
    const a = await peer();
    const b = await peer();
    const s = track(engine.createSession());
    connect(s, a);
    await a.waitForPackets(3);
    expect(s.remote?.port).toBe(a.port);
    await a.waitFor(() => s.connected, 3000, 'connect to a');
    s.updateOffer(offerFor(b));
    expect(s.remote?.port).toBe(b.port);
    expect(s.connected).toBe(false); // the SDP moved the stream: a new source must be able to latch
    // a keeps sending a little (late packets after the re-INVITE): they must not latch us back
    await sleep(100);
    a.stop();
    await b.waitForPackets(3);
    expect(s.remote?.port).toBe(b.port);
  });
  it('behind NAT the real source may stay the same across an SDP change: it is latched again', async () => {
    const private1 = await peer();
    const private2 = await peer();
    const real = await peer();
    const s = track(engine.createSession());
    const port = sdpTransform.parse(s.answerOffer(offerFor(private1))!).media[0]!.port;
    s.confirm();
    real.setTarget('127.0.0.1', port);
    real.start();
    await real.waitFor(() => s.remote?.port === real.port, 3000, 'latch');
    s.updateOffer(offerFor(private2));
    expect(s.remote?.port).toBe(private2.port);
    await private2.waitForPackets(2);
    await real.waitFor(() => s.remote?.port === real.port, 6000, 'relatch to the real source');
  });
});

describe('no-RTP watchdog', () => {
  let e: MediaEngine;
  beforeAll(async () => {
    e = new MediaEngine(baseOptions({ portMin: 32220, portMax: 32239, noRtpTimeoutMs: 300 }));
    await e.start();
  });
  afterAll(() => e.stop());

  function timeout(s: MediaSession, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), ms);
      s.once('rtp-timeout', () => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  it('fires once when the far end stops sending, not while it sends', async () => {
    const p = await peer();
    const s = e.createSession();
    sessions.push(s);
    connect(s, p);
    expect(await timeout(s, 900)).toBe(false);
    p.stop();
    expect(await timeout(s, 3000)).toBe(true);
    expect(await timeout(s, 700)).toBe(false); // once per silence
    p.start();
    await sleep(100);
    p.stop();
    expect(await timeout(s, 3000)).toBe(true); // re-armed by new RTP
  });

  it('fires when RTP never arrives after the answer', async () => {
    const p = await peer();
    const s = e.createSession();
    sessions.push(s);
    s.answerOffer(offerFor(p));
    s.confirm();
    expect(await timeout(s, 3000)).toBe(true);
  });

  it('hold (sendonly, inactive, c=0.0.0.0) suspends it; unhold re-arms it', async () => {
    const p = await peer();
    const s = e.createSession();
    sessions.push(s);
    connect(s, p);
    await p.waitForPackets(3);
    p.stop();
    s.updateOffer(offerFor(p, { direction: 'sendonly' }));
    expect(await timeout(s, 900)).toBe(false);
    s.updateOffer(offerFor(p, { direction: 'inactive' }));
    s.updateOffer(offerFor(p, { ip: '0.0.0.0' }));
    expect(await timeout(s, 900)).toBe(false);
    s.updateOffer(offerFor(p));
    expect(await timeout(s, 3000)).toBe(true);
  });

  it('does not run before negotiation', async () => {
    const s = e.createSession();
    sessions.push(s);
    expect(await timeout(s, 900)).toBe(false);
  });
});

describe('late offer over the wire', () => {
  it('createOffer / applyAnswer: RTP flows with the answered codec and telephone-event type', async () => {
    const p = await peer({ codec: 'PCMA', telephoneEventPt: 101 });
    const s = track(engine.createSession());
    const offer = sdpTransform.parse(s.createOffer());
    expect(String(offer.media[0]!.payloads)).toBe('0 8 101');
    expect(s.applyAnswer(offerFor(p, { codecs: '8 101' }))).toBe(true);
    s.confirm();
    p.setTarget('127.0.0.1', offer.media[0]!.port);
    p.start();
    const d = nextDigit(s);
    await p.sendDigit('6');
    expect(await d).toEqual(['6', 'rfc4733']);
    await p.waitForPackets(5);
    expect(p.received.every((x) => x.payloadType === 8)).toBe(true);
  });
});

describe('SRTP round trip', () => {
  it('SAVP offer: encrypted both ways, prompt bit-exact after decryption, digits through', async () => {
    const myKey = Buffer.alloc(30);
    for (let i = 0; i < 30; i++) myKey[i] = (i * 37 + 11) & 0xff;
    const p = await peer();
    const s = track(engine.createSession());
    const answer = s.answerOffer(offerFor(p, { crypto: myKey.toString('base64') }));
    expect(answer).toBeDefined();
    s.confirm();
    const m = sdpTransform.parse(answer!).media[0]!;
    expect(m.protocol).toBe('RTP/SAVP');
    const theirKey = Buffer.from(m.crypto![0]!.config.replace(/^inline:/, '').split('|')[0]!, 'base64');
    expect(theirKey.length).toBe(30);
    expect(s.secure).toBe(true);
    p.setSrtp({ suite: 'AES_CM_128_HMAC_SHA1_80', txKey: myKey, rxKey: theirKey });
    p.setTarget('127.0.0.1', m.port);
    p.start();
    await p.waitForPackets(5);
    expect(p.received.every((x) => x.size === 12 + 160 + 10)).toBe(true);
    expect(p.received.every((x) => x.payload.every((b) => b === 0xff))).toBe(true); // decrypted silence
    expect(await s.play(['a', 'b'], { language: 'en-US', bargeIn: false })).toBe('done');
    await sleep(60);
    expectPromptSequence(
      p.audio(),
      [
        { language: 'en-US', id: 'a' },
        { language: 'en-US', id: 'b' },
      ],
      dir,
      'PCMU',
    );
    expectContinuous(p.received);
    const d = nextDigit(s);
    await p.sendDigit('0');
    expect(await d).toEqual(['0', 'rfc4733']);
  });

  it('plain or forged packets to an SRTP session are dropped', async () => {
    const p = await peer();
    const s = track(engine.createSession());
    const digits = collectDigits(s);
    s.answerOffer(offerFor(p, { crypto: Buffer.alloc(30, 3).toString('base64') }));
    s.confirm();
    const port = s.localPort;
    p.setTarget('127.0.0.1', port);
    p.start(); // no SRTP on the peer: plain RTP
    await p.sendDigit('5');
    p.setSrtp({ suite: 'AES_CM_128_HMAC_SHA1_80', txKey: Buffer.alloc(30, 4), rxKey: Buffer.alloc(30, 4) }); // wrong key
    await p.sendDigit('6');
    await sleep(100);
    expect(digits).toEqual([]);
    expect(s.remote).toEqual({ address: '127.0.0.1', port: p.port }); // SDP address, never latched
  });
});

describe('ports and engine lifecycle', () => {
  it('even ports only; ERR_RTP_PORTS_EXHAUSTED when all are taken; freed ports come back', async () => {
    const foreign = createSocket('udp4');
    await new Promise<void>((r) => foreign.bind(32304, '127.0.0.1', () => r()));
    const e = new MediaEngine(baseOptions({ portMin: 32300, portMax: 32307 }));
    await e.start();
    try {
      const a = e.createSession();
      const b = e.createSession();
      const c = e.createSession();
      expect([a, b, c].map((x) => x.localPort).sort()).toEqual([32300, 32302, 32306]); // 32304 held by another socket
      expect(() => e.createSession()).toThrow(expect.objectContaining({ code: 'ERR_RTP_PORTS_EXHAUSTED' }));
      expect(e.sessions).toBe(3);
      b.close();
      expect(e.createSession().localPort).toBe(32302);
    } finally {
      await e.stop();
      foreign.close();
    }
    expect(e.sessions).toBe(0);
  });

  it('createSession before start() is refused; hasPrompt reflects the loaded packs', () => {
    const e = new MediaEngine(baseOptions({ portMin: 32310, portMax: 32319 }));
    expect(() => e.createSession()).toThrow(expect.objectContaining({ code: 'ERR_BACKEND_UNAVAILABLE' }));
    expect(engine.hasPrompt('en-US', 'a')).toBe(true);
    expect(engine.hasPrompt('en-US', 'nope')).toBe(false);
    expect(engine.hasPrompt('de-DE', 'a')).toBe(false);
  });

  it('stop() closes every session (pending plays end)', async () => {
    const e = new MediaEngine(baseOptions({ portMin: 32320, portMax: 32339 }));
    await e.start();
    const s = e.createSession();
    const playing = s.play(['long'], { language: 'en-US', bargeIn: false });
    await e.stop();
    expect(await playing).toBe('ended');
    expect(s.closed).toBe(true);
  });
});

describe('logging (PCI)', () => {
  it('debug logs carry no digits and no fragment ids', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const e = new MediaEngine(baseOptions({ portMin: 32340, portMax: 32359, logger: pino({ level: 'trace' }, sink) }));
    await e.start();
    try {
      const p = await peer();
      const s = e.createSession();
      connect(s, p, { te: undefined });
      const digits = collectDigits(s);
      await s.play(['n-4', 'n-2'], { language: 'en-US', bargeIn: false });
      await p.sendTone('4', 80);
      await p.sendTone('2', 80);
      await p.waitFor(() => digits.length >= 2, 3000, 'digits');
      await expect(s.play(['n-4', 'n-9'], { language: 'en-US', bargeIn: false })).rejects.toThrow();
      s.close();
    } finally {
      await e.stop();
    }
    const all = lines.join('');
    expect(lines.length).toBeGreaterThan(3); // something was logged at debug
    expect(all).not.toMatch(/n-4|n-2|n-9/);
    expect(all).not.toMatch(/"digit"|"dtmf"/);
  });
});
