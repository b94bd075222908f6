import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as sdpTransform from 'sdp-transform';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { answerOffer, applyAnswer, createOffer, type LocalSdpParams } from '../src/telephony/embedded/media/sdp.js';
import { MediaEngine } from '../src/telephony/embedded/media/engine.js';
import { silentLogger } from '../src/log.js';

const KEY = Buffer.alloc(30, 7);
const REMOTE_KEY_B64 = Buffer.alloc(30, 9).toString('base64');

function local(over: Partial<LocalSdpParams> = {}): LocalSdpParams {
  return { address: '192.0.2.10', port: 40000, sessionId: '42', sessionVersion: 1, srtp: 'optional', localKey: KEY, ...over };
}

interface OfferSpec {
  payloads: string;
  rtpmap?: string[];
  fmtp?: string[];
  proto?: string;
  direction?: string;
  ip?: string;
  port?: number;
  crypto?: string[];
  extra?: string;
}

function offer(spec: OfferSpec): string {
  const lines = [
    'v=0',
    `o=genesys 1 1 IN IP4 ${spec.ip ?? '198.51.100.7'}`,
    's=-',
    `c=IN IP4 ${spec.ip ?? '198.51.100.7'}`,
    't=0 0',
    `m=audio ${spec.port ?? 16000} ${spec.proto ?? 'RTP/AVP'} ${spec.payloads}`,
    ...(spec.rtpmap ?? []).map((r) => `a=rtpmap:${r}`),
    ...(spec.fmtp ?? []).map((f) => `a=fmtp:${f}`),
    ...(spec.crypto ?? []).map((c) => `a=crypto:${c}`),
    ...(spec.direction === undefined ? [] : [`a=${spec.direction}`]),
  ];
  if (spec.extra !== undefined) lines.push(spec.extra);
  return lines.join('\r\n') + '\r\n';
}

function audioOf(sdp: string): sdpTransform.MediaDescription {
  const m = sdpTransform.parse(sdp).media.find((x) => x.type === 'audio');
  if (m === undefined) throw new Error('no audio m-line');
  return m;
}

describe('SDP answer: codecs', () => {
  it('PCMU only', () => {
    const r = answerOffer(offer({ payloads: '0 101', rtpmap: ['0 PCMU/8000', '101 telephone-event/8000'], fmtp: ['101 0-16'] }), local());
    expect(r?.media.codec).toBe('PCMU');
    const m = audioOf(r!.sdp);
    expect(String(m.payloads)).toBe('0 101');
    expect(m.port).toBe(40000);
    expect(m.ptime).toBe(20);
    expect(m.direction).toBe('sendrecv');
    expect(m.fmtp).toEqual([{ payload: 101, config: '0-16' }]);
  });

  it('PCMA only, without rtpmap lines (static payload type)', () => {
    const r = answerOffer(offer({ payloads: '8' }), local());
    expect(r?.media.codec).toBe('PCMA');
    expect(r?.media.payloadType).toBe(8);
    expect(r?.media.telephoneEvent).toBeUndefined();
    expect(String(audioOf(r!.sdp).payloads)).toBe('8');
  });

  it.each([
    ['0 8 101', 'PCMU'],
    ['8 0 101', 'PCMA'],
  ] as const)('both offered as %s: the offerer order wins (%s)', (payloads, codec) => {
    const r = answerOffer(offer({ payloads, rtpmap: ['101 telephone-event/8000'] }), local());
    expect(r?.media.codec).toBe(codec);
    const m = audioOf(r!.sdp);
    expect(m.rtp.map((x) => x.codec)).toEqual([codec, 'telephone-event']);
  });

  it('skips codecs it does not know and picks the first G.711 after them', () => {
    const r = answerOffer(offer({ payloads: '9 18 8 0 101', rtpmap: ['9 G722/8000', '18 G729/8000', '101 telephone-event/8000'] }), local());
    expect(r?.media.codec).toBe('PCMA');
  });

  it.each([96, 101, 100])('telephone-event at payload type %i is answered with the same type and its fmtp', (pt) => {
    const r = answerOffer(offer({ payloads: `0 ${pt}`, rtpmap: [`${pt} telephone-event/8000`], fmtp: [`${pt} 0-15`] }), local());
    expect(r?.media.telephoneEvent).toEqual({ payloadType: pt, fmtp: '0-15' });
    const m = audioOf(r!.sdp);
    expect(m.rtp).toContainEqual({ payload: pt, codec: 'telephone-event', rate: 8000 });
    expect(m.fmtp).toEqual([{ payload: pt, config: '0-15' }]);
  });

  it('telephone-event without fmtp gets 0-16; a 48 kHz one is ignored', () => {
    const r = answerOffer(offer({ payloads: '0 110 101', rtpmap: ['110 telephone-event/48000', '101 telephone-event/8000'] }), local());
    expect(r?.media.telephoneEvent).toEqual({ payloadType: 101, fmtp: '0-16' });
  });

  it('no common codec: undefined (488)', () => {
    expect(answerOffer(offer({ payloads: '9 18', rtpmap: ['9 G722/8000', '18 G729/8000'] }), local())).toBeUndefined();
    expect(answerOffer(offer({ payloads: '101', rtpmap: ['101 telephone-event/8000'] }), local())).toBeUndefined();
    expect(answerOffer('garbage', local())).toBeUndefined();
  });

  it('video m-lines are refused with port 0, audio answered, order kept', () => {
    const sdp = offer({ payloads: '0' }) + 'm=video 16002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n';
    const r = answerOffer(sdp, local());
    const media = sdpTransform.parse(r!.sdp).media;
    expect(media.map((m) => [m.type, m.port])).toEqual([
      ['audio', 40000],
      ['video', 0],
    ]);
  });

  it('advertises the given address in o= and c=, IPv6 too', () => {
    const r = answerOffer(offer({ payloads: '0' }), local({ address: '203.0.113.5' }));
    const s = sdpTransform.parse(r!.sdp);
    expect(s.connection?.ip).toBe('203.0.113.5');
    expect(s.origin.address).toBe('203.0.113.5');
    const r6 = answerOffer(offer({ payloads: '0' }), local({ address: '2001:db8::1' }));
    expect(r6!.sdp).toContain('c=IN IP6 2001:db8::1');
  });

  it('reports the remote address, media-level c= overriding the session one', () => {
    const r = answerOffer(offer({ payloads: '0', extra: 'c=IN IP4 198.51.100.99' }), local());
    expect(r?.media.remoteAddress).toBe('198.51.100.99');
    expect(r?.media.remotePort).toBe(16000);
  });
});

describe('SDP answer: hold (RFC 3264 §8.4)', () => {
  it.each([
    ['sendrecv', 'sendrecv'],
    ['sendonly', 'recvonly'],
    ['recvonly', 'sendonly'],
    ['inactive', 'inactive'],
  ] as const)('offer %s -> answer %s', (offered, answered) => {
    const r = answerOffer(offer({ payloads: '0', direction: offered }), local());
    expect(r?.media.localDirection).toBe(answered);
    expect(audioOf(r!.sdp).direction).toBe(answered);
  });

  it('c=0.0.0.0 is a hold: no remote address', () => {
    const r = answerOffer(offer({ payloads: '0', ip: '0.0.0.0' }), local());
    expect(r?.media.remoteAddress).toBeUndefined();
  });
});

describe('SDP: SRTP (SDES)', () => {
  const savp = (crypto: string[]): string => offer({ payloads: '0 101', rtpmap: ['101 telephone-event/8000'], proto: 'RTP/SAVP', crypto });

  it('answers RTP/SAVP with our own key and the offered tag', () => {
    const r = answerOffer(savp([`1 AES_CM_128_HMAC_SHA1_80 inline:${REMOTE_KEY_B64}|2^31`]), local());
    expect(r?.media.srtp?.suite).toBe('AES_CM_128_HMAC_SHA1_80');
    expect(r?.media.srtp?.remoteKey.equals(Buffer.alloc(30, 9))).toBe(true);
    const m = audioOf(r!.sdp);
    expect(m.protocol).toBe('RTP/SAVP');
    expect(m.crypto).toEqual([{ id: 1, suite: 'AES_CM_128_HMAC_SHA1_80', config: `inline:${KEY.toString('base64')}` }]);
  });

  it('skips crypto lines it cannot honour (RFC 4568) and takes the next one', () => {
    const r = answerOffer(
      savp([
        `1 AEAD_AES_256_GCM inline:${REMOTE_KEY_B64}`,
        `2 AES_CM_128_HMAC_SHA1_80 inline:${REMOTE_KEY_B64}|2^20|1:4;inline:${REMOTE_KEY_B64}|2^20|2:4`, // two keys
        `3 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=`,
        `4 AES_CM_128_HMAC_SHA1_80 inline:${REMOTE_KEY_B64} UNENCRYPTED_SRTP`,
        `5 AES_CM_128_HMAC_SHA1_80 inline:${REMOTE_KEY_B64} UNAUTHENTICATED_SRTP`,
        `6 AES_CM_128_HMAC_SHA1_80 inline:${REMOTE_KEY_B64} KDR=1`,
        `7 AES_CM_128_HMAC_SHA1_80 inline:${REMOTE_KEY_B64} FEC_KEY=inline:${REMOTE_KEY_B64}`,
        `8 AES_CM_128_HMAC_SHA1_80 inline:${REMOTE_KEY_B64}|2^49`,
        `9 AES_CM_128_HMAC_SHA1_80 inline:${REMOTE_KEY_B64}|1:0`,
        `10 AES_CM_128_HMAC_SHA1_80 srtp:${REMOTE_KEY_B64}`,
        `11 AES_CM_128_HMAC_SHA1_32 inline:${REMOTE_KEY_B64}`,
      ]),
      local(),
    );
    expect(r?.media.srtp).toMatchObject({ tag: 11, suite: 'AES_CM_128_HMAC_SHA1_32' });
    expect(audioOf(r!.sdp).crypto).toEqual([{ id: 11, suite: 'AES_CM_128_HMAC_SHA1_32', config: `inline:${KEY.toString('base64')}` }]);
  });

  it('AES_CM_128_HMAC_SHA1_32 first in the offer: answered with _32', () => {
    const r = answerOffer(savp([`1 AES_CM_128_HMAC_SHA1_32 inline:${REMOTE_KEY_B64}`, `2 AES_CM_128_HMAC_SHA1_80 inline:${REMOTE_KEY_B64}`]), local());
    expect(r?.media.srtp).toMatchObject({ tag: 1, suite: 'AES_CM_128_HMAC_SHA1_32' });
    expect(audioOf(r!.sdp).crypto?.[0]).toMatchObject({ id: 1, suite: 'AES_CM_128_HMAC_SHA1_32' });
  });

  it('rtp.srtpSuites restricts the suites: the offerer order picks among those allowed', () => {
    const both = [`1 AES_CM_128_HMAC_SHA1_80 inline:${REMOTE_KEY_B64}`, `2 AES_CM_128_HMAC_SHA1_32 inline:${REMOTE_KEY_B64}`];
    expect(answerOffer(savp(both), local({ srtpSuites: ['AES_CM_128_HMAC_SHA1_32'] }))?.media.srtp).toMatchObject({ tag: 2, suite: 'AES_CM_128_HMAC_SHA1_32' });
    expect(answerOffer(savp([both[1] as string]), local({ srtpSuites: ['AES_CM_128_HMAC_SHA1_80'] }))).toBeUndefined();
  });

  it('key lifetime (2^n or decimal) and harmless session parameters are accepted and ignored; UNENCRYPTED_SRTCP is echoed', () => {
    for (const line of [`1 AES_CM_128_HMAC_SHA1_80 inline:${REMOTE_KEY_B64}|2^31`, `1 AES_CM_128_HMAC_SHA1_80 inline:${REMOTE_KEY_B64}|1048576`, `1 AES_CM_128_HMAC_SHA1_80 inline:${REMOTE_KEY_B64} KDR=0 WSH=64 FEC_ORDER=FEC_SRTP`]) {
      const r = answerOffer(savp([line]), local());
      expect(r?.media.srtp?.remoteKey.equals(Buffer.alloc(30, 9)), line).toBe(true);
      expect(audioOf(r!.sdp).crypto).toEqual([{ id: 1, suite: 'AES_CM_128_HMAC_SHA1_80', config: `inline:${KEY.toString('base64')}` }]);
    }
    const r = answerOffer(savp([`1 AES_CM_128_HMAC_SHA1_80 inline:${REMOTE_KEY_B64} UNENCRYPTED_SRTCP`]), local());
    expect(r?.sdp).toContain(`a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${KEY.toString('base64')} UNENCRYPTED_SRTCP\r\n`);
  });

  it('an MKI is kept with the far end key (its packets carry it); our answer has none', () => {
    const r = answerOffer(savp([`1 AES_CM_128_HMAC_SHA1_80 inline:${REMOTE_KEY_B64}|2^20|258:4`]), local());
    expect(r?.media.srtp?.remoteKey.mki?.bytes.toString('hex')).toBe('00000102');
    expect(r?.media.srtp?.remoteKey.equals(Buffer.alloc(30, 9))).toBe(false); // the MKI is part of the key's identity
    expect(audioOf(r!.sdp).crypto?.[0]?.config).toBe(`inline:${KEY.toString('base64')}`);
  });

  it('best-effort SRTP (the same audio as RTP/AVP and RTP/SAVP): the SRTP line is accepted, the plain one gets port 0', () => {
    const both = [
      'v=0',
      'o=genesys 1 1 IN IP4 198.51.100.7',
      's=-',
      'c=IN IP4 198.51.100.7',
      't=0 0',
      'm=audio 16000 RTP/AVP 0 101',
      'a=rtpmap:101 telephone-event/8000',
      'm=audio 16002 RTP/SAVP 0 101',
      'a=rtpmap:101 telephone-event/8000',
      `a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${REMOTE_KEY_B64}`,
      '',
    ].join('\r\n');
    const r = answerOffer(both, local());
    expect(r?.media).toMatchObject({ remotePort: 16002, srtp: { tag: 1 } });
    const lines = sdpTransform.parse(r!.sdp).media;
    expect(lines.map((x) => [x.port, x.protocol])).toEqual([
      [0, 'RTP/AVP'],
      [40000, 'RTP/SAVP'],
    ]);
    // srtp off: the plain line.
    expect(answerOffer(both, local({ srtp: 'off' }))?.media).toMatchObject({ remotePort: 16000, srtp: undefined });
  });

  it('negotiated media never serialises the far end key', () => {
    const r = answerOffer(savp([`1 AES_CM_128_HMAC_SHA1_80 inline:${REMOTE_KEY_B64}`]), local());
    const text = JSON.stringify(r?.media) + String(r?.media.srtp?.remoteKey);
    expect(text).toContain('[SDES key]');
    expect(text).not.toContain(REMOTE_KEY_B64);
    expect(text).not.toContain('9,9,9');
  });

  it('SAVP without a usable crypto line, or with srtp off, is refused', () => {
    expect(answerOffer(savp([]), local())).toBeUndefined();
    expect(answerOffer(savp([`1 AES_CM_128_HMAC_SHA1_80 inline:${REMOTE_KEY_B64}`]), local({ srtp: 'off' }))).toBeUndefined();
  });

  it('srtp required refuses plain RTP/AVP', () => {
    expect(answerOffer(offer({ payloads: '0' }), local({ srtp: 'required' }))).toBeUndefined();
  });

  it('DTLS-SRTP (UDP/TLS/RTP/SAVPF) is not SDES: refused', () => {
    expect(answerOffer(offer({ payloads: '0', proto: 'UDP/TLS/RTP/SAVPF' }), local())).toBeUndefined();
  });
});

describe('SDP: late offer', () => {
  it('offers PCMU, PCMA and telephone-event 101, then reads the answer', () => {
    const o = createOffer(local());
    const m = audioOf(o.sdp);
    expect(String(m.payloads)).toBe('0 8 101');
    expect(m.fmtp).toEqual([{ payload: 101, config: '0-16' }]);
    expect(m.crypto).toBeUndefined();
    const neg = applyAnswer(offer({ payloads: '8 101', rtpmap: ['101 telephone-event/8000'] }), o.state);
    expect(neg).toMatchObject({ codec: 'PCMA', payloadType: 8, telephoneEvent: { payloadType: 101 }, remotePort: 16000 });
  });

  it('an answer with no G.711 or a different profile is unusable', () => {
    const o = createOffer(local());
    expect(applyAnswer(offer({ payloads: '9', rtpmap: ['9 G722/8000'] }), o.state)).toBeUndefined();
    expect(applyAnswer(offer({ payloads: '0', proto: 'RTP/SAVP' }), o.state)).toBeUndefined();
  });

  it('srtp required: the offer is RTP/SAVP with a key, the answer must echo the tag', () => {
    const o = createOffer(local({ srtp: 'required' }));
    const m = audioOf(o.sdp);
    expect(m.protocol).toBe('RTP/SAVP');
    expect(m.crypto?.[0]).toMatchObject({ id: 1, suite: 'AES_CM_128_HMAC_SHA1_80' });
    const good = applyAnswer(offer({ payloads: '0', proto: 'RTP/SAVP', crypto: [`1 AES_CM_128_HMAC_SHA1_80 inline:${REMOTE_KEY_B64}`] }), o.state);
    expect(good?.srtp?.remoteKey.equals(Buffer.alloc(30, 9))).toBe(true);
    expect(applyAnswer(offer({ payloads: '0', proto: 'RTP/SAVP', crypto: [`2 AES_CM_128_HMAC_SHA1_80 inline:${REMOTE_KEY_B64}`] }), o.state)).toBeUndefined();
  });
});

describe('MediaSession SDP state', () => {
  let dir: string;
  let engine: MediaEngine;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'media-sdp-'));
    mkdirSync(join(dir, 'en-US'));
    engine = new MediaEngine({ host: '127.0.0.1', advertisedAddress: '192.0.2.80', portMin: 32000, portMax: 32019, promptsDir: dir, noRtpTimeoutMs: 60_000, logger: silentLogger });
    await engine.start();
  });
  afterAll(async () => {
    await engine.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('session version increments on every answer and offer, session id stays', () => {
    const s = engine.createSession();
    try {
      expect(s.localPort % 2).toBe(0);
      const a1 = sdpTransform.parse(s.answerOffer(offer({ payloads: '0 101', rtpmap: ['101 telephone-event/8000'] }))!);
      const a2 = sdpTransform.parse(s.updateOffer(offer({ payloads: '0 101', rtpmap: ['101 telephone-event/8000'], direction: 'sendonly' }))!);
      const o3 = sdpTransform.parse(s.createOffer());
      expect(a2.origin.sessionVersion).toBe(a1.origin.sessionVersion + 1);
      expect(o3.origin.sessionVersion).toBe(a2.origin.sessionVersion + 1);
      expect(new Set([a1.origin.sessionId, a2.origin.sessionId, o3.origin.sessionId]).size).toBe(1);
      expect(a1.connection?.ip).toBe('192.0.2.80');
      expect(a1.media[0]?.port).toBe(s.localPort);
      // a refused re-offer changes nothing and does not bump the version
      expect(s.updateOffer(offer({ payloads: '18', rtpmap: ['18 G729/8000'] }))).toBeUndefined();
      expect(s.codec).toBe('PCMU');
      const a4 = sdpTransform.parse(s.updateOffer(offer({ payloads: '8' }))!);
      expect(a4.origin.sessionVersion).toBe(o3.origin.sessionVersion + 1);
      expect(s.codec).toBe('PCMA');
      expect(s.telephoneEvent).toBe(false);
    } finally {
      s.close();
    }
  });

  it('late offer: applyAnswer without a pending offer is refused; with one it negotiates', () => {
    const s = engine.createSession();
    try {
      expect(s.applyAnswer(offer({ payloads: '0' }))).toBe(false);
      s.createOffer();
      expect(s.applyAnswer(offer({ payloads: '9', rtpmap: ['9 G722/8000'] }))).toBe(false);
      expect(s.applyAnswer(offer({ payloads: '8 96', rtpmap: ['96 telephone-event/8000'] }))).toBe(true);
      expect(s.codec).toBe('PCMA');
      expect(s.telephoneEvent).toBe(true);
      expect(s.remote).toBeUndefined(); // nothing is sent before the ACK confirmed the dialog
      s.confirm();
      expect(s.remote).toEqual({ address: '198.51.100.7', port: 16000 });
    } finally {
      s.close();
    }
  });

  it('hold: sendonly and c=0.0.0.0 stop our sending; unhold restores it', () => {
    const s = engine.createSession();
    try {
      s.answerOffer(offer({ payloads: '0' }));
      s.confirm();
      expect(s.remote).toBeDefined();
      s.updateOffer(offer({ payloads: '0', direction: 'sendonly' }));
      expect(s.remote).toBeUndefined(); // we answered recvonly
      s.updateOffer(offer({ payloads: '0', direction: 'inactive' }));
      expect(s.remote).toBeUndefined();
      s.updateOffer(offer({ payloads: '0', ip: '0.0.0.0' }));
      expect(s.remote).toBeUndefined();
      s.updateOffer(offer({ payloads: '0', direction: 'recvonly' }));
      expect(s.remote).toEqual({ address: '198.51.100.7', port: 16000 }); // we answered sendonly
      s.updateOffer(offer({ payloads: '0' }));
      expect(s.remote).toEqual({ address: '198.51.100.7', port: 16000 });
    } finally {
      s.close();
    }
  });

  it('srtp: the same local key is kept across re-offers', () => {
    const s = engine.createSession();
    try {
      const c = [`1 AES_CM_128_HMAC_SHA1_80 inline:${REMOTE_KEY_B64}`];
      const a1 = audioOf(s.answerOffer(offer({ payloads: '0', proto: 'RTP/SAVP', crypto: c }))!);
      const a2 = audioOf(s.updateOffer(offer({ payloads: '0', proto: 'RTP/SAVP', crypto: c, direction: 'sendonly' }))!);
      expect(s.secure).toBe(true);
      expect(a1.crypto?.[0]?.config).toBe(a2.crypto?.[0]?.config);
      expect(a1.crypto?.[0]?.config).not.toContain(REMOTE_KEY_B64);
    } finally {
      s.close();
    }
  });
});
