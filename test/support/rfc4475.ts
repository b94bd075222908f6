import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The RFC 4475 section 3 torture messages (test/fixtures/rfc4475/*.sip) and what the RFC says a
 * UAS does with each. Fixtures are written in the RFC's own notation (its section 2): every text
 * line ends in CRLF on the wire, <allOneLine>...</allOneLine> joins the lines between the tags
 * into one, and <hex>..</hex> stands for the bytes it spells (control characters, non-ASCII,
 * trailing spaces).
 */

export const RFC4475_DIR = join(import.meta.dirname, '..', 'fixtures', 'rfc4475');

/** The wire bytes of a fixture written in RFC 4475 notation. */
export function decodeRfc4475(text: string): Buffer {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const wire: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line === '<allOneLine>') {
      let joined = '';
      for (i++; i < lines.length && lines[i] !== '</allOneLine>'; i++) joined += lines[i] as string;
      wire.push(joined);
    } else wire.push(line);
  }
  const parts: Buffer[] = [];
  for (const l of wire) {
    const re = /<hex>([0-9A-Fa-f]*)<\/hex>/g;
    let at = 0;
    for (let m = re.exec(l); m !== null; m = re.exec(l)) {
      parts.push(Buffer.from(l.slice(at, m.index), 'latin1'), Buffer.from(m[1] as string, 'hex'));
      at = m.index + m[0].length;
    }
    parts.push(Buffer.from(l.slice(at), 'latin1'), Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/**
 * What should happen: `status` lists the acceptable final responses (first one preferred);
 * `silent` means no response at all (a response with no transaction, or an invalid response).
 * `parses` says whether the RFC calls the message well-formed.
 */
export interface TortureCase {
  name: string;
  section: string;
  parses: boolean;
  expect: { status: readonly number[] } | { silent: true };
  why: string;
}

const ok = (status: number[]): TortureCase['expect'] => ({ status });
const silent: TortureCase['expect'] = { silent: true };

/**
 * For a UAS that serves INVITE/OPTIONS and is not a registrar: REGISTER and MESSAGE are known
 * methods it does not serve (405), which is how it "processes" the registrar-oriented cases.
 */
export const RFC4475_CASES: readonly TortureCase[] = [
  { name: 'wsinv', section: '3.1.1.1', parses: true, expect: ok([481]), why: 'well-formed; its To tag names no dialog of ours' },
  { name: 'intmeth', section: '3.1.1.2', parses: true, expect: ok([501]), why: 'well-formed; unknown method' },
  { name: 'esc01', section: '3.1.1.3', parses: true, expect: ok([200]), why: 'well-formed INVITE, processed' },
  { name: 'escnull', section: '3.1.1.4', parses: true, expect: ok([405]), why: 'well-formed REGISTER; we are no registrar' },
  { name: 'esc02', section: '3.1.1.5', parses: true, expect: ok([501]), why: 'RE%47IST%45R is an unknown method, not REGISTER' },
  { name: 'lwsdisp', section: '3.1.1.6', parses: true, expect: ok([200]), why: 'well-formed OPTIONS' },
  { name: 'longreq', section: '3.1.1.7', parses: true, expect: ok([200]), why: 'well-formed INVITE with long values' },
  { name: 'dblreq', section: '3.1.1.8', parses: true, expect: ok([405]), why: 'the REGISTER is processed, the bytes after its Content-Length ignored' },
  { name: 'semiuri', section: '3.1.1.9', parses: true, expect: ok([200]), why: 'well-formed OPTIONS' },
  { name: 'transports', section: '3.1.1.10', parses: true, expect: ok([200]), why: 'well-formed OPTIONS, unknown transports in lower Vias' },
  { name: 'mpart01', section: '3.1.1.11', parses: true, expect: ok([405]), why: 'well-formed MESSAGE; not served' },
  { name: 'unreason', section: '3.1.1.12', parses: true, expect: silent, why: 'well-formed response matching no transaction' },
  { name: 'noreason', section: '3.1.1.13', parses: true, expect: silent, why: 'well-formed response matching no transaction' },
  { name: 'badinv01', section: '3.1.2.1', parses: false, expect: ok([400]), why: 'extraneous separators in Via and Contact' },
  { name: 'clerr', section: '3.1.2.2', parses: false, expect: ok([400]), why: 'Content-Length larger than the datagram' },
  { name: 'ncl', section: '3.1.2.3', parses: false, expect: ok([400]), why: 'negative Content-Length' },
  { name: 'scalar02', section: '3.1.2.4', parses: false, expect: ok([400]), why: 'overlarge scalar fields in a request' },
  { name: 'scalarlg', section: '3.1.2.5', parses: false, expect: silent, why: 'overlarge scalar fields in a response: discarded' },
  { name: 'quotbal', section: '3.1.2.6', parses: false, expect: ok([400]), why: 'unterminated quoted string in a display name' },
  { name: 'ltgtruri', section: '3.1.2.7', parses: false, expect: ok([400]), why: 'Request-URI in <>' },
  { name: 'lwsruri', section: '3.1.2.8', parses: false, expect: ok([400]), why: 'LWS inside the Request-URI' },
  { name: 'lwsstart', section: '3.1.2.9', parses: false, expect: ok([400]), why: 'several SP between request-line elements' },
  { name: 'trws', section: '3.1.2.10', parses: false, expect: ok([400]), why: 'trailing whitespace on the request line' },
  { name: 'escruri', section: '3.1.2.11', parses: false, expect: ok([400]), why: 'escaped headers in the Request-URI (400 is acceptable; ignoring them too)' },
  { name: 'baddate', section: '3.1.2.12', parses: true, expect: ok([200, 400]), why: 'Date not in GMT: ignored, as we never use Date (400 also acceptable)' },
  { name: 'regbadct', section: '3.1.2.13', parses: false, expect: ok([400]), why: 'Contact URI with headers not in <>' },
  { name: 'badaspec', section: '3.1.2.14', parses: false, expect: ok([400]), why: 'spaces inside the <> of an addr-spec' },
  { name: 'baddn', section: '3.1.2.15', parses: false, expect: ok([400]), why: 'non-token characters in an unquoted display name' },
  { name: 'badvers', section: '3.1.2.16', parses: false, expect: ok([505]), why: 'SIP/7.0' },
  { name: 'mismatch01', section: '3.1.2.17', parses: false, expect: ok([400]), why: 'CSeq method differs from the request method' },
  { name: 'mismatch02', section: '3.1.2.18', parses: false, expect: ok([501]), why: 'unknown method, CSeq method differs (501 preferred to 400)' },
  { name: 'bigcode', section: '3.1.2.19', parses: false, expect: silent, why: 'status code out of range: discarded' },
  { name: 'badbranch', section: '3.2.1', parses: true, expect: ok([200, 400]), why: 'branch is only the magic cookie: fall back, or 400' },
  { name: 'insuf', section: '3.3.1', parses: false, expect: ok([400]), why: 'missing Call-ID, From, To, Max-Forwards' },
  { name: 'unkscm', section: '3.3.2', parses: true, expect: ok([416]), why: 'unknown Request-URI scheme' },
  { name: 'novelsc', section: '3.3.3', parses: true, expect: ok([416, 404]), why: 'a scheme we never serve in the Request-URI' },
  { name: 'unksm2', section: '3.3.4', parses: true, expect: ok([405]), why: 'well-formed REGISTER with other schemes in To/From/Contact' },
  { name: 'bext01', section: '3.3.5', parses: true, expect: ok([420]), why: 'unknown Require option tags' },
  { name: 'invut', section: '3.3.6', parses: true, expect: ok([415]), why: 'body of a type we do not understand' },
  { name: 'regaut01', section: '3.3.7', parses: true, expect: ok([405]), why: 'REGISTER with an unknown auth scheme; we are no registrar' },
  { name: 'multi01', section: '3.3.8', parses: false, expect: ok([400]), why: 'single-value headers repeated' },
  { name: 'mcl01', section: '3.3.9', parses: false, expect: ok([400]), why: 'several Content-Length values' },
  { name: 'bcast', section: '3.3.10', parses: true, expect: silent, why: 'a response (broadcast received): no transaction, dropped' },
  { name: 'zeromf', section: '3.3.11', parses: true, expect: ok([200]), why: 'Max-Forwards 0 to the UAS itself is processed' },
  { name: 'cparam01', section: '3.3.12', parses: true, expect: ok([405]), why: 'well-formed REGISTER' },
  { name: 'cparam02', section: '3.3.13', parses: true, expect: ok([405]), why: 'well-formed REGISTER' },
  { name: 'regescrt', section: '3.3.14', parses: true, expect: ok([405]), why: 'well-formed REGISTER (escaped header in a <> Contact)' },
  { name: 'sdp01', section: '3.3.15', parses: true, expect: ok([406, 400]), why: 'Accept excludes the only body type we can answer with (406 preferred)' },
  { name: 'inv2543', section: '3.4.1', parses: true, expect: ok([200]), why: 'RFC 2543 INVITE (no Max-Forwards, no branch, no tags) is accepted' },
];

export function loadRfc4475(name: string): Buffer {
  return decodeRfc4475(readFileSync(join(RFC4475_DIR, `${name}.sip`), 'utf8'));
}

export function rfc4475FixtureNames(): string[] {
  return readdirSync(RFC4475_DIR).filter((f) => f.endsWith('.sip')).map((f) => f.slice(0, -4)).sort();
}
