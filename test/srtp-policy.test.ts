import { describe, expect, it } from 'vitest';
import { parseCryptoAttribute } from '../src/telephony/embedded/media/sdes.js';
import { profileAllowed, srtpRefusal } from '../src/telephony/srtp-policy.js';

const KEY = Buffer.alloc(30, 5).toString('base64');
const sdp = (...m: string[]): string => ['v=0', 'o=- 1 1 IN IP4 192.0.2.1', 's=-', 'c=IN IP4 192.0.2.1', 't=0 0', ...m, ''].join('\r\n');

describe('SRTP policy (both backends)', () => {
  it('profiles per policy', () => {
    expect(['off', 'optional', 'required'].map((p) => profileAllowed('RTP/AVP', p as 'off'))).toEqual([true, true, false]);
    expect(['off', 'optional', 'required'].map((p) => profileAllowed('RTP/SAVP', p as 'off'))).toEqual([false, true, true]);
    expect(profileAllowed('UDP/TLS/RTP/SAVPF', 'optional')).toBe(false);
  });

  it('says why an offer is refused, and nothing when one audio stream passes', () => {
    expect(srtpRefusal(sdp('m=audio 4000 RTP/AVP 0'), 'required')).toBe('SRTP required: offer RTP/SAVP with an SDES a=crypto line');
    expect(srtpRefusal(sdp('m=audio 4000 RTP/SAVP 0'), 'off')).toBe('SRTP disabled here: offer RTP/AVP');
    expect(srtpRefusal(sdp('m=audio 4000 RTP/AVP 0', 'm=audio 4002 RTP/SAVP 0'), 'required')).toBeUndefined();
    expect(srtpRefusal(sdp('m=audio 0 RTP/SAVP 0', 'm=audio 4002 RTP/AVP 0'), 'required')).toBe('SRTP required: offer RTP/SAVP with an SDES a=crypto line');
    expect(srtpRefusal(sdp('m=audio 4000 UDP/TLS/RTP/SAVPF 0'), 'optional')).toBe('transport profile UDP/TLS/RTP/SAVPF not supported');
    expect(srtpRefusal(sdp('m=audio 4000 RTP/AVP 0'), 'optional')).toBeUndefined();
  });
});

describe('a=crypto (RFC 4568)', () => {
  it('reads tag, suite, key, lifetime and MKI; reasons never carry the key', () => {
    const r = parseCryptoAttribute(`7 AES_CM_128_HMAC_SHA1_32 inline:${KEY}|2^31|1:1`);
    expect(r.ok && r.crypto.tag).toBe(7);
    expect(r.ok && r.crypto.suite).toBe('AES_CM_128_HMAC_SHA1_32');
    expect(r.ok && r.crypto.key.mki?.bytes.toString('hex')).toBe('01');
    for (const bad of [`x AES_CM_128_HMAC_SHA1_80 inline:${KEY}`, `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|2^20|1:4|9`, `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|256:1`, `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|0`, `1 F8_128_HMAC_SHA1_80 inline:${KEY}`, `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY} FOO=1`]) {
      const p = parseCryptoAttribute(bad);
      expect(p.ok, bad).toBe(false);
      if (!p.ok) expect(p.reason).not.toContain(KEY.slice(0, 8));
    }
  });
});
