import { performance } from 'node:perf_hooks';
import { FRAME_MS, MAX_BURST_FRAMES, Pacer, type PacedStream } from '../../src/telephony/embedded/media/pacer.js';

/**
 * EXPERIMENT (bench only, `--pacer-slots S`): a prototype of a staggered pacer to measure what
 * it would change. Still one timer for the whole process, but the streams are spread over S
 * phase slots and slot i is served at offset i*20/S ms of each frame, so one wake-up sends 1/S
 * of the packets: a stream's send time then moves with the duration of its slot's burst (about
 * 1/S of the whole tick) instead of the whole tick's, and SIP gets the event loop in between.
 * Same catch-up and skip-ahead rules as src/telephony/embedded/media/pacer.ts.
 */
export class SlottedPacer {
  readonly #slots: Set<PacedStream>[];
  readonly #slotOf = new Map<PacedStream, number>();
  readonly #done: number[];
  readonly #offset: number[];
  #t0 = 0;
  #timer: NodeJS.Timeout | undefined;
  #running = false;

  constructor(slots: number) {
    this.#slots = Array.from({ length: slots }, () => new Set<PacedStream>());
    this.#done = new Array<number>(slots).fill(0);
    this.#offset = Array.from({ length: slots }, (_, i) => (i * FRAME_MS) / slots);
  }

  add(s: PacedStream): void {
    if (this.#slotOf.has(s)) return;
    let best = 0;
    for (let i = 1; i < this.#slots.length; i++) if ((this.#slots[i] as Set<PacedStream>).size < (this.#slots[best] as Set<PacedStream>).size) best = i;
    this.#slots[best]?.add(s);
    this.#slotOf.set(s, best);
  }

  remove(s: PacedStream): void {
    const i = this.#slotOf.get(s);
    if (i === undefined) return;
    this.#slots[i]?.delete(s);
    this.#slotOf.delete(s);
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#t0 = performance.now();
    this.#done.fill(0);
    this.#schedule();
  }

  stop(): void {
    this.#running = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    let next = Number.POSITIVE_INFINITY;
    for (let i = 0; i < this.#slots.length; i++) next = Math.min(next, this.#t0 + (this.#offset[i] as number) + ((this.#done[i] as number) + 1) * FRAME_MS);
    this.#timer = setTimeout(this.#tick, Math.max(1, Math.ceil(next - performance.now())));
    this.#timer.unref();
  }

  readonly #tick = (): void => {
    if (!this.#running) return;
    const now = performance.now();
    for (let i = 0; i < this.#slots.length; i++) {
      const due = Math.floor((now - this.#t0 - (this.#offset[i] as number)) / FRAME_MS);
      let frames = due - (this.#done[i] as number);
      if (frames <= 0) continue;
      let skipped = 0;
      if (frames > MAX_BURST_FRAMES) {
        skipped = frames - 1;
        frames = 1;
      }
      this.#done[i] = due;
      for (const s of this.#slots[i] as Set<PacedStream>) {
        try {
          s.onTick(frames, skipped, now);
        } catch {
          // as in Pacer: one stream's failure must not stop the others
        }
      }
    }
    this.#schedule();
  };
}

/** Routes every Pacer of this process to one SlottedPacer (the engine's own loop then idles). */
export function installSlottedPacer(slots: number): SlottedPacer {
  const slotted = new SlottedPacer(slots);
  const proto = Pacer.prototype as unknown as { add: (s: PacedStream) => void; remove: (s: PacedStream) => void };
  proto.add = (s) => slotted.add(s);
  proto.remove = (s) => slotted.remove(s);
  slotted.start();
  return slotted;
}
