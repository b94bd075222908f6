import { createHash, randomBytes } from 'node:crypto';

/**
 * Cookie sessions of the reports page: the browser signs in once with the API token (POST body,
 * never a URL) and then holds an opaque random id in an HttpOnly, SameSite=Strict cookie. Only a
 * hash of the id is kept here, so a memory dump does not hand out live sessions either.
 */

const SESSION_COOKIE = 'payivr_session';
/** Most sessions at once; the oldest goes first. */
const MAX_SESSIONS = 1_000;

function hash(id: string): string {
  return createHash('sha256').update(id, 'utf8').digest('hex');
}

export class Sessions {
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #byHash = new Map<string, number>();

  constructor(ttlMs: number, now: () => number = Date.now) {
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  get ttlSeconds(): number {
    return Math.floor(this.#ttlMs / 1000);
  }

  /** A new session id (the caller has checked the token). */
  create(): string {
    const id = randomBytes(32).toString('base64url');
    this.#byHash.set(hash(id), this.#now() + this.#ttlMs);
    while (this.#byHash.size > MAX_SESSIONS) {
      const oldest = this.#byHash.keys().next();
      if (oldest.done === true) break;
      this.#byHash.delete(oldest.value);
    }
    return id;
  }

  valid(id: string | undefined): boolean {
    if (id === undefined || id.length < 20 || id.length > 100) return false;
    const h = hash(id);
    const exp = this.#byHash.get(h);
    if (exp === undefined) return false;
    if (exp <= this.#now()) {
      this.#byHash.delete(h);
      return false;
    }
    return true;
  }

  end(id: string | undefined): void {
    if (id !== undefined) this.#byHash.delete(hash(id));
  }
}

/** The session id from a Cookie header. */
export function sessionIdOf(cookieHeader: string | undefined): string | undefined {
  if (cookieHeader === undefined) return undefined;
  for (const part of cookieHeader.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === SESSION_COOKIE) return part.slice(i + 1).trim();
  }
  return undefined;
}

/** Set-Cookie value: HttpOnly (no script reads it), SameSite=Strict (no cross-site request carries it). */
export function sessionCookie(id: string, maxAgeSeconds: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`;
}

export function clearedSessionCookie(): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;
}
