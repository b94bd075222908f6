import type Srf from 'drachtio-srf';
import type { Logger } from '../../log.js';
import { describeError } from '../../errors.js';
import { negotiateSessionTimer, sessionExpiresValue, timerDue, timerHeaders, type SessionTimerDecision, type SessionTimerPlan } from '../session-timer.js';

/** RFC 4028 negotiation (telephony/session-timer.ts) on a request drachtio-srf handed us. */
export function negotiateFor(req: Srf.SipMessage, ourInterval: number): SessionTimerDecision {
  const tags = (name: string): Set<string> =>
    new Set((req.get(name) ?? '').split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== ''));
  return negotiateSessionTimer({ header: (name) => req.get(name)?.split(',')[0], optionTags: tags }, ourInterval);
}

export function timerHeaderRecord(plan: SessionTimerPlan | undefined): Record<string, string> {
  return Object.fromEntries(timerHeaders(plan).map((h) => [h.name, h.value]));
}

interface SessionTimerOptions {
  dialog: Srf.Dialog;
  plan: SessionTimerPlan;
  /** sip.sessionExpires: what we accept at most when the peer refreshes. */
  ourInterval: number;
  /** The caller's INVITE allowed UPDATE: refreshes go as UPDATE without SDP, else as re-INVITE. */
  peerAllowsUpdate: boolean;
  /** Milliseconds per second of the RFC's timers (tests shrink it). */
  unitMs: number;
  log: Logger;
  /** No refresh from the peer in time. */
  expired: () => void;
  /** Our refresh got no 2xx. */
  refreshFailed: () => void;
}

/**
 * The session timer of one answered drachtio call, as the embedded stack runs it: we refresh at
 * half the interval when we are the refresher, else the call ends when the peer's refresh does
 * not come in time; every re-INVITE/UPDATE of the peer is a refresh, re-negotiated, and its 2xx
 * carries the interval (422 when it asks for less than Min-SE).
 */
export class DrachtioSessionTimer {
  readonly #o: SessionTimerOptions;
  #plan: SessionTimerPlan | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;

  constructor(o: SessionTimerOptions) {
    this.#o = o;
    this.#plan = o.plan;
    this.#arm();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  /**
   * Sees every in-dialog request of the peer before drachtio-srf handles it. A re-INVITE or UPDATE
   * is a refresh: the plan is re-negotiated and its 2xx gets the timer headers. False when it was
   * answered here (422).
   */
  peerRequest(req: Srf.SrfRequest, res: Srf.SrfResponse): boolean {
    if (this.#stopped || (req.method !== 'INVITE' && req.method !== 'UPDATE')) return true;
    const decision = negotiateFor(req, this.#o.ourInterval);
    if (decision.kind === 'reject') {
      res.send(422, { headers: { 'Min-SE': String(decision.minSE) } });
      return false;
    }
    const plan = decision.kind === 'use' ? decision.plan : undefined;
    const send = res.send.bind(res) as (status: number, a?: string | Srf.SendOptions, b?: Srf.SendOptions) => void;
    (res as { send: typeof send }).send = (status, a, b) => {
      if (status >= 200 && status < 300) {
        // The refresh happened: the new plan holds from now on.
        this.#plan = plan;
        this.#arm();
        const add = timerHeaderRecord(plan);
        if (typeof a === 'string') send(status, a, { ...b, headers: { ...b?.headers, ...add } });
        else send(status, { ...a, headers: { ...a?.headers, ...add } });
        return;
      }
      send(status, a, b);
    };
    return true;
  }

  #arm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const plan = this.#plan;
    if (plan === undefined || this.#stopped) return;
    const due = timerDue(plan);
    this.#timer = setTimeout(() => {
      if (this.#stopped) return;
      if (due.action === 'refresh') this.#refresh(plan);
      else {
        this.#o.log.info('session expired without refresh');
        this.#o.expired();
      }
    }, due.afterSeconds * this.#o.unitMs);
  }

  #refresh(plan: SessionTimerPlan): void {
    const { dialog } = this.#o;
    const headers = { 'Session-Expires': sessionExpiresValue({ ...plan, refresher: 'uas' }) };
    const sent: Promise<number> = this.#o.peerAllowsUpdate
      ? dialog.request({ method: 'UPDATE', headers }).then((r) => r.status)
      : dialog.modify(dialog.local.sdp, { headers }).then(() => 200);
    sent.then(
      (status) => {
        if (this.#stopped) return;
        if (status >= 200 && status < 300) this.#arm();
        else this.#failed(`status ${status}`);
      },
      (e: unknown) => {
        if (!this.#stopped) this.#failed(describeError(e));
      },
    );
  }

  #failed(why: string): void {
    this.#o.log.info({ why }, 'session refresh failed, ending the call');
    this.#o.refreshFailed();
  }
}
