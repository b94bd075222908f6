import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type { Config } from '../config/schema.js';
import { PayIvrError } from '../errors.js';
import type { Logger } from '../log.js';
import { ALLOW_LIST_ENTRY_PROBLEM, parseCidr, unmapIPv4 } from '../net/cidr.js';

/**
 * Who may call, the one place for the rule whatever the SIP stack: every new
 * INVITE is checked here before a call object exists. Checks in order, cheapest and least
 * revealing first:
 *   1. source allow-list (IPv4/IPv6 CIDRs)                        -> 403
 *   2. per-source INVITE rate (token bucket)                       -> 503, Retry-After: 1
 *   3. concurrent-call cap                                         -> 503, Retry-After: 5
 *   4. static shared-secret header (constant-time compare)         -> 403
 *   5. digest authentication (RFC 3261 22.4 / RFC 2617, MD5, qop=auth, expiring HMAC nonces)
 *                                                                  -> 401 + WWW-Authenticate
 * The rate is charged before the capacity and the credentials so that a flooding source pays
 * for every INVITE and the crypto work per source stays bounded.
 */

/** What admission needs from an incoming INVITE. */
export interface AdmissionRequest {
  /** Address the request came from (transport level, not a header). */
  readonly sourceAddress: string;
  readonly method: string;
  readonly requestUri: string;
  /** First value of a header, case-insensitive; undefined when absent. */
  header(name: string): string | undefined;
}

interface ResponseHeader {
  readonly name: string;
  readonly value: string;
}

/** Which rule refused, for the log. A fixed set: a header value can never end up in it. */
type RefusalWhy =
  | 'source not in security.allowList'
  | 'security.ratePerSource exceeded'
  | 'security.maxConcurrentCalls reached'
  | 'security.sharedSecretHeader missing or wrong'
  | 'digest credentials missing or malformed'
  | 'digest credentials wrong'
  | 'digest nonce expired'
  | 'digest uri is not the Request-URI';

interface AdmissionRefusal {
  readonly admitted: false;
  readonly status: number;
  readonly reason: string;
  readonly headers: readonly ResponseHeader[];
  readonly why: RefusalWhy;
}

export type AdmissionVerdict = { readonly admitted: true } | AdmissionRefusal;

const ADMITTED: AdmissionVerdict = { admitted: true };
const NONCE_TTL_MS = 5 * 60_000;
/** Longest Authorization value parsed; a real one is a few hundred bytes. */
const MAX_AUTHORIZATION_CHARS = 4096;
const RATE_KEYS_MAX = 10_000;

/**
 * INVITEs admitted per source by the whole fleet in the current second, shared through Redis
 * (store/redis-rate.ts). Synchronous on purpose: admission never waits for the network.
 */
export interface FleetRateCounter {
  count(source: string): number;
  add(source: string): void;
}

export class AdmissionControl {
  readonly #security: Config['security'];
  readonly #allow: BlockList | undefined;
  readonly #rate: SourceRate;
  #fleet: FleetRateCounter | undefined;
  readonly #secret: { name: string; hash: Buffer } | undefined;
  readonly #digest: Digest | undefined;

  /** Throws ERR_CONFIG_INVALID for an allow-list entry that is not an address or CIDR. */
  constructor(security: Config['security'], now: () => number = Date.now) {
    this.#security = security;
    this.#allow = security.allowList.length > 0 ? buildAllowList(security.allowList) : undefined;
    this.#rate = new SourceRate(security.ratePerSource, now);
    const s = security.sharedSecretHeader;
    this.#secret = s !== undefined ? { name: s.name, hash: sha256(s.value) } : undefined;
    this.#digest = security.digest !== undefined ? new Digest(security.digest, now) : undefined;
  }

  /**
   * Shares security.ratePerSource over every node (a source that spreads its INVITEs over the
   * fleet's nodes still gets ratePerSource in all); each node's own bucket keeps applying.
   */
  shareRateWith(counter: FleetRateCounter): void {
    this.#fleet = counter;
  }

  /** Logs the policy once at start (no secret values); warns when anyone may call. */
  announce(log: Logger): void {
    const s = this.#security;
    if (this.#allow === undefined) log.warn('security.allowList is empty: INVITEs are accepted from any address');
    log.info(
      {
        allowList: s.allowList.length,
        ratePerSource: s.ratePerSource,
        maxConcurrentCalls: s.maxConcurrentCalls,
        sharedSecretHeader: s.sharedSecretHeader?.name ?? null,
        digest: s.digest !== undefined,
      },
      'who may call',
    );
  }

  /** Source address allowed by the allow-list (everyone when the list is empty). */
  allowed(address: string): boolean {
    if (this.#allow === undefined) return true;
    const a = unmapIPv4(address);
    const family = isIPv4(a) ? 'ipv4' : isIPv6(a) ? 'ipv6' : undefined;
    if (family === undefined) return false;
    try {
      return this.#allow.check(a, family);
    } catch {
      return false;
    }
  }

  /** Listed in a non-empty allow-list (an empty list lists no one): a trunk's other signalling addresses. */
  listed(address: string): boolean {
    return this.#allow !== undefined && this.allowed(address);
  }

  check(req: AdmissionRequest, activeCalls: number): AdmissionVerdict {
    if (!this.allowed(req.sourceAddress)) return refuse(403, 'Forbidden', 'source not in security.allowList');
    const source = unmapIPv4(req.sourceAddress);
    if ((this.#fleet !== undefined && this.#fleet.count(source) >= this.#security.ratePerSource) || !this.#rate.take(source)) {
      return refuse(503, 'Service Unavailable', 'security.ratePerSource exceeded', [{ name: 'Retry-After', value: '1' }]);
    }
    this.#fleet?.add(source);
    if (activeCalls >= this.#security.maxConcurrentCalls) {
      return refuse(503, 'Service Unavailable', 'security.maxConcurrentCalls reached', [{ name: 'Retry-After', value: '5' }]);
    }
    if (this.#secret !== undefined) {
      const got = req.header(this.#secret.name);
      // Both sides hashed first: the compare takes the same time whatever the lengths.
      if (got === undefined || !timingSafeEqual(sha256(got.trim()), this.#secret.hash)) {
        return refuse(403, 'Forbidden', 'security.sharedSecretHeader missing or wrong');
      }
    }
    return this.#digest?.check(req) ?? ADMITTED;
  }
}

function refuse(status: number, reason: string, why: RefusalWhy, headers: readonly ResponseHeader[] = []): AdmissionRefusal {
  return { admitted: false, status, reason, headers, why };
}

/**
 * Per-source token bucket: capacity and refill are ratePerSource per second. Chosen over a fixed
 * one-second window, which lets twice the rate through across a window edge and refills all at
 * once; the bucket caps every one-second span and recovers gradually.
 */
class SourceRate {
  readonly #rate: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  #prunedAt = -Infinity;

  constructor(rate: number, now: () => number) {
    this.#rate = rate;
    this.#now = now;
  }

  take(source: string): boolean {
    const now = this.#now();
    let b = this.#buckets.get(source);
    if (b === undefined) {
      if (this.#buckets.size >= RATE_KEYS_MAX) this.#makeRoom(now);
      b = { tokens: this.#rate, at: now };
      this.#buckets.set(source, b);
    } else {
      // max(0, ...): a wall clock stepping back must not take tokens away.
      b.tokens = Math.min(this.#rate, b.tokens + (Math.max(0, now - b.at) / 1000) * this.#rate);
      b.at = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Bounded memory without a timer: drop full buckets (idle a second), at most once a second, else the oldest. */
  #makeRoom(now: number): void {
    if (now - this.#prunedAt >= 1000) {
      this.#prunedAt = now;
      for (const [k, b] of this.#buckets) if (now - b.at >= 1000) this.#buckets.delete(k);
    }
    if (this.#buckets.size >= RATE_KEYS_MAX) {
      const oldest = this.#buckets.keys().next();
      if (oldest.done !== true) this.#buckets.delete(oldest.value);
    }
  }
}

/**
 * Digest authentication, stateless: nonce = hex time + "." + HMAC(nonce key, time), valid for
 * NONCE_TTL_MS. qop=auth is required (RFC 2069 responses without cnonce are refused). An expired
 * nonce gets stale=true only when the response was right for it, so the client retries without
 * new credentials (RFC 2617 3.2.1); anything else gets a fresh challenge.
 */
class Digest {
  readonly #cfg: NonNullable<Config['security']['digest']>;
  readonly #ha1: string;
  readonly #key: Buffer;
  readonly #now: () => number;

  constructor(cfg: NonNullable<Config['security']['digest']>, now: () => number) {
    this.#cfg = cfg;
    this.#ha1 = md5(`${cfg.username}:${cfg.realm}:${cfg.password}`);
    // Derived from the shared credentials, not random per process: a nonce one node issues is
    // valid on every node of the fleet (a balancer may send the retried INVITE elsewhere), and
    // still unforgeable without the password.
    this.#key = createHmac('sha256', 'pay-ivr digest nonce key').update(`${cfg.realm}\0${cfg.username}\0${cfg.password}`).digest();
    this.#now = now;
  }

  check(req: AdmissionRequest): AdmissionVerdict {
    const auth = req.header('Authorization');
    const p = auth !== undefined && auth.length <= MAX_AUTHORIZATION_CHARS ? parseDigestParams(auth) : undefined;
    if (p === undefined) return this.#challenge('digest credentials missing or malformed');
    const nonce = p.get('nonce') ?? '';
    const nonceState = this.#nonceState(nonce);
    if (nonceState === 'forged') return this.#challenge('digest credentials missing or malformed');
    const uri = p.get('uri');
    const nc = p.get('nc') ?? '';
    const cnonce = p.get('cnonce');
    const response = p.get('response');
    if (
      uri === undefined ||
      response === undefined ||
      cnonce === undefined ||
      cnonce === '' ||
      !/^[0-9a-f]{8}$/i.test(nc) ||
      (p.get('algorithm') ?? 'MD5').toUpperCase() !== 'MD5' ||
      p.get('qop')?.toLowerCase() !== 'auth'
    ) {
      return this.#challenge('digest credentials missing or malformed');
    }
    if (p.get('username') !== this.#cfg.username || p.get('realm') !== this.#cfg.realm) {
      return this.#challenge('digest credentials wrong');
    }
    const expected = md5(`${this.#ha1}:${nonce}:${nc}:${cnonce}:auth:${md5(`${req.method}:${uri}`)}`);
    if (!safeEqual(response.toLowerCase(), expected)) return this.#challenge('digest credentials wrong');
    // RFC 2617 3.2.2.5: the credentials must be for this request, else 400 (not a new challenge).
    if (uri !== req.requestUri && uri.toLowerCase() !== req.requestUri.toLowerCase()) {
      return refuse(400, 'Bad Request', 'digest uri is not the Request-URI');
    }
    if (nonceState === 'expired') return this.#challenge('digest nonce expired');
    return ADMITTED;
  }

  #challenge(why: RefusalWhy): AdmissionRefusal {
    const stale = why === 'digest nonce expired' ? ', stale=true' : '';
    const value = `Digest realm="${this.#cfg.realm}", nonce="${this.#nonce(this.#now())}", algorithm=MD5, qop="auth"${stale}`;
    return refuse(401, 'Unauthorized', why, [{ name: 'WWW-Authenticate', value }]);
  }

  #nonce(at: number): string {
    const t = Math.max(0, Math.floor(at)).toString(16);
    return `${t}.${this.#mac(t)}`;
  }

  #mac(t: string): string {
    return createHmac('sha256', this.#key).update(t).digest('base64url').slice(0, 22);
  }

  #nonceState(nonce: string): 'fresh' | 'expired' | 'forged' {
    const dot = nonce.indexOf('.');
    const t = nonce.slice(0, dot);
    if (dot <= 0 || !/^[0-9a-f]{1,12}$/.test(t)) return 'forged';
    const mac = Buffer.from(nonce.slice(dot + 1));
    const want = Buffer.from(this.#mac(t));
    if (mac.length !== want.length || !timingSafeEqual(mac, want)) return 'forged';
    const age = this.#now() - parseInt(t, 16);
    // A clock stepped back makes a nonce look issued in the future: re-challenge as stale.
    return age < 0 || age > NONCE_TTL_MS ? 'expired' : 'fresh';
  }
}

/** Constant-time string equality (hashes first so different lengths take the same time). */
export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

function md5(s: string): string {
  return createHash('md5').update(s, 'utf8').digest('hex');
}

/**
 * Parameters of a `Digest k="v", k2=v2` value (names lower-cased, quoted-pair unescaped), or
 * undefined when it is not Digest or malformed (unterminated quote, repeated name, junk between
 * parameters). One linear scan: no regex backtracking on a hostile header.
 */
export function parseDigestParams(value: string): Map<string, string> | undefined {
  const scheme = /^\s*digest\s/i.exec(value);
  if (scheme === null) return undefined;
  const out = new Map<string, string>();
  const n = value.length;
  let i = scheme[0].length;
  const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\r' || c === '\n';
  const skipSpace = (): void => {
    while (i < n && isSpace(value[i])) i += 1;
  };
  for (;;) {
    skipSpace();
    if (i >= n) break;
    const nameStart = i;
    while (i < n && /[A-Za-z0-9_-]/.test(value[i] as string)) i += 1;
    const name = value.slice(nameStart, i).toLowerCase();
    skipSpace();
    if (name === '' || value[i] !== '=' || out.has(name)) return undefined;
    i += 1;
    skipSpace();
    let v = '';
    if (value[i] === '"') {
      i += 1;
      while (i < n && value[i] !== '"') {
        if (value[i] === '\\') i += 1;
        if (i < n) v += value[i];
        i += 1;
      }
      if (i >= n) return undefined;
      i += 1;
    } else {
      const start = i;
      while (i < n && value[i] !== ',' && !isSpace(value[i])) i += 1;
      v = value.slice(start, i);
    }
    out.set(name, v);
    skipSpace();
    if (i < n && value[i] !== ',') return undefined;
    i += 1;
  }
  return out;
}

function buildAllowList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  entries.forEach((entry, i) => {
    const c = parseCidr(entry);
    if (c === undefined) throw new PayIvrError('ERR_CONFIG_INVALID', `security.allowList.${i}: ${ALLOW_LIST_ENTRY_PROBLEM}`);
    list.addSubnet(c.address, c.prefix, c.family);
  });
  return list;
}
