import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { bracketUri, isReferEvent, ReferTracker, sipfragStatus, subscriptionTerminated } from '../src/telephony/refer-tracker.js';
import type { ReferResult } from '../src/telephony/types.js';

/** The tracker both backends feed; no sockets: the test plays the REFER's answer and the NOTIFYs. */

/** The result once settled, or 'pending' (the promise resolves in a microtask). */
async function outcome(t: ReferTracker): Promise<ReferResult | 'pending'> {
  return Promise.race([t.result, new Promise<'pending'>((resolve) => queueMicrotask(() => queueMicrotask(() => resolve('pending'))))]);
}

describe('ReferTracker', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('202 then a final NOTIFY 200: accepted', async () => {
    const t = new ReferTracker({ timeoutMs: 15_000 });
    t.referAnswered(202);
    t.notify('SIP/2.0 100 Trying\r\n', 'active;expires=60');
    expect(await outcome(t)).toBe('pending');
    t.notify('SIP/2.0 200 OK\r\n', 'terminated;reason=noresource');
    expect(await t.result).toEqual({ ok: true, referStatus: 202, finalStatus: 200, detail: 'transfer accepted' });
    expect(t.settled).toBe(true);
  });

  it('1xx then a failing final status (4xx, 6xx): failed, with the final status', async () => {
    for (const [frag, status] of [['SIP/2.0 486 Busy Here', 486], ['SIP/2.0 603 Decline', 603]] as const) {
      const t = new ReferTracker({ timeoutMs: 15_000 });
      t.referAnswered(202);
      t.notify('SIP/2.0 180 Ringing', 'active');
      t.notify(frag, 'terminated');
      expect(await t.result).toEqual({ ok: false, referStatus: 202, finalStatus: status, detail: `transfer failed: final NOTIFY ${status}` });
    }
  });

  it('a final NOTIFY that overtakes the 202 settles at once; the late 202 changes nothing', async () => {
    const t = new ReferTracker({ timeoutMs: 15_000 });
    t.notify('SIP/2.0 486 Busy Here', 'terminated');
    t.referAnswered(202);
    expect(await t.result).toEqual({ ok: false, referStatus: 202, finalStatus: 486, detail: 'transfer failed: final NOTIFY 486' });
  });

  it('the REFER refused: its status, no final status', async () => {
    const t = new ReferTracker({ timeoutMs: 15_000 });
    t.referAnswered(100);
    expect(await outcome(t)).toBe('pending');
    t.referAnswered(403);
    expect(await t.result).toEqual({ ok: false, referStatus: 403, detail: 'REFER refused with 403' });
    t.notify('SIP/2.0 200 OK', 'terminated');
    expect(await t.result).toMatchObject({ ok: false, referStatus: 403 });
  });

  it('the REFER not sent or never answered: the status and detail the backend gives', async () => {
    const t = new ReferTracker({ timeoutMs: 15_000 });
    t.referFailed(408, 'REFER timed out');
    expect(await t.result).toEqual({ ok: false, referStatus: 408, detail: 'REFER timed out' });
  });

  it('NOTIFYs without a final status before the timeout: 408, saying what was missing', async () => {
    const t = new ReferTracker({ timeoutMs: 3_000 });
    t.referAnswered(202);
    t.notify('SIP/2.0 100 Trying', 'active;expires=60');
    vi.advanceTimersByTime(2_999);
    expect(await outcome(t)).toBe('pending');
    vi.advanceTimersByTime(1);
    expect(await t.result).toEqual({ ok: false, referStatus: 408, detail: 'no final NOTIFY within 3000 ms' });

    const unanswered = new ReferTracker({ timeoutMs: 500 });
    vi.advanceTimersByTime(500);
    expect(await unanswered.result).toEqual({ ok: false, referStatus: 408, detail: 'no answer to REFER within 500 ms' });
  });

  it('a malformed sipfrag is no status: the subscription state or the timeout decides', async () => {
    const t = new ReferTracker({ timeoutMs: 1_000 });
    t.referAnswered(202);
    for (const body of ['garbage', 'SIP/2.0 2000 OK', 'SIP/1.0 200 OK', 'HTTP/1.1 200 OK', '', undefined]) t.notify(body, 'active');
    expect(await outcome(t)).toBe('pending');
    vi.advanceTimersByTime(1_000);
    expect(await t.result).toMatchObject({ ok: false, referStatus: 408 });
  });

  it('subscription-state terminated without a final status: failed', async () => {
    const t = new ReferTracker({ timeoutMs: 15_000 });
    t.referAnswered(202);
    t.notify('SIP/2.0 100 Trying', 'terminated;reason=timeout');
    expect(await t.result).toEqual({ ok: false, referStatus: 202, detail: 'subscription terminated without a final status' });
  });

  it('the call ends first: failed, 481 while the REFER was unanswered', async () => {
    const before = new ReferTracker({ timeoutMs: 15_000 });
    before.callEnded();
    expect(await before.result).toEqual({ ok: false, referStatus: 481, detail: 'call ended before the final NOTIFY' });
    const after = new ReferTracker({ timeoutMs: 15_000 });
    after.referAnswered(202);
    after.callEnded();
    expect(await after.result).toMatchObject({ ok: false, referStatus: 202 });
  });

  it('settles once: onSettled is called once, later events and the timer change nothing', async () => {
    const seen: ReferResult[] = [];
    const t = new ReferTracker({ timeoutMs: 1_000, onSettled: (r) => seen.push(r) });
    t.referAnswered(202);
    t.notify('SIP/2.0 200 OK', 'terminated');
    t.notify('SIP/2.0 503 Service Unavailable', 'terminated');
    t.callEnded();
    vi.advanceTimersByTime(5_000);
    expect(seen).toEqual([{ ok: true, referStatus: 202, finalStatus: 200, detail: 'transfer accepted' }]);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('NOTIFY and Refer-To text', () => {
  it('sipfrag status line', () => {
    expect(sipfragStatus('SIP/2.0 200 OK\r\nContent-Length: 0\r\n')).toBe(200);
    expect(sipfragStatus('  SIP/2.0 100 Trying')).toBe(100);
    expect(sipfragStatus('SIP/2.0\t603 Declined')).toBe(603);
    expect(sipfragStatus('SIP/2.0 099 Odd')).toBeUndefined();
    expect(sipfragStatus('SIP/2.0 700 Odd')).toBeUndefined();
    expect(sipfragStatus('SIP/2.0 20 OK')).toBeUndefined();
    expect(sipfragStatus(`${' '.repeat(300)}SIP/2.0 200 OK`)).toBeUndefined();
  });

  it('subscription state and event package', () => {
    expect(subscriptionTerminated('Terminated;reason=noresource')).toBe(true);
    expect(subscriptionTerminated('terminatedx')).toBe(false);
    expect(subscriptionTerminated('pending')).toBe(false);
    expect(isReferEvent('refer')).toBe(true);
    expect(isReferEvent(' REFER ;id=93809824')).toBe(true);
    expect(isReferEvent('refer-x')).toBe(false);
    expect(isReferEvent('dialog')).toBe(false);
    expect(isReferEvent(undefined)).toBe(false);
  });

  it('Refer-To brackets a bare URI only', () => {
    expect(bracketUri(' sip:a@b?User-to-User=00%3Bencoding%3Dhex ')).toBe('<sip:a@b?User-to-User=00%3Bencoding%3Dhex>');
    expect(bracketUri('<sip:a@b>')).toBe('<sip:a@b>');
    expect(bracketUri('"Queue" <sip:q@b>')).toBe('"Queue" <sip:q@b>');
  });
});
