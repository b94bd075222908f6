import { performance } from 'node:perf_hooks';
import type { Logger } from '../../../log.js';
import { describeError } from '../../../errors.js';

export const FRAME_MS = 20;
/** Beyond this many late frames (event-loop stall) the streams skip ahead instead of bursting. */
export const MAX_BURST_FRAMES = 5;
/**
 * Phase slots per frame (slot i is served i*20/S ms into each frame). Chosen by the SIPp load
 * bench (docs/benchmarks.md): 4 slots of 5 ms cut the burst a stream waits behind to a quarter.
 */
export const DEFAULT_PACER_SLOTS = 4;
const MAX_PACER_SLOTS = 20;

/**
 * Blocks the thread for `ms` (sub-millisecond precision). Node's timers have a resolution of a
 * millisecond, and each wake-up lands anywhere in that millisecond, which shows as up to a
 * millisecond of jitter in every stream's gaps. A media worker thread has nothing else to do in
 * the last millisecond before a burst, so it sleeps it precisely (Atomics.wait on a private
 * word) instead; the main thread never does (SIP would wait).
 */
type PreciseSleep = (ms: number) => void;

/** The longest the pacer sleeps with a PreciseSleep (more means the timer fired far too early). */
const MAX_PRECISE_SLEEP_MS = 2;

/** A PreciseSleep for worker threads: Atomics.wait on a word nobody notifies. */
export function atomicsSleep(): PreciseSleep {
  const word = new Int32Array(new SharedArrayBuffer(4));
  return (ms) => {
    Atomics.wait(word, 0, 0, ms);
  };
}

/** A stream driven by the pacer. */
export interface PacedStream {
  /**
   * Called once per tick. `frames` frames are due now (normally 1; more when the tick was late);
   * `skipped` frames were dropped after a stall (advance the RTP clock, send nothing for them).
   */
  onTick(frames: number, skipped: number, now: number): void;
}

/** One phase slot: its streams and the frames it has served since the loop started. */
interface Slot {
  readonly streams: Set<PacedStream>;
  /** Offset of this slot inside each frame, ms. */
  readonly offset: number;
  framesDone: number;
}

/**
 * The one paced loop for every RTP stream of the process. A single timer wakes up at the phase
 * slots of a monotonic 20 ms frame clock: the streams are spread over S slots (least-loaded
 * first, a stream keeps its slot for life), so one wake-up sends about 1/S of the packets and a
 * stream's send time only moves with its own slot's burst. Each slot computes how many of its
 * frames are due since the loop started, so a late wake-up is caught up and the average gap
 * stays 20 ms; after a long stall it skips ahead instead of bursting.
 */
export class Pacer {
  readonly #slots: Slot[];
  readonly #slotOf = new Map<PacedStream, Slot>();
  readonly #logger: Logger;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  /** Clock time the pending timer was set for (Infinity when none). */
  #wakeAt = Number.POSITIVE_INFINITY;
  #t0 = 0;
  #running = false;
  /** Slot bursts that were at least one frame late (observability for the bench). */
  lateTicks = 0;
  /** Slot bursts served (one per occupied slot per frame). */
  ticks = 0;

  /**
   * With `sleep` set, the pacer wakes its timer up to a millisecond early and sleeps the rest
   * with it; see PreciseSleep.
   */
  readonly #sleep: PreciseSleep | undefined;

  /** `now` is a monotonic clock in ms (injectable for tests); `slots` phase slots per frame. */
  constructor(logger: Logger, now: () => number = () => performance.now(), slots: number = DEFAULT_PACER_SLOTS, sleep?: PreciseSleep) {
    if (!(Number.isInteger(slots) && slots >= 1 && slots <= MAX_PACER_SLOTS)) throw new RangeError(`pacer slots must be 1..${MAX_PACER_SLOTS}`);
    this.#logger = logger;
    this.#now = now;
    this.#sleep = sleep;
    this.#slots = Array.from({ length: slots }, (_, i) => ({ streams: new Set<PacedStream>(), offset: (i * FRAME_MS) / slots, framesDone: 0 }));
  }

  get size(): number {
    return this.#slotOf.size;
  }

  /** Streams per slot, in slot order (for tests and the bench). */
  get slotSizes(): number[] {
    return this.#slots.map((s) => s.streams.size);
  }

  /** The slot index of a stream, undefined when it is not paced. */
  slotOf(s: PacedStream): number | undefined {
    const slot = this.#slotOf.get(s);
    return slot === undefined ? undefined : this.#slots.indexOf(slot);
  }

  /** Puts the stream in the least-loaded slot (the lowest index on a tie); it keeps that phase. */
  add(s: PacedStream): void {
    if (this.#slotOf.has(s)) return;
    let best = this.#slots[0] as Slot;
    for (const slot of this.#slots) if (slot.streams.size < best.streams.size) best = slot;
    if (best.streams.size === 0 && this.#running) {
      // An empty slot was not kept up to date: start it at its next boundary, no catch-up burst.
      best.framesDone = this.#dueFrames(best, this.#now());
    }
    best.streams.add(s);
    this.#slotOf.set(s, best);
    if (this.#running) this.#schedule();
  }

  remove(s: PacedStream): void {
    const slot = this.#slotOf.get(s);
    if (slot === undefined) return;
    slot.streams.delete(s);
    this.#slotOf.delete(s);
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#t0 = this.#now();
    for (const slot of this.#slots) slot.framesDone = 0;
    this.#schedule();
  }

  stop(): void {
    this.#running = false;
    this.#clearTimer();
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#wakeAt = Number.POSITIVE_INFINITY;
  }

  /** Whole frames of this slot's phase that have begun since the loop started. */
  #dueFrames(slot: Slot, now: number): number {
    return Math.floor((now - this.#t0 - slot.offset) / FRAME_MS);
  }

  /** Arms the one timer for the earliest next boundary of an occupied slot; none when all are empty. */
  #schedule(): void {
    let next = Number.POSITIVE_INFINITY;
    for (const slot of this.#slots) {
      if (slot.streams.size === 0) continue;
      const at = this.#t0 + slot.offset + (slot.framesDone + 1) * FRAME_MS;
      if (at < next) next = at;
    }
    if (next === this.#wakeAt && this.#timer !== undefined) return;
    this.#clearTimer();
    if (next === Number.POSITIVE_INFINITY) return;
    // Rounded up: waking a fraction of a millisecond early would only cost an empty wake-up.
    // With a precise sleep: rounded down, up to a millisecond early, and the rest slept in #tick.
    const delay = this.#sleep === undefined ? Math.max(1, Math.ceil(next - this.#now())) : Math.max(0, Math.floor(next - this.#now()) - 1);
    this.#wakeAt = next;
    this.#timer = setTimeout(this.#tick, delay);
    this.#timer.unref();
  }

  readonly #tick = (): void => {
    const wakeAt = this.#wakeAt;
    this.#timer = undefined;
    this.#wakeAt = Number.POSITIVE_INFINITY;
    if (!this.#running) return;
    let now = this.#now();
    if (this.#sleep !== undefined && wakeAt - now > 0 && wakeAt - now <= MAX_PRECISE_SLEEP_MS) {
      this.#sleep(wakeAt - now);
      now = this.#now();
    }
    // A wake-up serves every slot that is due: normally one, several when the wake-up was late.
    for (const slot of this.#slots) {
      if (slot.streams.size === 0) continue;
      const due = this.#dueFrames(slot, now);
      let frames = due - slot.framesDone;
      if (frames <= 0) continue;
      this.ticks++;
      if (frames > 1) this.lateTicks++;
      let skipped = 0;
      if (frames > MAX_BURST_FRAMES) {
        skipped = frames - 1;
        frames = 1;
      }
      slot.framesDone = due;
      for (const s of slot.streams) {
        try {
          s.onTick(frames, skipped, now);
        } catch (e) {
          // One broken stream must not stop the clock of every other call.
          this.#logger.error({ err: describeError(e) }, 'media stream tick failed');
        }
      }
    }
    if (this.#running) this.#schedule();
  };
}
