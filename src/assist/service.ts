import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Config, Profile } from '../config/schema.js';
import type { AssistConfig } from '../config/edge-schema.js';
import type { Logger } from '../log.js';
import type { CaptureHost, EdgeCall } from '../edge/types.js';
import type { PaymentGateway } from '../psp/types.js';
import type { PaymentJournal } from '../journal/journal.js';
import { chargeWithJournal } from '../journal/journaled-charge.js';
import type { ResultStore } from '../store/types.js';
import type { Reports } from '../reports/index.js';
import type { Metrics } from '../http/metrics.js';
import type { PaymentResult } from '../domain/outcome.js';
import type { DialogueStep } from '../domain/dialogue/steps.js';
import type { ChargeOutcome } from '../domain/charge.js';
import type { CaptureField, CaptureResult, CaptureView } from '../domain/assist/capture.js';
import { findCardData } from '../domain/card-data-guard.js';
import { PayIvrError, describeError } from '../errors.js';
import { bearerMatchesToken } from '../http/token.js';
import { CaptureTask, type CaptureChargeFn } from './capture-task.js';
import { formatMajor } from '../domain/money.js';
import { PanelTokens } from './panel-token.js';

/** What starts a capture (the Genesys data action's request). Amount in minor units. */
export interface StartCaptureRequest {
  sessionId: string;
  amount: number;
  /** ISO 4217; default the profile currency. */
  currency?: string | undefined;
  reference: string;
  language?: 'fr-FR' | 'en-US' | undefined;
}

/** The outcome of an ended capture, as the API and the panel may show it. */
export interface MaskedResult {
  outcome: CaptureResult['outcome'];
  reason: CaptureResult['reason'];
  brand?: string | undefined;
  last4?: string | undefined;
  /** The PSP's reference of the charge. */
  pspReference?: string | undefined;
  declineClass?: string | undefined;
}

/** One capture as the API answers it: never a card digit. */
export interface CaptureSnapshot {
  captureId: string;
  status: 'running' | 'ended';
  amount: number;
  currency: string;
  /** The amount in major units as text ("49.90"). */
  amountText: string;
  reference: string;
  conversationId?: string | undefined;
  startedAt: string;
  endedAt?: string | undefined;
  view: CaptureView;
  result?: MaskedResult | undefined;
}

export type CaptureUpdate = { type: 'progress'; capture: CaptureSnapshot } | { type: 'ended'; capture: CaptureSnapshot };

export interface StartedCapture {
  captureId: string;
  panelToken: string;
  /** Unix seconds. */
  panelTokenExpiresAt: number;
  capture: CaptureSnapshot;
}

export interface AssistServiceDeps {
  config: Pick<Config, 'profiles' | 'defaultProfile'> & { edge?: { assist?: AssistConfig | undefined } | undefined };
  host: CaptureHost;
  /** The gateway of a profile (the same one the IVR calls use). */
  gatewayFor: (profile: string) => PaymentGateway;
  journal?: PaymentJournal | undefined;
  store?: ResultStore | undefined;
  reports?: Reports | undefined;
  metrics?: Metrics | undefined;
  logger: Logger;
  now?: () => Date;
}

/** Ended captures kept for GET state (the panel shows the result); the oldest go first. */
const ENDED_KEPT_MS = 15 * 60_000;
/** Event streams per capture (a panel, perhaps reopened): more are refused. */
const MAX_SUBSCRIBERS = 8;
const CAPTURE_ID_BYTES = 18;

const PROMPT_OF: Record<CaptureField, (codeLength: 3 | 4) => string> = {
  pan: () => 'enter-card-number',
  expiry: () => 'enter-expiry',
  securityCode: (n) => `enter-security-code-${n}`,
};

interface Entry {
  id: string;
  sessionId: string;
  task: CaptureTask;
  snapshot: CaptureSnapshot;
  subscribers: Set<(u: CaptureUpdate) => void>;
  endedAtMs?: number;
}

function badRequest(path: string, message: string): PayIvrError {
  return new PayIvrError('ERR_ASSIST_BAD_REQUEST', `${path}: ${message}`, { details: { path } });
}

/**
 * Agent Assist card capture: starts a capture on a relayed call (found through the CaptureHost),
 * runs it as a CaptureTask, charges through the profile's resilient gateway and the payment
 * journal (the same path as the IVR), writes the result and a reports segment (mode `assist`),
 * and hands masked snapshots to the API and its event streams.
 */
export class AssistService {
  readonly tokens: PanelTokens;
  readonly #d: AssistServiceDeps;
  readonly #cfg: AssistConfig;
  readonly #profileName: string;
  readonly #profile: Profile;
  readonly #log: Logger;
  readonly #now: () => Date;
  readonly #byId = new Map<string, Entry>();
  /** Edge session id -> the capture running on it. */
  readonly #running = new Map<string, Entry>();
  /** Session ids whose start is in progress (keys being blocked). */
  readonly #starting = new Set<string>();
  #closed = false;

  constructor(deps: AssistServiceDeps) {
    const cfg = deps.config.edge?.assist;
    if (cfg === undefined) throw new PayIvrError('ERR_CONFIG_INVALID', 'edge.assist: not configured');
    this.#d = deps;
    this.#cfg = cfg;
    this.#profileName = cfg.profile ?? deps.config.defaultProfile;
    const profile = deps.config.profiles[this.#profileName];
    if (profile === undefined) throw new PayIvrError('ERR_CONFIG_INVALID', `edge.assist.profile: no profile named "${this.#profileName}"`);
    this.#profile = profile;
    this.#log = deps.logger.child({ component: 'assist' });
    this.#now = deps.now ?? (() => new Date());
    this.tokens = new PanelTokens({ secret: cfg.tokenSecret, ttlSeconds: cfg.panelTokenTtlSeconds, now: () => this.#now().getTime() });
  }

  /** Origins that may frame the agent panel. */
  get frameAncestors(): readonly string[] {
    return this.#cfg.frameAncestors;
  }

  /** Whether an Authorization header carries one of the configured API keys (constant time each). */
  apiKeyMatches(authorization: string | undefined): boolean {
    const m = authorization === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
    const presented = m?.[1] ?? '';
    let ok = false;
    for (const k of this.#cfg.apiKeys) ok = bearerMatchesToken(presented, k) || ok;
    return ok;
  }

  /**
   * Starts a capture: the caller's keys are blocked before this resolves. Throws coded errors:
   * ERR_ASSIST_UNKNOWN_CALL, _CALL_ENDED, _BUSY, _BAD_REQUEST (amount, currency, reference),
   * _CAPACITY, _BLOCK.
   */
  async start(req: StartCaptureRequest): Promise<StartedCapture> {
    if (this.#closed) throw new PayIvrError('ERR_ASSIST_CAPACITY', 'the service is stopping');
    const { currency, minAmount, maxAmount } = this.#chargeCurrency(req.currency);
    if (!Number.isSafeInteger(req.amount) || req.amount <= 0) throw badRequest('amount', 'must be a positive integer in minor units');
    if (req.amount < minAmount || req.amount > maxAmount) throw badRequest('amount', `must be between ${minAmount} and ${maxAmount} (minor units of ${currency})`);
    if (findCardData({ reference: req.reference }) !== undefined) throw badRequest('reference', 'must not look like card data');

    const found = this.#d.host.find(req.sessionId);
    if (found === undefined) throw new PayIvrError('ERR_ASSIST_UNKNOWN_CALL', 'no call with this edge session id');
    if (found === 'ended' || found.state === 'ended') throw new PayIvrError('ERR_ASSIST_CALL_ENDED', 'the call has ended');
    if (this.#running.has(req.sessionId) || this.#starting.has(req.sessionId)) throw new PayIvrError('ERR_ASSIST_BUSY', 'a capture already runs on this call');
    if (this.#running.size + this.#starting.size >= this.#cfg.maxCaptures) throw new PayIvrError('ERR_ASSIST_CAPACITY', 'too many captures at once');

    const call = found;
    const id = randomBytes(CAPTURE_ID_BYTES).toString('base64url');
    const log = this.#log.child({ capture: id, conversationId: call.conversationId });
    const startedAt = this.#now();
    const language = req.language ?? this.#cfg.prompts?.language ?? this.#profile.language;
    const segment = this.#d.reports?.recorder({ id, profile: this.#profileName, mode: 'assist', language, now: this.#now });
    let step: DialogueStep | undefined;
    let invalid = 0;
    let pspMs = 0;
    let chargeStart = 0;

    const entry: Entry = {
      id,
      sessionId: req.sessionId,
      task: undefined as unknown as CaptureTask,
      subscribers: new Set(),
      snapshot: {
        captureId: id,
        status: 'running',
        amount: req.amount,
        currency,
        amountText: formatMajor(req.amount, currency),
        reference: req.reference,
        conversationId: call.conversationId,
        startedAt: startedAt.toISOString(),
        view: { phase: 'collecting', field: 'pan', pan: { digits: 0, status: 'empty' }, expiry: { digits: 0, status: 'empty', entered: false }, securityCode: { digits: 0, status: 'empty', entered: false, required: true, length: 3 }, invalidEntries: 0 },
      },
    };
    const prompts = this.#cfg.prompts;
    entry.task = new CaptureTask({
      id,
      call,
      input: {
        settings: { allowedBrands: this.#profile.allowedBrands, securityCode: this.#profile.securityCode, maxKeysPerField: this.#cfg.maxKeysPerField },
        now: { year: startedAt.getUTCFullYear(), month: startedAt.getUTCMonth() + 1 },
        amount: req.amount,
        currency,
      },
      dtmfSecurity: this.#cfg.dtmfSecurity,
      timeoutMs: this.#cfg.captureTimeoutSeconds * 1000,
      promptFor: prompts === undefined ? undefined : (field, n) => join(prompts.dir, language, `${PROMPT_OF[field](n)}.wav`),
      charge: (c) =>
        this.#charge(call, id, log, { ...c, reference: req.reference }).then((o) => {
          void this.#saveResult(this.#result(entry, call, startedAt, { outcome: o, brand: c.brand, last4: c.card.pan.lastDigits(4), invalid, pspMs }), log, 'charged');
          return o;
        }),
      log,
      hooks: {
        onView: (view) => {
          entry.snapshot = { ...entry.snapshot, view };
          const next = stepOfView(view);
          if (segment !== undefined && next !== undefined) {
            segment.progress({ step: next, previous: step, invalidEntries: Math.max(0, view.invalidEntries - invalid), noInputTimeout: false });
          }
          invalid = view.invalidEntries;
          step = next ?? step;
          if (entry.task.result === undefined) this.#publish(entry, { type: 'progress', capture: entry.snapshot });
        },
        onCharge: (phase, outcome) => {
          segment?.charge(phase, outcome);
          if (phase === 'start') chargeStart = Date.now();
          else pspMs += Date.now() - chargeStart;
        },
      },
    });

    this.#starting.add(req.sessionId);
    const ended = entry.task.run();
    // A start that fails is reported below, through `started`.
    ended.catch(() => undefined);
    try {
      await entry.task.started;
    } catch (e) {
      this.#starting.delete(req.sessionId);
      entry.task.kill();
      log.warn({ err: describeError(e) }, 'capture not started');
      throw e;
    }
    this.#starting.delete(req.sessionId);
    this.#byId.set(id, entry);
    this.#running.set(req.sessionId, entry);
    this.#prune();
    log.info({ amount: req.amount, currency, mode: this.#cfg.dtmfSecurity }, 'capture started: caller keys blocked');

    void ended.then(async (r) => {
      entry.endedAtMs = this.#now().getTime();
      this.#running.delete(req.sessionId);
      entry.task.kill();
      const result = this.#result(entry, call, startedAt, { capture: r, invalid: r.invalidEntries, pspMs });
      entry.snapshot = { ...entry.snapshot, status: 'ended', endedAt: new Date(entry.endedAtMs).toISOString(), result: maskedResult(r) };
      log.info({ outcome: r.outcome, reason: r.reason, brand: r.brand, last4: r.last4, invalidEntries: r.invalidEntries }, 'capture ended');
      this.#publish(entry, { type: 'ended', capture: entry.snapshot });
      await this.#saveResult(result, log, 'ended');
      if (segment !== undefined) {
        segment.step('result');
        await this.#d.reports?.save(segment.finish(result));
      }
    }).catch((e: unknown) => log.error({ err: describeError(e) }, 'capture end not recorded'));

    const token = this.tokens.issue(id);
    return { captureId: id, panelToken: token.token, panelTokenExpiresAt: token.expiresAt, capture: entry.snapshot };
  }

  snapshot(id: string): CaptureSnapshot | undefined {
    return this.#byId.get(id)?.snapshot;
  }

  /** Live updates of one capture; undefined when unknown or too many streams are open. */
  subscribe(id: string, fn: (u: CaptureUpdate) => void): (() => void) | undefined {
    const e = this.#byId.get(id);
    if (e === undefined || e.subscribers.size >= MAX_SUBSCRIBERS) return undefined;
    e.subscribers.add(fn);
    return () => void e.subscribers.delete(fn);
  }

  /** Event streams open on a capture (0 when unknown). */
  streams(id: string): number {
    return this.#byId.get(id)?.subscribers.size ?? 0;
  }

  clearField(id: string, field?: CaptureField): CaptureSnapshot {
    this.#entry(id).task.clearField(field);
    return this.#entry(id).snapshot;
  }

  charge(id: string): CaptureSnapshot {
    this.#entry(id).task.charge();
    return this.#entry(id).snapshot;
  }

  cancel(id: string): CaptureSnapshot {
    this.#entry(id).task.cancel();
    return this.#entry(id).snapshot;
  }

  /** Captures running now. */
  get running(): number {
    return this.#running.size;
  }

  /**
   * Stops the service: captures still collecting are cancelled (keys unblocked), then every task
   * is killed; a charge already with the PSP is left to the journal. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const entries = [...this.#running.values()];
    for (const e of entries) {
      try {
        e.task.cancel();
      } catch {
        // charging or ended: nothing to cancel
      }
    }
    // Give the cancels a moment to unblock the keys, then stop everything.
    await Promise.race([Promise.allSettled(entries.map((e) => e.task.started)), new Promise((r) => setTimeout(r, 1_000).unref())]);
    for (const e of this.#byId.values()) {
      e.task.kill();
      e.subscribers.clear();
    }
  }

  #entry(id: string): Entry {
    const e = this.#byId.get(id);
    if (e === undefined) throw new PayIvrError('ERR_ASSIST_UNKNOWN_CALL', 'no such capture');
    return e;
  }

  #publish(e: Entry, u: CaptureUpdate): void {
    for (const fn of e.subscribers) {
      try {
        fn(u);
      } catch {
        // A closed stream must not stop the others.
      }
    }
  }

  /** Forgets ended captures older than ENDED_KEPT_MS, and the oldest ended ones beyond maxCaptures. */
  #prune(): void {
    const limit = this.#now().getTime() - ENDED_KEPT_MS;
    let endedKept = 0;
    for (const e of this.#byId.values()) if (e.endedAtMs !== undefined) endedKept++;
    // Insertion order is start order: the first ones are the oldest.
    for (const [id, e] of this.#byId) {
      if (e.endedAtMs === undefined) continue;
      if (e.endedAtMs < limit || endedKept > this.#cfg.maxCaptures) {
        e.subscribers.clear();
        this.#byId.delete(id);
        endedKept--;
      }
    }
  }

  #chargeCurrency(requested: string | undefined): { currency: string; minAmount: number; maxAmount: number } {
    const p = this.#profile;
    const currency = requested ?? p.currency;
    if (currency === p.currency) return { currency, minAmount: p.minAmount, maxAmount: p.maxAmount };
    const other = p.acceptedCurrencies[currency];
    if (other === undefined) throw badRequest('currency', `not accepted (profile ${this.#profileName} takes ${[p.currency, ...Object.keys(p.acceptedCurrencies)].join(', ')})`);
    return { currency, minAmount: other.minAmount, maxAmount: other.maxAmount };
  }

  async #charge(call: EdgeCall, id: string, log: Logger, req: Parameters<CaptureChargeFn>[0] & { reference: string }): Promise<ChargeOutcome> {
    const gateway = this.#d.gatewayFor(this.#profileName);
    const metadata: Record<string, string> = { callId: call.anchor.callId, reference: req.reference, channel: 'agent-assist' };
    if (call.conversationId !== undefined) metadata.conversationId = call.conversationId;
    const r = await chargeWithJournal({
      gateway,
      journal: this.#d.journal,
      log,
      callRef: id,
      callId: call.anchor.callId,
      profile: this.#profileName,
      reference: req.reference,
      amount: req.amount,
      currency: req.currency,
      card: req.card,
      brand: req.brand,
      attempt: 1,
      mode: 'agent',
      conversationId: call.conversationId,
      metadata,
    });
    if (r.sent) {
      this.#d.metrics?.pspRequest(gateway.name, r.outcome.status, r.ms / 1000);
      if (r.outcome.status === 'declined') this.#d.metrics?.decline(r.outcome.declineClass);
    }
    log.info({ brand: req.brand, status: r.outcome.status, ms: r.ms }, 'capture charge finished');
    return r.outcome;
  }

  #result(
    entry: Entry,
    call: EdgeCall,
    startedAt: Date,
    x: { capture?: CaptureResult; outcome?: ChargeOutcome; brand?: string; last4?: string; invalid: number; pspMs: number },
  ): PaymentResult & { id: string } {
    const s = entry.snapshot;
    const base: PaymentResult & { id: string } = {
      id: entry.id,
      outcome: 'error',
      // The agent stays on the call: the result is an agent-mode payment.
      mode: 'agent',
      currency: s.currency,
      amount: s.amount,
      reference: s.reference,
      conversationId: call.conversationId,
      callId: call.anchor.callId,
      profile: this.#profileName,
      origin: 'call',
      attempts: { charges: 0, declines: 0, invalidEntries: x.invalid },
      handBack: { target: '', status: 'skipped', detail: 'agent assist: the call stays with the agent' },
    };
    const now = this.#now();
    const timings = { startedAt: startedAt.toISOString(), endedAt: now.toISOString(), durationMs: now.getTime() - startedAt.getTime(), pspMs: Math.round(x.pspMs) };
    if (x.capture !== undefined) {
      const c = x.capture;
      return {
        ...base,
        outcome: c.outcome,
        brand: c.brand,
        last4: c.last4,
        transactionId: c.transactionId,
        authCode: c.authCode,
        declineClass: c.declineClass,
        attempts: { charges: c.charged ? 1 : 0, declines: c.outcome === 'declined' ? 1 : 0, invalidEntries: c.invalidEntries },
        timings,
        stage: 'ended',
      };
    }
    const o = x.outcome as ChargeOutcome;
    const outcome = o.status === 'approved' ? 'approved' : o.status === 'declined' ? 'declined' : o.status === 'failed' ? 'psp-error' : 'unconfirmed';
    return {
      ...base,
      outcome,
      brand: x.brand,
      last4: x.last4,
      transactionId: o.status === 'approved' || o.status === 'declined' ? o.transactionId : undefined,
      authCode: o.status === 'approved' ? o.authCode : undefined,
      declineClass: o.status === 'declined' ? o.declineClass : undefined,
      attempts: { charges: 1, declines: o.status === 'declined' ? 1 : 0, invalidEntries: x.invalid },
      timings: { startedAt: timings.startedAt, pspMs: timings.pspMs },
      stage: 'charged',
    };
  }

  async #saveResult(r: PaymentResult & { id: string }, log: Logger, stage: 'charged' | 'ended'): Promise<void> {
    await this.#d.store?.saveResult(r).catch((e: unknown) => log.error({ err: describeError(e), stage }, 'capture result not stored'));
  }
}

/** The reports step of a view: the field being typed, the charge, or none. */
function stepOfView(v: CaptureView): DialogueStep | undefined {
  if (v.phase === 'charging') return 'charging';
  if (v.phase !== 'collecting') return undefined;
  return v.field === 'pan' ? 'card-number' : v.field === 'expiry' ? 'expiry' : 'security-code';
}

export function maskedResult(r: CaptureResult): MaskedResult {
  return { outcome: r.outcome, reason: r.reason, brand: r.brand, last4: r.last4, pspReference: r.transactionId, declineClass: r.declineClass };
}
