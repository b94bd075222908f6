import { negotiateSessionTimer as negotiate, type SessionTimerDecision } from '../../session-timer.js';
import { headerValue, optionTags, type SipRequest } from './message.js';

export { sessionExpiresValue, type SessionTimerPlan } from '../../session-timer.js';

/** RFC 4028 negotiation (the rule: telephony/session-timer.ts) on a request of our stack. */
export function negotiateSessionTimer(req: SipRequest, ourInterval: number): SessionTimerDecision {
  return negotiate({ header: (name) => headerValue(req, name), optionTags: (name) => optionTags(req, name) }, ourInterval);
}
