import type { DeclineClass, PaymentResult } from '../domain/outcome.js';
import type { DialogueProgress, DialogueStep } from '../domain/dialogue/steps.js';
import type { ChargeOutcome } from '../domain/charge.js';
import type { CallEvents } from './live.js';
import type { SegmentMode, SegmentRecord, SegmentStepVisit } from './segment.js';

/** The /metrics side of the funnel (implemented by http/metrics.ts). Step and outcome words only. */
export interface FunnelMetrics {
  stepReached(step: DialogueStep): void;
  stepInvalidEntries(step: DialogueStep, n: number): void;
  stepTimeout(step: DialogueStep): void;
  stepAbandoned(step: DialogueStep): void;
  segmentEnded(outcome: string, seconds: number): void;
}

export interface SegmentRecorderOptions {
  id: string;
  node: string;
  profile: string;
  mode: SegmentMode;
  language: string;
  now: () => Date;
  events?: CallEvents | undefined;
  metrics?: FunnelMetrics | undefined;
}

/**
 * Builds one call's segment record from what the call layer tells it at a few points (start,
 * answer, each dialogue transition, each charge, hand-back, end). It never sees card data: steps
 * come as names, charges as their outcome (status, decline class), the end as the PaymentResult.
 */
export class SegmentRecorder {
  readonly #o: SegmentRecorderOptions;
  readonly #startedAt: Date;
  #answeredAt: string | undefined;
  readonly #steps: SegmentStepVisit[] = [];
  readonly #reached = new Set<DialogueStep>();
  readonly #declines: DeclineClass[] = [];
  readonly #pspMs: number[] = [];
  #timeouts = 0;
  #invalid = 0;
  #chargeStart: number | undefined;
  #finished = false;

  constructor(o: SegmentRecorderOptions) {
    this.#o = o;
    this.#startedAt = o.now();
    o.events?.emit({ type: 'started', id: o.id, at: this.#startedAt.toISOString(), profile: o.profile, mode: o.mode, node: o.node });
  }

  answered(): void {
    this.#answeredAt = this.#o.now().toISOString();
    this.step('answer');
  }

  /** The call reached `step` (a repeat of the current step is not a new visit). */
  step(step: DialogueStep): void {
    if (this.#finished || this.#steps[this.#steps.length - 1]?.step === step) return;
    const at = this.#o.now().toISOString();
    this.#steps.push({ step, at, invalidEntries: 0, timeouts: 0 });
    if (!this.#reached.has(step)) {
      this.#reached.add(step);
      this.#o.metrics?.stepReached(step);
    }
    this.#o.events?.emit({ type: 'step', id: this.#o.id, at, step });
  }

  /** One dialogue transition (RunnerHooks.onProgress). */
  progress(p: DialogueProgress): void {
    if (this.#finished) return;
    const current = this.#steps[this.#steps.length - 1];
    // Counted at the step the caller was in when it happened.
    if (current !== undefined && p.previous !== undefined && current.step === p.previous) {
      if (p.invalidEntries > 0) {
        current.invalidEntries += p.invalidEntries;
        this.#invalid += p.invalidEntries;
        this.#o.metrics?.stepInvalidEntries(current.step, p.invalidEntries);
      }
      if (p.noInputTimeout) {
        current.timeouts++;
        this.#timeouts++;
        this.#o.metrics?.stepTimeout(current.step);
      }
    }
    if (p.step !== undefined) this.step(p.step);
  }

  /** RunnerHooks.onCharge: PSP latency and decline classes. */
  charge(phase: 'start' | 'end', outcome?: ChargeOutcome): void {
    const t = this.#o.now().getTime();
    if (phase === 'start') {
      this.#chargeStart = t;
      return;
    }
    if (this.#chargeStart !== undefined) this.#pspMs.push(Math.max(0, t - this.#chargeStart));
    this.#chargeStart = undefined;
    if (outcome?.status === 'declined') this.#declines.push(outcome.declineClass);
  }

  /** The record of the ended call; idempotent in effect (events and metrics once). */
  finish(result: PaymentResult): SegmentRecord {
    const ended = this.#o.now();
    const last = this.#steps[this.#steps.length - 1]?.step;
    const durationMs = Math.max(0, ended.getTime() - this.#startedAt.getTime());
    const rec: SegmentRecord = {
      id: this.#o.id,
      node: this.#o.node,
      profile: this.#o.profile,
      mode: this.#o.mode,
      ...(result.entry !== undefined ? { entry: result.entry } : {}),
      language: this.#o.language,
      startedAt: this.#startedAt.toISOString(),
      ...(this.#answeredAt !== undefined ? { answeredAt: this.#answeredAt } : {}),
      endedAt: ended.toISOString(),
      durationMs,
      steps: this.#steps.map((s) => ({ ...s })),
      // Wrong entries and silences apart (the result's invalidEntries counts both).
      attempts: { charges: result.attempts.charges, declines: result.attempts.declines, invalidEntries: this.#invalid, timeouts: this.#timeouts },
      declineClasses: [...this.#declines],
      pspMs: [...this.#pspMs],
      outcome: result.outcome,
      ...(result.amount !== undefined ? { amount: result.amount } : {}),
      ...(result.amountSource !== undefined ? { amountSource: result.amountSource } : {}),
      currency: result.currency,
      ...(result.brand !== undefined ? { brand: result.brand } : {}),
      ...(result.last4 !== undefined ? { last4: result.last4 } : {}),
      handBack: { target: result.handBack?.target ?? '', status: result.handBack?.status ?? 'skipped' },
    };
    if (!this.#finished) {
      this.#finished = true;
      if (result.outcome === 'hangup' && last !== undefined) this.#o.metrics?.stepAbandoned(last);
      this.#o.metrics?.segmentEnded(result.outcome, durationMs / 1000);
      this.#o.events?.emit({ type: 'ended', id: this.#o.id, at: rec.endedAt, outcome: rec.outcome, amount: rec.amount, currency: rec.currency, brand: rec.brand, durationMs });
    }
    return rec;
  }
}
