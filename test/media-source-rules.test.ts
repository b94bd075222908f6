import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import * as sdpTransform from 'sdp-transform';
import { configSchema } from '../src/config/schema.js';
import { silentLogger } from '../src/log.js';
import { MediaRanges, sdpMediaAddresses } from '../src/telephony/media-ranges.js';
import { EmbeddedBackend } from '../src/telephony/embedded/backend.js';
import { MediaEngine, type MediaEngineOptions, type MediaSession } from '../src/telephony/embedded/media/engine.js';
import { Rfc4733Receiver, type Rfc4733Verdict } from '../src/telephony/embedded/media/rfc4733.js';
import { SrtpContext } from '../src/telephony/embedded/media/srtp.js';
import type { DtmfSource, InboundCall } from '../src/telephony/types.js';
import type { DtmfDigit } from '../src/domain/dtmf.js';
import { RtpPeer, type RtpPeerOptions } from './support/rtp-peer.js';

/**
 * Issue 10, item 1: who may steer a call's media. Real UDP sockets on loopback; 127.0.0.2 and
 * 127.0.0.3 act as other hosts (all of 127.0.0.0/8 is local). Run inside the test's network
 * namespace (scripts: ns.sh), so the fixed ports below collide with nothing.
 */

// Ports: engines 33000-33199, peers 33500-33899, SIP 15070.
const CALLER = '127.0.0.1';
const ATTACKER = '127.0.0.2';
const VICTIM = '127.0.0.3';
let nextPeerPort = 33500;
const peers: RtpPeer[] = [];
const sessions: MediaSession[] = [];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** RELATCH_AFTER_MS of media/session.ts plus margin: "after the caller's stream" means after that quiet spell. */
const QUIET_MS = 2300;

async function peer(opts: RtpPeerOptions = {}): Promise<RtpPeer> {
  const p = await RtpPeer.open({ port: nextPeerPort++, ...opts });
  peers.push(p);
  return p;
}

function offer(address: string, port: number, crypto?: Buffer): string {
  return [
    'v=0',
    `o=peer 1 1 IN IP4 ${address}`,
    's=-',
    `c=IN IP4 ${address}`,
    't=0 0',
    `m=audio ${port} ${crypto === undefined ? 'RTP/AVP' : 'RTP/SAVP'} 0 101`,
    'a=rtpmap:0 PCMU/8000',
    'a=rtpmap:101 telephone-event/8000',
    'a=fmtp:101 0-16',
    ...(crypto === undefined ? [] : [`a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${crypto.toString('base64')}`]),
    'a=sendrecv',
    '',
  ].join('\r\n');
}

function collectDigits(s: MediaSession): Array<[DtmfDigit, DtmfSource]> {
  const out: Array<[DtmfDigit, DtmfSource]> = [];
  s.on('digit', (d, src) => out.push([d, src]));
  return out;
}

function options(over: Partial<MediaEngineOptions> = {}): MediaEngineOptions {
  return { host: '127.0.0.1', portMin: 33000, portMax: 33099, promptsDir: 'prompts', noRtpTimeoutMs: 60_000, logger: silentLogger, ...over };
}

afterEach(() => {
  for (const s of sessions.splice(0)) s.close();
  for (const p of peers.splice(0)) p.close();
});

describe('RTP source rules (embedded media engine)', () => {
  let engine: MediaEngine;
  beforeAll(async () => {
    engine = new MediaEngine(options());
    await engine.start();
  });
  afterAll(() => engine.stop());

  /** A session answered for `caller`'s SDP and confirmed (the ACK came). */
  function session(caller: RtpPeer, crypto?: Buffer): { s: MediaSession; port: number; answer: sdpTransform.SessionDescription } {
    const s = engine.createSession();
    sessions.push(s);
    const a = s.answerOffer(offer(caller.address, caller.port, crypto));
    if (a === undefined) throw new Error('offer refused');
    s.confirm();
    const answer = sdpTransform.parse(a);
    return { s, port: answer.media[0]!.port, answer };
  }

  it('a second address injecting RTP and RFC 4733 events before, during and after the caller\'s stream is never accepted and never gets audio', async () => {
    const caller = await peer({ host: CALLER });
    const attacker = await peer({ host: ATTACKER, ssrc: 0x0badf00d });
    const { s, port } = session(caller);
    const digits = collectDigits(s);
    caller.setTarget('127.0.0.1', port);
    attacker.setTarget('127.0.0.1', port);

    // Before: the caller has not sent a packet yet, nothing is latched.
    await attacker.sendDigit('1');
    await attacker.sendDigit('0');
    expect(s.remote).toEqual({ address: CALLER, port: caller.port }); // still the SDP address
    // During: both stream; the caller's digits come through, the attacker's do not.
    caller.start();
    await caller.waitForPackets(3);
    await Promise.all([attacker.sendDigit('#'), caller.sendDigit('4')]);
    await attacker.sendDigit('9');
    await caller.sendDigit('2');
    // After: the caller's stream stops; the latched source is quiet for longer than the relatch delay.
    caller.stop();
    await sleep(QUIET_MS);
    await attacker.sendDigit('7');
    attacker.stop();
    await sleep(60);

    expect(digits).toEqual([
      ['4', 'rfc4733'],
      ['2', 'rfc4733'],
    ]);
    expect(attacker.received.length).toBe(0); // never a byte of the call's audio
    expect(s.remote).toEqual({ address: CALLER, port: caller.port });
    // Every caller packet taken, no attacker packet (those the connected socket let through were refused).
    const st = s.rxStats;
    expect(st.accepted).toBe(caller.sent);
    expect(st.refusedSource).toBeGreaterThan(0);
    expect(st.refusedSource).toBeLessThanOrEqual(attacker.sent);
  });

  it('a stream whose port changes (NAT rebinding) keeps working: same address, new port, after the old one went quiet', async () => {
    const caller = await peer({ host: CALLER });
    const rebound = await peer({ host: CALLER, ssrc: caller.ssrc });
    const { s, port } = session(caller);
    const digits = collectDigits(s);
    caller.setTarget('127.0.0.1', port);
    caller.start();
    await caller.sendDigit('5');
    // While the first port is alive, the second cannot take over.
    rebound.setTarget('127.0.0.1', port);
    rebound.start();
    await sleep(200);
    expect(rebound.received.length).toBe(0);
    caller.stop();
    await rebound.waitFor(() => s.remote?.port === rebound.port, 6000, 'relatch to the new port');
    await rebound.sendDigit('6');
    await rebound.waitForPackets(5);
    expect(digits).toEqual([
      ['5', 'rfc4733'],
      ['6', 'rfc4733'],
    ]);
    expect(s.remote).toEqual({ address: CALLER, port: rebound.port });
  });

  it('SRTP: forged packets from the caller\'s own address (plain, wrong key, new SSRC) latch nothing, count nothing, carry no digit', async () => {
    const callerKey = randomBytes(30);
    const caller = await peer({ host: CALLER });
    // The forger sends from the caller's address (a spoofed source) but does not know the key.
    const forger = await peer({ host: CALLER, ssrc: 0x66666666 });
    const { s, port, answer } = session(caller, callerKey);
    const ourKey = Buffer.from(answer.media[0]!.crypto![0]!.config.replace(/^inline:/, '').split('|')[0]!, 'base64');
    const digits = collectDigits(s);
    forger.setTarget('127.0.0.1', port);
    await forger.sendDigit('1'); // plain RTP
    forger.setSrtp({ suite: 'AES_CM_128_HMAC_SHA1_80', txKey: randomBytes(30), rxKey: randomBytes(30) });
    await forger.sendDigit('2'); // wrong key
    forger.stop();
    await sleep(60);
    expect(s.remote).toEqual({ address: CALLER, port: caller.port }); // nothing latched
    expect(s.rxStats.accepted).toBe(0);
    // Plain event packets are too short to hold a tag (malformed); the rest fail authentication.
    expect(s.rxStats.unauthenticated + s.rxStats.malformed).toBe(forger.sent);
    expect(s.rxStats.unauthenticated).toBeGreaterThan(0);

    caller.setSrtp({ suite: 'AES_CM_128_HMAC_SHA1_80', txKey: callerKey, rxKey: ourKey });
    caller.setTarget('127.0.0.1', port);
    caller.start();
    await caller.sendDigit('3');
    // Forged packets in the middle of the real stream, from the caller's exact address and port
    // (its own socket), with the caller's SSRC and with a new one: they change nothing either.
    const unauthBefore = s.rxStats.unauthenticated;
    const impostor = await peer({ host: CALLER, ssrc: caller.ssrc, srtp: { suite: 'AES_CM_128_HMAC_SHA1_80', txKey: randomBytes(30), rxKey: randomBytes(30) } });
    let forged = 0;
    for (let i = 0; i < 10; i++) {
      const event = Buffer.from([4, 10, 0, 160]);
      caller.sendRaw(impostor.packet(101, true, caller.seq + 1 + i, 77_000 + i * 800, event));
      caller.sendRaw(forger.packet(101, true, 100 + i, 99_000 + i * 800, event));
      forged += 2;
    }
    await caller.sendDigit('8');
    await caller.waitForPackets(5);
    caller.stop();
    await sleep(60);
    expect(digits).toEqual([
      ['3', 'rfc4733'],
      ['8', 'rfc4733'],
    ]);
    expect(s.rxStats.unauthenticated - unauthBefore).toBe(forged);
    expect(s.rxStats.accepted).toBe(caller.sent - forged);
    expect(forger.received.length).toBe(0);
  });

  it('SRTP: a forged packet with a new SSRC does not reset the replay window (a recorded packet stays a replay)', () => {
    const key = randomBytes(30);
    const tx = new SrtpContext('AES_CM_128_HMAC_SHA1_80', key);
    const rx = new SrtpContext('AES_CM_128_HMAC_SHA1_80', key);
    const pkt = (ssrc: number, seq: number): Buffer => {
      const b = Buffer.alloc(12 + 4 + 10);
      b[0] = 0x80;
      b[1] = 101;
      b.writeUInt16BE(seq, 2);
      b.writeUInt32BE(1000, 4);
      b.writeUInt32BE(ssrc, 8);
      b.write('\u0001\u0080\u0000\u00a0', 12, 'latin1');
      tx.protect(b, 16, 12, b);
      return b;
    };
    const authentic = pkt(0x11111111, 500);
    const recorded = Buffer.from(authentic);
    expect(rx.unprotect(authentic, authentic.length, 12)).toBe(16);
    const forged = Buffer.from(pkt(0x22222222, 7));
    forged[forged.length - 1] = forged[forged.length - 1]! ^ 0xff; // broken tag
    expect(rx.unprotect(forged, forged.length, 12)).toBe(-1);
    expect(rx.unprotect(Buffer.from(recorded), recorded.length, 12)).toBe(-1); // still a replay
    const next = pkt(0x11111111, 501);
    expect(rx.unprotect(next, next.length, 12)).toBe(16); // the real stream goes on
  });

  describe('with security.mediaRanges', () => {
    let ranged: MediaEngine;
    beforeAll(async () => {
      ranged = new MediaEngine(options({ portMin: 33100, portMax: 33199, mediaRanges: new MediaRanges(['127.0.0.0/30']) }));
      await ranged.start();
    });
    afterAll(() => ranged.stop());

    it('an SDP address outside the ranges (or a host name) is refused (488); inside is answered', () => {
      const s = ranged.createSession();
      sessions.push(s);
      expect(s.answerOffer(offer('127.0.0.9', 40000))).toBeUndefined();
      expect(s.answerOffer(offer('media.example.com', 40000))).toBeUndefined();
      expect(s.answerOffer(offer('127.0.0.1', 40000))).toBeDefined();
      // A re-offer that moves the stream out of the ranges is refused too; the stream stays.
      expect(s.updateOffer(offer('10.1.2.3', 40000))).toBeUndefined();
      expect(s.codec).toBe('PCMU');
    });

    it('RTP may come from another address inside the ranges; once latched, never another address', async () => {
      const sdpPeer = await peer({ host: CALLER });
      const sibling = await peer({ host: ATTACKER }); // 127.0.0.2: inside 127.0.0.0/30
      const outsider = await peer({ host: '127.0.0.5' }); // outside
      const s = ranged.createSession();
      sessions.push(s);
      const port = sdpTransform.parse(s.answerOffer(offer(CALLER, sdpPeer.port))!).media[0]!.port;
      s.confirm();
      const digits = collectDigits(s);
      outsider.setTarget('127.0.0.1', port);
      await outsider.sendDigit('1');
      sibling.setTarget('127.0.0.1', port);
      sibling.start();
      await sibling.sendDigit('2');
      await sibling.waitForPackets(3);
      expect(s.remote).toEqual({ address: ATTACKER, port: sibling.port });
      sibling.stop();
      await sleep(QUIET_MS);
      // Even the SDP's own address cannot take over a stream latched elsewhere: no mid-call move.
      sdpPeer.setTarget('127.0.0.1', port);
      await sdpPeer.sendDigit('3');
      sdpPeer.stop();
      expect(digits).toEqual([['2', 'rfc4733']]);
      expect(outsider.received.length).toBe(0);
      expect(s.remote).toEqual({ address: ATTACKER, port: sibling.port });
    });
  });

  it('sdpMediaAddresses reads the c= in effect for each audio stream (session level, media level, hold)', () => {
    const sdp = ['v=0', 'o=x 1 1 IN IP4 1.1.1.1', 's=-', 'c=IN IP4 10.0.0.1', 't=0 0', 'm=audio 4000 RTP/AVP 0', 'm=video 4002 RTP/AVP 96', 'c=IN IP4 10.0.0.2', 'm=audio 4004 RTP/AVP 0', 'c=IN IP4 10.0.0.3', 'm=audio 4006 RTP/AVP 0', 'c=IN IP4 0.0.0.0', 'm=audio 0 RTP/AVP 0', ''].join('\r\n');
    expect(sdpMediaAddresses(sdp)).toEqual(['10.0.0.1', '10.0.0.3', undefined]);
  });
});

describe('RFC 4733 validation', () => {
  // [what, payload bytes, expected verdict of the (last) block, digits reported]
  const block = (code: number, flags: number, duration: number): number[] => [code, flags, duration >> 8, duration & 0xff];
  const table: Array<[string, number[], Rfc4733Verdict, string]> = [
    ['a valid start packet', block(5, 10, 160), 'digit', '5'],
    ['an end packet of an unseen event (lost start)', block(5, 0x80 | 10, 800), 'digit', '5'],
    ['payload of 3 bytes', [5, 10, 0], 'bad-length', ''],
    ['payload of 5 bytes', [...block(5, 10, 160), 0], 'bad-length', ''],
    ['payload of 0 bytes', [], 'bad-length', ''],
    ['reserved bit set', block(5, 0x40 | 10, 160), 'reserved-bit', ''],
    ['reserved and end bits set', block(5, 0xc0 | 10, 800), 'reserved-bit', ''],
    ['duration 0', block(5, 10, 0), 'zero-duration', ''],
    ['duration 0 with the end bit', block(5, 0x80 | 10, 0), 'zero-duration', ''],
    ['volume -55 dBm0 (quietest accepted)', block(5, 55, 160), 'digit', '5'],
    ['volume -56 dBm0', block(5, 56, 160), 'too-quiet', ''],
    ['volume -63 dBm0', block(5, 63, 160), 'too-quiet', ''],
    ['volume 0 dBm0', block(5, 0, 160), 'digit', '5'],
    ['event 16 (flash, not a key)', block(16, 10, 160), 'unknown-event', ''],
    ['event 255', block(255, 10, 160), 'unknown-event', ''],
    ['event 15 (D)', block(15, 10, 160), 'digit', 'D'],
    ['two packed events, the first ended', [...block(1, 0x80 | 10, 800), ...block(2, 10, 160)], 'digit', '12'],
    ['two packed events, the first not ended', [...block(1, 10, 800), ...block(2, 10, 160)], 'unended-packed-event', ''],
  ];
  it.each(table)('%s', (_what, bytes, verdict, expected) => {
    const rx = new Rfc4733Receiver();
    const got: string[] = [];
    const payload = Uint8Array.from(bytes);
    expect(rx.inspect(1, 8000, payload, 0, payload.length, (d) => got.push(d))).toBe(verdict);
    expect(got.join('')).toBe(expected);
  });

  it('a start packet with duration 0 does not count, the next packet of the event does, once', () => {
    const rx = new Rfc4733Receiver();
    const got: string[] = [];
    const feed = (flags: number, duration: number): Rfc4733Verdict => rx.inspect(1, 8000, Uint8Array.from(block(7, flags, duration)), 0, 4, (d) => got.push(d));
    expect(feed(10, 0)).toBe('zero-duration');
    expect(feed(10, 160)).toBe('digit');
    expect(feed(10, 320)).toBe('repeat');
    expect(feed(0x80 | 10, 480)).toBe('repeat');
    expect(feed(0x80 | 10, 480)).toBe('repeat');
    expect(got).toEqual(['7']);
  });

  it('over the wire: invalid events from the caller are dropped, valid ones delivered', async () => {
    const engine = new MediaEngine(options({ portMin: 33050, portMax: 33059 }));
    await engine.start();
    try {
      const caller = await peer({ host: CALLER });
      const s = engine.createSession();
      sessions.push(s);
      const port = sdpTransform.parse(s.answerOffer(offer(CALLER, caller.port))!).media[0]!.port;
      s.confirm();
      const digits = collectDigits(s);
      caller.setTarget('127.0.0.1', port);
      let ts = 90_000;
      let seq = 7000;
      const send = (payload: number[]): void => {
        caller.sendRaw(caller.packet(101, true, seq++, (ts += 1600), Buffer.from(payload)));
      };
      send(block(1, 0x40 | 10, 160)); // reserved bit
      send(block(2, 10, 0)); // duration 0
      send([3, 10, 0]); // short
      send(block(4, 60, 160)); // too quiet
      send(block(16, 10, 160)); // not a DTMF key
      send(block(9, 10, 160)); // valid
      await caller.waitFor(() => digits.length === 1, 3000, 'the valid digit');
      await sleep(60);
      expect(digits).toEqual([['9', 'rfc4733']]);
      expect(s.rxStats.accepted).toBe(6); // valid RTP from the right source: accepted, just not key presses
    } finally {
      await engine.stop();
    }
  });
});

/**
 * Reflection: one INVITE, never ACKed, whose Via, Contact and SDP name another host. Counts every
 * byte that host receives, against the INVITE's size. Two ways to send it:
 * - from the attacker's own address (127.0.0.1) with the other host only named inside;
 * - from the other host's address itself (127.0.0.3): what a spoofed source address amounts to.
 */
describe('reflection: an un-ACKed INVITE pointing elsewhere', () => {
  const SIP_PORT = 15070;
  const T1 = 20;
  let backend: EmbeddedBackend;
  const calls: InboundCall[] = [];

  beforeAll(async () => {
    const config = configSchema.parse({
      sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: SIP_PORT }] },
      // The no-RTP watchdog would fire well before 64*T1: it must not send anything either.
      rtp: { host: '127.0.0.1', portMin: 33200, portMax: 33299, noRtpTimeoutMs: 200 },
      promptsDir: 'prompts',
    });
    backend = new EmbeddedBackend(config, silentLogger, { timers: { t1: T1, t2: 8 * T1, t4: 10 * T1 } });
    // The app does what the real one does: answer, then play the greeting in a loop.
    backend.on('call', (call) => {
      calls.push(call);
      void call
        .answer()
        .then(() => call.play(['enter-card-number'], { language: 'en-US', bargeIn: false, loop: true }))
        .catch(() => undefined);
    });
    await backend.start();
  });
  afterAll(() => backend.stop());

  async function bound(host: string): Promise<{ sock: Socket; port: number; bytes: () => number; firstLines: string[] }> {
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, host, () => r()));
    let bytes = 0;
    const firstLines: string[] = [];
    sock.on('message', (m) => {
      bytes += m.length;
      firstLines.push(m.toString('latin1', 0, Math.min(m.length, 200)).split('\r\n')[0] ?? '');
    });
    return { sock, port: sock.address().port, bytes: () => bytes, firstLines };
  }

  function invite(target: { host: string; sipPort: number; rtpPort: number }): Buffer {
    const tag = randomBytes(4).toString('hex');
    const sdp = offer(target.host, target.rtpPort);
    return Buffer.from(
      [
        `INVITE sip:+33140000001@127.0.0.1:${SIP_PORT} SIP/2.0`,
        `Via: SIP/2.0/UDP ${target.host}:${target.sipPort};branch=z9hG4bK${randomBytes(6).toString('hex')}`,
        'Max-Forwards: 70',
        `From: <sip:a@${target.host}>;tag=${tag}`,
        'To: <sip:+33140000001@127.0.0.1>',
        `Call-ID: ${randomBytes(8).toString('hex')}@x`,
        'CSeq: 1 INVITE',
        `Contact: <sip:a@${target.host}:${target.sipPort}>`,
        'Content-Type: application/sdp',
        `Content-Length: ${Buffer.byteLength(sdp)}`,
        '',
        sdp,
      ].join('\r\n'),
    );
  }

  async function measure(spoofed: boolean): Promise<{ ratio: number; rtpBytes: number; sipBytes: number; inviteBytes: number; sip: string[] }> {
    const victimSip = await bound(VICTIM);
    const victimRtp = await bound(VICTIM);
    const attacker = await bound(CALLER);
    const before = calls.length;
    try {
      const msg = invite({ host: VICTIM, sipPort: victimSip.port, rtpPort: victimRtp.port });
      (spoofed ? victimSip : attacker).sock.send(msg, SIP_PORT, '127.0.0.1');
      const t0 = Date.now();
      while (calls.length === before || calls[before]!.state !== 'ended') {
        if (Date.now() - t0 > 64 * T1 + 10_000) throw new Error('the call did not end');
        await sleep(20);
      }
      // Timer H is over; anything sent later (BYE retransmissions, late RTP) counts too.
      await sleep(64 * T1 + 500);
      const rtpBytes = victimRtp.bytes();
      const sipBytes = victimSip.bytes();
      return { ratio: (rtpBytes + sipBytes) / msg.length, rtpBytes, sipBytes, inviteBytes: msg.length, sip: victimSip.firstLines };
    } finally {
      for (const s of [victimSip, victimRtp, attacker]) s.sock.close();
    }
  }

  it('named elsewhere from the attacker\'s address: the other host gets nothing at all', async () => {
    const r = await measure(false);
    console.log(`reflection (Via/Contact/SDP elsewhere, real source): ${r.rtpBytes + r.sipBytes} bytes to ${VICTIM} for a ${r.inviteBytes}-byte INVITE = ${r.ratio.toFixed(2)}x (RTP ${r.rtpBytes}, SIP ${r.sipBytes})`);
    expect(calls.at(-1)?.state).toBe('ended');
    expect(r.rtpBytes).toBe(0);
    expect(r.sipBytes).toBe(0);
  });

  it('from a spoofed source: no RTP, no BYE, only one 100 and the 200 retransmissions RFC 3261 requires until 64*T1', async () => {
    const r = await measure(true);
    console.log(`reflection (spoofed source): ${r.rtpBytes + r.sipBytes} bytes to ${VICTIM} for a ${r.inviteBytes}-byte INVITE = ${r.ratio.toFixed(2)}x (RTP ${r.rtpBytes}, SIP ${r.sipBytes}: ${r.sip.length} responses)`);
    expect(calls.at(-1)?.state).toBe('ended');
    expect(r.rtpBytes).toBe(0);
    // 13.3.1.4: the 2xx goes out at 0, T1, 3T1, 7T1, then every T2 (8*T1 here) until 64*T1: 11 sends at most.
    expect(r.sip[0]).toBe('SIP/2.0 100 Trying');
    const oks = r.sip.slice(1);
    expect(oks.every((l) => l === 'SIP/2.0 200 OK')).toBe(true);
    expect(oks.length).toBeGreaterThanOrEqual(4);
    expect(oks.length).toBeLessThanOrEqual(11);
    // About 700 bytes per 200 with its SDP: 16x the INVITE is the cost of RFC 3261's 2xx reliability, nothing more.
    expect(r.ratio).toBeLessThan(17);
  });
});
