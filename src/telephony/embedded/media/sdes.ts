import { SRTP_SUITES, type SrtpSuite } from '../../../config/media-options.js';
import { SdesKey } from './srtp.js';

/**
 * The SDP crypto attribute of SDES (RFC 4568 §9.1), as far as pay-ivr can honour it:
 *
 *   a=crypto:<tag> <suite> inline:<key||salt>[|<lifetime>][|<mki>:<length>] [<session params>]
 *
 * - lifetime (`2^31` or decimal) is checked and ignored: pay-ivr never rekeys, and a payment call
 *   ends long before 2^20 packets (5.8 h at 50 packets/s) let alone the usual 2^31;
 * - an MKI is kept: the far end's packets carry it and SrtpContext checks and strips it;
 * - one key per line (several keys only make sense with MKI-driven rekeying, which we do not do);
 * - session parameters: KDR=0, WSH, FEC_ORDER and UNENCRYPTED_SRTCP (we send no RTCP) are
 *   harmless; UNENCRYPTED_SRTP, UNAUTHENTICATED_SRTP, KDR>0, FEC_KEY and unknown parameters make
 *   the line unusable.
 * A line pay-ivr cannot honour is skipped with a reason; the answer takes the first usable one.
 * Pure functions; the reasons never hold key material.
 */

interface SdesCrypto {
  tag: number;
  suite: SrtpSuite;
  key: SdesKey;
  /** Declarative session parameters that must appear in the answer too. */
  echoParams: string[];
}

type SdesParse = { ok: true; crypto: SdesCrypto } | { ok: false; reason: string };

const KEY_B64 = /^[A-Za-z0-9+/]{40}$/; // 30 bytes, no padding
const LIFETIME = /^(?:2\^(\d{1,2})|(\d{1,15}))$/;
const MKI = /^(\d{1,20}):(\d{1,3})$/;

function refuse(reason: string): SdesParse {
  return { ok: false, reason };
}

function parseKeyParam(param: string): { key: SdesKey } | { reason: string } {
  if (!param.startsWith('inline:')) return { reason: 'key method is not inline' };
  const [keySalt = '', ...rest] = param.slice('inline:'.length).split('|');
  if (!KEY_B64.test(keySalt)) return { reason: 'inline key is not 30 bytes of base64' };
  if (rest.length > 2) return { reason: 'too many key parameters' };
  let mki: { bytes: Buffer } | undefined;
  for (const [i, p] of rest.entries()) {
    const l = LIFETIME.exec(p);
    if (l !== null && i === 0) {
      const exp = l[1] !== undefined ? Number(l[1]) : undefined;
      if ((exp !== undefined && exp > 48) || (l[2] !== undefined && Number(l[2]) === 0)) return { reason: 'bad key lifetime' };
      continue; // lifetime: ignored, see above
    }
    const m = MKI.exec(p);
    if (m === null) return { reason: 'bad lifetime or MKI' };
    const len = Number(m[2]);
    const value = BigInt(m[1] as string);
    if (len < 1 || len > 128 || value >= 1n << BigInt(8 * Math.min(len, 8))) return { reason: 'bad MKI' };
    const bytes = Buffer.alloc(len);
    let v = value;
    for (let j = len - 1; j >= 0 && v > 0n; j--) {
      bytes[j] = Number(v & 0xffn);
      v >>= 8n;
    }
    mki = { bytes };
  }
  return { key: new SdesKey(Buffer.from(keySalt, 'base64'), mki) };
}

/** Reads the value of one a=crypto attribute (the text after "a=crypto:"), restricted to `suites`. */
export function parseCryptoAttribute(value: string, suites: readonly SrtpSuite[] = SRTP_SUITES): SdesParse {
  const [tagText = '', suiteText = '', keyParams = '', ...sessionParams] = value.trim().split(/\s+/);
  if (!/^\d{1,9}$/.test(tagText)) return refuse('bad tag');
  const suite = suiteText.toUpperCase();
  if (!(SRTP_SUITES as readonly string[]).includes(suite)) return refuse(`suite ${suiteText.slice(0, 40)} not implemented`);
  if (!(suites as readonly string[]).includes(suite)) return refuse(`suite ${suite} not allowed by rtp.srtpSuites`);
  const keys = keyParams.split(';');
  if (keys.length !== 1) return refuse('more than one master key');
  const k = parseKeyParam(keys[0] as string);
  if ('reason' in k) return refuse(k.reason);
  const echoParams: string[] = [];
  for (const p of sessionParams) {
    const name = p.split('=')[0] ?? '';
    if (name === 'KDR') {
      if (p !== 'KDR=0') return refuse('key derivation rate other than 0');
    } else if (name === 'WSH' || name === 'FEC_ORDER') {
      // hints about replay window / FEC order: nothing to do (no FEC, our window is 128)
    } else if (p === 'UNENCRYPTED_SRTCP') {
      echoParams.push(p); // declarative: both directions the same (we send no RTCP anyway)
    } else if (p === 'UNENCRYPTED_SRTP' || p === 'UNAUTHENTICATED_SRTP') {
      return refuse(`${p} refused: media must be encrypted and authenticated`);
    } else {
      return refuse(`session parameter ${name.slice(0, 40)} not supported`);
    }
  }
  return { ok: true, crypto: { tag: Number(tagText), suite: suite as SrtpSuite, key: k.key, echoParams } };
}

/** The a=crypto value we write: tag and suite of the line we accept (or offer), our own key, no MKI. */
export function formatCryptoAttribute(tag: number, suite: SrtpSuite, key: SdesKey, echoParams: readonly string[] = []): string {
  return [String(tag), suite, `inline:${key.material.toString('base64')}`, ...echoParams].join(' ');
}
