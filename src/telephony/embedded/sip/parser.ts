import { PayIvrError } from '../../../errors.js';
import {
  normalizeHeaderName,
  parseCSeq,
  parseUri,
  splitList,
  parseNameAddr,
  parseVia,
  rawHeaders,
  type SipHeader,
  type SipMessage,
  type SipRequest,
} from './message.js';

/**
 * Strict, bounded SIP parser (RFC 3261 sections 7 and 18.3). Work is linear in the input and
 * capped by the limits; the only thing it throws is SipParseError (a PayIvrError). When the bad
 * message is a request whose Via can be read, the error carries what is needed to answer 400.
 */

export interface ParseLimits {
  maxMessageBytes: number;
  maxHeaders: number;
  maxLineLength: number;
}

const DEFAULT_LIMITS: ParseLimits = { maxMessageBytes: 16384, maxHeaders: 100, maxLineLength: 8192 };

export class SipParseError extends PayIvrError {
  /** Status to answer with (400, 505, 513) when `request` is set. */
  readonly status: number;
  /** The request's headers as far as they could be read (enough to answer), when a Via was found. */
  readonly request: SipRequest | undefined;

  constructor(message: string, status = 400, request?: SipRequest) {
    super('ERR_SIP_PARSE', message);
    this.status = status;
    this.request = request;
  }
}

const TOKEN = /^[A-Za-z0-9.!%*_+`'~-]+$/;
const REQUEST_LINE = /^([A-Za-z0-9.!%*_+`'~-]+) (\S+) (SIP\/\d+\.\d+)$/;
const LENIENT_REQUEST_LINE = /^([A-Za-z0-9.!%*_+`'~-]+)[ \t]+(.*)$/;
const STATUS_LINE = /^SIP\/2\.0 ([1-6]\d\d)(?: (.*))?$/;
const CRLFCRLF = Buffer.from('\r\n\r\n');
/** Methods defined by RFC 3261 and its extensions. */
const SIP_METHODS = new Set(['INVITE', 'ACK', 'OPTIONS', 'BYE', 'CANCEL', 'REGISTER', 'INFO', 'PRACK', 'SUBSCRIBE', 'NOTIFY', 'UPDATE', 'MESSAGE', 'REFER', 'PUBLISH']);

/** Where the header section ends (index of the blank line's CRLFCRLF), skipping leading CRLFs. */
function skipLeadingCrlf(buf: Buffer): number {
  let i = 0;
  while (i + 1 < buf.length && buf[i] === 0x0d && buf[i + 1] === 0x0a) i += 2;
  return i;
}

/**
 * Parses one whole message (a UDP datagram, or one framed TCP message when `stream` is true:
 * then Content-Length is exact and absent means 0).
 */
export function parseMessage(buf: Buffer, limits: ParseLimits = DEFAULT_LIMITS, stream = false): SipMessage {
  if (buf.length > limits.maxMessageBytes) {
    throw new SipParseError('message too large', 513, salvageRequest(buf.subarray(0, limits.maxMessageBytes), limits));
  }
  const start = skipLeadingCrlf(buf);
  const headEnd = buf.indexOf(CRLFCRLF, start);
  if (headEnd < 0) throw new SipParseError('no end of headers', 400, salvageRequest(buf, limits));
  const head = buf.toString('utf8', start, headEnd);
  let parsed: ParsedHead;
  try {
    parsed = parseHead(head, limits);
  } catch (e) {
    if (e instanceof SipParseError && e.request === undefined) throw new SipParseError(e.message, e.status, salvageRequest(buf, limits));
    throw e;
  }
  const { startLine, headers } = parsed;
  const rest = buf.subarray(headEnd + 4);

  let msg: SipMessage;
  const req = REQUEST_LINE.exec(startLine);
  if (req !== null) {
    msg = { kind: 'request', method: req[1] as string, uri: req[2] as string, headers, body: Buffer.alloc(0) };
    if (req[3] !== 'SIP/2.0') throw new SipParseError('unsupported SIP version', 505, answerable(msg));
  } else {
    const st = STATUS_LINE.exec(startLine);
    if (st === null) throw new SipParseError('bad request line', 400, salvageRequest(buf, limits));
    msg = { kind: 'response', status: Number(st[1]), reason: st[2] ?? '', headers, body: Buffer.alloc(0) };
  }
  if (parsed.tooMany) throw new SipParseError('too many headers', 400, answerable(msg));

  // Content-Length: all copies must agree; on datagrams a shorter body is an error (18.3).
  const cls = rawHeaders(msg, 'content-length');
  let cl: number | undefined;
  for (const v of cls) {
    if (!/^\s*\d{1,6}\s*$/.test(v)) throw new SipParseError('bad Content-Length', 400, answerable(msg));
    const n = Number(v);
    if (cl !== undefined && cl !== n) throw new SipParseError('conflicting Content-Length', 400, answerable(msg));
    cl = n;
  }
  if (cl === undefined) msg.body = stream ? Buffer.alloc(0) : Buffer.from(rest);
  else {
    if (rest.length < cl) throw new SipParseError('body shorter than Content-Length', 400, answerable(msg));
    msg.body = Buffer.from(rest.subarray(0, cl));
  }
  validate(msg);
  return msg;
}

interface ParsedHead {
  startLine: string;
  headers: SipHeader[];
  tooMany: boolean;
}

function parseHead(head: string, limits: ParseLimits): ParsedHead {
  const lines = head.split('\r\n');
  const startLine = lines[0] ?? '';
  if (startLine.length > limits.maxLineLength) throw new SipParseError('start line too long', 400);
  const headers: SipHeader[] = [];
  let tooMany = false;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.length > limits.maxLineLength) throw new SipParseError('header line too long', 400);
    if (line === '') continue;
    const first = line.charCodeAt(0);
    if (first === 0x20 || first === 0x09) {
      // Folded continuation line (RFC 3261 7.3.1).
      const prev = headers[headers.length - 1];
      if (prev === undefined) throw new SipParseError('continuation without header', 400);
      if (prev.value.length + line.length > limits.maxLineLength) throw new SipParseError('header too long', 400);
      prev.value = `${prev.value} ${line.trim()}`.trim();
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw new SipParseError('header without colon', 400, undefined);
    const rawName = line.slice(0, colon).trim();
    if (!TOKEN.test(rawName)) throw new SipParseError('bad header name', 400, undefined);
    if (headers.length >= limits.maxHeaders) {
      tooMany = true;
      break;
    }
    headers.push({ name: normalizeHeaderName(rawName), value: line.slice(colon + 1).trim() });
  }
  return { startLine, headers, tooMany };
}

/**
 * The request as far as it can be answered: any request but ACK with a Via line (RFC 2543 ones
 * have no branch; a malformed Via is echoed as it came and the answer goes to the source).
 */
function answerable(msg: SipMessage): SipRequest | undefined {
  if (msg.kind !== 'request' || msg.method === 'ACK') return undefined;
  return rawHeaders(msg, 'via').length > 0 ? msg : undefined;
}

/** Best effort on a message that failed early: read its start line and headers, leniently. */
function salvageRequest(buf: Buffer, limits: ParseLimits): SipRequest | undefined {
  try {
    const text = buf.toString('utf8', skipLeadingCrlf(buf), Math.min(buf.length, limits.maxMessageBytes));
    const end = text.indexOf('\r\n\r\n');
    const head = end < 0 ? text : text.slice(0, end);
    const lines = head.split('\r\n', limits.maxHeaders + 1);
    // Only the method is needed to answer: the line may have extra spaces, LWS in the URI...
    const req = LENIENT_REQUEST_LINE.exec(lines[0] ?? '');
    if (req === null) return undefined;
    const headers: SipHeader[] = [];
    for (const line of lines.slice(1)) {
      if (line.length > limits.maxLineLength) continue;
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim();
      if (!TOKEN.test(name)) continue;
      headers.push({ name: normalizeHeaderName(name), value: line.slice(colon + 1).trim() });
    }
    return answerable({ kind: 'request', method: req[1] as string, uri: (req[2] as string).trim(), headers, body: Buffer.alloc(0) });
  } catch {
    return undefined;
  }
}

/**
 * Mandatory headers and their syntax (RFC 3261 8.1.1, 8.2.2, 20, 25.1). Headers we never use
 * (Date, for one) are not judged: RFC 4475 3.1.2.12 advises against refusing a call for them.
 */
function validate(msg: SipMessage): void {
  const bad = (what: string): never => {
    throw new SipParseError(what, 400, answerable(msg));
  };
  const vias = rawHeaders(msg, 'via');
  if (vias.length === 0) bad('missing Via');
  // Every Via value must be one (no empty list elements, no empty parameters).
  for (const raw of vias) for (const part of splitList(raw)) if (parseVia(part) === undefined) bad('bad Via');
  for (const name of ['from', 'to'] as const) {
    const v = rawHeaders(msg, name);
    if (v.length !== 1) bad(`missing or repeated ${name}`);
    if (parseNameAddr(v[0] as string) === undefined) bad(`bad ${name}`);
  }
  for (const raw of rawHeaders(msg, 'contact')) {
    for (const part of splitList(raw)) if (part !== '*' && parseNameAddr(part) === undefined) bad('bad Contact');
  }
  const callIds = rawHeaders(msg, 'call-id');
  if (callIds.length !== 1 || !/^\S+$/.test(callIds[0] as string)) bad('missing or bad Call-ID');
  const cseqs = rawHeaders(msg, 'cseq');
  const cseq = cseqs.length === 1 ? parseCSeq(cseqs[0]) : undefined;
  if (cseq === undefined) bad('missing or bad CSeq');
  if (msg.kind === 'request') {
    if (cseq !== undefined && cseq.method !== msg.method) {
      // An unknown method is answered 501 first (RFC 4475 3.1.2.18: better than 400).
      if (!SIP_METHODS.has(msg.method)) throw new SipParseError('unknown method (and CSeq method differs)', 501, answerable(msg));
      bad('CSeq method differs from request method');
    }
    // Max-Forwards: 1*DIGIT, 0-255 ("0068" is 68). Absent is taken (RFC 2543 UAs, and an ACK
    // must not end an answered call for a cosmetic fault).
    const mf = rawHeaders(msg, 'max-forwards');
    if (mf.length > 1 || (mf.length === 1 && !(/^\d{1,10}$/.test(mf[0] as string) && Number(mf[0]) <= 255))) bad('bad Max-Forwards');
    if (!/^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>]+$/.test(msg.uri)) bad('bad Request-URI');
    // A SIP Request-URI carries no headers (RFC 3261 19.1.5): a '?' after the host part.
    const u = parseUri(msg.uri);
    if (u !== undefined && (u.scheme === 'sip' || u.scheme === 'sips')) {
      const at = msg.uri.lastIndexOf('@');
      if (msg.uri.indexOf('?', at < 0 ? 0 : at) >= 0) bad('headers in the Request-URI');
    }
  }
}

type FrameResult =
  | { kind: 'message'; length: number }
  /** Bytes of CRLF keep-alive to drop; `ping` when it was a double-CRLF ping (RFC 5626 3.5.1). */
  | { kind: 'keepalive'; length: number; ping: boolean }
  | { kind: 'need-more' }
  | { kind: 'error'; reason: string };

const CL_LINE = /^(?:content-length|l)[ \t]*:[ \t]*(\S*)[ \t]*$/gim;

/** Finds the first whole message at the start of a stream buffer (TCP/TLS framing by Content-Length). */
export function frameStream(buf: Buffer, limits: ParseLimits = DEFAULT_LIMITS): FrameResult {
  const lead = skipLeadingCrlf(buf);
  if (lead > 0) return { kind: 'keepalive', length: lead, ping: lead >= 4 };
  if (buf.length === 0) return { kind: 'need-more' };
  const searchEnd = Math.min(buf.length, limits.maxMessageBytes);
  const headEnd = buf.subarray(0, searchEnd).indexOf(CRLFCRLF);
  if (headEnd < 0) {
    if (buf.length >= limits.maxMessageBytes) return { kind: 'error', reason: 'header section too large' };
    return { kind: 'need-more' };
  }
  const head = buf.toString('latin1', 0, headEnd);
  let cl: number | undefined;
  CL_LINE.lastIndex = 0;
  for (let m = CL_LINE.exec(head); m !== null; m = CL_LINE.exec(head)) {
    const v = m[1] as string;
    if (!/^\d{1,9}$/.test(v)) return { kind: 'error', reason: 'bad Content-Length' };
    const n = Number(v);
    if (cl !== undefined && cl !== n) return { kind: 'error', reason: 'conflicting Content-Length' };
    cl = n;
  }
  const total = headEnd + 4 + (cl ?? 0);
  if (total > limits.maxMessageBytes) return { kind: 'error', reason: 'message too large' };
  if (buf.length < total) return { kind: 'need-more' };
  return { kind: 'message', length: total };
}
