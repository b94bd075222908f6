import { describe, it, expect } from 'vitest';
import { canonicalHeaderName, parseRawHeaders, transportOf, uriOfNameAddr, userOfUri } from '../src/telephony/drachtio/sip-text.js';
import { sdpOrigin } from '../src/telephony/sdp-reader.js';
import { formatReason } from '../src/telephony/sip-reason.js';
import { bracketUri, sipfragStatus, subscriptionTerminated } from '../src/telephony/refer-tracker.js';
import { playbackCommand, promptFile } from '../src/telephony/drachtio/playback.js';
import { isPayIvrError } from '../src/errors.js';
import { installedFsmrfVersion, SUPPORTED_FSMRF_MAJOR } from '../src/telephony/drachtio/freeswitch-link.js';
import { createRequire } from 'node:module';

describe('drachtio backend text helpers', () => {
  it('reads headers from the raw INVITE in wire order, compact forms expanded, folded lines joined', () => {
    const raw = [
      'INVITE sip:+331@h SIP/2.0',
      'v: SIP/2.0/UDP a;branch=z9hG4bK1',
      'Via: SIP/2.0/UDP b;branch=z9hG4bK2',
      'f: <sip:a@b>;tag=1',
      'User-to-User: 00ab;',
      ' encoding=hex',
      'X-A: 1',
      'x-a: 2',
      '',
      'v=0',
    ].join('\r\n');
    const h = parseRawHeaders(raw);
    expect(h.filter(([k]) => k === 'via').map(([, v]) => v)).toEqual(['SIP/2.0/UDP a;branch=z9hG4bK1', 'SIP/2.0/UDP b;branch=z9hG4bK2']);
    expect(h.find(([k]) => k === 'from')?.[1]).toBe('<sip:a@b>;tag=1');
    expect(h.find(([k]) => k === 'user-to-user')?.[1]).toBe('00ab; encoding=hex');
    expect(h.filter(([k]) => k === 'x-a')).toHaveLength(2);
    expect(h.some(([k]) => k === 'v=0')).toBe(false);
    expect(canonicalHeaderName(' I ')).toBe('call-id');
  });

  it('URIs, users, transports', () => {
    expect(uriOfNameAddr('"Alice" <sip:+15551230000@10.0.0.1;user=phone>;tag=9')).toBe('sip:+15551230000@10.0.0.1;user=phone');
    expect(uriOfNameAddr('sip:bob@h;tag=1')).toBe('sip:bob@h');
    expect(userOfUri('sip:+33140000001;npdi@127.0.0.1:5060;user=phone')).toBe('+33140000001');
    expect(userOfUri('tel:+33140000001;phone-context=x')).toBe('+33140000001');
    expect(userOfUri('sips:%2B331@h')).toBe('+331');
    expect(userOfUri('http://x')).toBe('');
    expect([transportOf('udp'), transportOf('TCP'), transportOf('tls'), transportOf('wss'), transportOf('ws'), transportOf(undefined)]).toEqual(['udp', 'tcp', 'tls', 'tls', 'tcp', 'udp']);
    expect(bracketUri('sip:a@b?User-to-User=00')).toBe('<sip:a@b?User-to-User=00>');
    expect(bracketUri('<sip:a@b>')).toBe('<sip:a@b>');
  });

  it('Reason header, sipfrag status, subscription state, SDP origin', () => {
    expect(formatReason({ protocol: 'SIP', cause: 200, text: 'Call transferred' })).toBe('SIP;cause=200;text="Call transferred"');
    expect(formatReason({ protocol: 'Q.850', cause: 16, text: 'a"b\r\nc' })).toBe('Q.850;cause=16;text="a b  c"');
    expect(sipfragStatus('SIP/2.0 200 OK\r\n')).toBe(200);
    expect(sipfragStatus('SIP/2.0 100 Trying')).toBe(100);
    expect(sipfragStatus('garbage')).toBeUndefined();
    expect(sipfragStatus(undefined)).toBeUndefined();
    expect(subscriptionTerminated('terminated;reason=noresource')).toBe(true);
    expect(subscriptionTerminated('active;expires=60')).toBe(false);
    expect(subscriptionTerminated(undefined)).toBe(false);
    expect(sdpOrigin('v=0\r\no=- 12 34 IN IP4 1.2.3.4\r\n')).toBe('12/34');
    expect(sdpOrigin('')).toBeUndefined();
  });

  it('prompt paths: under the prompts dir, validated ids, one file_string for several fragments', () => {
    expect(promptFile('/srv/p', 'fr-FR', 'digits/4')).toBe('/srv/p/fr-FR/digits/4.wav');
    for (const bad of ['../x', 'a/../../b', '/etc/passwd', 'a!b', 'a b', '', 'a//b']) {
      let err: unknown;
      try {
        promptFile('/srv/p', 'en-US', bad);
      } catch (e) {
        err = e;
      }
      expect(isPayIvrError(err, 'ERR_PROMPT_MISSING'), bad).toBe(true);
      expect(String((err as Error).message)).not.toContain(bad || 'x');
    }
    expect(() => promptFile('/srv/p', '../en', 'a')).toThrow();
    expect(playbackCommand(['/a.wav'], false)).toEqual({ app: 'playback', arg: '/a.wav' });
    expect(playbackCommand(['/a.wav', '/b.wav'], false)).toEqual({ app: 'playback', arg: 'file_string:///a.wav!/b.wav' });
    expect(playbackCommand(['/m.wav'], true)).toEqual({ app: 'endless_playback', arg: '/m.wav' });
  });

  it('the installed drachtio packages are the lines the adapter is written against', () => {
    expect(installedFsmrfVersion()).toMatch(new RegExp(`^${SUPPORTED_FSMRF_MAJOR}\\.`));
    const require = createRequire(import.meta.url);
    expect((require('drachtio-srf/package.json') as { version: string }).version).toMatch(/^5\./);
  });
});
