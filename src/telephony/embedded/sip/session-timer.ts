import { headerValue, optionTags, parseParams, type SipRequest } from './message.js';

/**
 * RFC 4028 session-timer negotiation on the UAS side: what interval and refresher go into our
 * 2xx, or the Min-SE to demand with 422.
 */

const MIN_SE = 90;

export interface SessionTimerPlan {
  /** Seconds. */
  interval: number;
  refresher: 'uac' | 'uas';
  /** The UAC supports timers: our 2xx carries Require: timer. */
  require: boolean;
}

type SessionTimerDecision = { kind: 'none' } | { kind: 'reject'; minSE: number } | { kind: 'use'; plan: SessionTimerPlan };

function deltaSeconds(v: string | undefined): { value: number; params: Map<string, string | null> } | undefined {
  if (v === undefined) return undefined;
  const semi = v.indexOf(';');
  const num = (semi < 0 ? v : v.slice(0, semi)).trim();
  if (!/^\d{1,10}$/.test(num)) return undefined;
  return { value: Number(num), params: parseParams(semi < 0 ? '' : v.slice(semi + 1)) };
}

export function negotiateSessionTimer(req: SipRequest, ourInterval: number): SessionTimerDecision {
  const se = deltaSeconds(headerValue(req, 'session-expires'));
  const reqMinSE = Math.max(MIN_SE, deltaSeconds(headerValue(req, 'min-se'))?.value ?? MIN_SE);
  if (se !== undefined && se.value < MIN_SE) return { kind: 'reject', minSE: MIN_SE };
  const supports = optionTags(req, 'supported').has('timer') || optionTags(req, 'require').has('timer');
  const asked = se?.params.get('refresher');
  if (supports) {
    const interval = Math.max(reqMinSE, se === undefined ? ourInterval : Math.min(se.value, ourInterval));
    const refresher = asked === 'uas' ? 'uas' : 'uac';
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
