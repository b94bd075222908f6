import type { Logger } from '../log.js';
import type { DtmfDigit } from '../domain/dtmf.js';
import type { Brand } from '../domain/brand.js';
import type { ChargeOutcome } from '../domain/charge.js';
import { wipeCard, type CardData } from '../domain/sensitive.js';
import {
  heldCaptureBuffers,
  startCapture,
  stepCapture,
  viewOf,
  type CaptureCommand,
  type CaptureEvent,
  type CaptureField,
  type CaptureInput,
  type CaptureResult,
  type CaptureState,
  type CaptureView,
} from '../domain/assist/capture.js';
import type { DtmfSecurityMode, EdgeCall } from '../edge/types.js';
import { PayIvrError, describeError } from '../errors.js';

/** Carries out the machine's charge command; never given anything but this one card. */
export type CaptureChargeFn = (req: { amount: number; currency: string; card: CardData; brand: Brand }) => Promise<ChargeOutcome>;

/** Observers (segment, metrics, the SSE streams). Given the masked view only. */
export interface CaptureTaskHooks {
  /** After every change of the view, and once more with the final view at the end. */
  onView?: (view: CaptureView) => void;
  onCharge?: (phase: 'start' | 'end', outcome?: ChargeOutcome) => void;
}

export interface CaptureTaskOptions {
  id: string;
  call: EdgeCall;
  input: CaptureInput;
  dtmfSecurity: DtmfSecurityMode;
  timeoutMs: number;
  charge: CaptureChargeFn;
  /** The prompt file to play to the caller when a field becomes current; undefined: none. */
  promptFor?: ((field: CaptureField, securityCodeLength: 3 | 4) => string | undefined) | undefined;
  log: Logger;
  hooks?: CaptureTaskHooks | undefined;
}

/**
 * One capture on one relayed call: blocks the caller's keys toward Genesys, feeds each key the
 * media anchor reports into the pure capture machine, carries out its commands (prompt, charge,
 * finish), and unblocks the keys at the end (not after a hang-up: the call is gone).
 *
 * Lifecycle (like the dialogue runner): `run()` blocks the keys, then resolves with the result
 * exactly once, after the unblock; `started` settles when the keys are blocked (rejects when they
 * could not be: the capture never started). `kill()` is idempotent: it removes every listener and
 * the timer and wipes what the machine holds (a charge already with the PSP keeps its copy until
 * its result, then it is wiped too). Events are queued so the machine is never re-entered.
 */
export class CaptureTask {
  readonly id: string;
  readonly #o: CaptureTaskOptions;
  readonly #call: EdgeCall;
  #state: CaptureState | undefined;
  #queue: CaptureEvent[] = [];
  #draining = false;
  #timer: NodeJS.Timeout | undefined;
  #killed = false;
  #listening = false;
  #callerGone = false;
  #result: CaptureResult | undefined;
  #lastView: string | undefined;
  #resolve: ((r: CaptureResult) => void) | undefined;
  #markStarted: (() => void) | undefined;
  #failStart: ((e: unknown) => void) | undefined;
  /** Settles once the caller's keys are blocked and the capture takes keys. */
  readonly started: Promise<void>;
  readonly #onDigit = (digit: DtmfDigit): void => this.#dispatch({ type: 'digit', digit });
  readonly #onEnded = (): void => {
    this.#callerGone = true;
    this.#dispatch({ type: 'hangup' });
  };

  constructor(o: CaptureTaskOptions) {
    this.id = o.id;
    this.#o = o;
    this.#call = o.call;
    this.started = new Promise<void>((resolve, reject) => {
      this.#markStarted = resolve;
      this.#failStart = reject;
    });
    // A start failure is reported by the caller of run(); an unobserved rejection must not crash.
    this.started.catch(() => undefined);
  }

  /** The masked view (undefined before the keys are blocked). */
  view(): CaptureView | undefined {
    return this.#state === undefined ? undefined : viewOf(this.#state);
  }

  get result(): CaptureResult | undefined {
    return this.#result;
  }

  /**
   * Blocks the caller's keys, then takes keys until the capture ends. Rejects only when the capture
   * could not start (keys not blocked, call ended): ERR_ASSIST_BLOCK / ERR_ASSIST_CALL_ENDED.
   */
  async run(): Promise<CaptureResult> {
    const call = this.#call;
    try {
      if (call.state === 'ended') throw new PayIvrError('ERR_ASSIST_CALL_ENDED', 'the call has ended');
      // Before any key is taken: from here on Genesys (and the agent) hear only the replacement.
      await call.blockCallerKeys(this.#o.dtmfSecurity);
      // The state may have changed while the block was under way (TS narrowed it above).
      if ((call.state as EdgeCall['state']) === 'ended') throw new PayIvrError('ERR_ASSIST_CALL_ENDED', 'the call ended while its keys were being blocked');
      if (this.#killed) throw new PayIvrError('ERR_ASSIST_STATE', 'the capture was stopped before it started');
    } catch (e) {
      // A block refused because the call went meanwhile is an ended call, not a media fault.
      const gone = (call.state as EdgeCall['state']) === 'ended';
      const err =
        e instanceof PayIvrError
          ? e
          : gone
            ? new PayIvrError('ERR_ASSIST_CALL_ENDED', 'the call ended while its keys were being blocked', { cause: e })
            : new PayIvrError('ERR_ASSIST_BLOCK', 'the media anchor did not block the caller keys', { cause: e });
      this.#failStart?.(err);
      throw err;
    }
    return new Promise<CaptureResult>((resolve) => {
      this.#resolve = resolve;
      call.on('digit', this.#onDigit);
      call.on('ended', this.#onEnded);
      this.#listening = true;
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#dispatch({ type: 'timeout' });
      }, this.#o.timeoutMs);
      const t = startCapture(this.#o.input);
      this.#apply(t.state, t.commands);
      this.#markStarted?.();
      // It may have ended between the block and now.
      if ((call.state as EdgeCall['state']) === 'ended') this.#onEnded();
    });
  }

  /** Agent command: clear a field (default: the current one). */
  clearField(field?: CaptureField): CaptureView {
    const v = this.#require(['collecting', 'ready'], 'nothing to clear: the capture is not collecting');
    if (field === 'securityCode' && !v.securityCode.required) throw new PayIvrError('ERR_ASSIST_STATE', 'this card takes no security code');
    this.#dispatch({ type: 'clear-field', field });
    return this.view() as CaptureView;
  }

  /** Agent command: charge the complete card. */
  charge(): CaptureView {
    this.#require(['ready'], 'the card is not complete');
    this.#dispatch({ type: 'charge' });
    return this.view() as CaptureView;
  }

  /** Agent command: end without charging. */
  cancel(): CaptureView {
    this.#require(['collecting', 'ready'], 'a charge is with the PSP or the capture has ended');
    this.#dispatch({ type: 'cancel' });
    return this.view() as CaptureView;
  }

  /** Stops everything this task started and wipes what it holds. Safe to call any number of times. */
  kill(): void {
    if (this.#killed) return;
    this.#killed = true;
    this.#detach();
    this.#queue = [];
    if (this.#state !== undefined) {
      const inFlight = this.#state.phase.kind === 'charging' ? this.#state.phase.card : undefined;
      for (const b of heldCaptureBuffers(this.#state)) {
        if (inFlight === undefined || (b !== inFlight.pan && b !== inFlight.expiry && b !== inFlight.securityCode)) b.wipe();
      }
    }
  }

  #require(phases: CaptureView['phase'][], why: string): CaptureView {
    const v = this.view();
    if (v === undefined || this.#killed || this.#result !== undefined || !phases.includes(v.phase)) throw new PayIvrError('ERR_ASSIST_STATE', why);
    return v;
  }

  #detach(): void {
    if (this.#listening) {
      this.#call.off('digit', this.#onDigit);
      this.#call.off('ended', this.#onEnded);
      this.#listening = false;
    }
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #dispatch(ev: CaptureEvent): void {
    if (this.#killed || this.#state === undefined) return;
    this.#queue.push(ev);
    if (this.#draining) return;
    this.#draining = true;
    try {
      while (this.#queue.length > 0 && !this.#killed && this.#state !== undefined) {
        const next = this.#queue.shift() as CaptureEvent;
        const t = stepCapture(this.#state, next);
        this.#apply(t.state, t.commands, next.type === 'digit');
      }
    } finally {
      this.#draining = false;
    }
  }

  #apply(state: CaptureState, commands: CaptureCommand[], quietIfSame = false): void {
    this.#state = state;
    for (const cmd of commands) {
      if (this.#killed) return;
      this.#execute(cmd);
    }
    if (this.#result !== undefined) return; // the end reports its own final view
    const view = viewOf(state);
    // A key that changed nothing (A-D, a key while charging, a flood) is not news. Compared with
    // the last view sent: the buffers are shared between states, so the old state cannot tell.
    const text = JSON.stringify(view);
    if (quietIfSame && text === this.#lastView) return;
    this.#lastView = text;
    this.#notify(view);
  }

  #notify(view: CaptureView): void {
    try {
      this.#o.hooks?.onView?.(view);
    } catch (e) {
      this.#o.log.warn({ err: describeError(e) }, 'capture observer failed');
    }
  }

  #execute(cmd: CaptureCommand): void {
    switch (cmd.type) {
      case 'field': {
        const file = this.#o.promptFor?.(cmd.field, viewOf(this.#state as CaptureState).securityCode.length);
        if (file !== undefined) {
          this.#call.playToCaller(file).catch((e: unknown) => this.#o.log.warn({ err: describeError(e), field: cmd.field }, 'capture prompt not played'));
        }
        return;
      }
      case 'charge': {
        const { amount, currency, card, brand } = cmd;
        this.#o.hooks?.onCharge?.('start');
        this.#o
          .charge({ amount, currency, card, brand })
          .catch((e: unknown): ChargeOutcome => {
            this.#o.log.error({ err: describeError(e) }, 'capture charge failed unexpectedly');
            return { status: 'unknown', reason: 'internal-error' };
          })
          .then((outcome) => {
            this.#o.hooks?.onCharge?.('end', outcome);
            // Killed meanwhile: nobody will step the machine again, so the copy is wiped here.
            if (this.#killed) wipeCard(card);
            else this.#dispatch({ type: 'charge-result', outcome });
          });
        return;
      }
      case 'finish':
        this.#finish(cmd.result);
        return;
    }
  }

  #finish(result: CaptureResult): void {
    this.#result = result;
    this.#detach();
    const resolve = this.#resolve;
    this.#resolve = undefined;
    const gone = this.#callerGone || this.#call.state === 'ended';
    const unblock = gone
      ? Promise.resolve()
      : this.#call.unblockCallerKeys().catch((e: unknown) => this.#o.log.error({ err: describeError(e) }, 'caller keys not unblocked after the capture'));
    void unblock.then(() => {
      this.#notify(viewOf(this.#state as CaptureState));
      resolve?.(result);
    });
  }
}
