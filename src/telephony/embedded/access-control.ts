import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import type { Config } from '../../config/schema.js';
import { PayIvrError } from '../../errors.js';
import { headerValue, splitList, unquote, type SipHeader, type SipRequest } from './sip/message.js';
import { header } from './sip/serializer.js';

/**
 * Who may call (DESIGN.md section 5): IP allow-list (CIDR v4/v6), per-source INVITE rate limit
 * (token bucket), concurrent-call cap, shared-secret trunk header (constant-time compare) and
 * optional digest authentication (RFC 3261 22.4 / RFC 2617: MD5, qop=auth, expiring nonces).
 */

export type AccessDecision = { ok: true } | { ok: false; status: number; reason: string; headers: SipHeader[] };

const NONCE_TTL_MS = 300_000;
const MAX_BUCKETS = 10_000;

interface Bucket {
  tokens: number;
  at: number;
}

export class AccessControl {
  readonly #allow: net.BlockList | undefined;
  readonly #rate: number;
  readonly #buckets = new Map<string, Bucket>();
  readonly #maxCalls: number;
  readonly #secret: { name: string; digest: Buffer } | undefined;
  readonly #digest: Config['security']['digest'];
  readonly #nonceKey = randomBytes(32);
  readonly #now: () => number;

  constructor(security: Config['security'], now: () => number = Date.now) {
    this.#now = now;
    if (security.allowList.length > 0) {
      const bl = new net.BlockList();
      for (const cidr of security.allowList) addCidr(bl, cidr);
      this.#allow = bl;
    }
    this.#rate = security.ratePerSource;
    this.#maxCalls = security.maxConcurrentCalls;
    if (security.sharedSecretHeader !== undefined) {
      this.#secret = { name: security.sharedSecretHeader.name, digest: sha256(security.sharedSecretHeader.value) };
    }
    this.#digest = security.digest;
  }

  get allowListEnabled(): boolean {
    return this.#allow !== undefined;
  }

  /** Source address allowed by the allow-list (everyone when the list is empty). */
  allowed(address: string): boolean {
    if (this.#allow === undefined) return true;
    const a = address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
    const type = net.isIPv6(a) ? 'ipv6' : 'ipv4';
    try {
      return this.#allow.check(a, type);
    } catch {
      return false;
    }
  }

  /** Takes one token from the source's bucket (capacity and refill = ratePerSource per second). */
  takeToken(address: string): boolean {
    const now = this.#now();
    let b = this.#buckets.get(address);
    if (b === undefined) {
      if (this.#buckets.size >= MAX_BUCKETS) this.#pruneBuckets(now);
      b = { tokens: this.#rate, at: now };
      this.#buckets.set(address, b);
    } else {
      b.tokens = Math.min(this.#rate, b.tokens + ((now - b.at) / 1000) * this.#rate);
      b.at = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Drops full buckets (sources idle for a second or more); no timer needed. */
  #pruneBuckets(now: number): void {
    for (const [k, b] of this.#buckets) if (now - b.at >= 1000) this.#buckets.delete(k);
    if (this.#buckets.size >= MAX_BUCKETS) this.#buckets.clear();
  }

  /** The checks in order: allow-list 403, rate 503, capacity 503, shared secret 403, digest 401. */
  check(req: SipRequest, source: string, activeCalls: number): AccessDecision {
    if (!this.allowed(source)) return deny(403, 'Forbidden');
    if (!this.takeToken(source)) return deny(503, 'Service Unavailable', [header('retry-after', '1')]);
    if (activeCalls >= this.#maxCalls) return deny(503, 'Service Unavailable', [header('retry-after', '5')]);
    if (this.#secret !== undefined) {
      const got = headerValue(req, this.#secret.name);
      if (got === undefined || !timingSafeEqual(sha256(got), this.#secret.digest)) return deny(403, 'Forbidden');
    }
    if (this.#digest !== undefined) return this.#checkDigest(req);
    return { ok: true };
  }

  #checkDigest(req: SipRequest): AccessDecision {
    const d = this.#digest;
    if (d === undefined) return { ok: true };
    const auth = headerValue(req, 'authorization');
    if (auth === undefined || !/^digest\s/i.test(auth)) return this.#challenge(false);
    const p = parseDigestParams(auth.replace(/^digest\s+/i, ''));
    const nonce = p.get('nonce') ?? '';
    const nonceState = this.#nonceState(nonce);
    if (nonceState === 'invalid') return this.#challenge(false);
    if (p.get('username') !== d.username || p.get('realm') !== d.realm) return this.#challenge(false);
    const alg = (p.get('algorithm') ?? 'MD5').toUpperCase();
    if (alg !== 'MD5' || (p.get('qop') ?? '').toLowerCase() !== 'auth') return this.#challenge(false);
    const uri = p.get('uri') ?? '';
    const nc = p.get('nc') ?? '';
    const cnonce = p.get('cnonce') ?? '';
    const response = (p.get('response') ?? '').toLowerCase();
    const ha1 = md5(`${d.username}:${d.realm}:${d.password}`);
    const ha2 = md5(`${req.method}:${uri}`);
    const expected = md5(`${ha1}:${nonce}:${nc}:${cnonce}:auth:${ha2}`);
    if (response.length !== expected.length || !timingSafeEqual(Buffer.from(response), Buffer.from(expected))) {
      return this.#challenge(false);
    }
    if (nonceState === 'stale') return this.#challenge(true);
    return { ok: true };
  }

  #challenge(stale: boolean): AccessDecision {
    const d = this.#digest;
    const value = `Digest realm="${d?.realm ?? ''}", nonce="${this.newNonce()}", algorithm=MD5, qop="auth"${stale ? ', stale=true' : ''}`;
    return deny(401, 'Unauthorized', [header('www-authenticate', value)]);
  }

  /** Nonce = time + HMAC(time): stateless, expires after NONCE_TTL_MS. */
  newNonce(): string {
    const ts = this.#now().toString(36);
    return `${ts}.${createHmac('sha256', this.#nonceKey).update(ts).digest('base64url').slice(0, 22)}`;
  }

  #nonceState(nonce: string): 'fresh' | 'stale' | 'invalid' {
    const dot = nonce.indexOf('.');
    if (dot <= 0) return 'invalid';
    const ts = nonce.slice(0, dot);
    const mac = Buffer.from(nonce.slice(dot + 1));
    const want = Buffer.from(createHmac('sha256', this.#nonceKey).update(ts).digest('base64url').slice(0, 22));
    if (mac.length !== want.length || !timingSafeEqual(mac, want)) return 'invalid';
    const age = this.#now() - parseInt(ts, 36);
    if (!Number.isFinite(age) || age < 0) return 'invalid';
    return age > NONCE_TTL_MS ? 'stale' : 'fresh';
  }
}

function deny(status: number, reason: string, headers: SipHeader[] = []): AccessDecision {
  return { ok: false, status, reason, headers };
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

function md5(s: string): string {
  return createHash('md5').update(s, 'utf8').digest('hex');
}

function parseDigestParams(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of splitList(text)) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    out.set(part.slice(0, eq).trim().toLowerCase(), unquote(part.slice(eq + 1).trim()));
  }
  return out;
}

/** Adds "10.0.0.0/8", "2001:db8::/32" or a bare address to the list. */
export function addCidr(list: net.BlockList, cidr: string): void {
  const [addr, bitsText] = cidr.trim().split('/');
  const type = net.isIPv4(addr ?? '') ? 'ipv4' : net.isIPv6(addr ?? '') ? 'ipv6' : undefined;
  if (addr === undefined || type === undefined) throw new PayIvrError('ERR_CONFIG_INVALID', `security.allowList: "${cidr}" is not an address or CIDR`);
  const max = type === 'ipv4' ? 32 : 128;
  const bits = bitsText === undefined ? max : Number(bitsText);
  if (!Number.isInteger(bits) || bits < 0 || bits > max) throw new PayIvrError('ERR_CONFIG_INVALID', `security.allowList: bad prefix in "${cidr}"`);
  list.addSubnet(addr, bits, type);
}
