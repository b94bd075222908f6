/**
 * User-to-User header codec (RFC 7433, as Genesys Cloud BYOC trunks use it).
 *
 * What arrives in practice (Genesys "UUI passthrough", carriers, SBCs):
 *   User-to-User: 00616363743D43...;encoding=hex          hex with the "00" protocol discriminator
 *   User-to-User: 616363743D43...                          hex, no discriminator, no params
 *   User-to-User: acct=C-1001|amt=49.90;encoding=ascii     ascii (not a token, but sent raw)
 *   User-to-User: "acct=C-1001|amt=49.90";purpose=isdn-uui quoted
 *   User-to-User: 616363...;pd=0;encoding=hex              discriminator as a parameter
 *   x-User-To-User: <any of the above>                     Genesys "x-User-To-User" header type
 * Decoding never throws: anything unreadable is `undefined`, because the header comes from the
 * network and a bad one must only mean "no context", never a dropped call.
 */

interface DecodedUui {
  /** The payload as printable ASCII (discriminator octet removed). */
  data: string;
  /** How the payload was carried on the wire. */
  encoding: 'hex' | 'ascii';
  /** "00" / "04" when a leading discriminator octet was stripped, or the `pd` parameter value. */
  protocolDiscriminator?: string;
  /** RFC 7433 `purpose` parameter (e.g. "isdn-uui"). */
  purpose?: string;
  /** RFC 7433 `content` parameter (e.g. "isdn-uui"). */
  content?: string;
}

/** Longest header value we look at; Genesys recommends ~128 characters of UUI. */
const MAX_UUI_HEADER_LENGTH = 4096;

/** Leading protocol-discriminator octets in use: 00 (user-specific), 04 (IA5 characters). */
const DISCRIMINATORS = new Set(['00', '04']);

/** RFC 7433 parameters plus the `pd` parameter some SBCs and Genesys trunks add. */
const KNOWN_PARAMS = new Set(['encoding', 'purpose', 'content', 'pd']);

const HEX = /^(?:[0-9A-Fa-f]{2})+$/;
const PRINTABLE = /^[\x20-\x7E]*$/;
const PARAM = /^\s*([A-Za-z][A-Za-z0-9._!%*+`'~-]*)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^;"]*?))?\s*$/;

interface Split {
  data: string;
  params: Map<string, string>;
}

/** Removes the quotes and backslash escapes of an RFC 3261 quoted-string. */
function unquote(s: string): string {
  if (s.length >= 2 && s.startsWith('"') && s.endsWith('"')) return s.slice(1, -1).replace(/\\(.)/g, '$1');
  return s;
}

/** Index of the closing quote of a quoted-string starting at 0, or -1. */
function closingQuote(s: string): number {
  for (let i = 1; i < s.length; i++) {
    const c = s[i];
    if (c === '\\') i++;
    else if (c === '"') return i;
  }
  return -1;
}

/**
 * Splits "data;param=value;..." into the data and the known parameters. An unquoted ascii payload
 * may itself contain ';' (it is not a token in practice), so only trailing segments that are known
 * parameters count as parameters; everything before them stays data.
 */
function splitHeader(value: string): Split | undefined {
  const params = new Map<string, string>();
  const trimmed = value.trim();
  if (trimmed.startsWith('"')) {
    const end = closingQuote(trimmed);
    if (end < 0) return undefined;
    const rest = trimmed.slice(end + 1).trim();
    if (rest !== '' && !rest.startsWith(';')) return undefined;
    for (const seg of rest.split(';').slice(1)) {
      const m = PARAM.exec(seg);
      if (m === null) return undefined;
      const name = (m[1] ?? '').toLowerCase();
      if (!params.has(name)) params.set(name, unquote((m[2] ?? '').trim()));
    }
    return { data: unquote(trimmed.slice(0, end + 1)), params };
  }
  const segs = trimmed.split(';');
  let dataEnd = segs.length;
  while (dataEnd > 1) {
    const m = PARAM.exec(segs[dataEnd - 1] ?? '');
    if (m === null || !KNOWN_PARAMS.has((m[1] ?? '').toLowerCase())) break;
    const name = (m[1] ?? '').toLowerCase();
    // The first occurrence (leftmost) wins: walk from the right and overwrite.
    params.set(name, unquote((m[2] ?? '').trim()));
    dataEnd--;
  }
  let data = segs.slice(0, dataEnd).join(';').trim();
  // "HEX;vendor-param=x": the unknown parameter is not part of a hex payload.
  const first = (segs[0] ?? '').trim();
  if (dataEnd > 1 && HEX.test(first) && hexToPrintable(first) !== undefined) data = first;
  return { data, params };
}

/** Hex -> printable ASCII after removing a leading 00/04 discriminator octet; undefined otherwise. */
function hexToPrintable(hex: string): { text: string; pd?: string } | undefined {
  if (!HEX.test(hex)) return undefined;
  const bytes = Buffer.from(hex, 'hex');
  const lead = hex.slice(0, 2);
  if (bytes.length > 1 && DISCRIMINATORS.has(lead)) {
    const rest = bytes.subarray(1).toString('latin1');
    if (PRINTABLE.test(rest)) return { text: rest, pd: lead };
  }
  const all = bytes.toString('latin1');
  return PRINTABLE.test(all) ? { text: all } : undefined;
}

/**
 * Decodes a User-to-User (or x-User-To-User) header value. With `encoding=hex` the payload must be
 * hex; with `encoding=ascii` it is taken as is; without the parameter (RFC 7433 says hex is the
 * default) hex is tried first and printable ASCII second. Returns undefined for anything unreadable:
 * empty, non-printable, bad hex, unknown encoding, unterminated quotes, oversized.
 */
export function decodeUuiHeader(value: string): DecodedUui | undefined {
  try {
    if (typeof value !== 'string' || value.length === 0 || value.length > MAX_UUI_HEADER_LENGTH) return undefined;
    const split = splitHeader(value);
    if (split === undefined || split.data === '') return undefined;
    const { data, params } = split;
    const encodingParam = params.get('encoding')?.toLowerCase();
    const extras: Pick<DecodedUui, 'purpose' | 'content' | 'protocolDiscriminator'> = {};
    const purpose = params.get('purpose');
    if (purpose !== undefined && purpose !== '') extras.purpose = purpose;
    const content = params.get('content');
    if (content !== undefined && content !== '') extras.content = content;
    const pdParam = params.get('pd');
    if (pdParam !== undefined && pdParam !== '') extras.protocolDiscriminator = pdParam;

    const asHex = (): DecodedUui | undefined => {
      const decoded = hexToPrintable(data);
      if (decoded === undefined || decoded.text === '') return undefined;
      const out: DecodedUui = { data: decoded.text, encoding: 'hex', ...extras };
      if (decoded.pd !== undefined) out.protocolDiscriminator = decoded.pd;
      return out;
    };
    const asAscii = (): DecodedUui | undefined =>
      PRINTABLE.test(data) ? { data, encoding: 'ascii', ...extras } : undefined;

    if (encodingParam === 'hex') return asHex();
    if (encodingParam === 'ascii') return asAscii();
    if (encodingParam !== undefined && encodingParam !== '') return undefined;
    return asHex() ?? asAscii();
  } catch {
    return undefined;
  }
}

/**
 * "00" + upper-case hex of the ASCII text (the Genesys form: the receiving side drops the first
 * octet as the protocol discriminator). Characters outside printable ASCII are removed first, since
 * Architect's Call.UUIData is ASCII.
 */
export function encodeUuiHex(ascii: string): string {
  const clean = ascii.replace(/[^\x20-\x7E]/g, '');
  return '00' + Buffer.from(clean, 'latin1').toString('hex').toUpperCase();
}
