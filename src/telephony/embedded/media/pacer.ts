import { performance } from 'node:perf_hooks';
import type { Logger } from '../../../log.js';
import { describeError } from '../../../errors.js';

export const FRAME_MS = 20;
/** Beyond this many late frames (event-loop stall) the streams skip ahead instead of bursting. */
export const MAX_BURST_FRAMES = 5;

/** A stream driven by the pacer. */
export interface PacedStream {
  /**
   * Called once per tick. `frames` frames are due now (normally 1; more when the tick was late);
   * `skipped` frames were dropped after a stall (advance the RTP clock, send nothing for them).
   */
  onTick(frames: number, skipped: number, now: number): void;
}

/**
 * The one paced loop for every RTP stream of the process. A single timer wakes up at each 20 ms
 * boundary of a monotonic clock; each tick computes how many frames are due since the loop
 * started, so a late wake-up is caught up on the next tick and the average gap stays 20 ms.
 */
export class Pacer {
  readonly #streams = new Set<PacedStream>();
  readonly #logger: Logger;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #t0 = 0;
  #framesDone = 0;
  #running = false;
  /** Ticks that were at least one frame late (observability for the bench). */
  lateTicks = 0;
  ticks = 0;

  /** `now` is a monotonic clock in ms (injectable for tests). */
  constructor(logger: Logger, now: () => number = () => performance.now()) {
    this.#logger = logger;
    this.#now = now;
  }

  get size(): number {
    return this.#streams.size;
  }

  add(s: PacedStream): void {
    this.#streams.add(s);
  }

  remove(s: PacedStream): void {
    this.#streams.delete(s);
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#t0 = this.#now();
    this.#framesDone = 0;
    this.#schedule();
  }

  stop(): void {
    this.#running = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    const next = this.#t0 + (this.#framesDone + 1) * FRAME_MS;
    // Rounded up: waking a fraction of a millisecond early would only cost an empty tick.
    const delay = Math.max(1, Math.ceil(next - this.#now()));
    this.#timer = setTimeout(this.#tick, delay);
    this.#timer.unref();
  }

  readonly #tick = (): void => {
    if (!this.#running) return;
    const now = this.#now();
    const due = Math.floor((now - this.#t0) / FRAME_MS);
    let frames = due - this.#framesDone;
    if (frames > 0) {
      this.ticks++;
      if (frames > 1) this.lateTicks++;
      let skipped = 0;
      if (frames > MAX_BURST_FRAMES) {
        skipped = frames - 1;
        frames = 1;
      }
      this.#framesDone = due;
      for (const s of this.#streams) {
        try {
          s.onTick(frames, skipped, now);
        } catch (e) {
          // One broken stream must not stop the clock of every other call.
          this.#logger.error({ err: describeError(e) }, 'media stream tick failed');
        }
      }
    }
    this.#schedule();
  };
}
