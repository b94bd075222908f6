import type { Logger } from '../log.js';
import type { InboundCall, PlayResult } from '../telephony/types.js';
import type { DtmfDigit } from '../domain/dtmf.js';
import type { DialogueCommand, DialogueEvent, DialogueInput, DialogueResult, Transition } from '../domain/dialogue/types.js';
import { startDialogue, step, type DialogueState } from '../domain/dialogue/machine.js';
import { markOf, progressOf, type DialogueProgress } from '../domain/dialogue/steps.js';
import type { CardData } from '../domain/sensitive.js';
import type { Brand } from '../domain/brand.js';
import type { ChargeOutcome } from '../domain/charge.js';
import { describeError } from '../errors.js';

/** Carries out one charge command; the runner only knows it as a function. */
export type ChargeFn = (req: { amount: number; currency: string; card: CardData; brand: Brand; attempt: number }) => Promise<ChargeOutcome>;

/** Observers for the call layer (live-call state, metrics). Never given card data. */
interface RunnerHooks {
  onCharge?: (phase: 'start' | 'end', outcome?: ChargeOutcome) => void;
  /** After every transition: the step reached and what was counted at the step left (reports). */
  onProgress?: (p: DialogueProgress) => void;
}

/**
 * Runs the pure payment dialogue on a call: turns its commands into port calls and timers, and
 * the port's digits, play completions, timer expiries and hangup back into events.
 *
 * Lifecycle (jambonz-style task): `run()` resolves with the dialogue's result exactly once;
 * `kill()` is idempotent and removes every listener and timer. Events are queued so that
 * `step()` is never re-entered from inside a command.
 */
export class DialogueRunner {
  readonly #call: InboundCall;
  readonly #input: DialogueInput;
  readonly #charge: ChargeFn;
  readonly #log: Logger;
  readonly #hooks: RunnerHooks;
  #state: DialogueState | undefined;
  #queue: DialogueEvent[] = [];
  #draining = false;
  #timer: NodeJS.Timeout | undefined;
  #killed = false;
  #resolve: ((r: DialogueResult) => void) | undefined;
  #onDigit = (digit: DtmfDigit): void => this.#dispatch({ type: 'digit', digit });
  #onEnded = (): void => this.#dispatch({ type: 'hangup' });

  constructor(call: InboundCall, input: DialogueInput, charge: ChargeFn, logger: Logger, hooks: RunnerHooks = {}) {
    this.#call = call;
    this.#input = input;
    this.#charge = charge;
    this.#log = logger;
    this.#hooks = hooks;
  }

  run(): Promise<DialogueResult> {
    return new Promise<DialogueResult>((resolve) => {
      this.#resolve = resolve;
      this.#call.on('digit', this.#onDigit);
      this.#call.on('ended', this.#onEnded);
      this.#apply(startDialogue(this.#input));
      if (this.#call.state === 'ended') this.#dispatch({ type: 'hangup' });
    });
  }

  /**
   * Ends the dialogue early for the service (drain deadline): the machine sees the caller as gone,
   * so it wipes what it holds, waits for a charge already with the PSP and finishes with its
   * real outcome. The call layer then still hands the call back. Idempotent.
   */
  endEarly(): void {
    this.#dispatch({ type: 'hangup' });
  }

  /** Stops everything this runner started. Safe to call any number of times. */
  kill(): void {
    if (this.#killed) return;
    this.#killed = true;
    this.#call.off('digit', this.#onDigit);
    this.#call.off('ended', this.#onEnded);
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue = [];
  }

  #dispatch(event: DialogueEvent): void {
    if (this.#killed || this.#state === undefined) return;
    this.#queue.push(event);
    if (this.#draining) return;
    this.#draining = true;
    try {
      while (this.#queue.length > 0 && !this.#killed) {
        const ev = this.#queue.shift() as DialogueEvent;
        const mark = this.#hooks.onProgress === undefined ? undefined : markOf(this.#state);
        this.#apply(step(this.#state, ev), mark, ev);
      }
    } finally {
      this.#draining = false;
    }
  }

  #apply(t: Transition<DialogueState>, mark?: ReturnType<typeof markOf>, ev?: DialogueEvent): void {
    this.#state = t.state;
    if (this.#hooks.onProgress !== undefined) {
      // An observer's failure must never disturb the call.
      try {
        this.#hooks.onProgress(progressOf(mark, ev, t.state));
      } catch (e) {
        this.#log.warn({ err: describeError(e) }, 'progress observer failed');
      }
    }
    for (const cmd of t.commands) {
      if (this.#killed) return;
      this.#execute(cmd);
    }
  }

  #execute(cmd: DialogueCommand): void {
    switch (cmd.type) {
      case 'play': {
        const { playId, bargeIn } = cmd;
        this.#call
          .play(cmd.fragments, { language: this.#input.settings.language, bargeIn })
          .then(
            (r: PlayResult) => {
              if (r !== 'ended') this.#dispatch({ type: 'play-done', playId, interrupted: r === 'interrupted' });
            },
            (e: unknown) => {
              // A missing prompt must not strand the caller: report it and let the dialogue go on.
              this.#log.error({ err: describeError(e), sensitive: cmd.sensitive }, 'prompt playback failed');
              this.#dispatch({ type: 'play-done', playId, interrupted: false });
            },
          );
        return;
      }
      case 'play-wait':
        this.#call.play(['wait-music'], { language: this.#input.settings.language, bargeIn: false, loop: true }).catch((e: unknown) => {
          this.#log.warn({ err: describeError(e) }, 'wait music failed');
        });
        return;
      case 'stop-play':
        this.#call.stopPlay();
        return;
      case 'start-timer': {
        if (this.#timer) clearTimeout(this.#timer);
        const { timerId } = cmd;
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          this.#dispatch({ type: 'timeout', timerId });
        }, cmd.ms);
        return;
      }
      case 'cancel-timer':
        if (this.#timer) clearTimeout(this.#timer);
        this.#timer = undefined;
        return;
      case 'charge': {
        this.#hooks.onCharge?.('start');
        const { amount, currency, card, brand, attempt } = cmd;
        this.#charge({ amount, currency, card, brand, attempt })
          .catch((e: unknown): ChargeOutcome => {
            this.#log.error({ err: describeError(e) }, 'charge failed unexpectedly');
            return { status: 'unknown', reason: 'internal-error' };
          })
          .then((outcome) => {
            this.#hooks.onCharge?.('end', outcome);
            // Delivered even after a hangup: the dialogue records the real outcome of the charge.
            if (this.#state !== undefined && !this.#killed) this.#dispatch({ type: 'charge-result', outcome });
          });
        return;
      }
      case 'finish': {
        const resolve = this.#resolve;
        this.#resolve = undefined;
        this.kill();
        resolve?.(cmd.result);
        return;
      }
    }
  }
}
