import type { Config, Profile } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { InboundCall, HangupReason } from '../telephony/types.js';
import type { PaymentGateway } from '../psp/types.js';
import type { ResultStore } from '../store/types.js';
import type { Metrics } from '../http/metrics.js';
import type { PaymentResult, Outcome } from '../domain/outcome.js';
import type { DialogueResult } from '../domain/dialogue/types.js';
import { selectProfile, dialogueSettings } from '../config/profiles.js';
import { extractContext, type CallContext } from '../genesys/context.js';
import { encodeResultUui, buildReferTo, selectHandBackTarget } from '../genesys/result.js';
import { resolveContext, type ResolvedContext } from '../genesys/resolve-context.js';
import type { ContextProblem } from '../domain/outcome.js';
import { DialogueRunner, type ChargeFn } from './dialogue-runner.js';
import { handBackMethod, type EntryMode } from '../domain/entry.js';
import { describeError } from '../errors.js';
import { chargeWithJournal } from '../journal/journaled-charge.js';
import type { PaymentJournal } from '../journal/index.js';
import type { ChargeOutcome } from '../domain/charge.js';
import type { Reports } from '../reports/index.js';

interface CallControllerDeps {
  config: Config;
  logger: Logger;
  store: ResultStore;
  metrics: Metrics;
  /** The payment journal: attempts recorded before the first send (absent in unit tests only). */
  journal?: PaymentJournal | undefined;
  /** The gateway of a profile (one per profile, created at start). */
  gatewayFor: (profileName: string) => PaymentGateway;
  /** Segment records and live call events (optional: tests of the call alone go without). */
  reports?: Reports | undefined;
  /** Clock, injectable for tests. */
  now?: () => Date;
}

/** Thrown after the answer when onBadContext is hand-back: skips the dialogue. */
class BadContext extends Error {
  constructor(readonly why: ContextProblem) {
    super(`bad call context: ${why}`);
  }
}

/** The result written as soon as a charge outcome is known (the dialogue's final word may differ). */
const PROVISIONAL_OUTCOME: Record<ChargeOutcome['status'], Outcome> = { approved: 'approved', declined: 'declined', failed: 'psp-error', unknown: 'unconfirmed' };

/** Phrase played when the hand-back REFER fails, before the BYE. */
const TRANSFER_FAILED_PHRASE = 'transfer-failed';
/** How long to wait for the far end's BYE after an accepted transfer before we send ours. */
const BYE_AFTER_REFER_MS = 4_000;

/**
 * One call's lifecycle: INVITE context -> profile -> answer -> dialogue -> PSP -> hand-back REFER
 * -> BYE, then the result record. Every listener and timer it starts is released on every path.
 */
export class CallController {
  readonly #deps: CallControllerDeps;
  readonly #call: InboundCall;
  readonly #log: Logger;
  #runner: DialogueRunner | undefined;
  #killed = false;
  /** Set by endForDrain(): the dialogue was cut short by the node, not by the caller. */
  #endedByNode = false;

  constructor(call: InboundCall, deps: CallControllerDeps) {
    this.#call = call;
    this.#deps = deps;
    this.#log = deps.logger.child({ call: call.id, callId: call.callId });
  }

  /** Runs the call to its end; never rejects. Resolves with the stored result. */
  async run(): Promise<PaymentResult> {
    const now = this.#deps.now ?? (() => new Date());
    const started = now();
    const { config } = this.#deps;
    const ctx = this.#context();
    const selected = selectProfile(config, this.#call.calledUser, ctx.profile);
    const profile = selected.profile;
    const resolved = resolveContext(ctx, selected, config.genesys.keys);
    const currency = resolved.currency;
    const log = this.#log.child({ profile: selected.name, conversationId: ctx.conversationId });
    this.#logRejected(resolved, log);
    // A bad context under onBadContext: hand-back ends the call before any card is asked for.
    const badContext = profile.onBadContext === 'hand-back' ? resolved.badContext : undefined;

    this.#deps.metrics.callStarted();
    const segment = this.#deps.reports?.recorder({ id: this.#call.id, profile: selected.name, mode: ctx.mode, language: ctx.language ?? profile.language, now });
    // Not awaited: the live-call list is informational and must never delay the answer.
    void this.#deps.store
      .liveCallStarted({ id: this.#call.id, callId: this.#call.callId, startedAt: started.toISOString(), profile: selected.name, conversationId: ctx.conversationId, state: 'answering' })
      .catch((e: unknown) => log.warn({ err: describeError(e) }, 'live-call store failed'));

    let dres: DialogueResult;
    let pspMs = 0;
    try {
      // A conference mix may carry the caller's keys as audio only, whatever the SDP negotiated:
      // listening starts before the answer so the first key is not missed.
      if (resolved.entry === 'conference') this.#call.listenForInbandKeys?.();
      await this.#call.answer();
      segment?.answered();
      log.info({ mode: ctx.mode, entry: resolved.entry, identified: ctx.identified, uui: ctx.uuiStatus }, 'call answered');
      if (badContext !== undefined) {
        log.warn({ why: badContext }, 'bad call context: handing back at once with outcome error');
        throw new BadContext(badContext);
      }
      const today = now();
      const gateway = this.#deps.gatewayFor(selected.name);
      let charges = 0;
      let declines = 0;
      const charge: ChargeFn = async (req) => {
        const t0 = Date.now();
        const reference = ctx.reference ?? this.#call.id;
        const { outcome, last4, sent } = await chargeWithJournal({
          gateway,
          journal: this.#deps.journal,
          log,
          callRef: this.#call.id,
          callId: this.#call.callId,
          profile: selected.name,
          reference,
          amount: req.amount,
          currency: req.currency,
          card: req.card,
          brand: req.brand,
          attempt: req.attempt,
          conversationId: ctx.conversationId,
          metadata: this.#metadata(ctx),
        });
        // Not journaled, not sent: nothing to count or record.
        if (!sent) return outcome;
        const secs = (Date.now() - t0) / 1000;
        pspMs += secs * 1000;
        this.#deps.metrics.pspRequest(gateway.name, outcome.status, secs);
        if (outcome.status === 'declined') this.#deps.metrics.decline(outcome.declineClass);
        log.info({ attempt: req.attempt, brand: req.brand, status: outcome.status, ms: Math.round(secs * 1000) }, 'charge finished');
        charges = req.attempt;
        if (outcome.status === 'declined') declines += 1;
        // The result exists as soon as the outcome is known, before the caller hears it.
        await this.#saveResult({
          ...this.#baseResult(ctx, resolved.entry, selected.name, req.currency),
          outcome: PROVISIONAL_OUTCOME[outcome.status],
          amount: req.amount,
          brand: req.brand,
          last4,
          transactionId: outcome.status === 'approved' || outcome.status === 'declined' ? outcome.transactionId : undefined,
          authCode: outcome.status === 'approved' ? outcome.authCode : undefined,
          declineClass: outcome.status === 'declined' ? outcome.declineClass : undefined,
          attempts: { charges, declines, invalidEntries: 0 },
          stage: 'charged',
          timings: { startedAt: started.toISOString(), pspMs: Math.round(pspMs) },
        }, log);
        return outcome;
      };
      this.#runner = new DialogueRunner(
        this.#call,
        {
          settings: dialogueSettings(profile, ctx.language, resolved),
          context: { identified: ctx.identified, mode: ctx.mode, amount: resolved.amount, reference: ctx.reference },
          now: { year: today.getUTCFullYear(), month: today.getUTCMonth() + 1 },
        },
        charge,
        log,
        {
          onCharge: (phase, outcome) => {
            segment?.charge(phase, outcome);
            void this.#setLiveState(phase === 'start' ? 'charging' : 'charged', outcome === undefined ? undefined : { charge: outcome.status });
          },
          ...(segment !== undefined ? { onProgress: (p) => segment.progress(p) } : {}),
        },
      );
      void this.#setLiveState('collecting');
      this.#keepDialog(ctx, selected.name, currency, started, log);
      const running = this.#runner.run();
      if (this.#endedByNode) this.#runner.endEarly();
      dres = await running;
    } catch (e) {
      // A caller who hangs up (or CANCELs) before the answer is ordinary; anything else is an error.
      if (e instanceof BadContext && this.#call.state !== 'ended') {
        dres = { outcome: 'error', currency, attempts: { charges: 0, declines: 0, invalidEntries: 0 }, callerGone: false };
      } else {
        if (this.#call.state === 'ended') log.info({ err: describeError(e) }, 'call ended before it could be answered');
        else log.error({ err: describeError(e) }, 'call failed');
        dres = { outcome: this.#call.state === 'ended' ? 'hangup' : 'error', currency, attempts: { charges: 0, declines: 0, invalidEntries: 0 }, callerGone: this.#call.state === 'ended' };
      }
    } finally {
      this.#runner?.kill();
    }

    // A dialogue the node cut short (drain deadline) saw a "hangup" that the caller never made.
    const cutByNode = this.#endedByNode && this.#call.state !== 'ended';
    const result: PaymentResult = {
      ...this.#baseResult(ctx, resolved.entry, selected.name, dres.currency),
      outcome: cutByNode && dres.outcome === 'hangup' ? 'error' : dres.outcome,
      amount: dres.amount,
      amountSource: dres.amountSource,
      brand: dres.brand,
      last4: dres.last4,
      transactionId: dres.transactionId,
      authCode: dres.authCode,
      declineClass: dres.declineClass,
      attempts: dres.attempts,
    };
    if (dres.outcome === 'error' && badContext !== undefined) result.errorReason = badContext;
    else if (cutByNode && result.outcome === 'error') result.errorReason = 'node-drained';
    if (resolved.rejected.length > 0) result.contextProblems = resolved.rejected.map((r) => ({ key: r.key, problem: r.problem }));

    if ((cutByNode || !dres.callerGone) && this.#call.state !== 'ended') {
      if (cutByNode) log.warn({ outcome: result.outcome }, 'drain deadline: dialogue ended by the node, handing the call back');
      void this.#setLiveState('handing-back');
      segment?.step('handback');
      result.handBack = await this.#handBack(result, ctx, resolved, profile, log);
    } else {
      result.handBack = { target: '', status: 'skipped', detail: 'caller hung up' };
    }

    const ended = now();
    result.timings = { startedAt: started.toISOString(), endedAt: ended.toISOString(), durationMs: ended.getTime() - started.getTime(), pspMs: Math.round(pspMs) };
    result.stage = 'ended';
    this.#deps.metrics.callEnded(result.outcome);
    log.info({ outcome: result.outcome, brand: result.brand, last4: result.last4, handBack: result.handBack.status, ms: result.timings.durationMs }, 'call finished');
    await this.#saveResult(result, log);
    // Only once the final result is stored: a crash before leaves the dialog for the BYE at restart.
    void this.#deps.journal?.dropDialog(this.#call.id);
    await this.#deps.store.liveCallEnded(this.#call.id).catch(() => undefined);
    if (segment !== undefined) await this.#deps.reports?.save(segment.finish(result));
    return result;
  }

  /**
   * Drain deadline: ends the dialogue now (a charge with the PSP is still waited for) and hands
   * the call back with its outcome (`error` when nothing was charged). Idempotent.
   */
  endForDrain(): void {
    if (this.#endedByNode || this.#killed) return;
    this.#endedByNode = true;
    this.#runner?.endEarly();
  }

  /** Ends the call from outside (shutdown). Idempotent. */
  kill(reason: HangupReason = { protocol: 'SIP', cause: 503, text: 'Service shutting down' }): void {
    if (this.#killed) return;
    this.#killed = true;
    this.#runner?.kill();
    void this.#call.hangup(reason).catch(() => undefined);
  }

  #context(): CallContext {
    return extractContext((name) => this.#call.header(name), this.#deps.config.genesys);
  }

  /** One warning per rejected context field: the key and why, the value only when it cannot be card data. */
  #logRejected(resolved: ResolvedContext, log: Logger): void {
    for (const r of resolved.rejected) {
      const fields = { key: r.key, problem: r.problem, value: r.shown, length: r.length };
      if (r.problem === 'unreadable') log.warn(fields, 'User-to-User header present but unreadable');
      else if (r.problem === 'return-refused') log.warn(fields, 'UUI return target refused: not an allowed target; the configured one is used');
      else log.warn(fields, 'UUI field rejected');
    }
  }

  #metadata(ctx: CallContext): Record<string, string> {
    const m: Record<string, string> = { callId: this.#call.callId };
    if (ctx.conversationId) m.conversationId = ctx.conversationId;
    if (ctx.accountId) m.accountId = ctx.accountId;
    if (ctx.reference) m.reference = ctx.reference;
    return m;
  }

  async #setLiveState(state: string, extra?: { charge: ChargeOutcome['status'] }): Promise<void> {
    // Live-call state is informational; losing an update must never affect the call.
    await this.#deps.store.liveCallState?.(this.#call.id, state, extra).catch(() => undefined);
  }

  /** Fields of the result that come from the context, the same in every version of the record. */
  #baseResult(ctx: CallContext, entry: EntryMode, profile: string, currency: string): Pick<PaymentResult, 'mode' | 'entry' | 'currency' | 'reference' | 'accountId' | 'conversationId' | 'callId' | 'profile' | 'origin'> {
    return { mode: ctx.mode, entry, currency, reference: ctx.reference, accountId: ctx.accountId, conversationId: ctx.conversationId, callId: this.#call.callId, profile, origin: 'call' };
  }

  async #saveResult(result: PaymentResult, log: Logger): Promise<void> {
    await this.#deps.store.saveResult({ ...result, id: this.#call.id }).catch((e: unknown) => log.error({ err: describeError(e) }, 'result not stored'));
  }

  /** Keeps the answered dialog beside the journal, so a restarted node can end the call. */
  #keepDialog(ctx: CallContext, profile: string, currency: string, started: Date, log: Logger): void {
    const journal = this.#deps.journal;
    const dialog = this.#call.dialogState?.();
    if (journal === undefined || dialog === undefined) return;
    void journal.saveDialog({
      callRef: this.#call.id,
      // The drachtio backend's dialogs name drachtio-server's dialog (stored-dialog.ts).
      backend: dialog.drachtio !== undefined ? 'drachtio' : 'embedded',
      dialog,
      profile,
      mode: ctx.mode,
      currency,
      reference: ctx.reference,
      conversationId: ctx.conversationId,
      accountId: ctx.accountId,
      startedAt: started.toISOString(),
    });
    log.debug('dialog state kept');
  }

  async #handBack(result: PaymentResult, ctx: CallContext, resolved: ResolvedContext, profile: Profile, log: Logger): Promise<NonNullable<PaymentResult['handBack']>> {
    const { config, metrics } = this.#deps;
    const language = ctx.language ?? profile.language;
    const method = handBackMethod(resolved.entry, result.outcome);
    if (method.kind === 'bye') {
      // A conference leg: the result was announced to the caller and the agent; there is nobody to
      // transfer (they are together), so pay-ivr leaves the conference.
      await this.#call.hangup({ protocol: 'SIP', ...method.reason }).catch(() => undefined);
      log.info({ outcome: result.outcome }, 'conference leg ended with BYE (no REFER)');
      return { target: '', status: 'skipped', detail: method.detail };
    }
    let target: string;
    let referTo: string;
    try {
      target = selectHandBackTarget(result.outcome, { mode: ctx.mode, returnTarget: resolved.returnTarget }, profile.handBack);
      referTo = buildReferTo(target, encodeResultUui(result, ctx.reference, config.genesys));
    } catch (e) {
      log.error({ err: describeError(e) }, 'no hand-back target');
      await this.#failBack(result.outcome, language, 'no hand-back target', 500);
      metrics.refer('failed');
      return { target: '', status: 'failed', detail: 'no hand-back target' };
    }
    const r = await this.#call.refer(referTo, { timeoutMs: profile.timeouts.referMs });
    log.info({ target, referStatus: r.referStatus, finalStatus: r.finalStatus, ok: r.ok }, 'hand-back REFER done');
    metrics.refer(r.ok ? 'accepted' : 'failed');
    if (r.ok) {
      await this.#waitForRemoteBye(BYE_AFTER_REFER_MS);
      await this.#call.hangup({ protocol: 'SIP', cause: 200, text: 'Call transferred' }).catch(() => undefined);
      return { target, status: 'accepted' };
    }
    await this.#failBack(result.outcome, language, r.detail, r.finalStatus ?? r.referStatus);
    return { target, status: 'failed', detail: r.detail };
  }

  /** REFER refused or timed out: tell the caller, then BYE with a Reason header. */
  async #failBack(outcome: Outcome, language: 'fr-FR' | 'en-US', detail: string, status: number): Promise<void> {
    if (this.#call.state !== 'ended') {
      await this.#call.play([TRANSFER_FAILED_PHRASE], { language, bargeIn: false }).catch((e: unknown) => {
        this.#log.error({ err: describeError(e) }, 'transfer-failed prompt not played');
        return 'ended';
      });
    }
    const text = `Transfer failed (${detail.replace(/"/g, "'")}); outcome ${outcome}`;
    await this.#call.hangup({ protocol: 'SIP', cause: status >= 300 && status < 700 ? status : 500, text }).catch(() => undefined);
  }

  #waitForRemoteBye(ms: number): Promise<void> {
    if (this.#call.state === 'ended') return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.#call.off('ended', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.#call.on('ended', done);
    });
  }
}
