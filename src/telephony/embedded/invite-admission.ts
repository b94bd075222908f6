import type { Config } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { OncePerWindow } from '../../util/once-per-window.js';
import type { AdmissionControl } from '../admission.js';
import { headerValue, type SipHeader, type SipRequest } from './sip/message.js';
import { header } from './sip/serializer.js';
import type { Flow } from './sip/transport.js';
import type { InviteRefusal } from './sip/user-agent.js';

/**
 * How a new INVITE is refused on the embedded SIP stack, before the stack creates anything for
 * it (whichever role the node has: payment IVR or edge B2BUA): 503 while draining, else the
 * access checks of AdmissionControl. A refusal is one stateless response (or silence,
 * security.refusal), logged once per source and rule a minute.
 */
export function refuseInvite(
  invite: SipRequest,
  flow: Flow,
  ctx: {
    admission: AdmissionControl;
    security: Config['security'];
    log: Logger;
    refusedLog: OncePerWindow;
    activeCalls: number;
    /** Retry-After headers while draining, else undefined. */
    drainHeaders: SipHeader[] | undefined;
  },
): InviteRefusal | undefined {
  const source = flow.address;
  if (ctx.drainHeaders !== undefined) {
    const suppressed = ctx.refusedLog.take(`${source}|draining`);
    if (suppressed !== undefined) ctx.log.info({ callId: headerValue(invite, 'call-id'), source, suppressedLastMinute: suppressed }, 'INVITE refused: draining');
    return { status: 503, reason: 'Draining', headers: ctx.drainHeaders };
  }
  const verdict = ctx.admission.check(
    { sourceAddress: source, method: invite.method, requestUri: invite.uri, header: (name) => headerValue(invite, name) },
    ctx.activeCalls,
  );
  if (verdict.admitted) return undefined;
  const suppressed = ctx.refusedLog.take(`${source}|${verdict.why}`);
  if (suppressed !== undefined) {
    ctx.log.info({ callId: headerValue(invite, 'call-id'), source, status: verdict.status, why: verdict.why, suppressedLastMinute: suppressed }, 'INVITE refused');
  }
  // A digest challenge must be answered, or no one could ever authenticate.
  if (ctx.security.refusal === 'silent' && verdict.status !== 401) return { silent: true };
  return { status: verdict.status, reason: verdict.reason, headers: verdict.headers.map((h) => header(h.name, h.value)) };
}
