import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { DECLINE_CLASSES, OUTCOMES, type DeclineClass, type Outcome } from '../domain/outcome.js';
import { DIALOGUE_STEPS, type DialogueStep } from '../domain/dialogue/steps.js';
import type { FunnelMetrics } from '../reports/recorder.js';
import type { WriteBackEvents, WriteBackStatus } from '../genesys/platform/write-back.js';
import { DEAD_REASONS } from '../genesys/platform/write-back-records.js';

/**
 * Prometheus metrics of pay-ivr. Label values are closed vocabularies (outcome, decline class,
 * PSP type, result word): never card data, amounts, references or ids. Anything that does not
 * look like such a word is counted as "other", so a bug cannot put data into a label.
 */

const LABEL_WORD = /^[a-z][a-z0-9_-]{0,31}$/;

function word(v: string): string {
  return LABEL_WORD.test(v) ? v : 'other';
}

function stepWord(step: string): string {
  return (DIALOGUE_STEPS as readonly string[]).includes(step) ? step : 'other';
}

/** What the health gauges read at each scrape (wired by app.ts). */
interface HealthProbes {
  /** The telephony backend takes calls (the trunk side is up). */
  backendReady: () => boolean;
  /** The result store answers. */
  storeUp: () => Promise<boolean>;
  /** Circuit breaker of each profile's PSP. */
  breakers: () => { profile: string; open: boolean }[];
}

const PROFILE_WORD = /^[A-Za-z0-9_-]{1,64}$/;

export class Metrics implements FunnelMetrics {
  readonly registry: Registry;
  readonly #calls: Counter<'outcome'>;
  readonly #active: Gauge;
  readonly #psp: Histogram<'psp' | 'result'>;
  readonly #refer: Counter<'result'>;
  readonly #declines: Counter<'class'>;
  readonly #degraded: Gauge;
  readonly #spoolBytes: Gauge;
  readonly #spoolPending: Gauge;
  readonly #openAttempts: Gauge;
  readonly #reconciled: Counter<'outcome'>;
  readonly #stepReached: Counter<'step'>;
  readonly #stepInvalid: Counter<'step'>;
  readonly #stepTimeouts: Counter<'step'>;
  readonly #stepAbandoned: Counter<'step'>;
  readonly #segment: Histogram<'outcome'>;
  readonly #wbWritten: Counter;
  readonly #wbRetried: Counter;
  readonly #wbDead: Counter<'reason'>;
  readonly #wbRefused: Counter;
  #activeCount = 0;
  #probes: HealthProbes | undefined;
  #writeBack: (() => WriteBackStatus) | undefined;

  /**
   * Registers the pay_ivr_* metrics and the default process metrics on `registry` (a new one by
   * default). A registry can hold one Metrics instance only (prom-client refuses duplicates).
   */
  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
    collectDefaultMetrics({ register: registry });
    this.#calls = new Counter({
      name: 'pay_ivr_calls_total',
      help: 'Payment calls ended, by outcome',
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.#active = new Gauge({ name: 'pay_ivr_calls_active', help: 'Calls in progress', registers: [registry] });
    this.#psp = new Histogram({
      name: 'pay_ivr_psp_request_seconds',
      help: 'PSP charge request duration, by PSP type and result',
      labelNames: ['psp', 'result'],
      buckets: [0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30],
      registers: [registry],
    });
    this.#refer = new Counter({
      name: 'pay_ivr_refer_total',
      help: 'Hand-back REFERs, by result',
      labelNames: ['result'],
      registers: [registry],
    });
    this.#declines = new Counter({
      name: 'pay_ivr_declines_total',
      help: 'PSP declines, by decline class',
      labelNames: ['class'],
      registers: [registry],
    });
    this.#degraded = new Gauge({ name: 'pay_ivr_store_degraded', help: '1 while the store is unreachable and journal entries and results are spooled locally', registers: [registry] });
    this.#spoolBytes = new Gauge({ name: 'pay_ivr_spool_bytes', help: 'Size of the local spool file', registers: [registry] });
    this.#spoolPending = new Gauge({ name: 'pay_ivr_spool_pending', help: 'Journal entries and results waiting in the spool for the store', registers: [registry] });
    this.#openAttempts = new Gauge({ name: 'pay_ivr_journal_open_attempts', help: 'Charge attempts without a final outcome (seen by the latest reconciliation round)', registers: [registry] });
    this.#reconciled = new Counter({ name: 'pay_ivr_reconciled_total', help: 'Attempts settled by reconciliation, by outcome', labelNames: ['outcome'], registers: [registry] });
    for (const o of ['approved', 'declined', 'not-charged']) this.#reconciled.inc({ outcome: o }, 0);
    this.#degraded.set(0);
    // The funnel (reports): per dialogue step, counted once per call for `reached`.
    this.#stepReached = new Counter({ name: 'pay_ivr_step_reached_total', help: 'Calls that reached a dialogue step', labelNames: ['step'], registers: [registry] });
    this.#stepInvalid = new Counter({ name: 'pay_ivr_step_invalid_entries_total', help: 'Invalid entries, by dialogue step', labelNames: ['step'], registers: [registry] });
    this.#stepTimeouts = new Counter({ name: 'pay_ivr_step_timeouts_total', help: 'No-input timeouts, by dialogue step', labelNames: ['step'], registers: [registry] });
    this.#stepAbandoned = new Counter({ name: 'pay_ivr_step_abandoned_total', help: 'Calls the caller hung up at a dialogue step', labelNames: ['step'], registers: [registry] });
    this.#segment = new Histogram({
      name: 'pay_ivr_segment_duration_seconds',
      help: 'Payment IVR segment duration (INVITE to end of hand-back), by outcome',
      labelNames: ['outcome'],
      buckets: [5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600],
      registers: [registry],
    });
    // Health gauges for alerting; 0 until app.ts wires the probes.
    const probes = (): HealthProbes | undefined => this.#probes;
    new Gauge({
      name: 'pay_ivr_backend_ready',
      help: '1 when the telephony backend takes calls',
      registers: [registry],
      collect() {
        this.set(probes()?.backendReady() === true ? 1 : 0);
      },
    });
    new Gauge({
      name: 'pay_ivr_store_up',
      help: '1 when the result store answers (0: degraded)',
      registers: [registry],
      async collect() {
        const p = probes();
        this.set(p === undefined ? 0 : (await p.storeUp().catch(() => false)) ? 1 : 0);
      },
    });
    new Gauge({
      name: 'pay_ivr_psp_breaker_open',
      help: '1 while the circuit breaker of a profile\'s PSP is open',
      labelNames: ['profile'],
      registers: [registry],
      collect() {
        this.reset();
        for (const b of probes()?.breakers() ?? []) this.set({ profile: PROFILE_WORD.test(b.profile) ? b.profile : 'other' }, b.open ? 1 : 0);
      },
    });
    // Genesys participant-data write-back (genesys.platform): no conversation ids, counts only.
    this.#wbWritten = new Counter({ name: 'pay_ivr_genesys_writeback_written_total', help: 'Participant-data writes Genesys acknowledged', registers: [registry] });
    this.#wbRetried = new Counter({ name: 'pay_ivr_genesys_writeback_retried_total', help: 'Participant-data writes that failed and stay queued for a retry', registers: [registry] });
    this.#wbDead = new Counter({ name: 'pay_ivr_genesys_writeback_dead_lettered_total', help: 'Participant-data writes given up on, by reason (rejected, max-attempts, max-age)', labelNames: ['reason'], registers: [registry] });
    this.#wbRefused = new Counter({ name: 'pay_ivr_genesys_writeback_refused_total', help: 'Results whose participant-data write could not be queued (see the log)', registers: [registry] });
    for (const r of DEAD_REASONS) this.#wbDead.inc({ reason: r }, 0);
    const writeBack = (): WriteBackStatus | undefined => this.#writeBack?.();
    new Gauge({
      name: 'pay_ivr_genesys_writeback_queued',
      help: 'Participant-data writes waiting for Genesys',
      registers: [registry],
      collect() {
        this.set(writeBack()?.queued ?? 0);
      },
    });
    new Gauge({
      name: 'pay_ivr_genesys_writeback_oldest_seconds',
      help: 'Age of the oldest participant-data write waiting for Genesys',
      registers: [registry],
      collect() {
        this.set((writeBack()?.oldestAgeMs ?? 0) / 1000);
      },
    });
    new Gauge({
      name: 'pay_ivr_genesys_writeback_dead_letters',
      help: 'Participant-data writes in the dead-letter list',
      registers: [registry],
      collect() {
        this.set(writeBack()?.deadLetters ?? 0);
      },
    });
    for (const st of DIALOGUE_STEPS) {
      for (const c of [this.#stepReached, this.#stepInvalid, this.#stepTimeouts, this.#stepAbandoned]) c.inc({ step: st }, 0);
    }
    // Every known series exists from the start (rate() over a missing series shows nothing).
    for (const o of OUTCOMES) this.#calls.inc({ outcome: o }, 0);
    for (const c of DECLINE_CLASSES) this.#declines.inc({ class: c }, 0);
    this.#active.set(0);
  }

  /** A call ended with this outcome (counted once per call). */
  callEnded(outcome: Outcome): void {
    this.#calls.inc({ outcome: (OUTCOMES as readonly string[]).includes(outcome) ? outcome : 'other' });
  }

  /** A call began (active gauge +1). */
  callStarted(): void {
    this.#activeCount++;
    this.#active.set(this.#activeCount);
  }

  /** A call's resources are gone (active gauge -1, never below 0). */
  callFinished(): void {
    if (this.#activeCount > 0) this.#activeCount--;
    this.#active.set(this.#activeCount);
  }

  /**
   * One PSP charge: psp = gateway name, result = the charge status: approved | declined |
   * failed (not charged: psp-error) | unknown (may be charged: unconfirmed).
   */
  pspRequest(psp: string, result: string, seconds: number): void {
    if (!Number.isFinite(seconds) || seconds < 0) return;
    this.#psp.observe({ psp: word(psp), result: word(result) }, seconds);
  }

  /** One hand-back REFER: result = accepted | failed | timeout | ... */
  refer(result: string): void {
    this.#refer.inc({ result: word(result) });
  }

  decline(cls: DeclineClass): void {
    this.#declines.inc({ class: (DECLINE_CLASSES as readonly string[]).includes(cls) ? cls : 'other' });
  }

  /** Journal/spool state: degraded while the store is unreachable. */
  journal(state: { degraded: boolean; spoolBytes: number; spoolPending: number }): void {
    this.#degraded.set(state.degraded ? 1 : 0);
    this.#spoolBytes.set(state.spoolBytes);
    this.#spoolPending.set(state.spoolPending);
  }

  openAttempts(n: number): void {
    this.#openAttempts.set(n);
  }

  reconciled(outcome: 'approved' | 'declined' | 'not-charged'): void {
    this.#reconciled.inc({ outcome });
  }

  /** Wires the health gauges (backend, store, PSP breakers). */
  watch(probes: HealthProbes): void {
    this.#probes = probes;
  }

  /** The write-back queue's counters (genesys.platform). */
  writeBackEvents(): WriteBackEvents {
    return {
      written: () => this.#wbWritten.inc(),
      retried: () => this.#wbRetried.inc(),
      deadLettered: (reason) => this.#wbDead.inc({ reason: (DEAD_REASONS as readonly string[]).includes(reason) ? reason : 'other' }),
      refused: () => this.#wbRefused.inc(),
    };
  }

  /** Wires the write-back gauges (queued, oldest age, dead letters). */
  watchWriteBack(status: () => WriteBackStatus): void {
    this.#writeBack = status;
  }

  stepReached(step: DialogueStep): void {
    this.#stepReached.inc({ step: stepWord(step) });
  }

  stepInvalidEntries(step: DialogueStep, n: number): void {
    if (Number.isInteger(n) && n > 0) this.#stepInvalid.inc({ step: stepWord(step) }, n);
  }

  stepTimeout(step: DialogueStep): void {
    this.#stepTimeouts.inc({ step: stepWord(step) });
  }

  stepAbandoned(step: DialogueStep): void {
    this.#stepAbandoned.inc({ step: stepWord(step) });
  }

  segmentEnded(outcome: string, seconds: number): void {
    if (!Number.isFinite(seconds) || seconds < 0) return;
    this.#segment.observe({ outcome: (OUTCOMES as readonly string[]).includes(outcome) ? outcome : 'other' }, seconds);
  }

  /** The exposition text (for GET /metrics). */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
