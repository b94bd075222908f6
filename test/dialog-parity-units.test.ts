import { describe, expect, it } from 'vitest';
import { isDialogPeer } from '../src/telephony/dialog-peer.js';
import { judgeDtmfInfo } from '../src/telephony/dtmf-info.js';
import { answerHasTelephoneEvent } from '../src/telephony/sdp-reader.js';
import { negotiateSessionTimer, timerDue, timerHeaders } from '../src/telephony/session-timer.js';
import { freeswitchMediaSettings, silenceWhenIdle } from '../src/telephony/drachtio/media-settings.js';
import { parseConfig } from '../src/config/load.js';

/** The pure rules both backends share (docs/parity-dialog.md). */
describe('shared dialog rules', () => {
  it('dialog peer: same transport and address (any port), or a listed address on that transport', () => {
    const peer = { address: '10.0.0.1', transport: 'udp' } as const;
    const listed = (a: string): boolean => a === '10.0.0.2';
    expect(isDialogPeer(peer, { address: '10.0.0.1', transport: 'udp' }, listed)).toBe(true);
    expect(isDialogPeer(peer, { address: '10.0.0.2', transport: 'udp' }, listed)).toBe(true);
    expect(isDialogPeer(peer, { address: '10.0.0.3', transport: 'udp' }, listed)).toBe(false);
    expect(isDialogPeer(peer, { address: '10.0.0.1', transport: 'tcp' }, listed)).toBe(false);
    expect(isDialogPeer(peer, { address: '10.0.0.2', transport: 'tls' }, listed)).toBe(false);
  });

  it('INFO: replies and the zeroed body', () => {
    const body = Buffer.from('Signal=7\r\nDuration=160\r\n', 'latin1');
    expect(judgeDtmfInfo('application/dtmf-relay;charset=x', body)).toEqual({ status: 200, digit: '7' });
    expect(body.every((b) => b === 0)).toBe(true);
    expect(judgeDtmfInfo('application/dtmf', Buffer.from('42'))).toEqual({ status: 400, reason: 'Bad DTMF Body' });
    const other = Buffer.from('hello');
    expect(judgeDtmfInfo('text/plain', other)).toEqual({ status: 415, accept: 'application/dtmf-relay, application/dtmf' });
    expect(other.every((b) => b === 0)).toBe(true);
    expect(judgeDtmfInfo(undefined, Buffer.alloc(0))).toEqual({ status: 200 });
  });

  it('telephone-event in an answer: on the first active audio stream only', () => {
    const sdp = (m: string, extra = ''): string => `v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n${m}\r\na=rtpmap:0 PCMU/8000\r\n${extra}`;
    expect(answerHasTelephoneEvent(sdp('m=audio 4000 RTP/AVP 0 101', 'a=rtpmap:101 telephone-event/8000\r\n'))).toBe(true);
    expect(answerHasTelephoneEvent(sdp('m=audio 4000 RTP/AVP 0'))).toBe(false);
    expect(answerHasTelephoneEvent(sdp('m=audio 0 RTP/AVP 0 101', 'a=rtpmap:101 telephone-event/8000\r\n'))).toBe(false);
    expect(answerHasTelephoneEvent(undefined)).toBe(false);
    expect(answerHasTelephoneEvent('garbage')).toBe(false);
  });

  it('session timer: negotiation, headers and when the timer fires', () => {
    const req = (h: Record<string, string>, tags: string[] = []): Parameters<typeof negotiateSessionTimer>[0] => ({
      header: (n) => h[n],
      optionTags: (n) => new Set(n === 'supported' ? tags : []),
    });
    expect(negotiateSessionTimer(req({ 'session-expires': '60' }, ['timer']), 1800)).toEqual({ kind: 'reject', minSE: 90 });
    expect(negotiateSessionTimer(req({}, []), 1800)).toEqual({ kind: 'none' });
    const uac = negotiateSessionTimer(req({ 'session-expires': '3600;refresher=uac' }, ['timer']), 1800);
    expect(uac).toEqual({ kind: 'use', plan: { interval: 1800, refresher: 'uac', require: true } });
    const proxy = negotiateSessionTimer(req({ 'session-expires': '300' }), 1800);
    expect(proxy).toEqual({ kind: 'use', plan: { interval: 300, refresher: 'uas', require: false } });
    expect(timerHeaders({ interval: 300, refresher: 'uas', require: false })).toEqual([{ name: 'Session-Expires', value: '300;refresher=uas' }]);
    expect(timerDue({ interval: 300, refresher: 'uas', require: false })).toEqual({ action: 'refresh', afterSeconds: 150 });
    expect(timerDue({ interval: 90, refresher: 'uac', require: true })).toEqual({ action: 'expire', afterSeconds: 60 });
    expect(timerDue({ interval: 1800, refresher: 'uac', require: true })).toEqual({ action: 'expire', afterSeconds: 1768 });
  });
});

describe('rtp.* on FreeSWITCH (drachtio/media-settings.ts)', () => {
  it('comfortNoiseDbov -> send_silence_when_idle: -1 for digital silence, else the divisor of about that level', () => {
    expect(silenceWhenIdle(0)).toBe('-1');
    expect(silenceWhenIdle(1)).toBe('1');
    expect(silenceWhenIdle(70)).toBe('1826');
    expect(silenceWhenIdle(127)).toBe(String(Math.round(10 ** (127 / 20) / Math.sqrt(3))));
    // The divisor's noise (uniform over ±32768/N, RMS 32768/(N·√3)) is within 0.5 dB of the asked level.
    for (const dbov of [20, 40, 60, 70, 90]) {
      const n = Number(silenceWhenIdle(dbov));
      const level = -20 * Math.log10(1 / (n * Math.sqrt(3)));
      expect(Math.abs(level - dbov)).toBeLessThan(0.5);
    }
  });

  it('noRtpTimeoutMs and srtpSuites become the INVITE headers the dialplan reads', () => {
    const rtp = parseConfig({ rtp: { noRtpTimeoutMs: 12_000, srtpSuites: ['AES_CM_128_HMAC_SHA1_32', 'AES_CM_128_HMAC_SHA1_80'], comfortNoiseDbov: 0 } }).rtp;
    expect(freeswitchMediaSettings(rtp)).toEqual({
      inviteHeaders: { 'X-Payivr-Media-Timeout': '12000', 'X-Payivr-Srtp-Suites': 'AES_CM_128_HMAC_SHA1_32:AES_CM_128_HMAC_SHA1_80' },
      silenceWhenIdle: '-1',
    });
  });
});
