import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../src/log.js';
import { DEFAULT_PACER_SLOTS, FRAME_MS, MAX_BURST_FRAMES, Pacer, type PacedStream } from '../src/telephony/embedded/media/pacer.js';

/** A stream that records what each tick asked of it, and when. */
class Recorder implements PacedStream {
  readonly calls: Array<{ frames: number; skipped: number }> = [];
  readonly at: number[] = [];
  onTick(frames: number, skipped: number, now: number): void {
    this.calls.push({ frames, skipped });
    this.at.push(now);
  }
  get frames(): number {
    return this.calls.reduce((n, c) => n + c.frames + c.skipped, 0);
  }
}

const T0 = 1000;

// The clock is ours; timers are vitest's fake ones. Moving the clock without firing the timer
// is an event-loop stall: the next wake-up comes late.
function harness(slots: number): { pacer: Pacer; stall: (ms: number) => void; run: (ms: number, each?: () => void) => void; now: () => number } {
  let t = T0;
  const pacer = new Pacer(silentLogger, () => t, slots);
  return {
    pacer,
    now: () => t,
    stall: (ms) => {
      t += ms;
    },
    run: (ms, each) => {
      for (let i = 0; i < ms; i++) {
        t += 1;
        vi.advanceTimersByTime(1);
        each?.();
      }
    },
  };
}

/** Frames of a stream's slot phase begun between the start at T0 and `now`. */
function dueFor(pacer: Pacer, s: PacedStream, slots: number, now: number): number {
  const slot = pacer.slotOf(s) ?? 0;
  return Math.floor((now - T0 - (slot * FRAME_MS) / slots) / FRAME_MS);
}

describe.each([1, DEFAULT_PACER_SLOTS])('Pacer with %i slot(s): one loop for every stream, drift-corrected', (slots) => {
  let h: ReturnType<typeof harness>;

  beforeEach(() => {
    vi.useFakeTimers();
    h = harness(slots);
  });
  afterEach(() => {
    h.pacer.stop();
    vi.useRealTimers();
  });

  it('ticks every 20 ms and drives every stream once per frame', () => {
    const a = new Recorder();
    const b = new Recorder();
    h.pacer.add(a);
    h.pacer.add(b);
    h.pacer.start();
    h.run(FRAME_MS * 10 + FRAME_MS / 4); // the second stream may sit in a later slot of the frame
    expect(a.calls.length).toBe(10);
    expect(a.calls.every((c) => c.frames === 1 && c.skipped === 0)).toBe(true);
    expect(b.calls).toEqual(a.calls);
    const occupied = new Set([h.pacer.slotOf(a), h.pacer.slotOf(b)]).size;
    expect(occupied).toBe(Math.min(2, slots));
    expect(h.pacer.ticks).toBe(10 * occupied);
  });

  it('a late tick sends every frame due since the start, so the average stays 20 ms', () => {
    const a = new Recorder();
    h.pacer.add(a);
    h.pacer.start();
    h.run(100); // 5 frames
    h.stall(47); // the loop was blocked 47 ms past the moment the next tick was due
    h.run(20);
    expect(a.calls.map((c) => c.frames)).toEqual([1, 1, 1, 1, 1, 3]);
    h.run(1000);
    expect(a.frames).toBe(Math.floor((h.now() - T0) / FRAME_MS));
    expect(h.pacer.lateTicks).toBe(1);
  });

  it('after a long stall it skips ahead instead of bursting', () => {
    const a = new Recorder();
    h.pacer.add(a);
    h.pacer.start();
    h.run(40);
    h.stall(1000);
    h.run(20);
    expect(a.calls.at(-1)).toEqual({ frames: 1, skipped: 50 });
    expect(a.calls.every((c) => c.frames <= MAX_BURST_FRAMES)).toBe(true);
    h.run(100);
    expect(a.frames).toBe(Math.floor((h.now() - T0) / FRAME_MS));
  });

  it('a throwing stream does not stop the others or the clock', () => {
    const bad: PacedStream = {
      onTick: () => {
        throw new Error('boom');
      },
    };
    const good = new Recorder();
    h.pacer.add(bad);
    h.pacer.add(good);
    h.pacer.start();
    h.run(100);
    expect(good.calls.length).toBe(dueFor(h.pacer, good, slots, h.now()));
    expect(good.calls.length).toBeGreaterThanOrEqual(4);
  });

  it('remove() and stop() end the ticks', () => {
    const a = new Recorder();
    h.pacer.add(a);
    h.pacer.start();
    h.run(40);
    h.pacer.remove(a);
    h.run(40);
    expect(a.calls.length).toBe(2);
    h.pacer.add(a);
    h.pacer.stop();
    h.run(100);
    expect(a.calls.length).toBe(2);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('Pacer phase slots', () => {
  const S = 4;
  let h: ReturnType<typeof harness>;

  beforeEach(() => {
    vi.useFakeTimers();
    h = harness(S);
  });
  afterEach(() => {
    h.pacer.stop();
    vi.useRealTimers();
  });

  it('puts a new stream in the least-loaded slot; removal frees its place', () => {
    const streams = Array.from({ length: 9 }, () => new Recorder());
    for (const s of streams) h.pacer.add(s);
    expect(streams.map((s) => h.pacer.slotOf(s))).toEqual([0, 1, 2, 3, 0, 1, 2, 3, 0]);
    expect(h.pacer.slotSizes).toEqual([3, 2, 2, 2]);
    h.pacer.add(streams[2] as Recorder); // already paced: stays where it is
    expect(h.pacer.slotSizes).toEqual([3, 2, 2, 2]);
    h.pacer.remove(streams[2] as Recorder);
    h.pacer.remove(streams[5] as Recorder);
    expect(h.pacer.slotOf(streams[2] as Recorder)).toBeUndefined();
    expect(h.pacer.slotSizes).toEqual([3, 1, 1, 2]);
    const late1 = new Recorder();
    const late2 = new Recorder();
    h.pacer.add(late1);
    h.pacer.add(late2);
    expect([h.pacer.slotOf(late1), h.pacer.slotOf(late2)]).toEqual([1, 2]);
    expect(h.pacer.size).toBe(9);
  });

  it('serves slot i at i*20/S ms into every frame, one slot per wake-up, with one timer', () => {
    const streams = Array.from({ length: 8 }, () => new Recorder());
    for (const s of streams) h.pacer.add(s);
    h.pacer.start();
    let maxTimers = 0;
    h.run(400, () => {
      maxTimers = Math.max(maxTimers, vi.getTimerCount());
    });
    expect(maxTimers).toBe(1);
    for (const s of streams) {
      const offset = ((h.pacer.slotOf(s) ?? -1) * FRAME_MS) / S;
      expect(s.calls.length).toBe(dueFor(h.pacer, s, S, h.now()));
      // A stable phase: every send at the slot's offset of a frame, exactly 20 ms apart.
      expect(s.at.every((t, k) => t === T0 + offset + (k + 1) * FRAME_MS)).toBe(true);
    }
    // Streams of different slots never share a wake-up.
    const slotsAt = new Map<number, Set<number | undefined>>();
    for (const s of streams) for (const t of s.at) slotsAt.set(t, (slotsAt.get(t) ?? new Set()).add(h.pacer.slotOf(s)));
    expect([...slotsAt.values()].every((set) => set.size === 1)).toBe(true);
    expect(h.pacer.ticks).toBe(streams.reduce((n, s) => n + s.calls.length, 0) / 2);
  });

  it('a late wake-up serves every slot that is due, each with what it is due, and the phases hold', () => {
    const streams = Array.from({ length: S }, () => new Recorder());
    for (const s of streams) h.pacer.add(s);
    h.pacer.start();
    h.run(100);
    h.stall(47); // our clock moves, the timer (due at 105 ms) fires late: at 152 ms
    h.run(5);
    const lateAt = T0 + 152;
    for (const s of streams) {
      expect(s.at.at(-1)).toBe(lateAt);
      expect(s.frames).toBe(dueFor(h.pacer, s, S, lateAt));
    }
    expect(streams.every((s) => (s.calls.at(-1)?.frames ?? 0) >= 2)).toBe(true);
    h.run(200);
    for (const s of streams) {
      const offset = ((h.pacer.slotOf(s) ?? -1) * FRAME_MS) / S;
      expect(s.frames).toBe(dueFor(h.pacer, s, S, h.now()));
      expect((s.at.at(-1) ?? 0) - T0 - offset).toBe(Math.round(((s.at.at(-1) ?? 0) - T0 - offset) / FRAME_MS) * FRAME_MS);
      expect(s.calls.every((c) => c.frames <= MAX_BURST_FRAMES && c.skipped === 0)).toBe(true);
    }
  });

  it('after a long stall every slot skips ahead instead of bursting', () => {
    const streams = Array.from({ length: S }, () => new Recorder());
    for (const s of streams) h.pacer.add(s);
    h.pacer.start();
    h.run(60);
    h.stall(1000);
    h.run(20);
    for (const s of streams) {
      expect(s.calls.some((c) => c.frames === 1 && c.skipped >= 49)).toBe(true);
      expect(s.calls.every((c) => c.frames <= MAX_BURST_FRAMES)).toBe(true);
      expect(s.frames).toBe(dueFor(h.pacer, s, S, h.now()));
    }
  });

  it('a stream that fills an empty slot mid-run starts at its next boundary, without catch-up', () => {
    const first = new Recorder();
    h.pacer.add(first);
    h.pacer.start();
    h.run(333);
    const next = new Recorder();
    h.pacer.add(next);
    expect(h.pacer.slotOf(next)).toBe(1);
    h.run(100);
    expect(next.calls[0]).toEqual({ frames: 1, skipped: 0 });
    expect(next.calls.every((c) => c.frames === 1)).toBe(true);
    expect(next.at[0]).toBe(T0 + FRAME_MS / S + 17 * FRAME_MS); // first slot-1 boundary after 333 ms
    expect(first.frames).toBe(dueFor(h.pacer, first, S, h.now()));
  });

  it('arms no timer while every slot is empty', () => {
    h.pacer.start();
    expect(vi.getTimerCount()).toBe(0);
    const a = new Recorder();
    h.pacer.add(a);
    expect(vi.getTimerCount()).toBe(1);
    h.run(60);
    h.pacer.remove(a);
    h.run(40);
    expect(vi.getTimerCount()).toBe(0);
    expect(a.calls.length).toBe(3);
  });

  it('rejects a slot count outside 1..20', () => {
    expect(() => new Pacer(silentLogger, () => 0, 0)).toThrow(RangeError);
    expect(() => new Pacer(silentLogger, () => 0, 21)).toThrow(RangeError);
  });
});

describe('Pacer with a precise sleep (media worker threads)', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('arms its timer a millisecond early, sleeps the rest, and serves each slot exactly on its boundary', () => {
    let t = T0;
    const slept: number[] = [];
    // The sleep moves our clock: the thread is blocked that long.
    const pacer = new Pacer(silentLogger, () => t, 1, (ms) => {
      slept.push(ms);
      t += ms;
    });
    const a = new Recorder();
    pacer.add(a);
    pacer.start();
    // Half-millisecond steps: the timer fires on a whole-ms boundary before the frame's.
    for (let i = 0; i < 200; i++) {
      t += 0.5;
      vi.advanceTimersByTime(0.5);
    }
    pacer.stop();
    expect(a.calls.length).toBeGreaterThanOrEqual(4);
    expect(a.calls.every((c) => c.frames === 1 && c.skipped === 0)).toBe(true);
    // Every burst ran on its 20 ms boundary, none late by the timer's resolution.
    a.at.forEach((at, i) => expect(at).toBeCloseTo(T0 + (i + 1) * FRAME_MS, 6));
    expect(slept.length).toBe(a.calls.length);
    expect(slept.every((ms) => ms > 0 && ms <= 2)).toBe(true);
  });

  it('never sleeps when the timer fires late (a stall): it catches up at once', () => {
    let t = T0;
    const slept: number[] = [];
    const pacer = new Pacer(silentLogger, () => t, 1, (ms) => slept.push(ms));
    const a = new Recorder();
    pacer.add(a);
    pacer.start();
    t += 45; // the loop was blocked past two boundaries
    vi.advanceTimersByTime(45);
    pacer.stop();
    expect(a.calls).toEqual([{ frames: 2, skipped: 0 }]);
    expect(slept).toEqual([]);
  });
});
