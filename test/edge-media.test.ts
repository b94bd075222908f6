import { describe, expect, it } from 'vitest';
import { callerProfile, genesysSrtpRefusal, legProfiles } from '../src/edge/edge-media.js';
import { offerAnswerOptions, RTPENGINE_SDES_SUITES } from '../src/edge/rtpengine-anchor.js';

/** The edge's per-leg media profile rules (edge-media.ts) and the SDES flags sent to rtpengine. */

const KEY = 'inline:' + 'A'.repeat(40);

function sdp(...streams: string[]): string {
  return ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', ...streams, ''].join('\r\n');
}
const plain = 'm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000';
const savp = (suite = 'AES_CM_128_HMAC_SHA1_80', port = 4002): string => `m=audio ${port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:1 ${suite} ${KEY}`;

describe('edge media profiles', () => {
  it("the caller's profile is that of its first audio stream the policy allows", () => {
    expect(callerProfile(sdp(plain), 'optional')).toBe('RTP/AVP');
    expect(callerProfile(sdp(savp()), 'optional')).toBe('RTP/SAVP');
    expect(callerProfile(sdp(savp(), plain), 'off')).toBe('RTP/AVP');
    expect(callerProfile(sdp(plain, savp()), 'required')).toBe('RTP/SAVP');
    expect(callerProfile(sdp(plain, savp()), 'optional')).toBe('RTP/AVP');
  });

  it('each leg gets its profile, with the allowed suites on SRTP legs only', () => {
    const p = legProfiles(sdp(plain), 'optional', 'required', ['AES_CM_128_HMAC_SHA1_80']);
    expect(p).toEqual({ caller: { transportProtocol: 'RTP/AVP' }, genesys: { transportProtocol: 'RTP/SAVP', sdesSuites: ['AES_CM_128_HMAC_SHA1_80'] }, genesysSrtpRequired: true });
    expect(legProfiles(sdp(savp()), 'optional', 'off', ['AES_CM_128_HMAC_SHA1_32']).caller).toEqual({ transportProtocol: 'RTP/SAVP', sdesSuites: ['AES_CM_128_HMAC_SHA1_32'] });
  });

  it('an SDP from Genesys is SRTP only with an active RTP/SAVP audio stream keyed with an allowed suite', () => {
    const suites = ['AES_CM_128_HMAC_SHA1_80'] as const;
    expect(genesysSrtpRefusal(sdp(savp()), suites)).toBeUndefined();
    expect(genesysSrtpRefusal(sdp(plain), suites)).toMatch(/not SRTP/);
    expect(genesysSrtpRefusal(sdp(savp('AES_CM_128_HMAC_SHA1_32')), suites)).toMatch(/not SRTP/);
    expect(genesysSrtpRefusal(sdp(savp('AES_CM_128_HMAC_SHA1_80', 0), plain), suites)).toMatch(/not SRTP/);
    expect(genesysSrtpRefusal(sdp('m=audio 4002 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000'), suites)).toMatch(/not SRTP/);
    expect(genesysSrtpRefusal(sdp(plain, savp()), suites)).toBeUndefined();
    expect(genesysSrtpRefusal('', suites)).toMatch(/not SRTP/);
  });

  it('rtpengine is told to leave out every suite it knows that is not allowed', () => {
    const o = offerAnswerOptions('RTP/SAVP', ['AES_CM_128_HMAC_SHA1_80']);
    expect(o.SDES).toEqual(RTPENGINE_SDES_SUITES.filter((x) => x !== 'AES_CM_128_HMAC_SHA1_80').map((x) => `no-${x}`));
    expect(offerAnswerOptions('RTP/AVP').SDES).toBeUndefined();
  });
});
