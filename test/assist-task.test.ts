import { describe, expect, it, vi } from 'vitest';
import { CaptureTask, type CaptureChargeFn } from '../src/assist/capture-task.js';
import type { CaptureInput } from '../src/domain/assist/capture.js';
import type { CardData } from '../src/domain/sensitive.js';
import type { ChargeOutcome } from '../src/domain/charge.js';
import { silentLogger } from '../src/log.js';
import { FakeEdgeCall } from './support/fake-edge.js';

const INPUT: CaptureInput = {
  settings: { allowedBrands: ['visa'], securityCode: 'required', maxKeysPerField: 64 },
  now: { year: 2026, month: 1 },
  amount: 1000,
  currency: 'EUR',
};

function task(call: FakeEdgeCall, charge: CaptureChargeFn, timeoutMs = 60_000): CaptureTask {
  return new CaptureTask({ id: 'task-id-0123456789abcdef', call, input: INPUT, dtmfSecurity: 'random', timeoutMs, charge, log: silentLogger });
}

describe('CaptureTask lifecycle', () => {
  it('kill() is idempotent, removes its listeners and its timer, and wipes what the machine holds', async () => {
    vi.useFakeTimers();
    try {
      const call = new FakeEdgeCall('edge-session-task-0001');
      const t = task(call, () => Promise.reject(new Error('not expected')));
      const done = t.run();
      await t.started;
      expect(call.ops).toEqual(['block:random']);
      expect(call.listenerCount('digit')).toBe(1);
      expect(call.listenerCount('ended')).toBe(1);
      expect(vi.getTimerCount()).toBe(1);
      call.press('42424242');
      expect(t.view()?.pan.digits).toBe(8);
      t.kill();
      t.kill();
      expect(call.listenerCount('digit')).toBe(0);
      expect(call.listenerCount('ended')).toBe(0);
      expect(vi.getTimerCount()).toBe(0);
      call.press('4242');
      expect(t.view()?.pan.digits).toBe(0);
      expect(() => t.cancel()).toThrow(/not collecting|charge|ended/);
      let settled = false;
      void done.then(() => (settled = true));
      await vi.runAllTimersAsync();
      expect(settled).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a charge in flight when killed keeps its card copy until its result, then it is wiped', async () => {
    let card: CardData | undefined;
    let answer: ((o: ChargeOutcome) => void) | undefined;
    const call = new FakeEdgeCall('edge-session-task-0002');
    const t = task(call, (req) => {
      card = req.card;
      return new Promise((r) => (answer = r));
    });
    void t.run();
    await t.started;
    call.press('4242424242424242#1230737');
    expect(t.view()?.phase).toBe('ready');
    t.charge();
    expect(card?.pan.wiped).toBe(false);
    t.kill();
    // The PSP layer may still need it for a resend with the same key.
    expect(card?.pan.wiped).toBe(false);
    answer?.({ status: 'approved', transactionId: 'pi_1' });
    await vi.waitFor(() => expect(card?.pan.wiped).toBe(true));
    expect(card?.expiry.wiped && card?.securityCode?.wiped).toBe(true);
  });

  it('a call that ends while its keys are being blocked never starts a capture', async () => {
    const call = new FakeEdgeCall('edge-session-task-0003');
    const t = task(call, () => Promise.reject(new Error('not expected')));
    const run = t.run();
    call.end();
    await expect(run).rejects.toMatchObject({ code: 'ERR_ASSIST_CALL_ENDED' });
    await expect(t.started).rejects.toMatchObject({ code: 'ERR_ASSIST_CALL_ENDED' });
    expect(call.listenerCount('digit')).toBe(0);
  });

  it('the timeout ends the capture (cancelled, timeout) and unblocks the keys', async () => {
    vi.useFakeTimers();
    try {
      const call = new FakeEdgeCall('edge-session-task-0004');
      const t = task(call, () => Promise.reject(new Error('not expected')), 5_000);
      const done = t.run();
      await t.started;
      call.press('4242');
      await vi.advanceTimersByTimeAsync(5_000);
      await expect(done).resolves.toMatchObject({ outcome: 'cancelled', reason: 'timeout' });
      expect(call.ops.at(-1)).toBe('unblock');
      expect(vi.getTimerCount()).toBe(0);
      expect(call.listenerCount('digit')).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
