import { describe, expect, it } from 'vitest';
import { answerOffer, type LocalSdpParams } from '../src/telephony/embedded/media/sdp.js';
import { MediaRanges, sdpMediaAddresses } from '../src/telephony/media-ranges.js';
import { cryptoValuesBySection, sdpOrigin, sdpStreams } from '../src/telephony/sdp-reader.js';
import { offersSrtp, srtpRefusal } from '../src/telephony/srtp-policy.js';

// One reading of SDP for every rule (sdp-reader.ts): the SRTP policy and the media-address check
// both backends run before anything else, the drachtio SRTP path and re-INVITE origin, and the
// embedded answerer. Hostile and odd SDP here; the well-formed cases are in media-sdp.test.ts and
// srtp-policy.test.ts.

const KEY = Buffer.alloc(30, 3).toString('base64');
const HEAD = ['v=0', 'o=carrier 1000 1001 IN IP4 192.0.2.1', 's=-'];

function sdp(...lines: string[]): string {
  return [...HEAD, ...lines, ''].join('\r\n');
}

function local(over: Partial<LocalSdpParams> = {}): LocalSdpParams {
  return { address: '192.0.2.200', port: 40000, sessionId: '7', sessionVersion: 1, srtp: 'optional', localKey: Buffer.alloc(30, 7), ...over };
}

/** The verdict both backends give an offer's addresses before anything else: true = allowed. */
function addressesAllowed(offer: string, ranges: readonly string[] = []): boolean {
  const r = new MediaRanges(ranges);
  return sdpMediaAddresses(offer).every((a) => r.sdpAddressAllowed(a));
}

describe('SDP reading: c= lines', () => {
  it('no c= at all: no address (like hold), allowed, and the embedded answer sends nowhere', () => {
    const offer = sdp('t=0 0', 'm=audio 4000 RTP/AVP 0');
    expect(sdpMediaAddresses(offer)).toEqual([undefined]);
    expect(addressesAllowed(offer, ['192.0.2.0/24'])).toBe(true);
    expect(answerOffer(offer, local())?.media.remoteAddress).toBeUndefined();
  });

  it('session-level c= applies to every section without its own; a media-level c= overrides it for its section only', () => {
    const offer = sdp('c=IN IP4 192.0.2.1', 't=0 0', 'm=audio 4000 RTP/AVP 0', 'c=IN IP4 192.0.2.5', 'm=audio 4002 RTP/AVP 0');
    expect(sdpMediaAddresses(offer)).toEqual(['192.0.2.5', '192.0.2.1']);
    expect(answerOffer(offer, local())?.media.remoteAddress).toBe('192.0.2.5');
  });

  it('a media-level c= outside the ranges is refused even when the session-level one is inside, and the other way round', () => {
    expect(addressesAllowed(sdp('c=IN IP4 192.0.2.1', 't=0 0', 'm=audio 4000 RTP/AVP 0', 'c=IN IP4 203.0.113.9'), ['192.0.2.0/24'])).toBe(false);
    expect(addressesAllowed(sdp('c=IN IP4 203.0.113.9', 't=0 0', 'm=audio 4000 RTP/AVP 0', 'c=IN IP4 192.0.2.1'), ['192.0.2.0/24'])).toBe(true);
    // a session-level address used by no active audio stream is not looked at
    expect(addressesAllowed(sdp('c=IN IP4 203.0.113.9', 't=0 0', 'm=audio 0 RTP/AVP 0', 'm=audio 4000 RTP/AVP 0', 'c=IN IP4 192.0.2.1'), ['192.0.2.0/24'])).toBe(true);
  });

  it('IPv6: read, checked against IPv6 ranges; :: is hold', () => {
    const offer = sdp('c=IN IP6 2001:db8::7', 't=0 0', 'm=audio 4000 RTP/AVP 0');
    expect(sdpMediaAddresses(offer)).toEqual(['2001:db8::7']);
    expect(addressesAllowed(offer, ['2001:db8::/32'])).toBe(true);
    expect(addressesAllowed(offer, ['192.0.2.0/24'])).toBe(false);
    expect(answerOffer(offer, local())?.media.remoteAddress).toBe('2001:db8::7');
    expect(sdpMediaAddresses(sdp('c=IN IP6 ::', 't=0 0', 'm=audio 4000 RTP/AVP 0'))).toEqual([undefined]);
  });

  it('a multicast TTL is not part of the address; 0.0.0.0 is hold', () => {
    expect(sdpMediaAddresses(sdp('c=IN IP4 192.0.2.9/127', 't=0 0', 'm=audio 4000 RTP/AVP 0'))).toEqual(['192.0.2.9']);
    expect(sdpMediaAddresses(sdp('c=IN IP4 0.0.0.0', 't=0 0', 'm=audio 4000 RTP/AVP 0'))).toEqual([undefined]);
  });

  it('a host name, an empty address or an odd IP version is no IP literal: refused, with or without ranges', () => {
    for (const c of ['c=IN IP4 media.example.com', 'c=IN IP4 ', 'c=IN IP7 203.0.113.9.evil']) {
      const offer = sdp('c=IN IP4 192.0.2.1', 't=0 0', 'm=audio 4000 RTP/AVP 0', c);
      expect(addressesAllowed(offer), c).toBe(false);
      expect(addressesAllowed(offer, ['192.0.2.0/24']), c).toBe(false);
    }
  });

  it('a media-level c= that cannot be read at all leaves the session-level address in effect, which is checked', () => {
    const offer = sdp('c=IN IP4 203.0.113.9', 't=0 0', 'm=audio 4000 RTP/AVP 0', 'c=garbage');
    expect(sdpMediaAddresses(offer)).toEqual(['203.0.113.9']);
    expect(addressesAllowed(offer, ['192.0.2.0/24'])).toBe(false);
  });
});

describe('SDP reading: m= lines', () => {
  it('several m= lines: only active audio streams are checked; rejected (port 0) and video ones are not', () => {
    const offer = sdp(
      'c=IN IP4 192.0.2.1',
      't=0 0',
      'm=audio 0 RTP/SAVP 0',
      'c=IN IP4 203.0.113.1',
      'm=video 5000 RTP/AVP 96',
      'c=IN IP4 203.0.113.2',
      'm=audio 4002 RTP/AVP 0',
      'm=audio 4004 RTP/SAVP 0',
      'c=IN IP4 192.0.2.7',
    );
    expect(sdpMediaAddresses(offer)).toEqual(['192.0.2.1', '192.0.2.7']);
    expect(addressesAllowed(offer, ['192.0.2.0/24'])).toBe(true);
    expect(srtpRefusal(offer, 'required')).toBeUndefined();
    expect(srtpRefusal(offer, 'off')).toBeUndefined();
    expect(sdpStreams(offer).map((x) => [x.type, x.port, x.protocol])).toEqual([
      ['audio', 0, 'RTP/SAVP'],
      ['video', 5000, 'RTP/AVP'],
      ['audio', 4002, 'RTP/AVP'],
      ['audio', 4004, 'RTP/SAVP'],
    ]);
  });

  it('an m= line sdp-transform cannot read (port/count, tab, two spaces, port above 65535) is checked, not skipped, and no profile of it is allowed', () => {
    for (const m of ['m=audio 4000/2 RTP/AVP 0', 'm=audio\t4000 RTP/AVP 0', 'm=audio  4000 RTP/AVP 0', 'm=audio 99999 RTP/AVP 0']) {
      const offer = sdp('c=IN IP4 203.0.113.9', 't=0 0', m);
      expect(sdpStreams(offer).map((x) => x.readable), m).toEqual([false]);
      expect(sdpMediaAddresses(offer), m).toEqual(['203.0.113.9']);
      expect(addressesAllowed(offer, ['192.0.2.0/24']), m).toBe(false);
      for (const policy of ['off', 'optional', 'required'] as const) expect(srtpRefusal(offer, policy), `${m} ${policy}`).toBe('m= line not readable');
      expect(answerOffer(offer, local()), m).toBeUndefined();
    }
  });

  it('an unreadable m= line beside a good audio stream: the good one is answered, the other still has its address checked', () => {
    const offer = sdp('c=IN IP4 192.0.2.1', 't=0 0', 'm=audio 4000 RTP/AVP 0', 'm=audio 4000/2 RTP/AVP 0', 'c=IN IP4 203.0.113.9');
    expect(srtpRefusal(offer, 'optional')).toBeUndefined();
    expect(addressesAllowed(offer, ['192.0.2.0/24'])).toBe(false);
    expect(answerOffer(offer, local())?.media.remotePort).toBe(4000);
  });

  it('ports: leading zeros are the number, 00 is port 0 (a rejected stream), and the embedded answer always has a number', () => {
    const zeros = sdp('c=IN IP4 192.0.2.1', 't=0 0', 'm=audio 04000 RTP/AVP 0');
    expect(sdpStreams(zeros)[0]?.port).toBe(4000);
    expect(answerOffer(zeros, local())?.media.remotePort).toBe(4000);
    const zero = sdp('c=IN IP4 192.0.2.1', 't=0 0', 'm=audio 00 RTP/AVP 0');
    expect(sdpStreams(zero)[0]?.port).toBe(0);
    expect(sdpMediaAddresses(zero)).toEqual([]);
    expect(answerOffer(zero, local())).toBeUndefined();
  });

  it('media type and profile are case-sensitive tokens: m=AUDIO is not audio', () => {
    const offer = sdp('c=IN IP4 203.0.113.9', 't=0 0', 'm=AUDIO 4000 RTP/AVP 0');
    expect(sdpMediaAddresses(offer)).toEqual([]);
    expect(srtpRefusal(offer, 'required')).toBeUndefined();
    expect(answerOffer(offer, local())).toBeUndefined();
  });

  it('the drachtio SRTP path: any audio m= line with an SRTP profile, rejected ones included', () => {
    expect(offersSrtp(sdp('c=IN IP4 192.0.2.1', 't=0 0', 'm=audio 4000 RTP/SAVP 0'))).toBe(true);
    expect(offersSrtp(sdp('c=IN IP4 192.0.2.1', 't=0 0', 'm=audio 0 RTP/SAVP 0', 'm=audio 4002 RTP/AVP 0'))).toBe(true);
    expect(offersSrtp(sdp('c=IN IP4 192.0.2.1', 't=0 0', 'm=audio 4000 RTP/AVP 0', 'm=video 4002 RTP/SAVP 96'))).toBe(false);
    expect(offersSrtp(sdp('c=IN IP4 192.0.2.1', 't=0 0', 'm=audio 4000 RTP/AVP 0', 'a=note:SAVP'))).toBe(false);
  });

  it('no m= line, an empty body, or no SDP at all: nothing to refuse, nothing to answer', () => {
    for (const text of ['', 'hello', sdp('c=IN IP4 192.0.2.1', 't=0 0')]) {
      expect(sdpMediaAddresses(text)).toEqual([]);
      expect(srtpRefusal(text, 'required')).toBeUndefined();
      expect(answerOffer(text, local())).toBeUndefined();
    }
  });
});

describe('SDP reading: line endings, a=crypto, o=', () => {
  it('CRLF, LF and CR line endings read the same, a=crypto lines included', () => {
    const lines = [...HEAD, 'c=IN IP4 192.0.2.1', 't=0 0', 'm=audio 4000 RTP/SAVP 0', `a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}`, 'm=audio 4002 RTP/AVP 0', 'c=IN IP4 192.0.2.2', ''];
    const readings = ['\r\n', '\n', '\r'].map((eol) => {
      const text = lines.join(eol);
      return { addresses: sdpMediaAddresses(text), crypto: cryptoValuesBySection(text), srtp: answerOffer(text, local())?.media.srtp?.suite };
    });
    expect(readings[0]).toEqual({ addresses: ['192.0.2.1', '192.0.2.2'], crypto: [[`1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}`], []], srtp: 'AES_CM_128_HMAC_SHA1_80' });
    expect(readings[1]).toEqual(readings[0]);
    expect(readings[2]).toEqual(readings[0]);
  });

  it('every session parameter of a crypto line is seen (sdp-transform keeps only the first): UNENCRYPTED_SRTP after KDR=0 is refused', () => {
    const offer = sdp('c=IN IP4 192.0.2.1', 't=0 0', 'm=audio 4000 RTP/SAVP 0', `a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${KEY} KDR=0 UNENCRYPTED_SRTP`);
    expect(cryptoValuesBySection(offer)).toEqual([[`1 AES_CM_128_HMAC_SHA1_80 inline:${KEY} KDR=0 UNENCRYPTED_SRTP`]]);
    expect(answerOffer(offer, local())).toBeUndefined();
  });

  it('a=crypto before any m= line belongs to no stream', () => {
    const offer = sdp('c=IN IP4 192.0.2.1', 't=0 0', `a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}`, 'm=audio 4000 RTP/SAVP 0');
    expect(cryptoValuesBySection(offer)).toEqual([[]]);
    expect(answerOffer(offer, local())).toBeUndefined();
  });

  it('o=: session id and version, big numbers kept as written; a line without numbers is no origin (a re-INVITE is then a refresh)', () => {
    expect(sdpOrigin(sdp('t=0 0'))).toBe('1000/1001');
    expect(sdpOrigin('v=0\r\no=- 3724394400123456789 18446744073709551615 IN IP4 192.0.2.1\r\n')).toBe('3724394400123456789/18446744073709551615');
    expect(sdpOrigin('v=0\r\no=- abc def IN IP4 192.0.2.1\r\n')).toBeUndefined();
    expect(sdpOrigin('v=0\r\no=- 1 2\r\n')).toBeUndefined();
    expect(sdpOrigin(undefined)).toBeUndefined();
  });
});

describe('SDP reading: huge SDP', () => {
  // The embedded SIP stack refuses messages above 16 KB by default (513) and drachtio-server has
  // its own limit; these are far larger, so whatever reaches the readers is within what they are
  // shown to handle.
  const many = 5000;

  it('thousands of m= lines: every active audio address is read, and one bad address among them is found', () => {
    const sections: string[] = [];
    for (let i = 0; i < many; i++) sections.push(`m=audio ${4000 + 2 * (i % 1000)} RTP/AVP 0`, `c=IN IP4 192.0.2.${i % 250}`);
    const good = sdp('t=0 0', ...sections);
    expect(sdpMediaAddresses(good)).toHaveLength(many);
    expect(addressesAllowed(good, ['192.0.2.0/24'])).toBe(true);
    const bad = sdp('t=0 0', ...sections, 'm=audio 6000 RTP/AVP 0', 'c=IN IP4 203.0.113.9');
    expect(addressesAllowed(bad, ['192.0.2.0/24'])).toBe(false);
    expect(srtpRefusal(bad, 'required')).toBe('SRTP required: offer RTP/SAVP with an SDES a=crypto line');
    const answer = answerOffer(bad, local());
    expect(answer?.media.remoteAddress).toBe('192.0.2.0');
    expect(answer?.sdp.match(/^m=/gm)).toHaveLength(many + 1); // every m= line gets one in the answer
  });

  it('one attribute line of a megabyte and thousands of crypto lines: read, and the answer picks the first usable key', () => {
    const junk = `a=x-junk:${'A'.repeat(1_000_000)}`;
    const cryptos = Array.from({ length: many }, (_, i) => `a=crypto:${i + 1} F8_128_HMAC_SHA1_80 inline:${KEY}`);
    const offer = sdp('c=IN IP4 192.0.2.1', 't=0 0', junk, 'm=audio 4000 RTP/SAVP 0', junk, ...cryptos, `a=crypto:${many + 1} AES_CM_128_HMAC_SHA1_80 inline:${KEY}`);
    expect(cryptoValuesBySection(offer)[0]).toHaveLength(many + 1);
    expect(sdpMediaAddresses(offer)).toEqual(['192.0.2.1']);
    expect(answerOffer(offer, local())?.media.srtp?.tag).toBe(many + 1);
  });

  it('a megabyte-long c= or m= line is no address or stream anyone could use', () => {
    const longHost = sdp(`c=IN IP4 ${'1'.repeat(1_000_000)}`, 't=0 0', 'm=audio 4000 RTP/AVP 0');
    expect(addressesAllowed(longHost)).toBe(false);
    const longPort = sdp('c=IN IP4 192.0.2.1', 't=0 0', `m=audio ${'4'.repeat(1_000_000)} RTP/AVP 0`);
    expect(sdpStreams(longPort).map((x) => x.readable)).toEqual([false]);
    expect(srtpRefusal(longPort, 'optional')).toBe('m= line not readable');
    expect(answerOffer(longPort, local())).toBeUndefined();
  });
});
