import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Panel tokens: short-lived bearer tokens that open one capture only (its state, events and
 * commands), for the agent panel framed in a Genesys Script. Stateless and signed:
 * `pt1.<capture id>.<expiry, unix seconds>.<HMAC-SHA256 over the rest, base64url>`, so any node
 * with the same key can check one, and nothing is stored per token.
 */

const PREFIX = 'pt1';
const ID = /^[A-Za-z0-9_-]{16,64}$/;

export interface PanelTokenClaims {
  captureId: string;
  /** Unix seconds. */
  expiresAt: number;
}

export class PanelTokens {
  readonly #key: Buffer;
  readonly #ttlSeconds: number;
  readonly #now: () => number;

  /** `secret` unset: a random key for this process. */
  constructor(opts: { secret?: string | undefined; ttlSeconds: number; now?: () => number }) {
    this.#key = opts.secret === undefined ? randomBytes(32) : Buffer.from(opts.secret, 'utf8');
    this.#ttlSeconds = opts.ttlSeconds;
    this.#now = opts.now ?? Date.now;
  }

  issue(captureId: string): { token: string; expiresAt: number } {
    if (!ID.test(captureId)) throw new Error('panel token: bad capture id');
    const expiresAt = Math.floor(this.#now() / 1000) + this.#ttlSeconds;
    const body = `${PREFIX}.${captureId}.${expiresAt}`;
    return { token: `${body}.${this.#mac(body)}`, expiresAt };
  }

  /** The claims of a valid, unexpired token; undefined otherwise (whatever is wrong with it). */
  verify(token: string | undefined): PanelTokenClaims | undefined {
    if (token === undefined || token.length > 200) return undefined;
    const parts = token.split('.');
    if (parts.length !== 4 || parts[0] !== PREFIX) return undefined;
    const [, captureId, exp, mac] = parts as [string, string, string, string];
    if (!ID.test(captureId) || !/^[0-9]{1,12}$/.test(exp)) return undefined;
    const want = Buffer.from(this.#mac(`${PREFIX}.${captureId}.${exp}`), 'utf8');
    const got = Buffer.from(mac, 'utf8');
    if (got.length !== want.length || !timingSafeEqual(got, want)) return undefined;
    const expiresAt = Number(exp);
    if (expiresAt * 1000 <= this.#now()) return undefined;
    return { captureId, expiresAt };
  }

  #mac(body: string): string {
    return createHmac('sha256', this.#key).update(body, 'utf8').digest('base64url');
  }
}

/** The token of an `Authorization: Bearer <token>` header. */
export function bearerOf(authorization: string | undefined): string | undefined {
  const m = authorization === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
  return m?.[1];
}
