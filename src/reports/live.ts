import { z } from 'zod';
import { OUTCOMES, type Outcome } from '../domain/outcome.js';
import { DIALOGUE_STEPS, type DialogueStep } from '../domain/dialogue/steps.js';
import { SEGMENT_MODES, type SegmentMode } from './segment.js';

/**
 * Call events for real-time views (the /v1/calls/stream server-sent events) and the current step
 * of each call of this node. Events carry step names, outcomes and amounts: never card data,
 * references or caller numbers.
 */
export type CallEvent =
  | { type: 'started'; id: string; at: string; profile: string; mode: SegmentMode; node: string }
  | { type: 'step'; id: string; at: string; step: DialogueStep }
  | {
      type: 'ended';
      id: string;
      at: string;
      outcome: Outcome;
      amount?: number | undefined;
      currency: string;
      brand?: string | undefined;
      durationMs: number;
    };

interface LiveStep {
  step: DialogueStep;
  since: string;
}

/** Most listeners (stream clients) at once; more are refused so a leak cannot grow unbounded. */
const MAX_LISTENERS = 200;
/** Most calls whose step is remembered (a crashed node's calls never send `ended`). */
const MAX_TRACKED = 20_000;

const word = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/);
const iso = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/);
const eventSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('started'), id: word, at: iso, profile: word, mode: z.enum(SEGMENT_MODES), node: word }),
  z.strictObject({ type: z.literal('step'), id: word, at: iso, step: z.enum(DIALOGUE_STEPS) }),
  z.strictObject({
    type: z.literal('ended'),
    id: word,
    at: iso,
    outcome: z.enum(OUTCOMES),
    amount: z.number().int().min(0).optional(),
    currency: z.string().regex(/^[A-Z]{3}$/),
    brand: z.string().regex(/^[a-z]{1,16}$/).optional(),
    durationMs: z.number().min(0),
  }),
]);

/** A call event from elsewhere (another node, over Redis), or undefined when it is not one. */
export function parseCallEvent(v: unknown): CallEvent | undefined {
  const r = eventSchema.safeParse(v);
  return r.success ? (r.data as CallEvent) : undefined;
}

export class CallEvents {
  readonly #listeners = new Set<(e: CallEvent) => void>();
  readonly #steps = new Map<string, LiveStep>();
  #relay: ((e: CallEvent) => void) | undefined;

  /** Also hands every event of this node to `fn` (the Redis relay to the other nodes). */
  relayTo(fn: ((e: CallEvent) => void) | undefined): void {
    this.#relay = fn;
  }

  /** Adds a listener; returns the function that removes it, or undefined when full. */
  subscribe(fn: (e: CallEvent) => void): (() => void) | undefined {
    if (this.#listeners.size >= MAX_LISTENERS) return undefined;
    this.#listeners.add(fn);
    return () => void this.#listeners.delete(fn);
  }

  get listeners(): number {
    return this.#listeners.size;
  }

  /** An event of this node's calls. */
  emit(e: CallEvent): void {
    this.deliver(e);
    try {
      this.#relay?.(e);
    } catch {
      // The relay is best effort: the local view stays right.
    }
  }

  /** An event to show (this node's, or another node's from the relay). */
  deliver(e: CallEvent): void {
    if (e.type === 'step') {
      this.#steps.delete(e.id);
      this.#steps.set(e.id, { step: e.step, since: e.at });
      if (this.#steps.size > MAX_TRACKED) this.#steps.delete(this.#steps.keys().next().value as string);
    } else if (e.type === 'ended') this.#steps.delete(e.id);
    for (const fn of this.#listeners) {
      try {
        fn(e);
      } catch {
        // A failing listener (a closed stream) must not stop the others.
      }
    }
  }

  /** The current step of a call (this node's, and other nodes' with the Redis relay). */
  stepOf(id: string): LiveStep | undefined {
    return this.#steps.get(id);
  }
}
