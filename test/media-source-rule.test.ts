import { describe, expect, it } from 'vitest';
import { MediaRanges } from '../src/telephony/media-ranges.js';
import { RELATCH_AFTER_MS, RtpSourceRule } from '../src/telephony/embedded/media/source-rule.js';

// The RTP source rule of docs/adr/0007-media-source-rules.md (section 1 and the sending half of
// section 4), without sockets: `now` is a number the test moves. The same rules over real
// sockets: test/media-source-rules.test.ts and the latching tests of test/media-session.test.ts.

const CALLER = '198.51.100.7';
const SIBLING = '198.51.100.8';
const OUTSIDER = '203.0.113.66';

function rule(ranges: readonly string[] = []): RtpSourceRule {
  return new RtpSourceRule(new MediaRanges(ranges));
}

/** A rule whose SDP named CALLER:40000 at t=0. */
function negotiated(ranges: readonly string[] = []): RtpSourceRule {
  const r = rule(ranges);
  r.negotiated(CALLER, 40000, 0);
  return r;
}

describe('RTP source rule: where packets may come from', () => {
  it('before any SDP named the far end, nothing is taken', () => {
    const r = rule(['198.51.100.0/24']);
    expect(r.check(CALLER, 40000, 0)).toBe('refused');
    expect(r.accept(CALLER, 40000, 0)).toBe(false);
    expect(r.latched).toBeUndefined();
  });

  it('only the address the SDP names, from any port; the first packet taken latches address and port', () => {
    const r = negotiated();
    expect(r.check(OUTSIDER, 40000, 10)).toBe('refused');
    expect(r.check(SIBLING, 40000, 10)).toBe('refused');
    expect(r.check(CALLER, 51234, 10)).toBe('new');
    expect(r.accept(CALLER, 51234, 10)).toBe(true);
    expect(r.latched).toEqual({ address: CALLER, port: 51234 });
    expect(r.check(CALLER, 51234, 20)).toBe('latched');
    expect(r.accept(CALLER, 51234, 20)).toBe(false); // taken, no new latch
    expect(r.lastAcceptedAt).toBe(20);
  });

  it('a dual-stack socket reports IPv4 sources as ::ffff:a.b.c.d: still the SDP address', () => {
    expect(negotiated().check(`::ffff:${CALLER}`, 40000, 0)).toBe('new');
  });

  it('IPv6 SDP addresses are compared as given', () => {
    const r = rule();
    r.negotiated('2001:db8::7', 40000, 0);
    expect(r.check('2001:db8::7', 40000, 0)).toBe('new');
    expect(r.check('2001:db8::8', 40000, 0)).toBe('refused');
  });

  it('check() alone changes nothing: a refused or unproven packet latches nothing and feeds no watchdog', () => {
    const r = negotiated();
    expect(r.check(CALLER, 40000, 5)).toBe('new');
    expect(r.check(OUTSIDER, 40000, 6)).toBe('refused');
    expect(r.latched).toBeUndefined();
    expect(r.lastAcceptedAt).toBe(0);
  });

  it('accept() of a refused source is ignored: no latch, no timestamp', () => {
    const r = negotiated();
    expect(r.accept(OUTSIDER, 40000, 5)).toBe(false);
    expect(r.latched).toBeUndefined();
    expect(r.lastAcceptedAt).toBe(0);
  });

  it('once latched, never another address, not even the SDP\'s own on another port while the latch is alive', () => {
    const r = negotiated(['198.51.100.0/24']);
    r.accept(SIBLING, 30000, 0); // inside the ranges: latches
    expect(r.check(CALLER, 40000, 1)).toBe('refused');
    expect(r.check(CALLER, 40000, 10 * RELATCH_AFTER_MS)).toBe('refused'); // quiet does not open other addresses
    expect(r.check(OUTSIDER, 40000, 10 * RELATCH_AFTER_MS)).toBe('refused');
  });

  it('another port of the latched address only after the latched port was quiet for RELATCH_AFTER_MS (NAT rebinding)', () => {
    const r = negotiated();
    r.accept(CALLER, 40000, 1000);
    expect(r.check(CALLER, 40002, 1000 + RELATCH_AFTER_MS - 1)).toBe('refused');
    expect(r.latchedQuiet(1000 + RELATCH_AFTER_MS - 1)).toBe(false);
    expect(r.latchedQuiet(1000 + RELATCH_AFTER_MS)).toBe(true);
    expect(r.check(CALLER, 40002, 1000 + RELATCH_AFTER_MS)).toBe('new');
    const first = r.latched;
    expect(r.accept(CALLER, 40002, 1000 + RELATCH_AFTER_MS)).toBe(true);
    expect(r.latched).toEqual({ address: CALLER, port: 40002 });
    expect(r.latched).not.toBe(first);
    // and the old port is now the other port: refused while the new one is alive
    expect(r.check(CALLER, 40000, 1000 + RELATCH_AFTER_MS + 1)).toBe('refused');
  });

  it('two streams from one address cannot flap: each packet of the latched one keeps the other out', () => {
    const r = negotiated();
    for (let t = 0; t < 10 * RELATCH_AFTER_MS; t += 20) {
      r.accept(CALLER, 40000, t);
      expect(r.check(CALLER, 40002, t + 10)).toBe('refused');
    }
    expect(r.latched).toEqual({ address: CALLER, port: 40000 });
  });

  it('latchedQuiet is false without a latch', () => {
    expect(negotiated().latchedQuiet(10 * RELATCH_AFTER_MS)).toBe(false);
  });
});

describe('RTP source rule: security.mediaRanges', () => {
  it('without a latch, another address inside the ranges is taken too; outside is not', () => {
    const r = negotiated(['198.51.100.0/24']);
    expect(r.check(SIBLING, 30000, 0)).toBe('new');
    expect(r.check(CALLER, 40000, 0)).toBe('new');
    expect(r.check(OUTSIDER, 40000, 0)).toBe('refused');
  });

  it('IPv6 ranges, and IPv4-mapped sources against IPv4 ranges', () => {
    const r = rule(['2001:db8::/32', '198.51.100.0/24']);
    r.negotiated('2001:db8::7', 40000, 0);
    expect(r.check('2001:db8:1::9', 40000, 0)).toBe('new');
    expect(r.check(`::ffff:${SIBLING}`, 40000, 0)).toBe('new');
    expect(r.check('2001:db9::1', 40000, 0)).toBe('refused');
  });

  it('on hold (no SDP address) only the ranges can send; without ranges nobody', () => {
    const withRanges = rule(['198.51.100.0/24']);
    withRanges.negotiated(undefined, 40000, 0);
    expect(withRanges.check(SIBLING, 40000, 0)).toBe('new');
    expect(withRanges.check(OUTSIDER, 40000, 0)).toBe('refused');
    const without = rule();
    without.negotiated(undefined, 40000, 0);
    expect(without.check(CALLER, 40000, 0)).toBe('refused');
  });
});

describe('RTP source rule: an SDP that moves the stream', () => {
  it('a new address drops the latch; the new address latches, the old one is refused', () => {
    const r = negotiated();
    r.accept(CALLER, 40000, 0);
    expect(r.negotiated('198.51.100.9', 41000, 100)).toBe(true);
    expect(r.latched).toBeUndefined();
    expect(r.check(CALLER, 40000, 101)).toBe('refused');
    expect(r.check('198.51.100.9', 41000, 101)).toBe('new');
  });

  it('a new port of the same address drops the latch too', () => {
    const r = negotiated();
    r.accept(CALLER, 40000, 0);
    expect(r.negotiated(CALLER, 40002, 100)).toBe(true);
    expect(r.latched).toBeUndefined();
    expect(r.check(CALLER, 40002, 101)).toBe('new');
  });

  it('the source latched before is refused for RELATCH_AFTER_MS (its late packets), then may latch again (behind NAT the real source can stay)', () => {
    const r = negotiated();
    r.accept(CALLER, 50000, 0);
    r.negotiated(CALLER, 40002, 100);
    expect(r.check(CALLER, 50000, 100 + RELATCH_AFTER_MS - 1)).toBe('refused');
    expect(r.check(CALLER, 50001, 100 + RELATCH_AFTER_MS - 1)).toBe('new'); // only that very source
    expect(r.check(CALLER, 50000, 100 + RELATCH_AFTER_MS)).toBe('new');
    expect(r.accept(CALLER, 50000, 100 + RELATCH_AFTER_MS)).toBe(true);
  });

  it('the same address and port again (a refresh, hold and unhold by direction) keeps the latch', () => {
    const r = negotiated();
    r.accept(CALLER, 50000, 0);
    const latched = r.latched;
    expect(r.negotiated(CALLER, 40000, 100)).toBe(false);
    expect(r.latched).toBe(latched);
    expect(r.check(CALLER, 50000, 101)).toBe('latched');
  });

  it('the first negotiation counts as a move', () => {
    expect(rule().negotiated(CALLER, 40000, 0)).toBe(true);
  });
});

describe('RTP source rule: where packets go, and not before the ACK', () => {
  it('nothing is sent before confirm(), not even to a latched source', () => {
    const r = negotiated();
    expect(r.destination(true)).toBeUndefined();
    r.accept(CALLER, 50000, 0);
    expect(r.destination(true)).toBeUndefined();
    expect(r.confirmed).toBe(false);
  });

  it('after confirm(): the SDP address and port, then the latched source (symmetric RTP), the same object each time', () => {
    const r = negotiated();
    r.confirm();
    expect(r.confirmed).toBe(true);
    expect(r.destination(true)).toEqual({ address: CALLER, port: 40000 });
    expect(r.destination(true)).toBe(r.destination(true)); // the per-tick path allocates nothing
    r.accept(CALLER, 50000, 0);
    expect(r.destination(true)).toBe(r.latched);
  });

  it('nothing when the direction does not let us send, on hold (c=0.0.0.0) or with port 0', () => {
    const r = negotiated();
    r.confirm();
    expect(r.destination(false)).toBeUndefined();
    r.negotiated(undefined, 40000, 0);
    expect(r.destination(true)).toBeUndefined();
    r.negotiated(CALLER, 0, 0);
    expect(r.destination(true)).toBeUndefined();
  });

  it('a moved stream sends to the new SDP address until something latches there', () => {
    const r = negotiated();
    r.confirm();
    r.accept(CALLER, 50000, 0);
    r.negotiated('198.51.100.9', 41000, 100);
    expect(r.destination(true)).toEqual({ address: '198.51.100.9', port: 41000 });
  });
});
