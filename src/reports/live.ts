import type { CallMode, Outcome } from '../domain/outcome.js';
import type { DialogueStep } from '../domain/dialogue/steps.js';

/**
 * Call events for real-time views (the /v1/calls/stream server-sent events) and the current step
 * of each call of this node. Events carry step names, outcomes and amounts: never card data,
 * references or caller numbers.
 */
export type CallEvent =
  | { type: 'started'; id: string; at: string; profile: string; mode: CallMode; node: string }
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

export interface LiveStep {
  step: DialogueStep;
  since: string;
}

/** Most listeners (stream clients) at once; more are refused so a leak cannot grow unbounded. */
export const MAX_LISTENERS = 200;

export class CallEvents {
  readonly #listeners = new Set<(e: CallEvent) => void>();
  readonly #steps = new Map<string, LiveStep>();

  /** Adds a listener; returns the function that removes it, or undefined when full. */
  subscribe(fn: (e: CallEvent) => void): (() => void) | undefined {
    if (this.#listeners.size >= MAX_LISTENERS) return undefined;
    this.#listeners.add(fn);
    return () => void this.#listeners.delete(fn);
  }

  get listeners(): number {
    return this.#listeners.size;
  }

  emit(e: CallEvent): void {
    if (e.type === 'step') this.#steps.set(e.id, { step: e.step, since: e.at });
    else if (e.type === 'ended') this.#steps.delete(e.id);
    for (const fn of this.#listeners) {
      try {
        fn(e);
      } catch {
        // A failing listener (a closed stream) must not stop the others.
      }
    }
  }

  /** The current step of a call of this node, if it has reached one. */
  stepOf(id: string): LiveStep | undefined {
    return this.#steps.get(id);
  }
}
