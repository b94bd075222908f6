/**
 * The pure parts of the rtpengine anchor: the DTMF datagram parser, the per-leg key filter and
 * the edge.rtpengine config section. The daemon itself: test/edge-rtpengine.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { configSchema } from '../src/config/schema.js';
import { MAX_DTMF_DATAGRAM_BYTES, parseDtmfDatagram } from '../src/edge/rtpengine-dtmf-datagram.js';
import { KeyFilter } from '../src/edge/rtpengine-key-filter.js';

const GOOD = { callid: 'c1', source_tag: 'a', tags: ['b', 'a'], type: 'DTMF', timestamp: 1796625209, source_ip: '127.0.0.1', event: 5, duration: 100, volume: 10 };

function dg(o: Record<string, unknown>): Buffer {
  return Buffer.from(JSON.stringify(o));
}

describe('rtpengine DTMF datagram', () => {
  it("reads rtpengine 10.5's format and maps events 0-15 to the sixteen keys", () => {
    expect(parseDtmfDatagram(dg(GOOD))).toEqual({ callId: 'c1', sourceTag: 'a', digit: '5', durationMs: 100 });
    const digits = Array.from({ length: 16 }, (_, event) => parseDtmfDatagram(dg({ ...GOOD, event }))?.digit).join('');
    expect(digits).toBe('0123456789*#ABCD');
    expect(parseDtmfDatagram(dg({ ...GOOD, source_ip: '::1' }))?.digit).toBe('5');
  });

  it.each([
    ['not JSON', Buffer.from('{"callid":')],
    ['empty', Buffer.alloc(0)],
    ['an array', dg([] as unknown as Record<string, unknown>)],
    ['event 16', dg({ ...GOOD, event: 16 })],
    ['event -1', dg({ ...GOOD, event: -1 })],
    ['event 1.5', dg({ ...GOOD, event: 1.5 })],
    ['event as a string', dg({ ...GOOD, event: '5' })],
    ['another type', dg({ ...GOOD, type: 'dtmf' })],
    ['an extra key', dg({ ...GOOD, extra: true })],
    ['a __proto__ key', Buffer.from(JSON.stringify(GOOD).replace('{', '{"__proto__":{"x":1},'))],
    ['a missing key', dg({ ...GOOD, volume: undefined })],
    ['a source tag not among the tags', dg({ ...GOOD, source_tag: 'z' })],
    ['an empty call id', dg({ ...GOOD, callid: '' })],
    ['a source_ip that is no address', dg({ ...GOOD, source_ip: 'example.com' })],
    ['volume 64', dg({ ...GOOD, volume: 64 })],
    ['17 tags', dg({ ...GOOD, tags: Array.from({ length: 17 }, (_, i) => (i === 0 ? 'a' : `t${i}`)) })],
    ['an oversized datagram', Buffer.concat([dg(GOOD), Buffer.alloc(MAX_DTMF_DATAGRAM_BYTES, 0x20)])],
  ])('drops %s', (_what, buf) => {
    expect(parseDtmfDatagram(buf)).toBeUndefined();
  });
});

describe('key filter (one leg)', () => {
  it('passes keys while not blocked, repeats included', () => {
    const f = new KeyFilter({ perSecond: 20 });
    expect([f.judge('1', 0), f.judge('1', 70), f.judge('1', 140)]).toEqual(['key', 'key', 'key']);
  });

  it('while blocked, drops the one echo of each key within 150 ms, and keeps real repeats', () => {
    const f = new KeyFilter({ perSecond: 20 });
    f.blocked = true;
    // 4, echo, 1, echo, 1 (a repeat, 200 ms later), echo, 1 again without an echo in between.
    expect(f.judge('4', 0)).toBe('key');
    expect(f.judge('4', 70)).toBe('echo');
    expect(f.judge('1', 200)).toBe('key');
    expect(f.judge('1', 270)).toBe('echo');
    expect(f.judge('1', 400)).toBe('key');
    expect(f.judge('1', 470)).toBe('echo');
    expect(f.judge('1', 600)).toBe('key');
    // A different key right after is never an echo.
    expect(f.judge('2', 620)).toBe('key');
    // The same key after the window is a key.
    expect(f.judge('2', 800)).toBe('key');
  });

  it('an echo arriving after unblock is still dropped', () => {
    const f = new KeyFilter({ perSecond: 20 });
    f.blocked = true;
    expect(f.judge('7', 0)).toBe('key');
    f.blocked = false;
    expect(f.judge('7', 60)).toBe('echo');
    expect(f.judge('7', 300)).toBe('key');
    expect(f.judge('7', 340)).toBe('key');
  });

  it('bounds the rate: a burst of perSecond, then perSecond a second', () => {
    const f = new KeyFilter({ perSecond: 10 });
    const burst = Array.from({ length: 30 }, (_, i) => f.judge(String(i % 10) as '1', 0));
    expect(burst.filter((v) => v === 'key')).toHaveLength(10);
    expect(burst.filter((v) => v === 'rate-limited')).toHaveLength(20);
    const later = Array.from({ length: 30 }, (_, i) => f.judge(String(i % 10) as '1', 1000));
    expect(later.filter((v) => v === 'key')).toHaveLength(10);
  });
});

describe('edge.rtpengine config', () => {
  const base = { host: '127.0.0.1', dtmfLogAddress: '127.0.0.1', dtmfLogPort: 40000 };

  it('is optional, and fills its defaults', () => {
    expect(configSchema.parse({}).edge.rtpengine).toBeUndefined();
    expect(configSchema.parse({ edge: { rtpengine: base } }).edge?.rtpengine).toEqual({
      ...base,
      port: 22222,
      timeoutMs: 1000,
      pingIntervalMs: 5000,
      delayBufferMs: 100,
      maxDtmfEventsPerSecond: 20,
    });
  });

  it.each([
    [{ ...base, host: 'rtpengine.local' }, ['edge', 'rtpengine', 'host'], /IP address/],
    [{ ...base, dtmfLogAddress: '' }, ['edge', 'rtpengine', 'dtmfLogAddress'], /IP address/],
    [{ ...base, delayBufferMs: 20 }, ['edge', 'rtpengine', 'delayBufferMs'], /./],
    [{ ...base, dtmfLogPort: 0 }, ['edge', 'rtpengine', 'dtmfLogPort'], /./],
    [{ ...base, extra: 1 }, ['edge', 'rtpengine'], /extra/],
  ])('refuses a bad field with its path (%#)', (rtp, path, message) => {
    const r = configSchema.safeParse({ edge: { rtpengine: rtp } });
    expect(r.success).toBe(false);
    const issue = r.error?.issues[0];
    expect(issue?.path).toEqual(path);
    expect(issue?.message).toMatch(message);
  });

  it.each([
    ['random', /crashes with 'random'/],
    ['zero', /in-band tones/],
  ])("the capture's key replacement refuses '%s' (unsafe on rtpengine 10.5), with its path", (mode, message) => {
    const r = configSchema.safeParse({ edge: { rtpengine: base, assist: { apiKeys: ['k'.repeat(24)], dtmfSecurity: mode } } });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['edge', 'assist', 'dtmfSecurity']);
    expect(r.error?.issues[0]?.message).toMatch(message);
  });
});
