import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Config } from '../../config/schema.js';

/**
 * Who may call (DESIGN section 5), checked on every new INVITE before a call object exists:
 * source allow-list (CIDRs), concurrent-call cap, per-source rate, static shared-secret header
 * (constant-time compare), optional digest authentication (RFC 3261 section 22, MD5, qop=auth,
 * stateless HMAC nonces). A verdict is a final response; undefined means admitted.
 */

export interface AdmissionRequest {
  readonly source_address: string;
  readonly uri: string;
  get(name: string): string | undefined;
}

export interface AdmissionVerdict {
  status: number;
  reason: string;
  headers?: Record<string, string>;
  /** Why, for the log (never a header value). */
  why: string;
}

const RATE_WINDOW_MS = 1000;
const NONCE_TTL_MS = 5 * 60_000;

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Constant-time string equality (hashes first so different lengths take the same time). */
export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}

function md5(s: string): string {
  return createHash('md5').update(s).digest('hex');
}

/** Parameters of a `Digest k="v", k2=v2` header value. */
export function parseDigestParams(value: string): Record<string, string> {
  const out: Record<string, string> = {};
  const body = value.replace(/^\s*Digest\s+/i, '');
  const re = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g;
  for (let m = re.exec(body); m; m = re.exec(body)) {
    const key = (m[1] as string).toLowerCase();
    out[key] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? '');
  }
  return out;
}

export class Admission {
  readonly #security: Config['security'];
  readonly #allow: BlockList | undefined;
  readonly #rates = new Map<string, { start: number; count: number }>();
  readonly #nonceKey = randomBytes(32);
  readonly #now: () => number;

  constructor(security: Config['security'], now: () => number = Date.now) {
    this.#security = security;
    this.#now = now;
    if (security.allowList.length > 0) {
      const list = new BlockList();
      for (const entry of security.allowList) {
        const [addr, bits] = entry.split('/');
        const family = addr !== undefined && isIPv6(addr) ? 'ipv6' : 'ipv4';
        if (addr === undefined || !(isIPv4(addr) || isIPv6(addr))) continue;
        if (bits === undefined) list.addAddress(addr, family);
        else list.addSubnet(addr, Number(bits), family);
      }
      this.#allow = list;
    }
  }

  check(req: AdmissionRequest, activeCalls: number): AdmissionVerdict | undefined {
    const src = req.source_address;
    if (this.#allow) {
      const family = isIPv6(src) ? 'ipv6' : 'ipv4';
      if (!(isIPv4(src) || isIPv6(src)) || !this.#allow.check(src, family)) {
        return { status: 403, reason: 'Forbidden', why: 'source not in security.allowList' };
      }
    }
    if (activeCalls >= this.#security.maxConcurrentCalls) {
      return { status: 503, reason: 'Service Unavailable', headers: { 'Retry-After': '5' }, why: 'security.maxConcurrentCalls reached' };
    }
    if (!this.#withinRate(src)) {
      return { status: 503, reason: 'Service Unavailable', headers: { 'Retry-After': '1' }, why: 'security.ratePerSource exceeded' };
    }
    const secret = this.#security.sharedSecretHeader;
    if (secret) {
      const got = req.get(secret.name);
      if (got === undefined || !safeEqual(got.trim(), secret.value)) {
        return { status: 403, reason: 'Forbidden', why: `missing or wrong ${secret.name} header` };
      }
    }
    if (this.#security.digest) return this.#checkDigest(req);
    return undefined;
  }

  #withinRate(src: string): boolean {
    const now = this.#now();
    if (this.#rates.size > 1000) {
      for (const [k, v] of this.#rates) if (now - v.start > 2 * RATE_WINDOW_MS) this.#rates.delete(k);
    }
    const r = this.#rates.get(src);
    if (!r || now - r.start >= RATE_WINDOW_MS) {
      this.#rates.set(src, { start: now, count: 1 });
      return true;
    }
    r.count += 1;
    return r.count <= this.#security.ratePerSource;
  }

  #nonce(ts: number): string {
    const t = ts.toString(16);
    return `${t}.${createHmac('sha256', this.#nonceKey).update(t).digest('hex').slice(0, 32)}`;
  }

  /** 'ok' | 'stale' | 'bad' */
  #nonceState(nonce: string): 'ok' | 'stale' | 'bad' {
    const [t] = nonce.split('.');
    if (t === undefined || !/^[0-9a-f]{1,13}$/.test(t) || !safeEqual(this.#nonce(parseInt(t, 16)), nonce)) return 'bad';
    return this.#now() - parseInt(t, 16) > NONCE_TTL_MS ? 'stale' : 'ok';
  }

  #challenge(stale: boolean): AdmissionVerdict {
    const realm = this.#security.digest?.realm ?? '';
    const value = `Digest realm="${realm}", nonce="${this.#nonce(this.#now())}", algorithm=MD5, qop="auth"${stale ? ', stale=true' : ''}`;
    return { status: 401, reason: 'Unauthorized', headers: { 'WWW-Authenticate': value }, why: stale ? 'digest nonce expired' : 'digest credentials missing or wrong' };
  }

  #checkDigest(req: AdmissionRequest): AdmissionVerdict | undefined {
    const d = this.#security.digest;
    if (!d) return undefined;
    const auth = req.get('Authorization');
    if (!auth || !/^\s*Digest\s/i.test(auth)) return this.#challenge(false);
    const p = parseDigestParams(auth);
    const { username, realm, nonce, uri, response } = p;
    if (!username || !realm || !nonce || !uri || !response) return this.#challenge(false);
    if (!safeEqual(username, d.username) || realm !== d.realm) return this.#challenge(false);
    const state = this.#nonceState(nonce);
    if (state !== 'ok') return this.#challenge(state === 'stale');
    if ((p.algorithm ?? 'MD5').toUpperCase() !== 'MD5') return this.#challenge(false);
    const ha1 = md5(`${d.username}:${d.realm}:${d.password}`);
    const ha2 = md5(`INVITE:${uri}`);
    const expected = p.qop === 'auth' ? md5(`${ha1}:${nonce}:${p.nc ?? ''}:${p.cnonce ?? ''}:auth:${ha2}`) : md5(`${ha1}:${nonce}:${ha2}`);
    return safeEqual(expected, response.toLowerCase()) ? undefined : this.#challenge(false);
  }
}
