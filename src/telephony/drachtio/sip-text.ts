import type { Transport } from '../types.js';
import { normalizeHeaderName } from '../../net/sip-header-name.js';

/**
 * Small text helpers for what drachtio hands us as strings: the raw INVITE (headers in wire
 * order), name-addr URIs, transports and SDP origins. The Reason header and the NOTIFY's
 * message/sipfrag are shared with the embedded backend: `../sip-reason.ts`, `../refer-tracker.ts`.
 */

/** A header name as one spelling (lower case, compact forms expanded): the stack's own rule. */
export { normalizeHeaderName as canonicalHeaderName };

/**
 * The header section of a raw SIP message as (lower-case name, value) pairs in wire order;
 * folded lines are joined. Values are not split on commas: one entry per header line.
 */
export function parseRawHeaders(raw: string): [string, string][] {
  const end = raw.indexOf('\r\n\r\n');
  const head = end === -1 ? raw : raw.slice(0, end);
  const lines = head.split('\r\n');
  const out: [string, string][] = [];
  for (const line of lines.slice(1)) {
    if ((line.startsWith(' ') || line.startsWith('\t')) && out.length > 0) {
      const last = out[out.length - 1] as [string, string];
      last[1] = `${last[1]} ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    out.push([normalizeHeaderName(line.slice(0, colon)), line.slice(colon + 1).trim()]);
  }
  return out;
}

/** The URI of a name-addr or addr-spec header value ("Alice" <sip:a@b>;tag=1 -> sip:a@b). */
export function uriOfNameAddr(value: string): string {
  const lt = value.indexOf('<');
  if (lt !== -1) {
    const gt = value.indexOf('>', lt);
    return value.slice(lt + 1, gt === -1 ? undefined : gt).trim();
  }
  const semi = value.indexOf(';');
  return (semi === -1 ? value : value.slice(0, semi)).trim();
}

/** The user part of a sip:/sips: URI without its parameters, or the number of a tel: URI. */
export function userOfUri(uri: string): string {
  const m = /^(?:sips?|tel):([^@;?]*)/i.exec(uri.trim());
  return m?.[1] !== undefined ? decodeURIComponentSafe(m[1]) : '';
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** drachtio's protocol string -> the port's transport (websockets count as their stream). */
export function transportOf(protocol: string | undefined): Transport {
  const p = (protocol ?? '').toLowerCase();
  if (p === 'tls' || p === 'wss') return 'tls';
  if (p === 'tcp' || p === 'ws') return 'tcp';
  return 'udp';
}
