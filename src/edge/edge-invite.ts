import type { EdgeConfig } from '../config/schema.js';
import type { LocalEndpoint } from '../telephony/embedded/sip/dialog.js';
import type { ClientInviteOptions } from '../telephony/embedded/sip/client-session.js';
import { headerValue, normalizeHeaderName, parseNameAddr, parseUri, rawHeaders, uriHost, type SipHeader, type SipMessage, type SipRequest } from '../telephony/embedded/sip/message.js';
import { header } from '../telephony/embedded/sip/serializer.js';
import { NEVER_PASSED } from '../config/edge-schema.js';

/**
 * How the B2BUA turns the caller's INVITE into the INVITE toward Genesys. A B2BUA is the UAC of
 * the new leg, so nothing of the caller's dialog leaks through except what is chosen here:
 *   Request-URI  sip:<user of the caller's Request-URI>@<genesys host>:<port>[;transport=...]
 *   From         the caller's display name and user, at our address, with our own tag
 *   To           the called display name and user, at the Genesys host, no tag
 *   Call-ID, tags, CSeq, Via, Contact: new; Max-Forwards: the caller's minus one
 *   edge.passHeaders copied verbatim (every occurrence), then edge.sessionHeader with the id
 * Headers not listed (P-Asserted-Identity, Diversion, ...) are not passed unless configured.
 */

export type GenesysTarget = NonNullable<EdgeConfig['genesys']>;


/** Characters a URI user part may hold (RFC 3261 25.1 unreserved, escaped, user-unreserved). */
const URI_USER = /^[A-Za-z0-9\-_.!~*'()%&=+$,;?/]+$/;

/** The user part of a sip:/sips:/tel: Request-URI, or undefined when there is none we can reuse. */
export function requestUser(uri: string): string | undefined {
  const u = parseUri(uri);
  if (u === undefined) return undefined;
  const user = u.scheme === 'tel' ? u.user?.split(';')[0] : u.user;
  return user !== undefined && user !== '' && URI_USER.test(user) ? user : undefined;
}

function quoteDisplay(name: string | undefined): string {
  if (name === undefined || name === '') return '';
  return `"${name.replace(/[\r\n]/g, ' ').replace(/(["\\])/g, '\\$1')}" `;
}

function partyUser(value: string | undefined): string | undefined {
  const na = value === undefined ? undefined : parseNameAddr(value);
  return na === undefined ? undefined : requestUser(na.uri);
}

function userAt(user: string | undefined, host: string): string {
  return user === undefined ? uriHost(host) : `${user}@${uriHost(host)}`;
}

/** Copies of the allow-listed headers of `msg` (names compared in long, lower-case form). */
export function passedHeaders(msg: SipMessage, names: readonly string[], sessionHeader: string): SipHeader[] {
  const session = normalizeHeaderName(sessionHeader);
  const out: SipHeader[] = [];
  for (const name of new Set(names.map(normalizeHeaderName))) {
    if (NEVER_PASSED.has(name) || name === session) continue;
    for (const v of rawHeaders(msg, name)) out.push({ name, value: v });
  }
  return out;
}

/** Max-Forwards of the caller's INVITE (70 when absent or unreadable). */
export function maxForwards(req: SipRequest): number {
  const v = headerValue(req, 'max-forwards');
  return v !== undefined && /^\d{1,3}$/.test(v.trim()) ? Number(v.trim()) : 70;
}

export function genesysInvite(
  caller: SipRequest,
  opts: { genesys: GenesysTarget; passHeaders: readonly string[]; sessionHeader: string; sessionId: string; sdp: string; local: LocalEndpoint },
): ClientInviteOptions {
  const g = opts.genesys;
  const tp = g.transport === 'udp' ? '' : `;transport=${g.transport}`;
  const from = parseNameAddr(headerValue(caller, 'from') ?? '');
  const to = parseNameAddr(headerValue(caller, 'to') ?? '');
  return {
    uri: `sip:${userAt(requestUser(caller.uri), g.host)}:${g.port}${tp}`,
    target: { transport: g.transport, address: g.host, port: g.port },
    from: `${quoteDisplay(from?.displayName)}<sip:${userAt(partyUser(headerValue(caller, 'from')), opts.local.host)}>`,
    to: `${quoteDisplay(to?.displayName)}<sip:${userAt(partyUser(headerValue(caller, 'to')), g.host)}>`,
    sdp: opts.sdp,
    maxForwards: Math.max(0, maxForwards(caller) - 1),
    contactUser: 'pay-ivr-edge',
    headers: [...passedHeaders(caller, opts.passHeaders, opts.sessionHeader), header(opts.sessionHeader, opts.sessionId)],
  };
}
