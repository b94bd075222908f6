import { randomBytes } from 'node:crypto';
import { canonicalHeaderName, normalizeHeaderName, rawHeaders, type SipHeader, type SipMessage, type SipRequest, type SipResponse } from './message.js';

/** Writes SIP messages (RFC 3261 section 7); Content-Length is always computed from the body. */

const REASONS: Readonly<Record<number, string>> = {
  100: 'Trying',
  180: 'Ringing',
  183: 'Session Progress',
  200: 'OK',
  202: 'Accepted',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  408: 'Request Timeout',
  415: 'Unsupported Media Type',
  416: 'Unsupported URI Scheme',
  420: 'Bad Extension',
  422: 'Session Interval Too Small',
  480: 'Temporarily Unavailable',
  481: 'Call/Transaction Does Not Exist',
  482: 'Loop Detected',
  483: 'Too Many Hops',
  486: 'Busy Here',
  487: 'Request Terminated',
  488: 'Not Acceptable Here',
  489: 'Bad Event',
  491: 'Request Pending',
  500: 'Server Internal Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
  505: 'Version Not Supported',
  513: 'Message Too Large',
  603: 'Decline',
};

function reasonPhrase(status: number): string {
  return REASONS[status] ?? (status < 200 ? 'Progress' : status < 300 ? 'OK' : 'Error');
}

export function serialize(msg: SipMessage): Buffer {
  const startLine = msg.kind === 'request' ? `${msg.method} ${msg.uri} SIP/2.0` : `SIP/2.0 ${msg.status} ${msg.reason}`;
  const lines = [startLine];
  for (const h of msg.headers) {
    if (h.name === 'content-length') continue;
    lines.push(`${canonicalHeaderName(h.name)}: ${h.value}`);
  }
  lines.push(`Content-Length: ${msg.body.length}`);
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'utf8');
  return msg.body.length === 0 ? head : Buffer.concat([head, msg.body]);
}

export function header(name: string, value: string): SipHeader {
  return { name: normalizeHeaderName(name), value };
}

/** Random token for tags and branches. */
export function randomToken(bytes = 8): string {
  return randomBytes(bytes).toString('hex');
}

export function newBranch(): string {
  return `z9hG4bK${randomToken(10)}`;
}

/**
 * A response to `req` (RFC 3261 8.2.6): Via, From, To, Call-ID, CSeq copied; `toTag` added to To
 * when it has none (not for 100).
 */
export function buildResponse(
  req: SipRequest,
  status: number,
  opts: { reason?: string; toTag?: string; headers?: SipHeader[]; body?: Buffer; copyRecordRoute?: boolean } = {},
): SipResponse {
  const headers: SipHeader[] = [];
  for (const v of rawHeaders(req, 'via')) headers.push({ name: 'via', value: v });
  for (const name of ['from', 'to', 'call-id', 'cseq'] as const) {
    // One of each, even when a malformed request repeated them.
    for (const v of rawHeaders(req, name).slice(0, 1)) {
      let value = v;
      if (name === 'to' && status > 100 && opts.toTag !== undefined && !/;\s*tag=/i.test(toParamsPart(v))) {
        value = `${v};tag=${opts.toTag}`;
      }
      headers.push({ name, value });
    }
  }
  if (opts.copyRecordRoute === true) for (const v of rawHeaders(req, 'record-route')) headers.push({ name: 'record-route', value: v });
  if (opts.headers !== undefined) headers.push(...opts.headers);
  return { kind: 'response', status, reason: opts.reason ?? reasonPhrase(status), headers, body: opts.body ?? Buffer.alloc(0) };
}

/** The part of a To/From value after the URI (where a tag would be). */
function toParamsPart(v: string): string {
  const gt = v.lastIndexOf('>');
  return gt >= 0 ? v.slice(gt + 1) : v;
}
