import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { frameStream, parseMessage, SipParseError, type ParseLimits } from '../src/telephony/embedded/sip/parser.js';
import { headerValue, headerValues, parseNameAddr, parseUri, parseVia, rawHeaders, splitList, tagOf } from '../src/telephony/embedded/sip/message.js';
import { buildResponse, serialize } from '../src/telephony/embedded/sip/serializer.js';
import { isPayIvrError } from '../src/errors.js';

const LIMITS: ParseLimits = { maxMessageBytes: 16384, maxHeaders: 100, maxLineLength: 8192 };

const SDP = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n';

function invite(extra: string[] = [], body = SDP, cl: number | undefined = Buffer.byteLength(body)): string {
  return [
    'INVITE sip:%2B33140000001@10.0.0.1:5060;user=phone SIP/2.0',
    'v: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKabc;rport, SIP/2.0/UDP 10.0.0.3;branch=z9hG4bKdef',
    'Via: SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK123',
    'Max-Forwards: 70',
    'f: "Alice, A." <sip:alice@10.0.0.2>;tag=1928',
    't: <sip:+33140000001@10.0.0.1>',
    'i: a84b4c76e66710@10.0.0.2',
    'CSeq: 314159 INVITE',
    'm: <sip:alice@10.0.0.2:5060;ob;x-genesys=1>, <sip:alice@10.0.0.9>',
    'Subject: folded',
    '  continuation here',
    'User-to-User: 00414243;encoding=hex',
    ...extra,
    'c: application/sdp',
    ...(cl === undefined ? [] : [`l: ${cl}`]),
    '',
    body,
  ].join('\r\n');
}

describe('SIP parser', () => {
  it('parses compact forms, lists, folding and the body', () => {
    const m = parseMessage(Buffer.from(invite()), LIMITS);
    expect(m.kind).toBe('request');
    if (m.kind !== 'request') return;
    expect(m.method).toBe('INVITE');
    expect(headerValues(m, 'Via')).toHaveLength(3);
    expect(parseVia(headerValues(m, 'via')[2] as string)?.host).toBe('2001:db8::1');
    expect(headerValue(m, 'CALL-ID')).toBe('a84b4c76e66710@10.0.0.2');
    expect(headerValue(m, 'i')).toBe('a84b4c76e66710@10.0.0.2');
    expect(headerValues(m, 'contact')).toEqual(['<sip:alice@10.0.0.2:5060;ob;x-genesys=1>', '<sip:alice@10.0.0.9>']);
    expect(headerValue(m, 'subject')).toBe('folded continuation here');
    expect(tagOf(headerValue(m, 'from'))).toBe('1928');
    expect(parseNameAddr(headerValue(m, 'from') as string)?.displayName).toBe('Alice, A.');
    expect(headerValue(m, 'user-to-user')).toBe('00414243;encoding=hex');
    expect(m.body.toString()).toBe(SDP);
  });

  it('round-trips through the serializer', () => {
    const m = parseMessage(Buffer.from(invite()), LIMITS);
    const again = parseMessage(serialize(m), LIMITS);
    expect(again).toEqual(m);
  });

  it('builds responses with the request headers and a To tag', () => {
    const m = parseMessage(Buffer.from(invite()), LIMITS);
    if (m.kind !== 'request') throw new Error('request expected');
    const r = buildResponse(m, 200, { toTag: 'xyz', copyRecordRoute: true });
    expect(rawHeaders(r, 'via')).toEqual(rawHeaders(m, 'via'));
    expect(tagOf(headerValue(r, 'to'))).toBe('xyz');
    expect(serialize(r).toString()).toMatch(/^SIP\/2\.0 200 OK\r\n/);
  });

  it('truncates a datagram body to Content-Length and rejects a short one with 400', () => {
    const m = parseMessage(Buffer.from(invite([], SDP + 'garbage-after')), LIMITS);
    expect(m.body.length).toBe(Buffer.byteLength(SDP + 'garbage-after'));
    const m2 = parseMessage(Buffer.from(invite([], SDP, Buffer.byteLength(SDP)) + 'trailing'), LIMITS);
    expect(m2.body.toString()).toBe(SDP);
    const short = () => parseMessage(Buffer.from(invite([], SDP, 999)), LIMITS);
    expect(short).toThrow(SipParseError);
    try {
      short();
    } catch (e) {
      expect((e as SipParseError).status).toBe(400);
      expect((e as SipParseError).request?.method).toBe('INVITE');
    }
  });

  it('checks mandatory headers and answers only what has a Via', () => {
    const noCallId = invite().replace(/^i: .*\r\n/m, '');
    let err = catchParse(noCallId);
    expect(err.request).toBeDefined();
    const noVia = invite().replace(/^v: .*\r\n/m, '').replace(/^Via: .*\r\n/m, '');
    err = catchParse(noVia);
    expect(err.request).toBeUndefined();
    expect(catchParse(invite().replace('CSeq: 314159 INVITE', 'CSeq: 1 BYE')).request).toBeDefined();
    expect(catchParse(invite().replace('Max-Forwards: 70', 'Max-Forwards: many')).status).toBe(400);
    // RFC 2543 requests have no Max-Forwards (RFC 4475 3.4.1): taken; 0068 is 68.
    expect(parseMessage(Buffer.from(invite().replace('Max-Forwards: 70\r\n', '')), LIMITS).kind).toBe('request');
    expect(parseMessage(Buffer.from(invite().replace('Max-Forwards: 70', 'Max-Forwards: 0068')), LIMITS).kind).toBe('request');
    expect(catchParse(invite().replace('Max-Forwards: 70', 'Max-Forwards: 256')).status).toBe(400);
    const ack = invite().replace(/INVITE/g, 'ACK').replace('Max-Forwards: 70\r\n', '');
    expect(parseMessage(Buffer.from(ack), LIMITS).kind).toBe('request');
    expect(catchParse(invite().replace(' SIP/2.0\r\n', ' SIP/3.0\r\n')).status).toBe(505);
    expect(catchParse('hello world\r\n\r\n').request).toBeUndefined();
    expect(catchParse('INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\nbroken header line\r\n\r\n').request).toBeDefined();
  });

  it('enforces header count, line length and size limits', () => {
    const many = Array.from({ length: 120 }, (_, i) => `X-H${i}: ${i}`);
    expect(catchParse(invite(many)).message).toMatch(/too many headers/);
    expect(catchParse(invite([`X-Long: ${'a'.repeat(9000)}`])).message).toMatch(/too long/);
    const big = Buffer.alloc(20000, 0x41);
    expect(catchParse(big).status).toBe(513);
  });

  it('frames TCP streams by Content-Length', () => {
    const one = Buffer.from(invite());
    const two = Buffer.concat([one, one]);
    expect(frameStream(one.subarray(0, 50))).toEqual({ kind: 'need-more' });
    expect(frameStream(one.subarray(0, one.length - 3))).toEqual({ kind: 'need-more' });
    expect(frameStream(two)).toEqual({ kind: 'message', length: one.length });
    expect(frameStream(Buffer.from('\r\n\r\nINVITE'))).toEqual({ kind: 'keepalive', length: 4, ping: true });
    expect(frameStream(Buffer.from('INVITE sip:a@b SIP/2.0\r\nContent-Length: 99999999\r\n\r\n')).kind).toBe('error');
    expect(frameStream(Buffer.alloc(20000, 0x41)).kind).toBe('error');
    const streamMsg = parseMessage(one, LIMITS, true);
    expect(streamMsg.body.toString()).toBe(SDP);
  });

  it('parses URIs, Via and lists', () => {
    const u = parseUri('sip:+331@[2001:db8::2]:5080;transport=tcp;x-foo=bar?User-to-User=00ab%3Bencoding%3Dhex');
    expect(u).toMatchObject({ scheme: 'sip', user: '+331', host: '2001:db8::2', port: 5080 });
    expect(u?.params.get('x-foo')).toBe('bar');
    expect(u?.headers).toBe('User-to-User=00ab%3Bencoding%3Dhex');
    expect(parseUri('tel:+33140000001;phone-context=x')?.scheme).toBe('tel');
    expect(parseUri('nonsense')).toBeUndefined();
    expect(parseVia('SIP/2.0/UDP host:99999;branch=z')).toBeUndefined();
    expect(splitList('"a,b" <sip:x>, <sip:y;p=1,2>')).toEqual(['"a,b" <sip:x>', '<sip:y;p=1,2>']);
  });
});

function catchParse(text: string | Buffer): SipParseError {
  try {
    parseMessage(typeof text === 'string' ? Buffer.from(text) : text, LIMITS);
  } catch (e) {
    if (e instanceof SipParseError) return e;
    throw e;
  }
  throw new Error('parsed without error');
}

describe('SIP parser fuzzing', () => {
  const onlyPayIvrErrors = (buf: Buffer, stream: boolean): void => {
    try {
      parseMessage(buf, LIMITS, stream);
    } catch (e) {
      if (!isPayIvrError(e, 'ERR_SIP_PARSE')) throw e;
    }
  };

  it('random bytes never throw anything but a parse error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4000 }), fc.boolean(), (bytes, stream) => {
        onlyPayIvrErrors(Buffer.from(bytes), stream);
        const f = frameStream(Buffer.from(bytes), LIMITS);
        expect(['message', 'keepalive', 'need-more', 'error']).toContain(f.kind);
      }),
      { numRuns: 2000 },
    );
  });

  it('mutated valid messages never throw anything but a parse error', () => {
    const base = Buffer.from(invite());
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'insert', 'delete')), { maxLength: 30 }),
        (mutations) => {
          let buf = Buffer.from(base);
          for (const [pos, byte, op] of mutations) {
            const p = Math.min(pos, Math.max(0, buf.length - 1));
            if (op === 'set') buf[p] = byte;
            else if (op === 'insert') buf = Buffer.concat([buf.subarray(0, p), Buffer.from([byte]), buf.subarray(p)]);
            else buf = Buffer.concat([buf.subarray(0, p), buf.subarray(p + 1)]);
          }
          onlyPayIvrErrors(buf, false);
          onlyPayIvrErrors(buf, true);
          frameStream(buf, LIMITS);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('structured garbage (header-like lines) never throws anything but a parse error', () => {
    const line = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.tuple(fc.constantFrom('Via', 'v', 'From', 'To', 'CSeq', 'Call-ID', 'Content-Length', 'l', 'Max-Forwards', 'Contact'), fc.string({ maxLength: 100 })).map(([n, v]) => `${n}: ${v}`),
    );
    fc.assert(
      fc.property(fc.constantFrom('INVITE sip:a@b SIP/2.0', 'SIP/2.0 200 OK', 'BYE x SIP/2.0', ''), fc.array(line, { maxLength: 40 }), fc.string({ maxLength: 300 }), (start, lines, body) => {
        const text = [start, ...lines, '', body].join('\r\n');
        onlyPayIvrErrors(Buffer.from(text), false);
        onlyPayIvrErrors(Buffer.from(text), true);
      }),
      { numRuns: 3000 },
    );
  });
});
