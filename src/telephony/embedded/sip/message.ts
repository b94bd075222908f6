/**
 * SIP message model (RFC 3261 section 7) and the small grammar helpers the UAS needs: header
 * lookup with compact forms, comma-separated lists, name-addr, URI and Via parsing.
 * Header names are stored lower-case in their long form; values are kept verbatim (trimmed).
 */
import { normalizeHeaderName } from '../../../net/sip-header-name.js';

export { normalizeHeaderName };

export interface SipHeader {
  /** Lower-case long form ("call-id", never "i"). */
  name: string;
  value: string;
}

interface SipMessageBase {
  headers: SipHeader[];
  body: Buffer;
}

export interface SipRequest extends SipMessageBase {
  kind: 'request';
  method: string;
  uri: string;
}

export interface SipResponse extends SipMessageBase {
  kind: 'response';
  status: number;
  reason: string;
}

export type SipMessage = SipRequest | SipResponse;


/** Headers whose comma-separated values are separate entries (RFC 3261 7.3.1). */
const LIST_HEADERS = new Set([
  'via',
  'route',
  'record-route',
  'contact',
  'allow',
  'supported',
  'require',
  'proxy-require',
  'unsupported',
  'accept',
  'accept-encoding',
  'accept-language',
  'allow-events',
  'content-encoding',
]);

/** Display casing used when we write headers. */
const CANONICAL_NAMES: Readonly<Record<string, string>> = {
  'call-id': 'Call-ID',
  cseq: 'CSeq',
  'www-authenticate': 'WWW-Authenticate',
  'min-se': 'Min-SE',
  'rseq': 'RSeq',
  'rack': 'RAck',
  'user-to-user': 'User-to-User',
};


export function canonicalHeaderName(name: string): string {
  const lower = normalizeHeaderName(name);
  const known = CANONICAL_NAMES[lower];
  if (known !== undefined) return known;
  return lower.replace(/(^|-)([a-z])/g, (_m, sep: string, ch: string) => sep + ch.toUpperCase());
}

function isListHeader(name: string): boolean {
  return LIST_HEADERS.has(normalizeHeaderName(name));
}

/** Raw header lines with that name, in order (no comma splitting). */
export function rawHeaders(msg: SipMessage, name: string): string[] {
  const n = normalizeHeaderName(name);
  const out: string[] = [];
  for (const h of msg.headers) if (h.name === n) out.push(h.value);
  return out;
}

/** All values of a header, in order; list headers are split on top-level commas. */
export function headerValues(msg: SipMessage, name: string): string[] {
  const raws = rawHeaders(msg, name);
  if (!isListHeader(name)) return raws;
  const out: string[] = [];
  for (const r of raws) for (const part of splitList(r)) if (part !== '') out.push(part);
  return out;
}

export function headerValue(msg: SipMessage, name: string): string | undefined {
  return headerValues(msg, name)[0];
}

/** Splits on commas that are outside quotes and angle brackets. */
export function splitList(value: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const ch = value.charCodeAt(i);
    if (quoted) {
      if (ch === 0x5c) i++; // backslash escape inside a quoted string
      else if (ch === 0x22) quoted = false;
    } else if (ch === 0x22) quoted = true;
    else if (ch === 0x3c) depth++;
    else if (ch === 0x3e) depth = Math.max(0, depth - 1);
    else if (ch === 0x2c && depth === 0) {
      parts.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(value.slice(start).trim());
  return parts;
}

/** `;name=value;flag` parameters (value null for a flag); names lower-cased. */
export function parseParams(text: string): Map<string, string | null> {
  const params = new Map<string, string | null>();
  for (const p of splitOutsideQuotes(text, ';')) {
    const t = p.trim();
    if (t === '') continue;
    const eq = t.indexOf('=');
    if (eq < 0) params.set(t.toLowerCase(), null);
    else params.set(t.slice(0, eq).trim().toLowerCase(), unquote(t.slice(eq + 1).trim()));
  }
  return params;
}

function splitOutsideQuotes(text: string, sep: string): string[] {
  const out: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') quoted = !quoted;
    else if (ch === '\\' && quoted) i++;
    else if (ch === sep && !quoted) {
      out.push(text.slice(start, i));
      start = i + 1;
    }
  }
  out.push(text.slice(start));
  return out;
}

function unquote(v: string): string {
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) return v.slice(1, -1).replace(/\\(.)/g, '$1');
  return v;
}

interface NameAddr {
  displayName: string | undefined;
  /** The URI as written (inside the angle brackets when present). */
  uri: string;
  /** Header parameters after the URI (tag, expires, ...). */
  params: Map<string, string | null>;
}

/**
 * Parses `"Name" <sip:u@h;p>;tag=x` or `sip:u@h;tag=x`; undefined when malformed (RFC 3261
 * 20.10 and 25.1): an unquoted display name is tokens only, nothing but the URI inside the <>,
 * an addr-spec with `?` or `,` must be in <>, and no empty parameter (`;;`).
 */
export function parseNameAddr(value: string): NameAddr | undefined {
  const v = value.trim();
  if (v === '') return undefined;
  const lt = findUnquoted(v, '<');
  if (lt >= 0) {
    const gt = v.indexOf('>', lt);
    if (gt < 0) return undefined;
    const display = v.slice(0, lt).trim();
    if (display !== '' && !QUOTED_STRING.test(display) && !DISPLAY_TOKENS.test(display)) return undefined;
    const inner = v.slice(lt + 1, gt);
    const uri = inner.trim();
    if (uri === '' || uri !== inner || /[\s<>"]/.test(uri) || !uri.includes(':')) return undefined;
    const params = parseHeaderParams(v.slice(gt + 1));
    if (params === undefined) return undefined;
    return { displayName: display === '' ? undefined : unquote(display), uri, params };
  }
  // addr-spec form: header params start at the first ';' (URI params are impossible here).
  const semi = v.indexOf(';');
  const uri = (semi < 0 ? v : v.slice(0, semi)).trim();
  if (uri === '' || /[\s?,"<>]/.test(uri) || !uri.includes(':')) return undefined;
  const params = parseHeaderParams(semi < 0 ? '' : v.slice(semi));
  if (params === undefined) return undefined;
  return { displayName: undefined, uri, params };
}

const QUOTED_STRING = /^"(?:[^"\\]|\\[\s\S])*"$/;
const PARAM_NAME = /^[A-Za-z0-9.!%*_+`'~-]+$/;
const DISPLAY_TOKENS = /^[A-Za-z0-9.!%*_+`'~-]+(?:[ \t]+[A-Za-z0-9.!%*_+`'~-]+)*$/;

/** `[LWS] ;p[=v] ;p2...` after a URI: undefined when an element is empty or junk precedes the first ';'. */
function parseHeaderParams(text: string): Map<string, string | null> | undefined {
  const t = text.trim();
  if (t === '') return new Map();
  if (!t.startsWith(';')) return undefined;
  const pieces = splitOutsideQuotes(t.slice(1), ';');
  for (const piece of pieces) {
    const eq = piece.indexOf('=');
    const name = (eq < 0 ? piece : piece.slice(0, eq)).trim();
    if (!PARAM_NAME.test(name) || (eq >= 0 && piece.slice(eq + 1).trim() === '')) return undefined;
  }
  return parseParams(t.slice(1));
}

function findUnquoted(v: string, ch: string): number {
  let quoted = false;
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (c === '\\' && quoted) i++;
    else if (c === '"') quoted = !quoted;
    else if (c === ch && !quoted) return i;
  }
  return -1;
}

export function tagOf(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const t = parseNameAddr(value)?.params.get('tag');
  return t === null || t === undefined || t === '' ? undefined : t;
}

interface SipUri {
  scheme: string;
  user: string | undefined;
  host: string;
  port: number | undefined;
  params: Map<string, string | null>;
  /** Raw `?headers` part without the '?', or undefined. */
  headers: string | undefined;
}

/** Parses a sip:/sips: URI (tel: gives host ''); undefined when malformed. */
export function parseUri(uri: string): SipUri | undefined {
  const colon = uri.indexOf(':');
  if (colon <= 0) return undefined;
  const scheme = uri.slice(0, colon).toLowerCase();
  if (!/^[a-z][a-z0-9+.-]*$/.test(scheme)) return undefined;
  let rest = uri.slice(colon + 1);
  let headers: string | undefined;
  const q = rest.indexOf('?');
  if (q >= 0) {
    headers = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  if (scheme !== 'sip' && scheme !== 'sips') {
    return { scheme, user: rest, host: '', port: undefined, params: new Map(), headers };
  }
  const at = rest.lastIndexOf('@', rest.indexOf(';') >= 0 ? rest.indexOf(';') : rest.length);
  let user: string | undefined;
  if (at >= 0) {
    user = rest.slice(0, at);
    const pw = user.indexOf(':');
    if (pw >= 0) user = user.slice(0, pw);
    rest = rest.slice(at + 1);
  }
  const semi = rest.indexOf(';');
  const hostport = semi < 0 ? rest : rest.slice(0, semi);
  const params = parseParams(semi < 0 ? '' : rest.slice(semi + 1));
  const hp = splitHostPort(hostport);
  if (hp === undefined) return undefined;
  return { scheme, user, host: hp.host, port: hp.port, params, headers };
}

/** `host`, `host:port`, `[v6]`, `[v6]:port`; host returned without brackets. */
function splitHostPort(hostport: string): { host: string; port: number | undefined } | undefined {
  const hpv = hostport.trim();
  if (hpv === '') return undefined;
  let host: string;
  let portText: string | undefined;
  if (hpv.startsWith('[')) {
    const close = hpv.indexOf(']');
    if (close < 0) return undefined;
    host = hpv.slice(1, close);
    const after = hpv.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) return undefined;
      portText = after.slice(1);
    }
  } else {
    const c = hpv.indexOf(':');
    if (c >= 0) {
      host = hpv.slice(0, c);
      portText = hpv.slice(c + 1);
    } else host = hpv;
  }
  if (host === '' || !/^[A-Za-z0-9.:_-]+$/.test(host)) return undefined;
  let port: number | undefined;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText)) return undefined;
    port = Number(portText);
    if (port < 1 || port > 65535) return undefined;
  }
  return { host, port };
}

interface Via {
  /** "UDP", "TCP", "TLS", ... upper-cased. */
  transport: string;
  host: string;
  port: number | undefined;
  params: Map<string, string | null>;
  branch: string | undefined;
}

/** Parses one Via value: `SIP/2.0/UDP host:port;branch=...`. */
export function parseVia(value: string): Via | undefined {
  const m = /^SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z0-9-]+)\s+([^;\s]+)\s*(;.*)?$/i.exec(value.trim());
  if (m === null) return undefined;
  const hp = splitHostPort(m[2] as string);
  if (hp === undefined) return undefined;
  const params = parseHeaderParams(m[3] ?? '');
  if (params === undefined) return undefined;
  const branch = params.get('branch');
  return {
    transport: (m[1] as string).toUpperCase(),
    host: hp.host,
    port: hp.port,
    params,
    branch: branch === null || branch === undefined || branch === '' ? undefined : branch,
  };
}

interface CSeq {
  seq: number;
  method: string;
}

export function parseCSeq(value: string | undefined): CSeq | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d{1,10})\s+([A-Za-z0-9.!%*_+`'~-]+)$/.exec(value.trim());
  if (m === null) return undefined;
  const seq = Number(m[1]);
  if (seq > 0xffffffff) return undefined;
  return { seq, method: m[2] as string };
}

/** Lower-cased option tags of Supported/Require-like headers. */
export function optionTags(msg: SipMessage, name: string): Set<string> {
  return new Set(headerValues(msg, name).map((t) => t.trim().toLowerCase()).filter((t) => t !== ''));
}

/** Media type of Content-Type without parameters, lower-cased; undefined when absent. */
export function contentType(msg: SipMessage): string | undefined {
  const v = headerValue(msg, 'content-type');
  if (v === undefined) return undefined;
  return (v.split(';')[0] as string).trim().toLowerCase();
}

/** `host` for use in a URI/Via: IPv6 bracketed. */
export function uriHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}
