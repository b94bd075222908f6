import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../src/log.js';
import { FRAME_MS, MAX_BURST_FRAMES, Pacer, type PacedStream } from '../src/telephony/embedded/media/pacer.js';

/** A stream that records what each tick asked of it. */
class Recorder implements PacedStream {
  readonly calls: Array<{ frames: number; skipped: number }> = [];
  onTick(frames: number, skipped: number): void {
    this.calls.push({ frames, skipped });
  }
  get frames(): number {
    return this.calls.reduce((n, c) => n + c.frames + c.skipped, 0);
  }
}

describe('Pacer (one loop for every stream, drift-corrected)', () => {
  let t = 0;
  let pacer: Pacer;
  // The clock is ours; timers are vitest's fake ones. Moving the clock without firing the timer
  // is an event-loop stall: the next tick comes late.
  const stall = (ms: number): void => {
    t += ms;
  };
  const run = (ms: number): void => {
    for (let i = 0; i < ms; i++) {
      t += 1;
      vi.advanceTimersByTime(1);
    }
  };

  beforeEach(() => {
    vi.useFakeTimers();
    t = 1000;
    pacer = new Pacer(silentLogger, () => t);
  });
  afterEach(() => {
    pacer.stop();
    vi.useRealTimers();
  });

  it('ticks every 20 ms and drives every stream from the same tick', () => {
    const a = new Recorder();
    const b = new Recorder();
    pacer.add(a);
    pacer.add(b);
    pacer.start();
    run(200);
    expect(a.calls.length).toBe(10);
    expect(a.calls.every((c) => c.frames === 1 && c.skipped === 0)).toBe(true);
    expect(b.calls).toEqual(a.calls);
    expect(pacer.ticks).toBe(10);
  });

  it('a late tick sends every frame due since the start, so the average stays 20 ms', () => {
    const a = new Recorder();
    pacer.add(a);
    pacer.start();
    run(100); // 5 frames
    stall(47); // the loop was blocked 47 ms past the moment the next tick was due
    run(20);
    expect(a.calls.map((c) => c.frames)).toEqual([1, 1, 1, 1, 1, 3]);
    run(1000);
    expect(a.frames).toBe(Math.floor((t - 1000) / FRAME_MS));
    expect(pacer.lateTicks).toBe(1);
  });

  it('after a long stall it skips ahead instead of bursting', () => {
    const a = new Recorder();
    pacer.add(a);
    pacer.start();
    run(40);
    stall(1000);
    run(20);
    expect(a.calls.at(-1)).toEqual({ frames: 1, skipped: 50 });
    expect(a.calls.every((c) => c.frames <= MAX_BURST_FRAMES)).toBe(true);
    run(100);
    expect(a.frames).toBe(Math.floor((t - 1000) / FRAME_MS));
  });

  it('a throwing stream does not stop the others or the clock', () => {
    const bad: PacedStream = {
      onTick: () => {
        throw new Error('boom');
      },
    };
    const good = new Recorder();
    pacer.add(bad);
    pacer.add(good);
    pacer.start();
    run(100);
    expect(good.calls.length).toBe(5);
  });

  it('remove() and stop() end the ticks', () => {
    const a = new Recorder();
    pacer.add(a);
    pacer.start();
    run(40);
    pacer.remove(a);
    run(40);
    expect(a.calls.length).toBe(2);
    pacer.add(a);
    pacer.stop();
    run(100);
    expect(a.calls.length).toBe(2);
    expect(vi.getTimerCount()).toBe(0);
  });
});
