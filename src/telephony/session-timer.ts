/**
 * RFC 4028 session timers on the UAS side, both backends: what interval and refresher go into our
 * 2xx (and the 2xx of each refresh), or the Min-SE to demand with 422; and when the refresher acts
 * or the session ends. The embedded stack reads headers through sip/session-timer.ts, the
 * drachtio backend through drachtio-srf's request.
 */

export const MIN_SE = 90;

export interface SessionTimerPlan {
  /** Seconds. */
  interval: number;
  refresher: 'uac' | 'uas';
  /** The UAC supports timers: our 2xx carries Require: timer. */
  require: boolean;
}

export type SessionTimerDecision = { kind: 'none' } | { kind: 'reject'; minSE: number } | { kind: 'use'; plan: SessionTimerPlan };

/** The headers of a request the negotiation reads. */
export interface TimerRequest {
  /** The value of a header (the first one), undefined when absent. */
  header(name: 'session-expires' | 'min-se'): string | undefined;
  /** The option tags of Supported or Require, lower-cased. */
  optionTags(name: 'supported' | 'require'): Set<string>;
}

function deltaSeconds(v: string | undefined): { value: number; refresher: string | undefined } | undefined {
  if (v === undefined) return undefined;
  const [num = '', ...params] = v.split(';');
  if (!/^\d{1,10}$/.test(num.trim())) return undefined;
  let refresher: string | undefined;
  for (const p of params) {
    const eq = p.indexOf('=');
    if (eq > 0 && p.slice(0, eq).trim().toLowerCase() === 'refresher') refresher = p.slice(eq + 1).trim().replace(/^"|"$/g, '').toLowerCase();
  }
  return { value: Number(num.trim()), refresher };
}

export function negotiateSessionTimer(req: TimerRequest, ourInterval: number): SessionTimerDecision {
  const se = deltaSeconds(req.header('session-expires'));
  const reqMinSE = Math.max(MIN_SE, deltaSeconds(req.header('min-se'))?.value ?? MIN_SE);
  if (se !== undefined && se.value < MIN_SE) return { kind: 'reject', minSE: MIN_SE };
  const supports = req.optionTags('supported').has('timer') || req.optionTags('require').has('timer');
  if (supports) {
    const interval = Math.max(reqMinSE, se === undefined ? ourInterval : Math.min(se.value, ourInterval));
    const refresher = se?.refresher === 'uas' ? 'uas' : 'uac';
    return { kind: 'use', plan: { interval, refresher, require: true } };
  }
  if (se !== undefined) {
    // A proxy asked for timers on behalf of a UAC that has none: we refresh (RFC 4028 9).
    return { kind: 'use', plan: { interval: Math.max(reqMinSE, se.value), refresher: 'uas', require: false } };
  }
  return { kind: 'none' };
}

export function sessionExpiresValue(plan: SessionTimerPlan): string {
  return `${plan.interval};refresher=${plan.refresher}`;
}

/** The Session-Expires (and Require: timer) a 2xx carries under `plan`. */
export function timerHeaders(plan: SessionTimerPlan | undefined): { name: 'Session-Expires' | 'Require'; value: string }[] {
  if (plan === undefined) return [];
  const h: { name: 'Session-Expires' | 'Require'; value: string }[] = [{ name: 'Session-Expires', value: sessionExpiresValue(plan) }];
  if (plan.require) h.push({ name: 'Require', value: 'timer' });
  return h;
}

/**
 * When the timer of `plan` fires, in seconds after the last refresh: we refresh at half the
 * interval; when the peer refreshes, the session ends if no refresh came by the interval less a
 * grace of min(32, interval/3) (RFC 4028 10).
 */
export function timerDue(plan: SessionTimerPlan): { action: 'refresh' | 'expire'; afterSeconds: number } {
  if (plan.refresher === 'uas') return { action: 'refresh', afterSeconds: plan.interval / 2 };
  return { action: 'expire', afterSeconds: plan.interval - Math.min(32, plan.interval / 3) };
}
